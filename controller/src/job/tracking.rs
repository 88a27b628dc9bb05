//! Which finished pods of a Job still wait to be counted: the pods carrying the
//! `batch.kubernetes.io/job-tracking` finalizer, less those whose finalizer this controller
//! already removed while the pod cache has not caught up, so a stale cache never makes a
//! counted pod count again (kube-controller-manager's finalizer expectations).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::TRACKING_FINALIZER;

/// Pod uids whose tracking finalizer was removed, per Job key, until the pod cache shows
/// the pod without it or without the pod.
#[derive(Debug, Default)]
pub struct RemovedFinalizers {
    inner: Mutex<HashMap<String, HashSet<String>>>,
}

/// Whether the pod (as cached) still carries the tracking finalizer.
pub fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

impl RemovedFinalizers {
    /// Records that the finalizers of `uids` were removed for `job`.
    pub fn record(&self, job: &str, uids: impl IntoIterator<Item = String>) {
        let mut m = self.inner.lock().expect("removed finalizers lock");
        m.entry(job.to_string()).or_default().extend(uids);
    }

    /// Forgets the uids the cache now shows settled (gone, or without the finalizer) and
    /// returns those it still shows with the finalizer.
    pub fn pending(&self, job: &str, pods: &[Arc<Pod>]) -> HashSet<String> {
        let mut m = self.inner.lock().expect("removed finalizers lock");
        let Some(set) = m.get_mut(job) else {
            return HashSet::new();
        };
        let still: HashSet<String> = pods
            .iter()
            .filter(|p| has_finalizer(p))
            .filter_map(|p| p.uid())
            .collect();
        set.retain(|u| still.contains(u));
        let out = set.clone();
        if set.is_empty() {
            m.remove(job);
        }
        out
    }

    /// Drops everything known of `job` (it is gone).
    pub fn forget(&self, job: &str) {
        self.inner
            .lock()
            .expect("removed finalizers lock")
            .remove(job);
    }
}

/// The uncounted uids that can be counted now without removing a finalizer: their pod is
/// gone, no longer carries the finalizer, or had it removed by this controller.
pub fn settled(
    uncounted: &[String],
    pods: &[Arc<Pod>],
    removed: &HashSet<String>,
) -> BTreeSet<String> {
    let with_finalizer: HashSet<String> = pods
        .iter()
        .filter(|p| has_finalizer(p))
        .filter_map(|p| p.uid())
        .collect();
    uncounted
        .iter()
        .filter(|u| !with_finalizer.contains(*u) || removed.contains(*u))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, finalizer: bool) -> Arc<Pod> {
        let finalizers: Vec<&str> = if finalizer {
            vec![TRACKING_FINALIZER]
        } else {
            vec![]
        };
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": uid, "uid": uid, "finalizers": finalizers}}),
            )
            .unwrap(),
        )
    }

    #[test]
    fn a_removed_finalizer_is_pending_until_the_cache_catches_up() {
        let r = RemovedFinalizers::default();
        r.record("ns/j", ["a".to_string(), "b".to_string()]);
        // The cache still shows both with the finalizer: both are pending.
        let stale = [pod("a", true), pod("b", true)];
        assert_eq!(r.pending("ns/j", &stale).len(), 2);
        // a's update arrived; b is still stale.
        let newer = [pod("a", false), pod("b", true)];
        assert_eq!(r.pending("ns/j", &newer), HashSet::from(["b".to_string()]));
        // a is settled for good: a stale view of it later is not pending again.
        assert_eq!(r.pending("ns/j", &stale), HashSet::from(["b".to_string()]));
        assert!(r.pending("ns/j", &[]).is_empty());
        assert!(r.pending("ns/other", &stale).is_empty());
        r.record("ns/j", ["c".to_string()]);
        r.forget("ns/j");
        assert!(r.pending("ns/j", &[pod("c", true)]).is_empty());
    }

    #[test]
    fn uncounted_pods_are_settled_once_their_finalizer_is_gone() {
        let pods = [pod("a", true), pod("b", false), pod("c", true)];
        let uncounted = ["a", "b", "c", "gone"].map(String::from);
        let removed = HashSet::from(["c".to_string()]);
        assert_eq!(
            settled(&uncounted, &pods, &removed),
            BTreeSet::from(["b", "c", "gone"].map(String::from))
        );
    }
}
