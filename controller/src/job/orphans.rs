//! Orphaned Job pods: a pod that still carries the tracking finalizer while the Job that
//! controls it is gone (deleted, or replaced by a Job of the same name) would never be
//! removed, since only that Job's reconcile drops the finalizer. As kube-controller-manager's
//! `syncOrphanPod`, the finalizer is removed once the API server confirms the Job is gone.

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};

use super::remove_finalizer;
use super::tracking::has_finalizer;
use crate::Shutdown;
use crate::claim::controller_of;
use crate::error::not_found;

/// How often the pod cache is searched for orphans.
const SWEEP: Duration = Duration::from_secs(2);

/// The tracked pods whose controlling Job is absent from the Job cache (by uid).
pub fn candidates(
    pods: &[std::sync::Arc<Pod>],
    jobs: &[std::sync::Arc<Job>],
) -> Vec<std::sync::Arc<Pod>> {
    let known: HashSet<String> = jobs.iter().filter_map(|j| j.uid()).collect();
    pods.iter()
        .filter(|p| has_finalizer(p))
        .filter(|p| {
            controller_of(p.as_ref()).is_some_and(|c| c.kind == "Job" && !known.contains(&c.uid))
        })
        .cloned()
        .collect()
}

/// Removes the tracking finalizer of orphaned pods until `shutdown`.
pub async fn sweep(client: Client, pods: Store<Pod>, jobs: Store<Job>, shutdown: Shutdown) {
    let stop = shutdown.signalled();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(SWEEP) => {}
        }
        for pod in candidates(&pods.state(), &jobs.state()) {
            let ns = pod.namespace().unwrap_or_default();
            let Some(owner) = controller_of(pod.as_ref()) else {
                continue;
            };
            // The cache may only be behind: ask the API server before letting the pod go.
            let jobs_api: Api<Job> = Api::namespaced(client.clone(), &ns);
            let gone = match jobs_api.get_opt(&owner.name).await {
                Ok(None) => true,
                Ok(Some(j)) => j.uid().as_deref() != Some(owner.uid.as_str()),
                Err(e) => {
                    tracing::debug!(pod = %pod.name_any(), error = %e, "orphan check failed");
                    false
                }
            };
            if !gone {
                continue;
            }
            let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            match remove_finalizer(&pods_api, &pod).await {
                Ok(()) => {
                    tracing::info!(pod = %pod.name_any(), job = %owner.name, "tracking finalizer removed from orphaned pod")
                }
                Err(e) if not_found(&e) => {}
                Err(e) => {
                    tracing::debug!(pod = %pod.name_any(), error = %e, "orphan finalizer not removed yet")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn pod(name: &str, job_uid: &str, finalizer: bool) -> Arc<Pod> {
        let finalizers: Vec<&str> = if finalizer {
            vec![super::super::TRACKING_FINALIZER]
        } else {
            vec![]
        };
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "uid": name,
            "finalizers": finalizers,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j",
                "uid": job_uid, "controller": true}]}}))
            .unwrap(),
        )
    }

    #[test]
    fn only_tracked_pods_of_unknown_jobs_are_orphans() {
        let jobs: Vec<Arc<Job>> = vec![Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "j", "uid": "live"}})).unwrap(),
        )];
        let pods = [
            pod("a", "live", true),
            pod("b", "gone", true),
            pod("c", "gone", false),
        ];
        let found: Vec<String> = candidates(&pods, &jobs)
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(found, ["b"]);
    }
}
