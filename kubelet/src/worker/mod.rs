//! The pod worker: one task per pod, driving it level-triggered from the latest pod
//! object and the runtime's state — volumes, sandbox, init containers in order, then
//! containers with image pulls, restart policy and CrashLoopBackOff, probes and hooks —
//! and writing the pod status when it changed. Also adopts what the runtime already runs.
//!
//! This file holds the worker's state and its loop; each phase is a file of its own:
//! [`adopt`], [`sandbox`] (volumes and sandbox), [`start`] (images and containers),
//! [`restart`] (restart policy and back-off), [`probe`], [`teardown`] and [`report`]
//! (status).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_runtime::pod::{ContainerStatus, SandboxStatus};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::images::ResolvedImage;
use crate::probes::{ProbeKind, ProbeTracker};
use crate::shared::Shared;
use crate::volumes::PodVolumes;

mod adopt;
mod probe;
mod report;
mod restart;
mod sandbox;
mod start;
mod teardown;

pub use teardown::cleanup_pod_dir;

use restart::Backoff;

/// What the worker tracks for one container name.
#[derive(Debug, Default)]
struct ContainerTrack {
    current: Option<ContainerStatus>,
    previous: Option<String>,
    restart_count: i32,
    last_terminated: Option<serde_json::Value>,
    waiting: Option<(String, String)>,
    restart_backoff: Backoff,
    image: Option<ResolvedImage>,
    ready: bool,
    started: bool,
    probes: Vec<(ProbeKind, ProbeTracker)>,
    /// The exited instance already accounted for.
    handled_exit: Option<String>,
    backoff_event_for: Option<Instant>,
}

/// One pod's worker.
pub struct PodWorker {
    sh: Arc<Shared>,
    pod: Pod,
    uid: String,
    sandbox: Option<SandboxStatus>,
    tracks: BTreeMap<String, ContainerTrack>,
    initialized: bool,
    terminal: Option<&'static str>,
    volumes: PodVolumes,
    volumes_synced: Option<Instant>,
    volume_error: Option<String>,
    image_backoff: BTreeMap<String, Backoff>,
    start_time: jiff::Timestamp,
    /// When this kubelet first saw the pod (`kubelet_pod_start_duration_seconds`).
    first_seen: std::time::Instant,
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn init_containers(pod: &Pod) -> Vec<Container> {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.clone())
        .unwrap_or_default()
}

fn app_containers(pod: &Pod) -> Vec<Container> {
    pod.spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default()
}

fn restart_policy(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into())
}

impl PodWorker {
    /// A worker for `pod`.
    pub fn new(sh: Arc<Shared>, pod: Pod) -> Self {
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map_or_else(jiff::Timestamp::now, |t| t.0);
        let terminal = match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Succeeded") => Some("Succeeded"),
            Some("Failed") => Some("Failed"),
            _ => None,
        };
        Self {
            sh,
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            pod,
            sandbox: None,
            tracks: BTreeMap::new(),
            initialized: false,
            terminal,
            volumes: PodVolumes::default(),
            volumes_synced: None,
            volume_error: None,
            image_backoff: BTreeMap::new(),
            start_time,
            first_seen: std::time::Instant::now(),
        }
    }

    pub(super) fn event(
        &self,
        container: Option<&str>,
        kind: crate::events::EventType,
        reason: &str,
        msg: String,
    ) {
        self.sh
            .recorder
            .record(&self.pod, container, kind, reason, msg);
    }

    /// Runs until the pod is gone (`None` on the channel) or the channel closes (kubelet
    /// shutdown: containers keep running).
    pub async fn run(mut self, mut rx: watch::Receiver<Option<Pod>>) {
        self.adopt().await;
        self.publish_instances();
        loop {
            let latest = rx.borrow_and_update().clone();
            match latest {
                None => {
                    self.terminate(false).await;
                    return;
                }
                Some(p) => self.pod = p,
            }
            if self.pod.metadata.deletion_timestamp.is_some() {
                self.terminate(true).await;
                return;
            }
            self.sync().await;
            self.publish_instances();
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(self.sh.timers.sync_interval) => {}
            }
        }
    }

    pub(super) fn container_spec(&self, name: &str) -> Option<Container> {
        app_containers(&self.pod)
            .into_iter()
            .chain(init_containers(&self.pod))
            .find(|c| c.name == name)
    }

    pub(super) fn pod_ip(&self) -> Option<String> {
        self.sandbox
            .as_ref()
            .and_then(|s| s.ip)
            .map(|ip| ip.to_string())
    }

    pub(super) async fn sync(&mut self) {
        self.sync_volumes().await;
        if self.terminal.is_none() && self.volumes_synced.is_some() && self.ensure_sandbox().await {
            self.refresh().await;
            if !self.initialized {
                self.sync_init().await;
            }
            if self.initialized && self.terminal.is_none() {
                self.sync_containers().await;
            }
            self.decide_terminal().await;
        } else if self.terminal.is_some() {
            self.refresh().await;
        }
        self.write_status().await;
    }
}
