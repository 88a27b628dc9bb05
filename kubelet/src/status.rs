//! Pod status as Kubernetes reports it, computed from what a pod worker knows: phase,
//! conditions, container statuses (state, lastState, restartCount, ready, started, image,
//! imageID, containerID), pod IPs, host IP, start time and QoS class.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};
use skiff_api::pod::{QosClass, qos_class};
use skiff_runtime::container::Status;
use skiff_runtime::pod::ContainerStatus;

/// Kubernetes' timestamp format (seconds).
pub fn time(t: jiff::Timestamp) -> Value {
    serde_json::to_value(Time(t)).unwrap_or(Value::Null)
}

/// What the status needs to know about one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerView {
    /// Name.
    pub name: String,
    /// `spec.containers[].image`.
    pub image: String,
    /// Resolved image id.
    pub image_id: Option<String>,
    /// The current runtime container.
    pub current: Option<ContainerStatus>,
    /// Restarts so far.
    pub restart_count: i32,
    /// The previous instance's termination (`lastState.terminated`).
    pub last_terminated: Option<Value>,
    /// Why it is waiting, when it is.
    pub waiting: Option<(String, String)>,
    /// The current exited instance will be restarted (show it as waiting).
    pub restarting: bool,
    /// Readiness.
    pub ready: bool,
    /// Startup probe passed (or none).
    pub started: bool,
}

/// `terminated` of an exited runtime container.
pub fn terminated(c: &ContainerStatus) -> Value {
    let mut t = json!({
        "exitCode": c.exit_code.unwrap_or(0),
        "reason": c.reason.clone().unwrap_or_else(|| if c.exit_code == Some(0) { "Completed".into() } else { "Error".into() }),
        "containerID": format!("skiff://{}", c.id),
    });
    if let Some(s) = c.started_at {
        t["startedAt"] = time(s);
    }
    if let Some(f) = c.finished_at {
        t["finishedAt"] = time(f);
    }
    t
}

impl ContainerView {
    /// Whether the container is running now.
    pub fn running(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| c.status == Status::Running)
    }

    /// The exit code of an exited current instance.
    pub fn exited(&self) -> Option<i32> {
        self.current
            .as_ref()
            .filter(|c| c.status == Status::Stopped)
            .map(|c| c.exit_code.unwrap_or(-1))
    }

    /// The `containerStatuses[]` entry.
    pub fn to_json(&self) -> Value {
        let mut last = self.last_terminated.clone();
        let state = match (&self.current, &self.waiting) {
            (Some(c), _) if c.status == Status::Running => {
                json!({"running": {"startedAt": time(c.started_at.unwrap_or(c.created_at))}})
            }
            (Some(c), w) if c.status == Status::Stopped => {
                if self.restarting {
                    last = Some(terminated(c));
                    let (reason, message) = w
                        .clone()
                        .unwrap_or(("ContainerCreating".into(), String::new()));
                    waiting(&reason, &message)
                } else {
                    json!({"terminated": terminated(c)})
                }
            }
            (_, Some((reason, message))) => waiting(reason, message),
            _ => waiting("ContainerCreating", ""),
        };
        let mut v = json!({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id.clone().unwrap_or_default(),
            "ready": self.ready && self.running(),
            "started": self.started && self.running(),
            "restartCount": self.restart_count,
            "state": state,
            "lastState": last.map_or(json!({}), |t| json!({"terminated": t})),
        });
        if let Some(c) = &self.current {
            v["containerID"] = json!(format!("skiff://{}", c.id));
        }
        v
    }
}

fn waiting(reason: &str, message: &str) -> Value {
    if message.is_empty() {
        json!({"waiting": {"reason": reason}})
    } else {
        json!({"waiting": {"reason": reason, "message": message}})
    }
}

/// Inputs of a pod status.
pub struct PodView<'a> {
    /// The pod as last seen.
    pub pod: &'a Pod,
    /// Init containers in order.
    pub init: Vec<ContainerView>,
    /// App containers in order.
    pub containers: Vec<ContainerView>,
    /// All init containers completed.
    pub initialized: bool,
    /// Terminal phase when decided (`Succeeded`/`Failed`).
    pub terminal: Option<&'static str>,
    /// Sandbox ready.
    pub sandbox_ready: bool,
    /// Pod IP.
    pub pod_ip: Option<String>,
    /// Node IP.
    pub host_ip: String,
    /// When the kubelet first acknowledged the pod.
    pub start_time: jiff::Timestamp,
}

/// The phase, following Kubernetes' `getPhase`.
pub fn phase(v: &PodView) -> &'static str {
    if let Some(t) = v.terminal {
        return t;
    }
    if !v.initialized {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &v.containers {
        if c.running() {
            running += 1;
        } else if let Some(code) = c.exited() {
            stopped += 1;
            if code == 0 {
                succeeded += 1;
            }
        } else if c.last_terminated.is_some() {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    let policy = v
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "OnFailure" => "Running",
            _ => "Failed",
        }
    } else {
        "Pending"
    }
}

fn condition(
    old: Option<&PodStatus>,
    t: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let since = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == t && c.status == status))
        .and_then(|c| c.last_transition_time.clone())
        .map_or_else(
            || time(jiff::Timestamp::now()),
            |t| serde_json::to_value(t).unwrap_or_default(),
        );
    let mut c =
        json!({"type": t, "status": status, "lastTransitionTime": since, "lastProbeTime": null});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// The full pod status.
pub fn build(v: &PodView) -> PodStatus {
    let old = v.pod.status.as_ref();
    let phase = phase(v);
    let unready: Vec<&str> = v
        .containers
        .iter()
        .filter(|c| !(c.ready && c.running()))
        .map(|c| c.name.as_str())
        .collect();
    let incomplete: Vec<&str> = v
        .init
        .iter()
        .filter(|c| c.exited() != Some(0))
        .map(|c| c.name.as_str())
        .collect();
    let completed = matches!(phase, "Succeeded" | "Failed");
    let (ready_reason, ready_msg) = if completed {
        (Some("PodCompleted"), None)
    } else if unready.is_empty() {
        (None, None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let ready = unready.is_empty() && !completed;
    let init_ok = v.initialized;
    let conditions = vec![
        condition(
            old,
            "PodReadyToStartContainers",
            v.sandbox_ready,
            None,
            None,
        ),
        condition(
            old,
            "Initialized",
            init_ok,
            (!init_ok).then_some("ContainersNotInitialized"),
            (!init_ok).then(|| {
                format!(
                    "containers with incomplete status: [{}]",
                    incomplete.join(" ")
                )
            }),
        ),
        condition(old, "Ready", ready, ready_reason, ready_msg.clone()),
        condition(old, "ContainersReady", ready, ready_reason, ready_msg),
        condition(old, "PodScheduled", true, None, None),
    ];
    let mut s = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": v.host_ip,
        "hostIPs": [{"ip": v.host_ip}],
        "startTime": time(v.start_time),
        "qosClass": v.pod.spec.as_ref().map_or(QosClass::BestEffort, qos_class).as_str(),
        "containerStatuses": v.containers.iter().map(ContainerView::to_json).collect::<Vec<_>>(),
    });
    if !v.init.is_empty() {
        s["initContainerStatuses"] = json!(
            v.init
                .iter()
                .map(ContainerView::to_json)
                .collect::<Vec<_>>()
        );
    }
    if let Some(ip) = &v.pod_ip {
        s["podIP"] = json!(ip);
        s["podIPs"] = json!([{"ip": ip}]);
    }
    serde_json::from_value(s).unwrap_or_default()
}

/// Whether `new` differs from what the API holds.
pub fn changed(pod: &Pod, new: &PodStatus) -> bool {
    let old = pod.status.clone().unwrap_or_default();
    // Compare as JSON after a round trip, so fields the API adds (and time precision)
    // cannot make equal statuses look different.
    let norm = |s: &PodStatus| {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("message");
            o.remove("reason");
            o.remove("nominatedNodeName");
        }
        v
    };
    norm(&old) != norm(new)
}
