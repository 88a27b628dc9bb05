//! Scheduler throughput: 1,000 hollow nodes and 10,000 pods against a real API server.
//! Run with `cargo test --release -p skiff-scheduler --test throughput -- --ignored --nocapture`.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use support::*;

const NODES: usize = 1_000;
const PODS: usize = 10_000;

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
    let text = metrics.render();
    for line in text.lines().filter(|l| {
        l.contains("schedule_attempts_total") || l.contains("pod_scheduling_duration_seconds_count")
    }) {
        eprintln!("{line}");
    }
}
