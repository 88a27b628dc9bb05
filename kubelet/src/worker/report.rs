//! Status reporting: each container's view, the pod status written when it changed, and the
//! container instances published for the node server.

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use skiff_runtime::container::Status;
use skiff_runtime::pod::SandboxState;

use super::{PodWorker, app_containers, init_containers, key, restart_policy};
use crate::status::{self, ContainerView, PodView};

impl PodWorker {
    pub(super) fn view(&self, c: &Container) -> ContainerView {
        let t = self.tracks.get(&c.name);
        let policy = restart_policy(&self.pod);
        let restarting = t.and_then(|t| t.current.as_ref()).is_some_and(|s| {
            s.status == Status::Stopped
                && self.terminal.is_none()
                && match policy.as_str() {
                    "Never" => false,
                    "OnFailure" => s.exit_code != Some(0),
                    _ => true,
                }
        }) && t.is_some_and(|t| t.waiting.is_some());
        ContainerView {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: t.and_then(|t| t.image.as_ref()).map(|i| i.id.clone()),
            current: t.and_then(|t| t.current.clone()),
            restart_count: t.map_or(0, |t| t.restart_count),
            last_terminated: t.and_then(|t| t.last_terminated.clone()),
            waiting: t.and_then(|t| t.waiting.clone()).or_else(|| {
                self.volume_error
                    .is_some()
                    .then(|| ("ContainerCreating".into(), String::new()))
            }),
            restarting,
            ready: t.is_some_and(|t| t.ready),
            started: t.is_some_and(|t| t.started),
        }
    }

    pub(super) async fn write_status(&mut self) {
        let mut init: Vec<ContainerView> = init_containers(&self.pod)
            .iter()
            .map(|c| self.view(c))
            .collect();
        let mut containers: Vec<ContainerView> = app_containers(&self.pod)
            .iter()
            .map(|c| self.view(c))
            .collect();
        if !self.initialized {
            for v in &mut containers {
                if v.current.is_none() {
                    v.waiting = Some(("PodInitializing".into(), String::new()));
                }
            }
        }
        for v in &mut init {
            if v.current.is_none() && v.waiting.is_none() {
                v.waiting = Some(("PodInitializing".into(), String::new()));
            }
        }
        let view = PodView {
            pod: &self.pod,
            init,
            containers,
            initialized: self.initialized,
            terminal: self.terminal,
            sandbox_ready: self
                .sandbox
                .as_ref()
                .is_some_and(|s| s.state == SandboxState::Ready),
            pod_ip: self.pod_ip(),
            host_ip: self.sh.host_ip.clone(),
            start_time: self.start_time,
        };
        let new = status::build(&view);
        if !status::changed(&self.pod, &new) {
            return;
        }
        let phase = |s: Option<&PodStatus>| s.and_then(|s| s.phase.clone());
        let now_running = phase(Some(&new)).as_deref() == Some("Running")
            && phase(self.pod.status.as_ref()).as_deref() != Some("Running");
        let api: Api<Pod> = Api::namespaced(
            self.sh.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": new })),
            )
            .await
        {
            Ok(p) => {
                // As the kubelet does: observed once, when the status it writes first
                // says Running (an adopted running pod never counts).
                if now_running {
                    self.sh.metrics.pod_started(self.first_seen.elapsed());
                }
                self.pod = p
            }
            Err(e) => tracing::debug!(pod = %key(&self.pod), error = %e, "status update failed"),
        }
    }

    /// Tells the node server which container instances this pod has now.
    pub(super) fn publish_instances(&self) {
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = self.pod.metadata.name.as_deref().unwrap_or_default();
        let instances = self.tracks.iter().map(|(c, t)| {
            // An exited instance waiting to be restarted is what the status reports as
            // lastState.terminated, so it is the one `logs --previous` shows (as the
            // kubelet's validateContainerLogStatus does).
            let exited_waiting = t.waiting.is_some()
                && t.current
                    .as_ref()
                    .is_some_and(|s| s.status == Status::Stopped);
            let current = t.current.as_ref().map(|s| s.id.clone());
            let ids = crate::instances::InstanceIds {
                previous: if exited_waiting {
                    current.clone()
                } else {
                    t.previous.clone()
                },
                current,
            };
            (c.clone(), ids)
        });
        self.sh.index.publish(ns, name, &self.uid, instances);
    }
}
