use super::*;
use serde_json::{Value, json};

fn now() -> Timestamp {
    "2024-01-01T00:10:00Z".parse().unwrap()
}

fn pdb(spec: Value, status: Value) -> PodDisruptionBudget {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "generation": 3},
        "spec": spec, "status": status,
    }))
    .unwrap()
}

fn pod(name: &str, ready: bool, owner_uid: Option<&str>) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    });
    if let Some(uid) = owner_uid {
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "web-1", "uid": uid, "controller": true}]);
    }
    serde_json::from_value(p).unwrap()
}

fn condition(s: &PodDisruptionBudgetStatus) -> (&str, &str, &str) {
    let c = &s.conditions.as_ref().unwrap()[0];
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

#[test]
fn min_available_count_uses_the_matching_pods() {
    let pods = [
        pod("a", true, None),
        pod("b", true, None),
        pod("c", false, None),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let (s, recheck) = budget_status(
        &pdb(json!({"minAvailable": 1}), json!({})),
        &refs,
        &ControllerScales::new(),
        now(),
    );
    assert_eq!(
        (
            s.expected_pods,
            s.desired_healthy,
            s.current_healthy,
            s.disruptions_allowed
        ),
        (3, 1, 2, 1)
    );
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(condition(&s), ("True", "SufficientPods", ""));
    assert_eq!(recheck, None);

    let (s, _) = budget_status(
        &pdb(json!({"minAvailable": 2}), json!({})),
        &refs,
        &ControllerScales::new(),
        now(),
    );
    assert_eq!(s.disruptions_allowed, 0);
    assert_eq!(condition(&s), ("False", "InsufficientPods", ""));
}

#[test]
fn percentages_and_max_unavailable_use_the_controllers_scale() {
    let pods = [pod("a", true, Some("rs1")), pod("b", true, Some("rs2"))];
    let refs: Vec<&Pod> = pods.iter().collect();
    // Two ReplicaSets of one Deployment of 4 replicas count once.
    let scales: ControllerScales = [
        ("rs1".to_string(), ("dep".to_string(), 4)),
        ("rs2".to_string(), ("dep".to_string(), 4)),
    ]
    .into();
    let (s, _) = budget_status(
        &pdb(json!({"minAvailable": "50%"}), json!({})),
        &refs,
        &scales,
        now(),
    );
    assert_eq!(
        (s.expected_pods, s.desired_healthy, s.disruptions_allowed),
        (4, 2, 0)
    );
    let (s, _) = budget_status(
        &pdb(json!({"maxUnavailable": 1}), json!({})),
        &refs,
        &scales,
        now(),
    );
    assert_eq!(
        (s.expected_pods, s.desired_healthy, s.disruptions_allowed),
        (4, 3, 0)
    );
    let (s, _) = budget_status(
        &pdb(json!({"maxUnavailable": "25%"}), json!({})),
        &refs,
        &ControllerScales::new(),
        now(),
    );
    assert_eq!(s.disruptions_allowed, 0);
    assert_eq!(
        condition(&s),
        ("False", "SyncFailed", "found no controllers for pod \"a\"")
    );
}

#[test]
fn a_pod_without_a_controller_fails_the_sync() {
    let pods = [pod("lone", true, None)];
    let refs: Vec<&Pod> = pods.iter().collect();
    let old = json!({"disruptionsAllowed": 1, "currentHealthy": 1, "desiredHealthy": 0, "expectedPods": 1});
    let (s, _) = budget_status(
        &pdb(json!({"maxUnavailable": 1}), old),
        &refs,
        &ControllerScales::new(),
        now(),
    );
    assert_eq!((s.disruptions_allowed, s.current_healthy), (0, 1));
    assert_eq!(
        condition(&s),
        (
            "False",
            "SyncFailed",
            "found no controller ref for pod \"lone\""
        )
    );
}

#[test]
fn disrupted_pods_are_not_healthy_until_they_expire() {
    let mut deleting = pod("c", true, None);
    deleting.metadata.deletion_timestamp = Some(Time(now()));
    let pods = [pod("a", true, None), pod("b", true, None), deleting];
    let refs: Vec<&Pod> = pods.iter().collect();
    let status = json!({"disruptedPods": {
        "a": "2024-01-01T00:09:00Z", // pending for another minute
        "b": "2024-01-01T00:07:00Z", // overdue: counted healthy again
        "gone": "2024-01-01T00:09:30Z",
    }});
    let (s, recheck) = budget_status(
        &pdb(json!({"minAvailable": 1}), status),
        &refs,
        &ControllerScales::new(),
        now(),
    );
    assert_eq!(s.current_healthy, 1);
    assert_eq!(s.disruptions_allowed, 0);
    let pending: Vec<&String> = s.disrupted_pods.as_ref().unwrap().keys().collect();
    assert_eq!(pending, ["a"]);
    assert_eq!(recheck, Some("2024-01-01T00:11:00Z".parse().unwrap()));
}

#[test]
fn an_unchanged_condition_keeps_its_transition_time() {
    let pods = [pod("a", true, None), pod("b", true, None)];
    let refs: Vec<&Pod> = pods.iter().collect();
    let budget = pdb(json!({"minAvailable": 1}), json!({}));
    let (first, _) = budget_status(&budget, &refs, &ControllerScales::new(), now());
    let mut again = budget.clone();
    again.status = Some(first.clone());
    let later = now() + SignedDuration::from_secs(60);
    let (second, _) = budget_status(&again, &refs, &ControllerScales::new(), later);
    assert_eq!(first, second);
}

#[test]
fn no_budget_field_expects_nothing() {
    let pods = [pod("a", true, None)];
    let refs: Vec<&Pod> = pods.iter().collect();
    let (s, _) = budget_status(
        &pdb(json!({}), json!({})),
        &refs,
        &ControllerScales::new(),
        now(),
    );
    assert_eq!(
        (s.expected_pods, s.desired_healthy, s.disruptions_allowed),
        (0, 0, 0)
    );
}
