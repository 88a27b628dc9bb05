//! Tests of the StatefulSet planner.

use super::*;
use serde_json::json;

fn view(replicas: i32) -> SetView {
    SetView {
        replicas,
        start: 0,
        monotonic: true,
        on_delete: false,
        partition: 0,
        max_unavailable: 1,
        min_ready_seconds: 0,
        deleting: false,
        current_revision: "web-old".into(),
        update_revision: "web-new".into(),
    }
}

fn pod(ord: i32, phase: &str, ready: bool, revision: &str) -> (i32, Arc<Pod>) {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("web-{ord}"), "labels": {"controller-revision-hash": revision}},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
            "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
    }))
    .unwrap();
    (ord, Arc::new(p))
}

fn now() -> Timestamp {
    "2024-01-01T01:00:00Z".parse().unwrap()
}

fn no_repair(_: &Pod, _: i32) -> bool {
    false
}

fn describe(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .map(|s| match s {
            Step::Create { ordinal, revision } => format!("create {ordinal} {revision:?}"),
            Step::Delete { pod, reason } => {
                format!(
                    "delete {} {reason:?}",
                    pod.metadata.name.as_deref().unwrap()
                )
            }
            Step::Repair { ordinal, .. } => format!("repair {ordinal}"),
        })
        .collect()
}

#[test]
fn ordered_ready_creates_one_at_a_time_after_ready_predecessors() {
    let v = view(3);
    assert_eq!(
        describe(&plan(&v, &[], now(), no_repair)),
        ["create 0 Update"]
    );
    let pending = [pod(0, "Pending", false, "web-new")];
    assert!(plan(&v, &pending, now(), no_repair).steps.is_empty());
    let running_not_ready = [pod(0, "Running", false, "web-new")];
    assert!(
        plan(&v, &running_not_ready, now(), no_repair)
            .steps
            .is_empty()
    );
    let ready = [pod(0, "Running", true, "web-new")];
    let p = plan(&v, &ready, now(), no_repair);
    assert_eq!(describe(&p), ["create 1 Update"]);
    assert_eq!(p.counts.replicas, 2);
    assert_eq!(p.counts.updated, 2);
    assert_eq!(p.counts.ready, 1);
}

#[test]
fn min_ready_seconds_holds_the_next_pod() {
    let mut v = view(2);
    v.min_ready_seconds = 7200;
    let ready = [pod(0, "Running", true, "web-new")];
    let p = plan(&v, &ready, now(), no_repair);
    assert!(p.steps.is_empty());
    assert_eq!((p.counts.ready, p.counts.available), (1, 0));
    v.min_ready_seconds = 60;
    assert_eq!(
        describe(&plan(&v, &ready, now(), no_repair)),
        ["create 1 Update"]
    );
}

#[test]
fn parallel_creates_every_missing_ordinal_from_start() {
    let mut v = view(3);
    v.monotonic = false;
    v.start = 5;
    let pods = [pod(6, "Pending", false, "web-new")];
    assert_eq!(
        describe(&plan(&v, &pods, now(), no_repair)),
        ["create 5 Update", "create 7 Update"]
    );
}

#[test]
fn scale_down_removes_the_highest_ordinal_first_one_at_a_time() {
    let v = view(1);
    let pods: Vec<_> = (0..3).map(|o| pod(o, "Running", true, "web-new")).collect();
    assert_eq!(
        describe(&plan(&v, &pods, now(), no_repair)),
        ["delete web-2 ScaleDown"]
    );
    let mut terminating = pods.clone();
    let mut p2 = (*terminating[2].1).clone();
    p2.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    terminating[2].1 = Arc::new(p2);
    assert!(plan(&v, &terminating, now(), no_repair).steps.is_empty());
    let mut parallel = v.clone();
    parallel.monotonic = false;
    assert_eq!(
        describe(&plan(&parallel, &pods, now(), no_repair)),
        ["delete web-2 ScaleDown", "delete web-1 ScaleDown"]
    );
}

#[test]
fn failed_pods_are_deleted_to_be_made_again() {
    let v = view(2);
    let pods = [
        pod(0, "Failed", false, "web-new"),
        pod(1, "Running", true, "web-new"),
    ];
    let p = plan(&v, &pods, now(), no_repair);
    assert_eq!(describe(&p), ["delete web-0 Failed"]);
    assert_eq!(p.counts.replicas, 1);
}

#[test]
fn rolling_update_goes_down_from_the_top_above_the_partition() {
    let mut v = view(4);
    v.partition = 2;
    let mut pods: Vec<_> = (0..4).map(|o| pod(o, "Running", true, "web-old")).collect();
    assert_eq!(
        describe(&plan(&v, &pods, now(), no_repair)),
        ["delete web-3 Update"]
    );
    // While the updated pod is missing nothing else goes; it comes back at the update revision.
    pods.pop();
    assert_eq!(
        describe(&plan(&v, &pods, now(), no_repair)),
        ["create 3 Update"]
    );
    pods.push(pod(3, "Running", true, "web-new"));
    assert_eq!(
        describe(&plan(&v, &pods, now(), no_repair)),
        ["delete web-2 Update"]
    );
    pods[2] = pod(2, "Running", true, "web-new");
    let done = plan(&v, &pods, now(), no_repair);
    assert!(done.steps.is_empty(), "{:?}", describe(&done));
    assert_eq!((done.counts.current, done.counts.updated), (2, 2));
    // Below the partition a recreated pod keeps the current revision.
    pods.remove(0);
    assert_eq!(
        describe(&plan(&v, &pods, now(), no_repair)),
        ["create 0 Current"]
    );
}

#[test]
fn max_unavailable_takes_several_down_at_once() {
    let mut v = view(4);
    v.max_unavailable = 2;
    let pods: Vec<_> = (0..4).map(|o| pod(o, "Running", true, "web-old")).collect();
    assert_eq!(
        describe(&plan(&v, &pods, now(), no_repair)),
        ["delete web-3 Update", "delete web-2 Update"]
    );
    let mut one_down = pods.clone();
    one_down[0] = pod(0, "Running", false, "web-old");
    v.monotonic = false;
    assert_eq!(
        describe(&plan(&v, &one_down, now(), no_repair)),
        ["delete web-3 Update"]
    );
}

#[test]
fn on_delete_never_deletes_for_update() {
    let mut v = view(2);
    v.on_delete = true;
    v.partition = 5;
    let pods = [pod(0, "Running", true, "web-old")];
    // New pods take the update revision whatever the partition says.
    assert_eq!(
        describe(&plan(&v, &pods, now(), no_repair)),
        ["create 1 Update"]
    );
    let pods = [
        pod(0, "Running", true, "web-old"),
        pod(1, "Running", true, "web-new"),
    ];
    assert!(plan(&v, &pods, now(), no_repair).steps.is_empty());
}

#[test]
fn repairs_and_deletion_keep_status_only() {
    let v = view(1);
    let pods = [pod(0, "Running", true, "web-new")];
    assert_eq!(describe(&plan(&v, &pods, now(), |_, _| true)), ["repair 0"]);
    let mut deleting = v.clone();
    deleting.deleting = true;
    let p = plan(&deleting, &[], now(), no_repair);
    assert!(p.steps.is_empty());
    assert_eq!(p.counts, Counts::default());
}
