//! Indexed completion bookkeeping: a pod's completion index, which indexes still need a pod,
//! and the per-index failure count carried from one pod of an index to its replacement.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;

/// The annotation (and label) carrying a pod's completion index.
pub const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// The annotation counting earlier failed pods of the same index (for backoffLimitPerIndex).
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";

/// The pod's completion index, from its annotation (or label).
pub fn pod_index(pod: &Pod) -> Option<i32> {
    let meta = &pod.metadata;
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(INDEX_ANNOTATION))
        .or_else(|| meta.labels.as_ref().and_then(|l| l.get(INDEX_ANNOTATION)))
        .and_then(|v| v.parse().ok())
}

/// How many earlier pods of this pod's index failed.
pub fn failure_count(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INDEX_FAILURE_COUNT))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The lowest indexes, at most `room` of them, that are neither completed, failed, nor held
/// by an active pod.
pub fn indexes_to_create(
    completions: i32,
    room: usize,
    completed: &BTreeSet<i32>,
    failed: &BTreeSet<i32>,
    active: &BTreeSet<i32>,
) -> Vec<i32> {
    (0..completions.max(0))
        .filter(|i| !completed.contains(i) && !failed.contains(i) && !active.contains(i))
        .take(room)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_lowest_free_indexes() {
        let completed = BTreeSet::from([0, 2]);
        let failed = BTreeSet::from([3]);
        let active = BTreeSet::from([1]);
        assert_eq!(
            indexes_to_create(7, 2, &completed, &failed, &active),
            [4, 5]
        );
        assert_eq!(
            indexes_to_create(7, 10, &completed, &failed, &active),
            [4, 5, 6]
        );
        assert!(indexes_to_create(3, 5, &BTreeSet::from([0, 1, 2]), &failed, &active).is_empty());
    }

    #[test]
    fn reads_index_and_failure_count() {
        let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {
            "annotations": {INDEX_ANNOTATION: "4", INDEX_FAILURE_COUNT: "2"}}}))
        .unwrap();
        assert_eq!(pod_index(&pod), Some(4));
        assert_eq!(failure_count(&pod), 2);
        assert_eq!(pod_index(&Pod::default()), None);
    }
}
