//! What a pod's table row and status say about it: the READY/STATUS/RESTARTS cells
//! computed as kubectl's pod printer does, and the QoS class of a new pod.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodSpec};

use crate::strategy::table::human_duration;

/// The summary cells of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PodSummary {
    /// Ready containers (sidecars included).
    pub ready: usize,
    /// Containers counted in READY's denominator.
    pub total: usize,
    /// The STATUS cell.
    pub reason: String,
    /// The RESTARTS cell, e.g. `2 (5m ago)`.
    pub restarts: String,
}

fn is_sidecar(c: Option<&&Container>) -> bool {
    c.is_some_and(|c| c.restart_policy.as_deref() == Some("Always"))
}

fn last_termination(cs: &ContainerStatus) -> Option<Timestamp> {
    cs.last_state
        .as_ref()?
        .terminated
        .as_ref()?
        .finished_at
        .as_ref()
        .map(|t| t.0)
}

fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Summarizes a pod as `printPod` in Kubernetes' printers does.
pub(super) fn summarize(pod: &Pod, now: Timestamp) -> PodSummary {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let conditions = status.conditions.clone().unwrap_or_default();
    let condition_true = |t: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };

    let mut total = spec.containers.len();
    let mut ready = 0;
    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| phase.clone());
    if conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    {
        reason = "SchedulingGated".into();
    }

    let init_by_name: HashMap<&str, &Container> =
        init_specs.iter().map(|c| (c.name.as_str(), c)).collect();
    total += init_specs
        .iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .count();

    let mut initializing = false;
    for (i, cs) in status.init_container_statuses.iter().flatten().enumerate() {
        restarts += i64::from(cs.restart_count);
        last_restart = later(last_restart, last_termination(cs));
        let sidecar = is_sidecar(init_by_name.get(cs.name.as_str()));
        if sidecar {
            sidecar_restarts += i64::from(cs.restart_count);
            last_sidecar_restart = later(last_sidecar_restart, last_termination(cs));
        }
        let state = cs.state.clone().unwrap_or_default();
        match (&state.terminated, &state.waiting) {
            (Some(t), _) if t.exit_code == 0 => continue,
            _ if sidecar && cs.started == Some(true) => {
                if cs.ready {
                    ready += 1;
                }
                continue;
            }
            (Some(t), _) => {
                reason = match t.reason.as_deref() {
                    Some(r) if !r.is_empty() => format!("Init:{r}"),
                    _ => match t.signal {
                        Some(s) if s != 0 => format!("Init:Signal:{s}"),
                        _ => format!("Init:ExitCode:{}", t.exit_code),
                    },
                };
            }
            (None, Some(w))
                if w.reason
                    .as_deref()
                    .is_some_and(|r| !r.is_empty() && r != "PodInitializing") =>
            {
                reason = format!("Init:{}", w.reason.as_deref().unwrap_or(""));
            }
            _ => reason = format!("Init:{i}/{}", init_specs.len()),
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true("Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in status.container_statuses.iter().flatten().rev() {
            restarts += i64::from(cs.restart_count);
            last_restart = later(last_restart, last_termination(cs));
            let state = cs.state.clone().unwrap_or_default();
            let waiting = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty());
            if let Some(w) = waiting {
                reason = w;
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.as_deref() {
                    Some(r) if !r.is_empty() => r.to_string(),
                    _ => match t.signal {
                        Some(s) if s != 0 => format!("Signal:{s}"),
                        _ => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if cs.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true("Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if status.reason.as_deref() == Some("NodeLost") {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => {
            format!("{restarts} ({} ago)", human_duration(now.duration_since(t)))
        }
        _ => restarts.to_string(),
    };
    PodSummary {
        ready,
        total,
        reason,
        restarts,
    }
}

/// A pod's QoS class (the shared rule in `skiff_api::pod::qos`).
pub(super) fn qos_class(spec: &PodSpec) -> &'static str {
    skiff_api::pod::qos_class(spec).as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        let mut base = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn now() -> Timestamp {
        "2024-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn pending_pod_without_statuses() {
        let p =
            pod(json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}}));
        let s = summarize(&p, now());
        assert_eq!(
            (s.ready, s.total, s.reason.as_str(), s.restarts.as_str()),
            (0, 1, "Pending", "0")
        );
    }

    #[test]
    fn crash_loop_and_completed() {
        let p = pod(
            json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running",
            "containerStatuses": [{"name": "a", "image": "", "imageID": "", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2023-12-31T23:59:30Z"}}}]}}),
        );
        let s = summarize(&p, now());
        assert_eq!(s.reason, "CrashLoopBackOff");
        assert_eq!(s.restarts, "4 (30s ago)");

        let p = pod(
            json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Succeeded",
            "containerStatuses": [{"name": "a", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}),
        );
        assert_eq!(summarize(&p, now()).reason, "Completed");
    }

    #[test]
    fn init_containers_and_termination() {
        let p = pod(
            json!({"spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "image": "", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "image": "", "imageID": "", "ready": false, "restartCount": 0, "state": {"running": {}}}]}}),
        );
        assert_eq!(summarize(&p, now()).reason, "Init:1/2");

        let p = pod(
            json!({"metadata": {"name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running"}}),
        );
        assert_eq!(summarize(&p, now()).reason, "Terminating");
    }

    fn spec(resources: serde_json::Value) -> PodSpec {
        serde_json::from_value(json!({"containers": [{"name": "a", "resources": resources}]}))
            .unwrap()
    }

    #[test]
    fn qos_classes() {
        assert_eq!(qos_class(&spec(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&spec(json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&spec(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&spec(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}})
            )),
            "Burstable"
        );
    }
}
