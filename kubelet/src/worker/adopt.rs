//! Adoption: on start, a worker picks up the sandbox and containers the runtime already
//! runs for its pod (containers outlive the agent), with their restart counts and probes.

use std::collections::BTreeMap;

use skiff_runtime::container::Status;
use skiff_runtime::pod::{ContainerStatus, SandboxStatus};
use tokio::time::Instant;

use super::probe::probes_for;
use super::{ContainerTrack, PodWorker, app_containers, key};
use crate::probes::ProbeKind;
use crate::status::{self};

impl PodWorker {
    /// Picks up the sandbox and containers the runtime already has for this pod.
    pub(super) async fn adopt(&mut self) {
        let Ok(sandboxes) = self.sh.runtime.list_pod_sandboxes().await else {
            return;
        };
        let mut mine: Vec<SandboxStatus> = sandboxes
            .into_iter()
            .filter(|s| s.config.uid == self.uid)
            .collect();
        mine.sort_by_key(|s| s.created_at);
        let Some(sb) = mine.pop() else { return };
        for old in mine {
            let _ = self.sh.runtime.remove_pod_sandbox(&old.id).await;
        }
        let containers = self.sh.runtime.list_containers().await.unwrap_or_default();
        let mut by_name: BTreeMap<String, Vec<ContainerStatus>> = BTreeMap::new();
        for c in containers.into_iter().filter(|c| c.sandbox_id == sb.id) {
            by_name.entry(c.name.clone()).or_default().push(c);
        }
        let api_statuses: Vec<k8s_openapi::api::core::v1::ContainerStatus> = self
            .pod
            .status
            .as_ref()
            .map(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for (name, mut list) in by_name {
            list.sort_by_key(|c| c.created_at);
            let current = list.pop();
            let previous = list.pop();
            for extra in list {
                let _ = self.sh.runtime.remove_container(&extra.id).await;
            }
            let api = api_statuses.iter().find(|s| s.name == name);
            let same = |c: &ContainerStatus| {
                api.and_then(|a| a.container_id.as_deref()) == Some(&format!("skiff://{}", c.id))
            };
            let mut t = ContainerTrack {
                restart_count: api.map_or(0, |a| a.restart_count),
                last_terminated: api
                    .and_then(|a| a.last_state.as_ref())
                    .and_then(|l| l.terminated.as_ref())
                    .and_then(|t| serde_json::to_value(t).ok())
                    .or_else(|| previous.as_ref().map(status::terminated)),
                previous: previous.map(|p| p.id),
                ..Default::default()
            };
            if let Some(c) = &current {
                if same(c) {
                    t.ready = api.is_some_and(|a| a.ready);
                    t.started = api.and_then(|a| a.started).unwrap_or(false);
                    t.handled_exit = (c.status == Status::Stopped
                        && api
                            .and_then(|a| a.state.as_ref())
                            .is_some_and(|s| s.running.is_none()))
                    .then(|| c.id.clone());
                }
                if let Some(spec) = self.container_spec(&name) {
                    t.image = self
                        .sh
                        .images
                        .resolve(&spec.image.clone().unwrap_or_default());
                    if c.status == Status::Running {
                        t.probes = probes_for(&spec, Instant::now(), t.started);
                        if t.probes.iter().all(|(k, _)| *k != ProbeKind::Startup) {
                            t.started = true;
                        }
                    }
                }
            }
            t.current = current;
            self.tracks.insert(name, t);
        }
        // Any app container seen means init is over.
        self.initialized = app_containers(&self.pod)
            .iter()
            .any(|c| self.tracks.contains_key(&c.name));
        tracing::info!(pod = %key(&self.pod), sandbox = %sb.id, "adopted running pod");
        self.sandbox = Some(sb);
    }
}
