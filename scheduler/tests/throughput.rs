//! Scheduler throughput: 1,000 hollow nodes and 10,000 pods against a real API server.
//! Run with `cargo test --release -p skiff-scheduler --test throughput -- --ignored --nocapture`.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};

use futures::StreamExt;
use serde_json::json;
use support::*;

const NODES: usize = 1_000;
const PODS: usize = 10_000;
const LATENCY_PODS: usize = 2_000;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: minutes of CPU; run in release"]
async fn thousand_nodes_ten_thousand_pods() {
    let api = start().await;
    let c = api.client.clone();
    let t = Instant::now();
    futures::stream::iter(0..NODES)
        .map(|i| {
            let c = c.clone();
            async move {
                let zone = format!("zone-{}", i % 10);
                create_node(
                    &c,
                    node(
                        &format!("hollow-{i:04}"),
                        "32",
                        "128Gi",
                        json!({"zone": zone}),
                        json!({}),
                    ),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    eprintln!("created {NODES} nodes in {:?}", t.elapsed());
    let t = Instant::now();
    futures::stream::iter(0..PODS)
        .map(|i| {
            let c = c.clone();
            async move {
                create_pod(
                    &c,
                    pod(
                        &format!("bench-{i:05}"),
                        "100m",
                        json!({"app": "bench"}),
                        json!({}),
                    ),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    eprintln!("created {PODS} pods in {:?}", t.elapsed());

    let opts = no_election();
    let metrics = opts.metrics.clone();
    let start = Instant::now();
    let _s = spawn_scheduler(&c, opts);
    let mut last = 0;
    loop {
        let n = metrics.pods_scheduled();
        if n as usize >= PODS {
            break;
        }
        if start.elapsed() > Duration::from_secs(600) {
            panic!("only {n} of {PODS} pods bound after 10 minutes");
        }
        if n / 1000 != last / 1000 {
            eprintln!("{n} bound after {:?}", start.elapsed());
        }
        last = n;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = start.elapsed();
    let rate = PODS as f64 / took.as_secs_f64();
    eprintln!(
        "SCHEDULER THROUGHPUT: {PODS} pods on {NODES} nodes bound in {took:?} = {rate:.0} pods/s"
    );

    // Phase 2: pods created while the scheduler runs; latency from the create call to the
    // binding as a pod watch sees it.
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watch = {
        let seen = seen.clone();
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        tokio::spawn(async move {
            let mut s = watcher(pods, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(Ok(ev)) = s.next().await {
                if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = ev
                    && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
                {
                    let name = p.metadata.name.unwrap_or_default();
                    seen.lock()
                        .unwrap()
                        .entry(name)
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let t = Instant::now();
    futures::stream::iter(0..LATENCY_PODS)
        .map(|i| {
            let c = c.clone();
            let created = created.clone();
            async move {
                let name = format!("late-{i:05}");
                let at = Instant::now();
                create_pod(&c, pod(&name, "100m", json!({"app": "late"}), json!({}))).await;
                created.lock().unwrap().insert(name, at);
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    while (metrics.pods_scheduled() as usize) < PODS + LATENCY_PODS
        || seen
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("late-"))
            .count()
            < LATENCY_PODS
    {
        assert!(t.elapsed() < Duration::from_secs(300), "phase 2 timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let phase2 = t.elapsed();
    watch.abort();
    let seen = seen.lock().unwrap();
    let mut lat: Vec<Duration> = created
        .lock()
        .unwrap()
        .iter()
        .map(|(k, at)| seen[k].saturating_duration_since(*at))
        .collect();
    lat.sort();
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    eprintln!(
        "CREATE-TO-BOUND ({LATENCY_PODS} pods created at full speed, done in {phase2:?}): p50 {:?}, p99 {:?}, max {:?}",
        pct(0.5),
        pct(0.99),
        lat[lat.len() - 1]
    );
    let text = metrics.render();
    for line in text.lines().filter(|l| {
        l.contains("schedule_attempts_total") || l.contains("pod_scheduling_duration_seconds_count")
    }) {
        eprintln!("{line}");
    }
}
