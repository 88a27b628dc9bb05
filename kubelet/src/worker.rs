//! The pod worker: one task per pod, driving it level-triggered from the latest pod
//! object and the runtime's state — volumes, sandbox, init containers in order, then
//! containers with image pulls, restart policy and CrashLoopBackOff, probes and hooks —
//! and writing the pod status when it changed. Also adopts what the runtime already runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use skiff_runtime::container::Status;
use skiff_runtime::pod::{ContainerStatus, PodSandboxConfig, SandboxState, SandboxStatus};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::events::EventType::{Normal, Warning};
use crate::images::ResolvedImage;
use crate::probes::{ProbeKind, ProbeResult, ProbeTracker};
use crate::shared::Shared;
use crate::status::{self, ContainerView, PodView};
use crate::volumes::PodVolumes;

/// A doubling back-off (CrashLoopBackOff, ImagePullBackOff).
#[derive(Debug, Clone, Default)]
struct Backoff {
    delay: Duration,
    until: Option<Instant>,
}

impl Backoff {
    fn active(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }
    fn advance(&mut self, base: Duration, max: Duration, now: Instant) {
        self.delay = if self.delay.is_zero() {
            base
        } else {
            (self.delay * 2).min(max)
        };
        self.until = Some(now + self.delay);
    }
}

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
        }
    }

    fn event(
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

    /// Tells the node server which container instances this pod has now.
    fn publish_instances(&self) {
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
            let ids = crate::lookup::InstanceIds {
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

    /// Picks up the sandbox and containers the runtime already has for this pod.
    async fn adopt(&mut self) {
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

    fn container_spec(&self, name: &str) -> Option<Container> {
        app_containers(&self.pod)
            .into_iter()
            .chain(init_containers(&self.pod))
            .find(|c| c.name == name)
    }

    fn pod_ip(&self) -> Option<String> {
        self.sandbox
            .as_ref()
            .and_then(|s| s.ip)
            .map(|ip| ip.to_string())
    }

    async fn sync(&mut self) {
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

    async fn sync_volumes(&mut self) {
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
    async fn ensure_sandbox(&mut self) -> bool {
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
        let dns = self
            .sh
            .cluster_dns
            .map(|ip| skiff_runtime::network::DnsConfig {
                servers: vec![ip.into()],
                searches: vec![
                    format!("{ns}.svc.{}", self.sh.cluster_domain),
                    format!("svc.{}", self.sh.cluster_domain),
                    self.sh.cluster_domain.clone(),
                ],
                options: vec!["ndots:5".into()],
            });
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
    async fn refresh(&mut self) {
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

    async fn sync_init(&mut self) {
        let policy = restart_policy(&self.pod);
        for c in init_containers(&self.pod) {
            let state = self.tracks.get(&c.name).and_then(|t| t.current.clone());
            match state {
                Some(s) if s.status == Status::Stopped && s.exit_code == Some(0) => continue,
                Some(s) if s.status == Status::Stopped => {
                    self.note_exit(&c.name, &s);
                    if policy == "Never" {
                        self.terminal = Some("Failed");
                    } else {
                        self.restart_with_backoff(&c).await;
                    }
                    return;
                }
                Some(s) if s.status == Status::Created => {
                    let _ = self.sh.runtime.start_container(&s.id).await;
                    return;
                }
                Some(_) => return,
                None => {
                    self.start(&c).await;
                    return;
                }
            }
        }
        self.initialized = true;
    }

    /// Records a container's exit once: resets the back-off after a long run.
    fn note_exit(&mut self, name: &str, s: &ContainerStatus) {
        let reset = self.sh.timers.backoff_reset;
        let Some(t) = self.tracks.get_mut(name) else {
            return;
        };
        if t.handled_exit.as_deref() == Some(&s.id) {
            return;
        }
        t.handled_exit = Some(s.id.clone());
        t.ready = false;
        t.probes.clear();
        if let (Some(a), Some(b)) = (s.started_at, s.finished_at)
            && b.duration_since(a).as_secs_f64() >= reset.as_secs_f64()
        {
            t.restart_backoff = Backoff::default();
        }
    }

    async fn restart_with_backoff(&mut self, c: &Container) {
        let now = Instant::now();
        let pod_key = key(&self.pod);
        let uid = self.uid.clone();
        let Some(t) = self.tracks.get_mut(&c.name) else {
            return;
        };
        if t.restart_backoff.active(now) {
            let msg = format!(
                "back-off {}s restarting failed container={} pod={}_{}({uid})",
                t.restart_backoff.delay.as_secs(),
                c.name,
                pod_key.split('/').nth(1).unwrap_or_default(),
                pod_key.split('/').next().unwrap_or_default(),
            );
            t.waiting = Some(("CrashLoopBackOff".into(), msg));
            let first = t.backoff_event_for != t.restart_backoff.until;
            t.backoff_event_for = t.restart_backoff.until;
            if first {
                self.event(
                    Some(&c.name),
                    Warning,
                    "BackOff",
                    "Back-off restarting failed container".into(),
                );
            }
            return;
        }
        if self.start(c).await {
            let (base, max) = (self.sh.timers.backoff_base, self.sh.timers.backoff_max);
            if let Some(t) = self.tracks.get_mut(&c.name) {
                t.restart_backoff.advance(base, max, Instant::now());
            }
        }
    }

    async fn sync_containers(&mut self) {
        let policy = restart_policy(&self.pod);
        let now = Instant::now();
        for c in app_containers(&self.pod) {
            let state = self.tracks.get(&c.name).and_then(|t| t.current.clone());
            match state {
                None => {
                    self.start(&c).await;
                }
                Some(s) if s.status == Status::Created => {
                    let _ = self.sh.runtime.start_container(&s.id).await;
                }
                Some(s) if s.status == Status::Stopped => {
                    self.note_exit(&c.name, &s);
                    let restart = match policy.as_str() {
                        "Never" => false,
                        "OnFailure" => s.exit_code != Some(0),
                        _ => true,
                    };
                    if restart {
                        self.restart_with_backoff(&c).await;
                    }
                }
                Some(s) => self.run_probes(&c, &s, now).await,
            }
        }
    }

    /// Decides Succeeded/Failed for pods whose containers will not restart, and then
    /// stops the sandbox.
    async fn decide_terminal(&mut self) {
        let policy = restart_policy(&self.pod);
        if self.terminal.is_none() && policy != "Always" && self.initialized {
            let codes: Vec<Option<i32>> = app_containers(&self.pod)
                .iter()
                .map(|c| {
                    self.tracks
                        .get(&c.name)
                        .and_then(|t| t.current.as_ref())
                        .filter(|s| s.status == Status::Stopped)
                        .map(|s| s.exit_code.unwrap_or(-1))
                })
                .collect();
            if codes.iter().all(Option::is_some) {
                let all_ok = codes.iter().all(|c| *c == Some(0));
                if all_ok {
                    self.terminal = Some("Succeeded");
                } else if policy == "Never" {
                    self.terminal = Some("Failed");
                }
            }
        }
        if self.terminal.is_some()
            && let Some(sb) = &self.sandbox
            && sb.state == SandboxState::Ready
        {
            let _ = self.sh.runtime.stop_pod_sandbox(&sb.id).await;
            if let Ok(s) = self.sh.runtime.pod_sandbox_status(&sb.id).await {
                self.sandbox = Some(SandboxStatus { ip: sb.ip, ..s });
            }
        }
    }

    /// Resolves the container's image per its pull policy; `None` leaves a waiting reason.
    async fn ensure_image(&mut self, c: &Container) -> Option<ResolvedImage> {
        let image = c.image.clone().unwrap_or_default();
        let tag_latest = {
            let last = image.rsplit('/').next().unwrap_or_default();
            !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"))
        };
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| if tag_latest { "Always" } else { "IfNotPresent" }.into());
        let present = self.sh.images.resolve(&image);
        let set_waiting = |w: &mut Self, reason: &str, msg: String| {
            if let Some(t) = w.tracks.get_mut(&c.name) {
                t.waiting = Some((reason.into(), msg));
            }
        };
        if policy == "Never" || (policy == "IfNotPresent" && present.is_some()) {
            return match present {
                Some(p) => {
                    self.event(
                        Some(&c.name),
                        Normal,
                        "Pulled",
                        format!("Container image \"{image}\" already present on machine"),
                    );
                    Some(p)
                }
                None => {
                    let msg = format!(
                        "Container image \"{image}\" is not present with pull policy of Never"
                    );
                    self.event(Some(&c.name), Warning, "ErrImageNeverPull", msg.clone());
                    set_waiting(self, "ErrImageNeverPull", msg);
                    None
                }
            };
        }
        let now = Instant::now();
        let bo = self.image_backoff.entry(image.clone()).or_default();
        if bo.active(now) {
            let msg = format!("Back-off pulling image \"{image}\"");
            self.event(Some(&c.name), Normal, "BackOff", msg.clone());
            set_waiting(self, "ImagePullBackOff", msg);
            return None;
        }
        self.event(
            Some(&c.name),
            Normal,
            "Pulling",
            format!("Pulling image \"{image}\""),
        );
        let t0 = std::time::Instant::now();
        match self.sh.images.pull(&image).await {
            Ok(img) => {
                self.image_backoff.remove(&image);
                self.event(
                    Some(&c.name),
                    Normal,
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {:.3}s",
                        t0.elapsed().as_secs_f64()
                    ),
                );
                Some(img)
            }
            // An offline node still runs a side-loaded image that policy Always would pull.
            Err(_) if present.is_some() => present,
            Err(e) => {
                let (base, max) = (self.sh.timers.backoff_base, self.sh.timers.backoff_max);
                if let Some(bo) = self.image_backoff.get_mut(&image) {
                    bo.advance(base, max, now);
                }
                self.event(Some(&c.name), Warning, "Failed", e.message.clone());
                // Kubernetes records the reason as its own event ("Error: ErrImagePull").
                self.event(
                    Some(&c.name),
                    Warning,
                    "Failed",
                    format!("Error: {}", e.reason),
                );
                set_waiting(self, e.reason, e.message);
                None
            }
        }
    }

    fn rootfs_dir(&self, name: &str, attempt: i32) -> PathBuf {
        self.sh
            .root_dir
            .join("pods")
            .join(&self.uid)
            .join("containers")
            .join(name)
            .join(attempt.to_string())
    }

    /// Creates and starts a (new instance of a) container; true when it started.
    async fn start(&mut self, c: &Container) -> bool {
        let t = self.tracks.entry(c.name.clone()).or_default();
        let restarting = t.current.is_some();
        let attempt = if restarting {
            t.restart_count + 1
        } else {
            t.restart_count
        };
        let Some(image) = self.ensure_image(c).await else {
            return false;
        };
        let dir = self.rootfs_dir(&c.name, attempt);
        let images = self.sh.images.clone();
        let (img2, dir2) = (image.clone(), dir.clone());
        let rootfs =
            match tokio::task::spawn_blocking(move || images.mount_rootfs(&img2, &dir2)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    return self.fail_create(
                        c,
                        "CreateContainerError",
                        format!("preparing root filesystem: {e}"),
                    );
                }
                Err(e) => return self.fail_create(c, "CreateContainerError", e.to_string()),
            };
        let (cpu, mem) = self.sh.node_cpu_memory;
        let ctx = crate::podspec::BuildContext {
            client: &self.sh.client,
            pod: &self.pod,
            pod_ip: self.pod_ip(),
            host_ip: self.sh.host_ip.clone(),
            image: &image.config,
            rootfs,
            volumes: &self.volumes.paths,
            allow_privileged: self.sh.allow_privileged,
            node_cpu_memory: (cpu, mem),
        };
        let config = match crate::podspec::build(&ctx, c).await {
            Ok(cfg) => cfg,
            Err(e) => return self.fail_create(c, "CreateContainerConfigError", e.0),
        };
        let Some(sandbox) = self.sandbox.as_ref().map(|s| s.id.clone()) else {
            return false;
        };
        let id = match self.sh.runtime.create_container(&sandbox, config).await {
            Ok(id) => id,
            Err(e) => return self.fail_create(c, e.reason(), e.to_string()),
        };
        self.event(
            Some(&c.name),
            Normal,
            "Created",
            format!("Created container {}", c.name),
        );
        if let Err(e) = self.sh.runtime.start_container(&id).await {
            let _ = self.sh.runtime.remove_container(&id).await;
            return self.fail_create(c, "RunContainerError", e.to_string());
        }
        self.event(
            Some(&c.name),
            Normal,
            "Started",
            format!("Started container {}", c.name),
        );
        let status = self.sh.runtime.container_status(&id).await.ok();
        // Keep one dead instance (for `logs --previous`); older ones go.
        let t = self.tracks.entry(c.name.clone()).or_default();
        let older = if restarting {
            let prev = t.current.take();
            if let Some(p) = &prev {
                t.last_terminated = Some(status::terminated(p));
            }
            t.restart_count += 1;
            std::mem::replace(&mut t.previous, prev.map(|p| p.id))
        } else {
            None
        };
        t.current = status;
        t.image = Some(image);
        t.waiting = None;
        t.ready = false;
        t.probes = probes_for(c, Instant::now(), false);
        t.started = t.probes.iter().all(|(k, _)| *k != ProbeKind::Startup);
        if let Some(old) = older {
            let _ = self.sh.runtime.remove_container(&old).await;
        }
        self.remove_old_rootfs(&c.name, attempt).await;
        self.post_start(c, &id).await;
        true
    }

    async fn remove_old_rootfs(&self, name: &str, attempt: i32) {
        let base = self.rootfs_dir(name, 0);
        let Some(parent) = base.parent().map(PathBuf::from) else {
            return;
        };
        let images = self.sh.images.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for e in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                let n: i32 = e.file_name().to_string_lossy().parse().unwrap_or(i32::MAX);
                if n < attempt - 1 {
                    let _ = images.remove_rootfs(&e.path());
                }
            }
        })
        .await;
    }

    fn fail_create(&mut self, c: &Container, reason: &str, message: String) -> bool {
        self.event(
            Some(&c.name),
            Warning,
            "Failed",
            format!("Error: {message}"),
        );
        if let Some(t) = self.tracks.get_mut(&c.name) {
            t.waiting = Some((reason.into(), message));
        }
        false
    }

    async fn post_start(&mut self, c: &Container, id: &str) {
        let Some(cmd) = c
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref())
            .and_then(|h| h.exec.as_ref())
            .and_then(|e| e.command.clone())
        else {
            return;
        };
        let out = self
            .sh
            .runtime
            .exec_sync(id, cmd, Duration::from_secs(30))
            .await;
        let failed = match out {
            Ok(o) if o.exit_code == 0 => None,
            Ok(o) => Some(format!("command exited with {}", o.exit_code)),
            Err(e) => Some(e.to_string()),
        };
        if let Some(msg) = failed {
            self.event(
                Some(&c.name),
                Warning,
                "FailedPostStartHook",
                format!("PostStartHook failed: {msg}"),
            );
            let _ = self
                .sh
                .runtime
                .stop_container(id, Duration::from_secs(2))
                .await;
        }
    }

    async fn run_probes(&mut self, c: &Container, s: &ContainerStatus, now: Instant) {
        let pod_ip = self.pod_ip();
        let runtime = self.sh.runtime.clone();
        let Some(t) = self.tracks.get_mut(&c.name) else {
            return;
        };
        let mut kill: Option<(ProbeKind, String)> = None;
        let mut unhealthy = Vec::new();
        for (kind, tracker) in t.probes.iter_mut() {
            let gated = *kind != ProbeKind::Startup && !t.started;
            if gated || !tracker.due(now) || (*kind == ProbeKind::Startup && t.started) {
                continue;
            }
            let result =
                crate::probes::run(&runtime, &tracker.probe, c, &s.id, pod_ip.as_deref()).await;
            let ok = result == ProbeResult::Success;
            if let ProbeResult::Failure(m) = &result {
                unhealthy.push(format!("{} probe failed: {m}", kind.title()));
            }
            let verdict = tracker.record(ok, Instant::now());
            match (*kind, verdict) {
                (ProbeKind::Readiness, Some(v)) => t.ready = v,
                (ProbeKind::Startup, Some(true)) => {
                    t.started = true;
                }
                (ProbeKind::Startup | ProbeKind::Liveness, Some(false)) => {
                    kill = Some((*kind, result_message(&result)));
                }
                _ => {}
            }
        }
        if !t.probes.iter().any(|(k, _)| *k == ProbeKind::Readiness) {
            t.ready = t.started;
        }
        for m in unhealthy {
            self.event(Some(&c.name), Warning, "Unhealthy", m);
        }
        if let Some((kind, _)) = kill {
            let what = if kind == ProbeKind::Liveness {
                "liveness"
            } else {
                "startup"
            };
            self.event(
                Some(&c.name),
                Normal,
                "Killing",
                format!(
                    "Container {} failed {what} probe, will be restarted",
                    c.name
                ),
            );
            let grace = self.grace_period();
            self.stop_one(c, &s.id, grace).await;
        }
    }

    fn grace_period(&self) -> Duration {
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
    async fn stop_one(&self, c: &Container, id: &str, grace: Duration) {
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
    async fn terminate(&mut self, pod_exists: bool) {
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
        let (images, root, uid) = (
            self.sh.images.clone(),
            self.sh.root_dir.clone(),
            self.uid.clone(),
        );
        let _ = tokio::task::spawn_blocking(move || cleanup_pod_dir(&*images, &root, &uid)).await;
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

    fn view(&self, c: &Container) -> ContainerView {
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

    async fn write_status(&mut self) {
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
            Ok(p) => self.pod = p,
            Err(e) => tracing::debug!(pod = %key(&self.pod), error = %e, "status update failed"),
        }
    }
}

fn result_message(r: &ProbeResult) -> String {
    match r {
        ProbeResult::Success => String::new(),
        ProbeResult::Failure(m) => m.clone(),
    }
}

fn probes_for(
    c: &Container,
    started: Instant,
    already_started: bool,
) -> Vec<(ProbeKind, ProbeTracker)> {
    let mut v = Vec::new();
    if let Some(p) = &c.startup_probe
        && !already_started
    {
        v.push((ProbeKind::Startup, ProbeTracker::new(p.clone(), started)));
    }
    if let Some(p) = &c.liveness_probe {
        v.push((ProbeKind::Liveness, ProbeTracker::new(p.clone(), started)));
    }
    if let Some(p) = &c.readiness_probe {
        v.push((ProbeKind::Readiness, ProbeTracker::new(p.clone(), started)));
    }
    v
}

/// Removes a pod's root filesystems and volumes.
pub fn cleanup_pod_dir(
    images: &dyn crate::images::ImageService,
    root: &std::path::Path,
    uid: &str,
) {
    let containers = root.join("pods").join(uid).join("containers");
    for name in std::fs::read_dir(&containers)
        .into_iter()
        .flatten()
        .flatten()
    {
        for attempt in std::fs::read_dir(name.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Err(e) = images.remove_rootfs(&attempt.path()) {
                tracing::warn!(path = %attempt.path().display(), error = %e, "rootfs removal failed");
            }
        }
    }
    if let Err(e) = crate::volumes::teardown(root, uid) {
        tracing::warn!(uid, error = %e, "volume teardown failed");
    }
}
