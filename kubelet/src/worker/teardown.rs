//! Teardown: preStop hooks and graceful stops, sandbox and volume removal, and the final
//! delete of the pod object.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Preconditions};
use skiff_runtime::container::Status;
use tokio::time::Instant;

use super::{PodWorker, key};
use crate::events::EventType::{Normal, Warning};

impl PodWorker {
    pub(super) fn grace_period(&self) -> Duration {
        let secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or(self
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30)
            .max(0);
        Duration::from_secs(secs as u64)
    }

    /// preStop (within the grace period), then SIGTERM, the rest of the grace, SIGKILL.
    pub(super) async fn stop_one(&self, c: &Container, id: &str, grace: Duration) {
        let t0 = Instant::now();
        if let Some(cmd) = c
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| h.exec.as_ref())
            .and_then(|e| e.command.clone())
            && let Err(e) = self
                .sh
                .runtime
                .exec_sync(id, cmd, grace.max(Duration::from_secs(1)))
                .await
        {
            self.event(
                Some(&c.name),
                Warning,
                "FailedPreStopHook",
                format!("PreStopHook failed: {e}"),
            );
        }
        let left = grace.saturating_sub(t0.elapsed());
        if let Err(e) = self.sh.runtime.stop_container(id, left).await {
            tracing::warn!(pod = %key(&self.pod), container = %c.name, error = %e, "stop failed");
        }
    }

    /// Graceful termination: stop every container, tear down, then remove the pod object.
    pub(super) async fn terminate(&mut self, pod_exists: bool) {
        let grace = if pod_exists {
            self.grace_period()
        } else {
            Duration::from_secs(1)
        };
        self.refresh().await;
        let running: Vec<(Container, String)> = self
            .tracks
            .iter()
            .filter_map(|(name, t)| {
                let s = t.current.as_ref()?;
                (s.status == Status::Running || s.status == Status::Created)
                    .then(|| Some((self.container_spec(name)?, s.id.clone())))?
            })
            .collect();
        for (c, _) in &running {
            self.event(
                Some(&c.name),
                Normal,
                "Killing",
                format!("Stopping container {}", c.name),
            );
        }
        futures::future::join_all(running.iter().map(|(c, id)| self.stop_one(c, id, grace))).await;
        self.refresh().await;
        if pod_exists {
            for t in self.tracks.values_mut() {
                t.ready = false;
            }
            self.write_status().await;
        }
        if let Some(sb) = self.sandbox.take() {
            let _ = self.sh.runtime.stop_pod_sandbox(&sb.id).await;
            if let Err(e) = self.sh.runtime.remove_pod_sandbox(&sb.id).await {
                tracing::warn!(pod = %key(&self.pod), error = %e, "sandbox removal failed");
            }
        }
        self.sh.index.remove(
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
            self.pod.metadata.name.as_deref().unwrap_or_default(),
            &self.uid,
        );
        self.sh.metrics.forget_pod(&self.uid);
        let (root, uid) = (self.sh.root_dir.clone(), self.uid.clone());
        let _ = tokio::task::spawn_blocking(move || cleanup_pod_dir(&root, &uid)).await;
        if pod_exists {
            let api: Api<Pod> = Api::namespaced(
                self.sh.client.clone(),
                self.pod.metadata.namespace.as_deref().unwrap_or("default"),
            );
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            let name = self.pod.metadata.name.clone().unwrap_or_default();
            if let Err(e) = api.delete(&name, &dp).await {
                tracing::warn!(pod = %key(&self.pod), error = %e, "final pod delete failed");
            }
        }
        tracing::info!(pod = %key(&self.pod), "pod terminated");
    }
}

/// Removes a pod's volumes (its containers' root filesystems go with the containers).
pub fn cleanup_pod_dir(root: &std::path::Path, uid: &str) {
    if let Err(e) = crate::volumes::teardown(root, uid) {
        tracing::warn!(uid, error = %e, "volume teardown failed");
    }
}
