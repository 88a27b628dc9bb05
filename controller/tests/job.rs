//! The Job controller against a real API server, with pods finishing as fast as status
//! writes allow: every success is counted once (no double count from a stale cache), the
//! tracking finalizers all go, and a Job's pods left behind by its deletion are freed.

mod common;

use std::time::Duration;

use common::{TestCluster, eventually};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_controller::ControllerKind;
use skiff_controller::job::TRACKING_FINALIZER;

const T: Duration = Duration::from_secs(60);

/// Stands in for kubelets: every pod of the Job that is not finished is reported Succeeded.
fn finish_pods(pods: Api<Pod>, selector: &'static str) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Ok(list) = pods.list(&ListParams::default().labels(selector)).await {
                for p in list {
                    let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                    if phase.as_deref() == Some("Succeeded")
                        || p.metadata.deletion_timestamp.is_some()
                    {
                        continue;
                    }
                    let now = k8s_openapi::jiff::Timestamp::now().to_string();
                    let status = json!({"status": {"phase": "Succeeded", "containerStatuses": [{
                        "name": "c", "image": "busybox", "imageID": "", "ready": false,
                        "restartCount": 0, "state": {"terminated": {"exitCode": 0,
                            "reason": "Completed", "finishedAt": now}}}]}});
                    let _ = pods
                        .patch_status(
                            &p.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&status),
                        )
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

fn job(name: &str, completions: i32, parallelism: i32) -> Job {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"completions": completions, "parallelism": parallelism,
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_success_is_counted_once() {
    let mut cluster = TestCluster::start().await;
    cluster.start_controllers(&[ControllerKind::Job]);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), "default");
    let kubelet = finish_pods(pods.clone(), "batch.kubernetes.io/job-name=many");
    jobs.create(&PostParams::default(), &job("many", 40, 10))
        .await
        .unwrap();

    let complete = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")
            })
    };
    let done = eventually(T, "the Job to complete", || async {
        let j = jobs.get("many").await.ok()?;
        complete(&j).then_some(j)
    })
    .await;
    let st = done.status.unwrap();
    assert_eq!(st.succeeded, Some(40), "{st:?}");
    assert_eq!(st.failed.unwrap_or(0), 0);
    kubelet.abort();
    // Nothing is counted again once the caches catch up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let st = jobs.get("many").await.unwrap().status.unwrap();
    assert_eq!(st.succeeded, Some(40), "{st:?}");
    let uncounted = st.uncounted_terminated_pods.unwrap_or_default();
    assert!(uncounted.succeeded.unwrap_or_default().is_empty());
    assert!(uncounted.failed.unwrap_or_default().is_empty());
    let list = pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=many"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 40, "one pod per completion");
    for p in &list.items {
        assert!(
            !p.finalizers().iter().any(|f| f == TRACKING_FINALIZER),
            "{} still tracked",
            p.name_any()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_deleted_job_lose_their_tracking_finalizer() {
    let mut cluster = TestCluster::start().await;
    cluster.start_controllers(&[ControllerKind::Job]);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), "default");
    jobs.create(&PostParams::default(), &job("left", 3, 3))
        .await
        .unwrap();
    let selector = ListParams::default().labels("batch.kubernetes.io/job-name=left");
    eventually(T, "three tracked pods", || async {
        let l = pods.list(&selector).await.ok()?;
        (l.items.len() == 3).then_some(())
    })
    .await;
    // No garbage collector runs here, so deleting the Job leaves its pods behind; one of
    // them is being deleted too.
    jobs.delete("left", &DeleteParams::default()).await.unwrap();
    let first = pods.list(&selector).await.unwrap().items[0].name_any();
    pods.delete(&first, &DeleteParams::default()).await.unwrap();
    eventually(T, "the orphans' finalizers to go", || async {
        let l = pods.list(&selector).await.ok()?;
        let free = l
            .items
            .iter()
            .all(|p| !p.finalizers().iter().any(|f| f == TRACKING_FINALIZER));
        (free && l.items.len() == 2 && l.items.iter().all(|p| p.name_any() != first)).then_some(())
    })
    .await;
}
