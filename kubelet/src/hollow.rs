//! Hollow nodes for scale tests: many kubelets in one process, each over a fake runtime and
//! fake images, so pods "run" with no processes.

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Kubelet;
use crate::config::KubeletConfig;
use crate::fake::FakeRuntime;
use crate::images::FakeImages;

/// Runs `count` hollow kubelets (fake runtime, fake images) named `<prefix>-<i>` until
/// `shutdown`; `client_for` gives each node its API client.
pub async fn run_hollow_nodes(
    count: usize,
    client_for: impl Fn(&str) -> kube::Client,
    prefix: &str,
    root_dir: PathBuf,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let name = format!("{prefix}-{i}");
        let mut cfg = KubeletConfig::new(
            name.clone(),
            client_for(&name),
            Arc::new(FakeRuntime::default()),
            Arc::new(FakeImages::default()),
            root_dir.join(&name),
        );
        cfg.require_pod_cidr = false;
        cfg.node_ip = Some(Ipv4Addr::new(10, 255, (i / 250) as u8, (i % 250) as u8 + 1));
        cfg.max_pods = Some(110);
        // Fake containers never exit on their own, so there is nothing for a 1 s re-check
        // to notice; every change still wakes the pod worker at once. (Kubernetes' own
        // kubelet re-syncs a pod every minute.)
        cfg.timers.sync_interval = Duration::from_secs(10);
        tasks.spawn(async move { Kubelet::new(cfg).run(std::future::pending()).await });
    }
    shutdown.await;
    tasks.abort_all();
    Ok(())
}
