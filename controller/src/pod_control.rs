//! Pure pod bookkeeping shared by the workload controllers: pods from templates, readiness
//! and availability (from skiff-api), slow-start batches, and the order in which surplus
//! pods are deleted.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
// Readiness is the shared rule in skiff-api; the workload controllers reach it from here
// with the rest of their pod bookkeeping.
pub use skiff_api::pod::readiness::{is_available, is_ready, ready_since};

/// Whether the pod still counts: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// Whether the pod's labels include every template label.
pub fn fully_labeled(pod: &Pod, template_labels: &BTreeMap<String, String>) -> bool {
    let labels = pod.metadata.labels.as_ref();
    template_labels
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The pod a controller creates from `template` for `owner` (labels, annotations and spec from
/// the template, `generateName: <prefix>`, a controller ownerReference).
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    generate_name: &str,
    owner: OwnerReference,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Batch sizes for creating `count` objects: 1, 2, 4, ... until `count` is reached, so a
/// failing template costs one call rather than `count` (kube's slowStartBatch).
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut left, mut size) = (count, 1usize);
    while left > 0 {
        let n = size.min(left);
        out.push(n);
        left -= n;
        size *= 2;
    }
    out
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |c| c.iter().map(|c| c.restart_count).sum())
}

/// Orders pods so the ones to delete first come first, as Kubernetes' ActivePods does:
/// unscheduled before scheduled, Pending before Unknown before Running, not ready before
/// ready, ready for less time first, more restarts first, newer before older.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let assigned = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| {
            // Ready more recently first; unknown times sort as newest.
            let t = |p: &Pod| ready_since(p).flatten();
            match (t(a), t(b)) {
                (Some(x), Some(y)) => y.cmp(&x),
                _ => Ordering::Equal,
            }
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let c = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            c(b).cmp(&c(a))
        })
}

/// The `count` pods to delete from `pods`, best candidates first.
pub fn pods_to_delete<P: AsRef<Pod> + Clone>(pods: &[P], count: usize) -> Vec<P> {
    let mut sorted = pods.to_vec();
    sorted.sort_by(|a, b| deletion_order(a.as_ref(), b.as_ref()));
    sorted.truncate(count);
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use serde_json::json;

    fn pod(
        name: &str,
        node: Option<&str>,
        phase: &str,
        ready_at: Option<i64>,
        created: i64,
    ) -> Pod {
        let mut conds = vec![];
        if let Some(t) = ready_at {
            conds.push(json!({"type": "Ready", "status": "True", "lastTransitionTime": Timestamp::from_second(t).unwrap().to_string()}));
        } else {
            conds.push(json!({"type": "Ready", "status": "False"}));
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": Timestamp::from_second(created).unwrap().to_string()},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": phase, "conditions": conds},
        }))
        .unwrap()
    }

    #[test]
    fn slow_start_doubles_until_done() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(15), vec![1, 2, 4, 8]);
    }

    #[test]
    fn deletes_unscheduled_then_not_ready_then_newest() {
        let old_ready = pod("old-ready", Some("n"), "Running", Some(100), 10);
        let new_ready = pod("new-ready", Some("n"), "Running", Some(100), 20);
        let recently_ready = pod("recent", Some("n"), "Running", Some(500), 5);
        let not_ready = pod("not-ready", Some("n"), "Running", None, 1);
        let pending = pod("pending", Some("n"), "Pending", None, 1);
        let unscheduled = pod("unscheduled", None, "Pending", None, 1);
        let all = vec![
            old_ready,
            new_ready,
            recently_ready,
            not_ready,
            pending,
            unscheduled,
        ];
        let order: Vec<String> = pods_to_delete(
            &all.into_iter().map(std::sync::Arc::new).collect::<Vec<_>>(),
            6,
        )
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
        assert_eq!(
            order,
            [
                "unscheduled",
                "pending",
                "not-ready",
                "recent",
                "new-ready",
                "old-ready"
            ]
        );
    }

    #[test]
    fn template_pod_carries_labels_and_owner() {
        let t: PodTemplateSpec = serde_json::from_value(json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}})).unwrap();
        let owner = OwnerReference {
            controller: Some(true),
            name: "rs".into(),
            uid: "u".into(),
            kind: "ReplicaSet".into(),
            api_version: "apps/v1".into(),
            block_owner_deletion: Some(true),
        };
        let p = pod_from_template(&t, "ns", "rs-", owner);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("rs-"));
        assert_eq!(p.metadata.labels.unwrap()["app"], "x");
        assert_eq!(p.metadata.owner_references.unwrap()[0].uid, "u");
        assert!(fully_labeled(
            &pod("a", None, "Pending", None, 1),
            &BTreeMap::new()
        ));
    }
}
