//! Hollow nodes (the kubelet with its fake runtime: pods "run" instantly) hosted on a
//! thread of the test process and joined to a [`Cluster`]; stopped on drop.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::{Cluster, eventually, kube_config};

/// Hollow nodes running on their own thread and runtime until dropped.
pub struct HollowNodes {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `count` hollow nodes named `<prefix>-<i>` and waits until they are Ready.
    pub fn hollow_nodes(&self, count: usize, prefix: &str) -> Result<HollowNodes> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().to_path_buf();
        let kubeconfig = self.kubeconfig.clone();
        let prefix = prefix.to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let cfg = kube_config(&kubeconfig).await.expect("client config");
                let client_for =
                    move |_: &str| kube::Client::try_from(cfg.clone()).expect("client");
                let _ = skiff_kubelet::run_hollow_nodes(count, client_for, &prefix, root, async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        let nodes = HollowNodes {
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        };
        let ready = eventually(Duration::from_secs(60), || {
            let out = self.kubectl(&["get", "nodes", "--no-headers"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let n = text
                .lines()
                .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
                .count();
            (n >= count).then_some(())
        });
        if ready.is_none() {
            bail!("hollow nodes did not become Ready");
        }
        Ok(nodes)
    }
}

impl Drop for HollowNodes {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
