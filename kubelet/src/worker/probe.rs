//! Probes: run each container's startup, liveness and readiness probes when due and act on
//! their verdicts (readiness, restart).

use k8s_openapi::api::core::v1::Container;
use skiff_runtime::pod::ContainerStatus;
use tokio::time::Instant;

use super::PodWorker;
use crate::events::EventType::{Normal, Warning};
use crate::metrics::ProbeRun;
use crate::probes::{ProbeKind, ProbeResult, ProbeTracker};

impl PodWorker {
    pub(super) async fn run_probes(&mut self, c: &Container, s: &ContainerStatus, now: Instant) {
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
            self.sh.metrics.probe(ProbeRun {
                kind: *kind,
                ok,
                container: &c.name,
                pod: self.pod.metadata.name.as_deref().unwrap_or_default(),
                namespace: self.pod.metadata.namespace.as_deref().unwrap_or("default"),
                pod_uid: &self.uid,
            });
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
}

fn result_message(r: &ProbeResult) -> String {
    match r {
        ProbeResult::Success => String::new(),
        ProbeResult::Failure(m) => m.clone(),
    }
}

pub(super) fn probes_for(
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
