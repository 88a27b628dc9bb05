//! Services: HTTP throughput and latency through a ClusterIP beside the same requests to
//! the pod's own address (Debian's `wrk`, from the host, alternating rounds in one run),
//! and rule programming: from a Service create at the API to its rule answering in the
//! kernel, with 1,000 and 10,000 hollow Services in the table, beside `nft -f` applying
//! the same change to a copy of the same table (the floor of any `nft -f` datapath).
//!
//! A real `skiff server` and agent (the e2e harness), one busybox httpd pod, and
//! selectorless Services with an EndpointSlice of three addresses each (hollow: no pod
//! behind them, no traffic sent to them). A new Service without endpoints is rejected by
//! its rule, so "live" is the moment a connection to its ClusterIP is refused instead of
//! dropped (an unheld service address is dropped).

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use serde_json::json;
use skiff_e2e::workload::{apply, wait_ready_pods};
use skiff_e2e::{Cluster, Node, kube_config};

use crate::stats;

/// Options of the Services benchmark.
pub struct ServicesBenchOptions {
    /// Seconds per wrk round.
    pub seconds: u64,
    /// Rounds per target (alternating).
    pub rounds: usize,
    /// wrk connections.
    pub connections: u32,
    /// Table sizes (Services) the rule change is measured at.
    pub sizes: Vec<usize>,
    /// Changes measured per size.
    pub changes: usize,
}

const SERVICE_CIDR: &str = "10.152.0.0/16";
const REFERENCE_TABLE: &str = "skiffbench_ref";

const BACKEND: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: httpd
        image: busybox:1.36
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]
      - name: sink
        image: busybox:1.36
        imagePullPolicy: Never
        command: ["sh", "-c", "while true; do nc -l -p 5201 > /dev/null; done"]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: sink, port: 5201, targetPort: 5201}]
"#;

/// Runs the benchmark (blocking; the harness drives its own runtimes) and returns the
/// Markdown section.
pub fn run(opts: &ServicesBenchOptions) -> Result<String> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed (apt-get install wrk)");
    }
    let c = Cluster::start_with_args(&["--service-cidr", SERVICE_CIDR])?;
    let node = c.start_node_with_args("bench-svc", 61, &["--service-cidr", SERVICE_CIDR])?;
    apply(&c, BACKEND);
    let pod = wait_ready_pods(&c, "app=web", 1, 90).remove(0);
    let pod_ip = pod["status"]["podIP"]
        .as_str()
        .context("pod IP")?
        .to_string();
    let svc: serde_json::Value =
        serde_json::from_slice(&c.kubectl(&["get", "svc", "web", "-o", "json"]).stdout)?;
    let cip = svc["spec"]["clusterIP"]
        .as_str()
        .context("clusterIP")?
        .to_string();

    let direct_url = format!("http://{pod_ip}:8080/index.html");
    let service_url = format!("http://{cip}/index.html");
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for _ in 0..opts.rounds.max(1) {
        direct.push(wrk(&direct_url, opts)?);
        through.push(wrk(&service_url, opts)?);
    }
    let (d, t) = (Wrk::mean(&direct), Wrk::mean(&through));
    // Established connections: one TCP stream of `STREAM_BYTES` to the pod's sink, to the
    // pod IP and through the ClusterIP, alternating.
    let (mut sd, mut st) = (Vec::new(), Vec::new());
    for _ in 0..opts.rounds.max(1) {
        sd.push(stream_mbps(&format!("{pod_ip}:5201"))?);
        st.push(stream_mbps(&format!("{cip}:5201"))?);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let streams = (mean(&sd), mean(&st), spread(&sd), spread(&st));
    eprintln!(
        "stream: pod {:.0} MB/s, ClusterIP {:.0} MB/s",
        streams.0, streams.1
    );

    let rt = tokio::runtime::Runtime::new()?;
    let mut rows = Vec::new();
    let mut made = 0;
    let mut node = node;
    for &size in &opts.sizes {
        // Filled with the agent stopped (its proxy would re-sync after every burst), then
        // started: its first full sync programs the whole table.
        eprintln!("filling the table to {size} Services ...");
        node.kill9();
        rt.block_on(hollow_services(&c, made, size))?;
        made = size;
        let started = Instant::now();
        node.restart(&c)?;
        rt.block_on(rule_latency(
            &c,
            &format!("probe-{size}"),
            size,
            Duration::from_secs(300),
        ))?;
        let startup = started.elapsed();
        eprintln!(
            "{size} Services: live {startup:?} after the agent started; measuring changes ..."
        );
        let mut skiff = Vec::new();
        for i in 0..opts.changes {
            let name = format!("change-{size}-{i}");
            skiff.push(rt.block_on(rule_latency(&c, &name, size, Duration::from_secs(60)))?);
        }
        let reference = nft_reference(&node, opts.changes)?;
        eprintln!(
            "{size} Services: API → rule live {}, nft -f {}",
            stats::summarize(&skiff).pair(),
            stats::summarize(&reference).pair()
        );
        rows.push(Row {
            size,
            startup,
            skiff: stats::summarize(&skiff),
            reference: stats::summarize(&reference),
        });
    }
    drop(rt);
    Ok(render(opts, &d, &t, streams, &rows))
}

/// Bytes one stream sends to the sink.
const STREAM_BYTES: usize = 512 << 20;

/// MB/s of one TCP connection writing `STREAM_BYTES` to `addr` until the sink has read
/// them all (its close after our shutdown answers the read).
fn stream_mbps(addr: &str) -> Result<f64> {
    use std::io::{Read, Write};
    let addr: SocketAddr = addr.parse()?;
    let mut last = None;
    for _ in 0..20 {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(mut s) => {
                let buf = vec![0u8; 256 << 10];
                let t = Instant::now();
                let mut sent = 0;
                while sent < STREAM_BYTES {
                    s.write_all(&buf)?;
                    sent += buf.len();
                }
                s.shutdown(std::net::Shutdown::Write)?;
                let mut rest = Vec::new();
                s.set_read_timeout(Some(Duration::from_secs(30)))?;
                let _ = s.read_to_end(&mut rest);
                let took = t.elapsed().as_secs_f64();
                // The sink's loop needs a moment to listen again.
                std::thread::sleep(Duration::from_millis(300));
                return Ok(sent as f64 / 1e6 / took);
            }
            Err(e) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    bail!("no stream to {addr}: {last:?}")
}

/// `min-max` of the rounds.
fn spread(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    (min, max)
}

/// The rule-programming figures at one table size.
struct Row {
    size: usize,
    /// Agent start → a Service created then is live (includes the first full sync).
    startup: Duration,
    skiff: stats::Summary,
    reference: stats::Summary,
}

/// One wrk round's figures.
#[derive(Debug, Clone, Default)]
struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Wrk {
    fn mean(runs: &[Wrk]) -> Wrk {
        let n = runs.len().max(1) as f64;
        Wrk {
            rps: runs.iter().map(|r| r.rps).sum::<f64>() / n,
            p50_ms: runs.iter().map(|r| r.p50_ms).sum::<f64>() / n,
            p99_ms: runs.iter().map(|r| r.p99_ms).sum::<f64>() / n,
        }
    }
}

fn wrk(url: &str, opts: &ServicesBenchOptions) -> Result<Wrk> {
    let out = Command::new("wrk")
        .args(["-t1", "--latency", "--timeout", "2s"])
        .arg(format!("-c{}", opts.connections))
        .arg(format!("-d{}s", opts.seconds))
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text).with_context(|| format!("wrk {url}: {text}"))
}

/// `Requests/sec:` and the 50 % and 99 % lines of `wrk --latency`.
fn parse_wrk(text: &str) -> Option<Wrk> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_string())
    };
    let ms = |v: String| -> Option<f64> {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
        let n: f64 = num.parse().ok()?;
        Some(match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            _ => return None,
        })
    };
    if text.contains("Non-2xx") {
        return None;
    }
    Some(Wrk {
        rps: field("Requests/sec:")?.parse().ok()?,
        p50_ms: ms(field("50%")?)?,
        p99_ms: ms(field("99%")?)?,
    })
}

/// Creates hollow Services `from..to` (each with a slice of three addresses no pod holds),
/// 16 requests in flight.
async fn hollow_services(c: &Cluster, from: usize, to: usize) -> Result<()> {
    use futures::StreamExt;
    let client = kube::Client::try_from(kube_config(&c.kubeconfig).await?)?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client, "default");
    let results: Vec<Result<()>> = futures::stream::iter(from..to)
        .map(|i| {
            let (services, slices) = (services.clone(), slices.clone());
            async move {
                let name = format!("hollow-{i}");
                let svc = json!({"metadata": {"name": name},
                    "spec": {"ports": [{"name": "http", "port": 80}]}});
                create_once(&services, serde_json::from_value(svc)?).await?;
                let addr = |k: usize| {
                    format!(
                        "198.18.{}.{}",
                        (i * 3 + k) / 250 % 250,
                        (i * 3 + k) % 250 + 1
                    )
                };
                let slice = json!({"metadata": {"name": format!("{name}-1"),
                        "labels": {"kubernetes.io/service-name": name}},
                    "addressType": "IPv4",
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                    "endpoints": (0..3).map(|k| json!({"addresses": [addr(k)],
                        "conditions": {"ready": true}})).collect::<Vec<_>>()});
                create_once(&slices, serde_json::from_value(slice)?).await?;
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Creates `obj`, retrying a request lost on the way (the machine may be loaded); one that
/// had been stored answers 409 on the retry, which counts as done.
async fn create_once<K>(api: &Api<K>, obj: K) -> Result<()>
where
    K: Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    let mut tries = 0;
    loop {
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 && tries > 0 => return Ok(()),
            Err(e) if tries < 5 && !matches!(e, kube::Error::Api(_)) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Creates Service `name` without endpoints; the time from the API's answer to the first
/// refused connection to its ClusterIP.
async fn rule_latency(c: &Cluster, name: &str, size: usize, limit: Duration) -> Result<Duration> {
    let client = kube::Client::try_from(kube_config(&c.kubeconfig).await?)?;
    let services: Api<Service> = Api::namespaced(client, "default");
    let svc = json!({"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}});
    let created = services
        .create(&PostParams::default(), &serde_json::from_value(svc)?)
        .await?;
    let t = Instant::now();
    let ip = created
        .spec
        .and_then(|s| s.cluster_ip)
        .context("clusterIP")?;
    let addr: SocketAddr = format!("{ip}:80").parse()?;
    let waited = tokio::task::spawn_blocking(move || {
        while t.elapsed() < limit {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(2)) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Some(t.elapsed());
                }
                _ => {}
            }
        }
        None
    })
    .await?;
    waited.with_context(|| format!("{name} not live within {limit:?} at {size} Services"))
}

/// `nft -f` of the change a new Service without endpoints makes (its reject element and
/// held address), `changes` times, against a hook-less copy of the proxy's table.
fn nft_reference(node: &Node, changes: usize) -> Result<Vec<std::time::Duration>> {
    let listed = Command::new("nft")
        .args(["list", "table", "ip", &node.proxy_table()])
        .output()?;
    let text = String::from_utf8(listed.stdout)?;
    let mut copy = String::new();
    for line in text.lines() {
        if line.starts_with("table ip ") {
            copy.push_str(&format!("table ip {REFERENCE_TABLE} {{\n"));
        } else if !line.contains(" hook ") {
            copy.push_str(line);
            copy.push('\n');
        }
    }
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", REFERENCE_TABLE])
        .stderr(std::process::Stdio::null())
        .status();
    nft_script(&copy).context("loading the reference table")?;
    let mut took = Vec::new();
    for i in 0..changes {
        // Outside the service range, so no Service of the copy holds it already.
        let ip = format!("10.153.0.{}", i % 250 + 1);
        let script = format!(
            "add element ip {REFERENCE_TABLE} no-endpoint-services {{ {ip} . tcp . 80 : goto reject-chain }}\n\
             add element ip {REFERENCE_TABLE} cluster-ips {{ {ip} }}\n"
        );
        let t = Instant::now();
        nft_script(&script)?;
        took.push(t.elapsed());
    }
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", REFERENCE_TABLE])
        .status();
    Ok(took)
}

fn nft_script(script: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("nft stdin")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft -f: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn render(
    opts: &ServicesBenchOptions,
    direct: &Wrk,
    through: &Wrk,
    streams: (f64, f64, (f64, f64), (f64, f64)),
    rows: &[Row],
) -> String {
    let mut s = format!(
        "A real server and agent ({} build), one busybox httpd pod; `wrk -t1 -c{} -d{}s --latency` from the host, {} alternating rounds per target, means shown. busybox httpd closes every connection, so each request is a new TCP connection (a new conntrack entry and NAT decision through the ClusterIP).\n\n\
         | target | requests/s | p50 | p99 |\n|---|---|---|---|\n",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        opts.connections,
        opts.seconds,
        opts.rounds
    );
    s.push_str(&format!(
        "| pod IP directly (reference) | {:.0} | {:.2} ms | {:.2} ms |\n| through the ClusterIP | {:.0} | {:.2} ms | {:.2} ms |\n",
        direct.rps, direct.p50_ms, direct.p99_ms, through.rps, through.p50_ms, through.p99_ms
    ));
    s.push_str(&format!(
        "| cost ratio (requests/s pod ÷ ClusterIP; latency ClusterIP ÷ pod; goal ≤ 1.05) | {:.3} | {:.3} | {:.3} |\n\n",
        direct.rps / through.rps,
        through.p50_ms / direct.p50_ms,
        through.p99_ms / direct.p99_ms
    ));
    let (sd, st, (dmin, dmax), (tmin, tmax)) = streams;
    s.push_str(&format!(
        "Established connection: one TCP stream of {} MiB from the host to a busybox `nc -l` sink in the same pod, {} alternating rounds per target, mean (min-max); no new connection, so this is the steady-state cost of the NAT (a conntrack lookup per packet), not its decision.\n\n\
         | target | MB/s |\n|---|---|\n| pod IP directly (reference) | {sd:.0} ({dmin:.0}-{dmax:.0}) |\n| through the ClusterIP | {st:.0} ({tmin:.0}-{tmax:.0}) |\n| cost ratio (pod ÷ ClusterIP; goal ≤ 1.05) | {:.3} |\n\n",
        STREAM_BYTES >> 20,
        opts.rounds,
        sd / st
    ));
    s.push_str(&format!(
        "Rule programming: a Service created at the API until a connection to its ClusterIP is refused by its new rule, {} changes per size, p50 / p99; the reference is `nft -f` of the same change (the new reject element and held address) to a hook-less copy of the proxy's table at that moment.\n\n\
         | hollow Services (3 endpoints each) | skiff: API → rule live | `nft -f` of the change (reference) | agent start → a new Service live |\n|---|---|---|---|\n",
        opts.changes
    ));
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} s |\n",
            r.size,
            r.skiff.pair(),
            r.reference.pair(),
            r.startup.as_secs_f64()
        ));
    }
    s.push_str("\nThe table is filled with the agent stopped; the last column is from its restart to a Service created then answering, which includes the agent's start, its lists of Services and slices and its first full sync of the whole table.\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_latency_output() {
        let text = "Running 5s test @ http://10.0.0.1/\n  1 threads and 8 connections\n  Latency Distribution\n     50%  812.00us\n     75%    1.10ms\n     90%    1.50ms\n     99%    3.20ms\n  10000 requests in 5.00s, 1.2MB read\nRequests/sec:   2000.50\nTransfer/sec:    250.00KB\n";
        let w = parse_wrk(text).unwrap();
        assert_eq!(w.rps, 2000.5);
        assert!((w.p50_ms - 0.812).abs() < 1e-9);
        assert_eq!(w.p99_ms, 3.2);
        assert!(parse_wrk(&format!("{text}  Non-2xx or 3xx responses: 5\n")).is_none());
    }
}
