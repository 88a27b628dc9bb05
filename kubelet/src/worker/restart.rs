//! Restart policy: init containers in order, app containers restarted per `restartPolicy`
//! with CrashLoopBackOff, and the pod's terminal phase once nothing will restart.

use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use skiff_runtime::container::Status;
use skiff_runtime::pod::{ContainerStatus, SandboxState, SandboxStatus};
use tokio::time::Instant;

use super::{PodWorker, app_containers, init_containers, key, restart_policy};
use crate::events::EventType::Warning;

/// A doubling back-off (CrashLoopBackOff, ImagePullBackOff).
#[derive(Debug, Clone, Default)]
pub(super) struct Backoff {
    delay: Duration,
    until: Option<Instant>,
}

impl Backoff {
    pub(super) fn active(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }
    pub(super) fn advance(&mut self, base: Duration, max: Duration, now: Instant) {
        self.delay = if self.delay.is_zero() {
            base
        } else {
            (self.delay * 2).min(max)
        };
        self.until = Some(now + self.delay);
    }
}

impl PodWorker {
    pub(super) async fn sync_init(&mut self) {
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
    pub(super) fn note_exit(&mut self, name: &str, s: &ContainerStatus) {
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

    pub(super) async fn restart_with_backoff(&mut self, c: &Container) {
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

    pub(super) async fn sync_containers(&mut self) {
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
    pub(super) async fn decide_terminal(&mut self) {
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
}
