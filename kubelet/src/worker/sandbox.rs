//! The pod's volumes and sandbox: set up volumes, ensure a ready sandbox (recreating it,
//! and with it every container, when it died), and reload container states.

use skiff_runtime::pod::{PodSandboxConfig, SandboxState};
use tokio::time::Instant;

use super::PodWorker;
use crate::events::EventType::Warning;

impl PodWorker {
    pub(super) async fn sync_volumes(&mut self) {
        let due = self
            .volumes_synced
            .is_none_or(|t| t.elapsed() >= self.sh.timers.volume_resync);
        if !due || self.terminal.is_some() {
            return;
        }
        let result = self
            .volumes
            .sync(
                &self.sh.client,
                &self.sh.root_dir,
                &self.pod,
                self.sh.mount_tmpfs,
            )
            .await;
        match result {
            Ok(()) => {
                self.volumes_synced = Some(Instant::now());
                self.volume_error = None;
            }
            Err(e) => {
                let msg = format!("MountVolume.SetUp failed: {e}");
                if self.volume_error.as_ref() != Some(&msg) {
                    self.event(None, Warning, "FailedMount", msg.clone());
                }
                self.volume_error = Some(msg);
            }
        }
    }

    /// Ensures a ready sandbox; false when there is none.
    pub(super) async fn ensure_sandbox(&mut self) -> bool {
        if let Some(sb) = &self.sandbox {
            match self.sh.runtime.pod_sandbox_status(&sb.id).await {
                Ok(s) if s.state == SandboxState::Ready => {
                    self.sandbox = Some(s);
                    return true;
                }
                _ => {
                    // The sandbox died: Kubernetes kills every container and starts over.
                    let _ = self.sh.runtime.remove_pod_sandbox(&sb.id).await;
                    self.sandbox = None;
                    for t in self.tracks.values_mut() {
                        t.current = None;
                        t.previous = None;
                    }
                    self.initialized = false;
                }
            }
        }
        let spec = self.pod.spec.clone().unwrap_or_default();
        let ns = self
            .pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let host = crate::pod_dns::host_dns();
        let node_dns = crate::pod_dns::NodeDns {
            cluster_dns: self.sh.cluster_dns,
            domain: &self.sh.cluster_domain,
            host: &host,
        };
        let dns = Some(crate::pod_dns::pod_dns(&self.pod, node_dns));
        let config = PodSandboxConfig {
            name: self.pod.metadata.name.clone().unwrap_or_default(),
            namespace: ns,
            uid: self.uid.clone(),
            hostname: spec
                .hostname
                .clone()
                .unwrap_or_else(|| self.pod.metadata.name.clone().unwrap_or_default()),
            host_network: spec.host_network.unwrap_or(false),
            dns,
            resources: crate::podspec::pod_resources(&self.pod),
            labels: self.pod.metadata.labels.clone().unwrap_or_default(),
        };
        match self.sh.runtime.run_pod_sandbox(config).await {
            Ok(id) => match self.sh.runtime.pod_sandbox_status(&id).await {
                Ok(s) => {
                    self.sandbox = Some(s);
                    true
                }
                Err(_) => false,
            },
            Err(e) => {
                self.event(
                    None,
                    Warning,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {e}"),
                );
                false
            }
        }
    }

    /// Reloads every tracked container's runtime status.
    pub(super) async fn refresh(&mut self) {
        for t in self.tracks.values_mut() {
            if let Some(c) = &t.current {
                match self.sh.runtime.container_status(&c.id).await {
                    Ok(s) => t.current = Some(s),
                    Err(skiff_runtime::pod::RuntimeError::NotFound { .. }) => t.current = None,
                    Err(_) => {}
                }
            }
        }
    }
}
