//! The API benchmark: create, get and list latency and throughput through a real
//! `skiff server` on each backend, beside the same operations straight on the store and on
//! the raw database (etcd-client put/get, a SQLite insert with the same durability), all in
//! one run; plus the server's resident memory idle and after 10,000 ConfigMaps.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use skiff_apiserver::storage::Store;
use skiff_apiserver::storage::embedded::EmbeddedStore;
use skiff_apiserver::storage::etcd::EtcdStore;
use skiff_apiserver::storage::etcd_server::EtcdServer;

use crate::procs::{rss_mib, start_server};
use crate::stats::{Summary, summarize};

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct ApiBenchOptions {
    /// Sequential operations per latency measurement.
    pub ops: usize,
    /// Concurrent clients for the throughput measurement.
    pub clients: usize,
    /// Objects created for the list and memory measurements.
    pub list_objects: usize,
}

/// Figures of one backend.
#[derive(Debug)]
pub struct BackendFigures {
    /// Backend name.
    pub backend: &'static str,
    /// Raw database write (etcd-client put / SQLite insert+commit).
    pub raw_write: Summary,
    /// Raw database read.
    pub raw_read: Summary,
    /// `Store::create` straight on the store.
    pub store_create: Summary,
    /// API create (POST) latency.
    pub api_create: Summary,
    /// API get latency.
    pub api_get: Summary,
    /// API creates per second with `clients` concurrent clients.
    pub api_create_throughput: f64,
    /// Raw store creates per second with the same concurrency.
    pub store_create_throughput: f64,
    /// Full LIST of `list_objects` objects (consistent read), milliseconds.
    pub api_list_ms: Summary,
    /// LIST with resourceVersion=0 (watch cache), milliseconds.
    pub api_list_cached_ms: Summary,
    /// Server RSS idle, MiB.
    pub rss_idle_mib: f64,
    /// Server RSS after `list_objects` ConfigMaps, MiB.
    pub rss_loaded_mib: f64,
}

fn value(i: usize) -> Vec<u8> {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("o{i}"), "namespace": "bench"}, "data": {"k": "x".repeat(400)}}).to_string().into_bytes()
}

async fn time_each<F, Fut>(n: usize, mut f: F) -> Result<Summary>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i).await?;
        samples.push(t.elapsed());
    }
    Ok(summarize(&samples))
}

/// Raw SQLite: one insert and commit per write, WAL with synchronous=FULL, as the embedded
/// store's durability requires.
fn sqlite_raw(dir: &Path, n: usize) -> Result<(Summary, Summary)> {
    let conn = rusqlite::Connection::open(dir.join("raw.sqlite"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)", [])?;
    let mut w = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        conn.execute(
            "INSERT INTO kv (k, v) VALUES (?1, ?2)",
            rusqlite::params![format!("/k/{i}"), value(i)],
        )?;
        w.push(t.elapsed());
    }
    let mut r = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let _: Vec<u8> = conn.query_row(
            "SELECT v FROM kv WHERE k = ?1",
            [format!("/k/{i}")],
            |row| row.get(0),
        )?;
        r.push(t.elapsed());
    }
    Ok((summarize(&w), summarize(&r)))
}

async fn etcd_raw(endpoint: &str, n: usize) -> Result<(Summary, Summary)> {
    let mut c = etcd_client::Client::connect([endpoint], None).await?;
    let mut w = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        c.put(format!("/raw/{i}"), value(i), None).await?;
        w.push(t.elapsed());
    }
    let mut r = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        c.get(format!("/raw/{i}"), None).await?;
        r.push(t.elapsed());
    }
    Ok((summarize(&w), summarize(&r)))
}

async fn store_throughput(
    store: Arc<dyn Store>,
    clients: usize,
    per_client: usize,
    tag: &str,
) -> Result<f64> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let store = store.clone();
            let tag = tag.to_string();
            tokio::spawn(async move {
                for i in 0..per_client {
                    store
                        .create(&format!("/tp/{tag}/{c}/{i}"), value(i))
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok((clients * per_client) as f64 / start.elapsed().as_secs_f64())
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "x".repeat(400)}}))
        .expect("configmap")
}

/// Runs the benchmark on one backend.
pub async fn run_backend(backend: &'static str, opts: &ApiBenchOptions) -> Result<BackendFigures> {
    let dir = tempfile::tempdir()?;
    let etcd = if backend == "etcd" {
        Some(EtcdServer::start(&dir.path().join("etcd")).await?)
    } else {
        None
    };
    let endpoint = etcd.as_ref().map(|e| e.endpoint().to_string());

    // References on the raw database and on the Store, in this run.
    let (raw_write, raw_read) = match &endpoint {
        Some(e) => etcd_raw(e, opts.ops).await?,
        None => sqlite_raw(dir.path(), opts.ops)?,
    };
    let store: Arc<dyn Store> = match &endpoint {
        Some(e) => Arc::new(EtcdStore::connect(std::slice::from_ref(e)).await?),
        None => Arc::new(EmbeddedStore::open(&dir.path().join("store.sqlite"))?),
    };
    let store_create = time_each(opts.ops, |i| {
        let store = store.clone();
        async move {
            store.create(&format!("/bench/seq/{i}"), value(i)).await?;
            Ok(())
        }
    })
    .await?;
    let per_client = (opts.ops / opts.clients).max(10);
    let store_create_throughput =
        store_throughput(store.clone(), opts.clients, per_client, "s").await?;
    drop(store);

    // The API server.
    let mut flags = vec!["--disable-agent".to_string()];
    if let Some(e) = &endpoint {
        flags.extend(["--etcd-endpoints".to_string(), e.clone()]);
    }
    let (server, client) = start_server(dir.path(), &flags).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle_mib = rss_mib(server.proc.pid());
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "bench"}}))?,
    )
    .await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "bench");
    let api_create = time_each(opts.ops, |i| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &cm(&format!("seq-{i}")))
                .await?;
            Ok(())
        }
    })
    .await?;
    let api_get = time_each(opts.ops, |i| {
        let api = api.clone();
        async move {
            api.get(&format!("seq-{}", i % opts.ops)).await?;
            Ok(())
        }
    })
    .await?;
    let start = Instant::now();
    let tasks: Vec<_> = (0..opts.clients)
        .map(|c| {
            let api = api.clone();
            tokio::spawn(async move {
                for i in 0..per_client {
                    api.create(&PostParams::default(), &cm(&format!("tp-{c}-{i}")))
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let api_create_throughput = (opts.clients * per_client) as f64 / start.elapsed().as_secs_f64();

    // Fill to `list_objects` ConfigMaps in a separate namespace, 32 at a time.
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "many"}}))?,
    )
    .await?;
    let many: Api<ConfigMap> = Api::namespaced(client.clone(), "many");
    futures::stream::iter(0..opts.list_objects)
        .map(|i| {
            let many = many.clone();
            async move {
                many.create(&PostParams::default(), &cm(&format!("m-{i}")))
                    .await
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let mut list = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let l = many.list(&ListParams::default()).await?;
        list.push(t.elapsed());
        if l.items.len() != opts.list_objects {
            bail!("listed {} of {} objects", l.items.len(), opts.list_objects);
        }
        let t = Instant::now();
        many.list(&ListParams::default().match_any()).await?;
        cached.push(t.elapsed());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_loaded_mib = rss_mib(server.proc.pid());
    drop(server);
    drop(etcd);
    Ok(BackendFigures {
        backend,
        raw_write,
        raw_read,
        store_create,
        api_create,
        api_get,
        api_create_throughput,
        store_create_throughput,
        api_list_ms: summarize(&list),
        api_list_cached_ms: summarize(&cached),
        rss_idle_mib,
        rss_loaded_mib,
    })
}

/// The BENCHMARKS.md section for these figures.
pub fn render(opts: &ApiBenchOptions, figures: &[BackendFigures]) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Sequential latency over {} operations each (ConfigMaps with 400-byte data), throughput with {} concurrent clients, LIST of {} ConfigMaps (10 runs). `raw` is the database itself in the same run: etcd-client put/get against the same etcd, or a SQLite insert+commit / select with the embedded store's durability (WAL, synchronous=FULL). `store` is skiff's `Store::create` without the API.\n\n",
        opts.ops, opts.clients, opts.list_objects
    ));
    s.push_str("| backend | raw write p50 / p99 | store create p50 / p99 | API create p50 / p99 | API create p99 ÷ raw write p99 | raw read p50 | API get p50 / p99 | store creates/s | API creates/s | LIST p50 / p99 | LIST rv=0 p50 | RSS idle | RSS after |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for f in figures {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.2}× | {:.2} ms | {} | {:.0} | {:.0} | {} | {:.1} ms | {:.1} MiB | {:.1} MiB |\n",
            f.backend,
            f.raw_write.pair(),
            f.store_create.pair(),
            f.api_create.pair(),
            f.api_create.p99 / f.raw_write.p99,
            f.raw_read.p50,
            f.api_get.pair(),
            f.store_create_throughput,
            f.api_create_throughput,
            f.api_list_ms.pair(),
            f.api_list_cached_ms.p50,
            f.rss_idle_mib,
            f.rss_loaded_mib,
        ));
    }
    s
}
