//! Node health as the node lifecycle controller sees it (Kubernetes' `tryUpdateNodeHealth`):
//! when it last saw the node's kubelet alive, and the conditions a node gets once that is
//! longer ago than the grace period.
//!
//! "Alive" is judged by the controller's own clock: a node's probe time is the moment the
//! controller observed its Lease's `renewTime` (or its Ready heartbeat) change, never the
//! time written in the Lease, so a node whose clock is off is judged as fairly as any other.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The conditions a kubelet posts; all go Unknown together when it stops posting.
pub const NODE_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Reason of a condition the controller set to Unknown.
pub const REASON_UNKNOWN: &str = "NodeStatusUnknown";
/// Message of a condition the controller set to Unknown.
pub const MESSAGE_UNKNOWN: &str = "Kubelet stopped posting node status.";
/// Reason of a condition the kubelet never posted.
pub const REASON_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";
/// Message of a condition the kubelet never posted.
pub const MESSAGE_NEVER_UPDATED: &str = "Kubelet never posted node status.";

/// What the controller last saw of one node's signs of life.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    /// The Lease's `renewTime` and the Ready condition's `lastHeartbeatTime`, as written.
    signs: (Option<Timestamp>, Option<Timestamp>),
    /// When the controller saw `signs` change (its own clock).
    probe: Timestamp,
}

/// Each node's probe time, kept in memory (a restarted controller gives every node a fresh
/// grace period, as kube-controller-manager does).
#[derive(Debug, Default)]
pub struct ProbeTracker {
    nodes: BTreeMap<String, Observed>,
}

impl ProbeTracker {
    /// Records what `node` and its `lease` show at `now` and returns the node's probe time:
    /// `now` when a sign of life changed since the last look (or this is the first look).
    pub fn observe(&mut self, node: &Node, lease: Option<&Lease>, now: Timestamp) -> Timestamp {
        let name = node.metadata.name.clone().unwrap_or_default();
        let renew = lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0);
        let heartbeat = condition(node, "Ready")
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0);
        let signs = (renew, heartbeat);
        match self.nodes.get_mut(&name) {
            Some(seen) if seen.signs == signs => seen.probe,
            Some(seen) => {
                seen.signs = signs;
                seen.probe = now;
                now
            }
            None => {
                self.nodes.insert(name, Observed { signs, probe: now });
                now
            }
        }
    }

    /// Gives every known node a fresh grace period from `now` (on leaving full disruption).
    pub fn reset_all(&mut self, now: Timestamp) {
        for seen in self.nodes.values_mut() {
            seen.probe = now;
        }
    }

    /// Forgets nodes that no longer exist.
    pub fn retain(&mut self, exists: impl Fn(&str) -> bool) {
        self.nodes.retain(|name, _| exists(name));
    }
}

/// The node's condition of type `type_`.
pub fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The status of the node's Ready condition (`"Unknown"` when it has none).
pub fn ready_status(node: &Node) -> &str {
    condition(node, "Ready").map_or("Unknown", |c| c.status.as_str())
}

/// The conditions `node` should have once its kubelet was last seen at `probe`: `None`
/// while within `grace` or when they already say Unknown; otherwise every kubelet
/// condition set to Unknown (reason `NodeStatusUnknown`, or `NodeStatusNeverUpdated` for
/// one never posted), transition time `now`, heartbeats kept, other conditions untouched.
pub fn unknown_conditions(
    node: &Node,
    probe: Timestamp,
    grace: Duration,
    now: Timestamp,
) -> Option<Vec<NodeCondition>> {
    if now <= probe + grace {
        return None;
    }
    let mut conditions: Vec<NodeCondition> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in NODE_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some(REASON_UNKNOWN.into());
                c.message = Some(MESSAGE_UNKNOWN.into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                let created = node.metadata.creation_timestamp.clone();
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some(REASON_NEVER_UPDATED.into()),
                    message: Some(MESSAGE_NEVER_UPDATED.into()),
                    last_heartbeat_time: created,
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn node(heartbeat: i64) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "creationTimestamp": at(0).to_string()},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "lastHeartbeatTime": at(heartbeat).to_string(),
                 "lastTransitionTime": at(0).to_string()},
                {"type": "MemoryPressure", "status": "False"},
            ]},
        }))
        .unwrap()
    }

    fn lease(renew: i64) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "namespace": "kube-node-lease"},
            "spec": {"renewTime": at(renew).to_string()},
        }))
        .unwrap()
    }

    #[test]
    fn probe_time_is_when_a_renewal_was_seen_not_what_it_says() {
        let mut t = ProbeTracker::default();
        let n = node(0);
        // The lease claims an old renewal, but the first look counts as alive now.
        assert_eq!(t.observe(&n, Some(&lease(-500)), at(100)), at(100));
        assert_eq!(t.observe(&n, Some(&lease(-500)), at(130)), at(100));
        assert_eq!(t.observe(&n, Some(&lease(-490)), at(140)), at(140));
        // A heartbeat in the node status is a sign of life too.
        assert_eq!(t.observe(&node(5), Some(&lease(-490)), at(150)), at(150));
        t.reset_all(at(400));
        assert_eq!(t.observe(&node(5), Some(&lease(-490)), at(410)), at(400));
        t.retain(|_| false);
        assert_eq!(t.observe(&node(5), Some(&lease(-490)), at(420)), at(420));
    }

    #[test]
    fn conditions_go_unknown_only_after_the_grace_period() {
        let grace = Duration::from_secs(40);
        let n = node(0);
        assert!(unknown_conditions(&n, at(0), grace, at(40)).is_none());
        let c = unknown_conditions(&n, at(0), grace, at(41)).expect("past the grace period");
        let ready = c.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some(REASON_UNKNOWN));
        assert_eq!(ready.message.as_deref(), Some(MESSAGE_UNKNOWN));
        assert_eq!(ready.last_transition_time, Some(Time(at(41))));
        assert_eq!(
            ready.last_heartbeat_time,
            Some(Time(at(0))),
            "heartbeat kept"
        );
        let never = c.iter().find(|c| c.type_ == "DiskPressure").unwrap();
        assert_eq!(never.reason.as_deref(), Some(REASON_NEVER_UPDATED));
        assert_eq!(c.len(), 4);
        // Once every condition says Unknown there is nothing more to write.
        let mut gone = n.clone();
        gone.status.as_mut().unwrap().conditions = Some(c);
        assert!(unknown_conditions(&gone, at(0), grace, at(90)).is_none());
        assert_eq!(ready_status(&gone), "Unknown");
    }
}
