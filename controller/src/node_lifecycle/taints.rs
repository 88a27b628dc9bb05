//! The taints a node's conditions call for: Kubernetes' TaintNodesByCondition (`NoSchedule`,
//! applied at once) and the `NoExecute` taint of a not-ready or unreachable node, which the
//! zone's rate limiter lets through.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::health::condition;

/// Taint of a node whose Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint of a node whose Ready condition is Unknown.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// The condition-driven `NoSchedule` taint keys, with the condition and status that set
/// each (Kubernetes' `nodeConditionToTaintKeyStatusMap`).
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", NOT_READY),
    ("Ready", "Unknown", UNREACHABLE),
    (
        "MemoryPressure",
        "True",
        "node.kubernetes.io/memory-pressure",
    ),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
    (
        "NetworkUnavailable",
        "True",
        "node.kubernetes.io/network-unavailable",
    ),
];

/// The `NoExecute` taint key the node's Ready status calls for: not-ready for False,
/// unreachable for Unknown (also when it has no Ready condition), none for True.
pub fn no_execute_key(ready: &str) -> Option<&'static str> {
    match ready {
        "True" => None,
        "False" => Some(NOT_READY),
        _ => Some(UNREACHABLE),
    }
}

fn is_lifecycle_no_execute(t: &Taint) -> bool {
    t.effect == "NoExecute" && (t.key == NOT_READY || t.key == UNREACHABLE)
}

/// Whether the node carries the lifecycle `NoExecute` taint `key`.
pub fn has_no_execute(node: &Node, key: &str) -> bool {
    taints(node)
        .iter()
        .any(|t| t.effect == "NoExecute" && t.key == key)
}

/// The node's taints.
pub fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// What to do with the node's lifecycle `NoExecute` taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoExecute {
    /// Have none (the node is Ready, or evictions are stopped).
    Remove,
    /// Keep what the node has.
    Keep,
    /// Carry `key`, replacing the other lifecycle taint at once (the node was tainted
    /// already; only the reason changed).
    Swap(&'static str),
    /// Carry `key`, once the zone's rate limiter allows a new taint.
    Add(&'static str),
}

/// The `NoExecute` step for a node with Ready status `ready` (Kubernetes'
/// `processTaintBaseEviction`); `evictions_stopped` in full disruption of every zone.
pub fn no_execute_step(node: &Node, ready: &str, evictions_stopped: bool) -> NoExecute {
    let has_any = taints(node).iter().any(is_lifecycle_no_execute);
    let Some(key) = no_execute_key(ready).filter(|_| !evictions_stopped) else {
        return if has_any {
            NoExecute::Remove
        } else {
            NoExecute::Keep
        };
    };
    if has_no_execute(node, key) {
        NoExecute::Keep
    } else if has_any {
        NoExecute::Swap(key)
    } else {
        NoExecute::Add(key)
    }
}

/// The node's taints after applying its conditions' `NoSchedule` taints and `step`, or
/// `None` when they stay as they are. Taints of others are kept in place.
pub fn desired_taints(node: &Node, step: NoExecute, now: Timestamp) -> Option<Vec<Taint>> {
    let current = taints(node);
    let managed: Vec<&str> = CONDITION_TAINTS.iter().map(|(_, _, k)| *k).collect();
    let wanted_no_schedule: Vec<&str> = CONDITION_TAINTS
        .iter()
        .filter(|(t, s, _)| match condition(node, t) {
            Some(c) => c.status == *s,
            // A node that never posted Ready counts as unreachable.
            None => *t == "Ready" && *s == "Unknown",
        })
        .map(|(_, _, k)| *k)
        .collect();
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| {
            let ours_no_schedule = t.effect == "NoSchedule" && managed.contains(&t.key.as_str());
            let keep_no_schedule = wanted_no_schedule.contains(&t.key.as_str());
            (!ours_no_schedule || keep_no_schedule)
                && !(is_lifecycle_no_execute(t)
                    && matches!(step, NoExecute::Remove | NoExecute::Swap(_)))
        })
        .cloned()
        .collect();
    for key in wanted_no_schedule {
        if !out.iter().any(|t| t.effect == "NoSchedule" && t.key == key) {
            out.push(taint(key, "NoSchedule", None));
        }
    }
    if let NoExecute::Swap(key) | NoExecute::Add(key) = step {
        out.push(taint(key, "NoExecute", Some(now)));
    }
    (out != current).then_some(out)
}

fn taint(key: &str, effect: &str, added: Option<Timestamp>) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        time_added: added.map(Time),
        value: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ready: &str, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready},
                                      {"type": "DiskPressure", "status": "True"}]},
        }))
        .unwrap()
    }

    fn keys(t: &[Taint]) -> Vec<String> {
        t.iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    }

    #[test]
    fn ready_status_picks_the_no_execute_step() {
        let plain = node("Unknown", json!([]));
        assert_eq!(
            no_execute_step(&plain, "Unknown", false),
            NoExecute::Add(UNREACHABLE)
        );
        assert_eq!(
            no_execute_step(&plain, "False", false),
            NoExecute::Add(NOT_READY)
        );
        assert_eq!(no_execute_step(&plain, "True", false), NoExecute::Keep);
        assert_eq!(no_execute_step(&plain, "Unknown", true), NoExecute::Keep);
        let tainted = node(
            "Unknown",
            json!([{"key": UNREACHABLE, "effect": "NoExecute"}]),
        );
        assert_eq!(no_execute_step(&tainted, "Unknown", false), NoExecute::Keep);
        assert_eq!(
            no_execute_step(&tainted, "False", false),
            NoExecute::Swap(NOT_READY)
        );
        assert_eq!(no_execute_step(&tainted, "True", false), NoExecute::Remove);
        assert_eq!(
            no_execute_step(&tainted, "Unknown", true),
            NoExecute::Remove
        );
    }

    #[test]
    fn conditions_set_no_schedule_taints_and_others_are_kept() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let n = node(
            "Unknown",
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                   {"key": NOT_READY, "effect": "NoSchedule"}]),
        );
        let t = desired_taints(&n, NoExecute::Add(UNREACHABLE), now).unwrap();
        assert_eq!(
            keys(&t),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/disk-pressure:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute",
            ]
        );
        assert_eq!(t[3].time_added, Some(Time(now)));
        // Applying the result again changes nothing.
        let mut again = n.clone();
        again.spec.as_mut().unwrap().taints = Some(t.clone());
        assert_eq!(desired_taints(&again, NoExecute::Keep, now), None);
        // Back to Ready: only the foreign taint and the pressure taint stay.
        let mut back = again.clone();
        back.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "True".into();
        let t = desired_taints(&back, NoExecute::Remove, now).unwrap();
        assert_eq!(
            keys(&t),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/disk-pressure:NoSchedule"
            ]
        );
    }
}
