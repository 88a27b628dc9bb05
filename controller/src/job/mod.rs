//! The Job controller: runs pods until a Job's completions succeed (NonIndexed or Indexed),
//! replaces failed pods with back-off, applies the pod failure policy, backoffLimit,
//! backoffLimitPerIndex, activeDeadlineSeconds and suspend, and tracks every finished pod
//! through the `batch.kubernetes.io/job-tracking` finalizer and
//! `status.uncountedTerminatedPods` so that no pod result is lost.

pub mod indexed;
mod orphans;
pub mod policy;
mod status;
mod tracking;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobStatus, PodFailurePolicy};
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use kube::api::{Api, DeleteParams, Patch, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use skiff_api::indexes;
use skiff_client::controller::drive;
use skiff_client::{EventRecorder, ReadyGate, watched_store};

use crate::Shutdown;
use crate::claim::{controller_of, controller_ref};
use crate::error::{Error, Result, not_found};
use crate::expectations::Expectations;
use crate::metrics::timed;
use crate::pod_control::{is_ready, pod_from_template, pods_to_delete};
use crate::replicaset::key_of;
use indexed::{INDEX_ANNOTATION, INDEX_FAILURE_COUNT, pod_index};
use policy::{failed, finished_at, match_pod_failure_policy, remaining_backoff, succeeded};
use status::{Finish, condition_true, set_condition};
use tracking::{RemovedFinalizers, has_finalizer, settled};

/// The finalizer that keeps a Job's pod until the controller has counted its result.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// At most this many pods are created or deleted in one reconcile.
const BURST: usize = 500;

/// What the Job reconciler shares between calls.
pub struct JobContext {
    client: Client,
    pods: Store<Pod>,
    pods_ready: ReadyGate,
    expectations: Expectations,
    /// Pods whose tracking finalizer was removed and whose cached copy still shows it.
    removed: RemovedFinalizers,
    events: EventRecorder,
}

/// The pods of a Job, sorted into what the controller needs.
struct Pods {
    /// Not finished, not being deleted.
    active: Vec<Arc<Pod>>,
    /// Being deleted and not yet finished.
    terminating: Vec<Arc<Pod>>,
    /// Every pod still carrying the tracking finalizer that has finished.
    finished_tracked: Vec<Arc<Pod>>,
    /// Every pod of the Job.
    all: Vec<Arc<Pod>>,
}

/// Sorts the Job's pods; a pod in `removed` (finalizer already removed, cache behind) is
/// not tracked any more.
fn sort_pods(all: Vec<Arc<Pod>>, removed: &HashSet<String>) -> Pods {
    let tracked = |p: &Pod| has_finalizer(p) && p.uid().is_none_or(|u| !removed.contains(&u));
    let done = |p: &Pod| succeeded(p) || policy::phase(p) == "Failed";
    Pods {
        active: all
            .iter()
            .filter(|p| !done(p) && p.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect(),
        terminating: all
            .iter()
            .filter(|p| !done(p) && p.metadata.deletion_timestamp.is_some())
            .cloned()
            .collect(),
        finished_tracked: all
            .iter()
            .filter(|p| tracked(p) && (done(p) || p.metadata.deletion_timestamp.is_some()))
            .cloned()
            .collect(),
        all,
    }
}

pub(super) async fn remove_finalizer(
    api: &Api<Pod>,
    pod: &Pod,
) -> std::result::Result<(), kube::Error> {
    let kept: Vec<&String> = pod
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != TRACKING_FINALIZER)
        .collect();
    // The resourceVersion makes this fail rather than drop a finalizer added meanwhile.
    let patch = json!({"metadata": {"finalizers": kept,
        "resourceVersion": pod.metadata.resource_version}});
    match api
        .patch(
            &pod.name_any(),
            &crate::patch_params(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Err(e) if not_found(&e) => Ok(()),
        other => other.map(|_| ()),
    }
}

async fn reconcile(cached: Arc<Job>, ctx: Arc<JobContext>) -> Result<Action> {
    let key = key_of(cached.as_ref());
    let ns = cached.namespace().ok_or(Error::Missing {
        object: key.clone(),
        field: "metadata.namespace",
    })?;
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    // The status is counted on top of what it says, so it must not be a cached copy from
    // before this controller's last write: read the Job itself.
    let job = match jobs_api.get(&cached.name_any()).await {
        Ok(j) => Arc::new(j),
        Err(e) if not_found(&e) => {
            ctx.removed.forget(&key);
            return Ok(Action::await_change());
        }
        Err(e) => return Err(Error::api(key.clone())(e)),
    };
    let uid = job.uid().ok_or(Error::Missing {
        object: key.clone(),
        field: "metadata.uid",
    })?;
    if ctx.pods_ready.wait().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owned: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(&ns))
        .filter(|p| controller_of(p.as_ref()).is_some_and(|c| c.uid == uid))
        .collect();
    let seen: BTreeSet<String> = owned.iter().map(|p| p.name_any()).collect();
    let alive: BTreeSet<String> = owned
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.uid())
        .collect();
    let satisfied = ctx
        .expectations
        .satisfied(&key, |n| seen.contains(n), |u| alive.contains(u));
    let removed = ctx.removed.pending(&key, &owned);
    let pods = sort_pods(owned, &removed);
    let spec = job.spec.clone().unwrap_or_default();
    let old_status = job.status.clone().unwrap_or_default();
    let mut st = old_status.clone();
    let now = Timestamp::now();
    let job_ref = job.object_ref(&());
    let finished = condition_true(&st, "Complete") || condition_true(&st, "Failed");

    // 1. Record every newly finished tracked pod as uncounted, before its finalizer goes.
    let mut uncounted = st.uncounted_terminated_pods.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let policy = spec.pod_failure_policy.clone();
    let mut finish: Option<Finish> = None;
    let mut failed_indexes = parse_indexes(st.failed_indexes.as_deref(), &spec);
    // Failures the policy ignores are counted nowhere; their finalizer just goes.
    let mut ignored: BTreeSet<String> = BTreeSet::new();
    for pod in &pods.finished_tracked {
        let pod_uid = pod.uid().unwrap_or_default();
        let listed = |l: &Option<Vec<String>>| l.iter().flatten().any(|u| *u == pod_uid);
        if listed(&uncounted.succeeded) || listed(&uncounted.failed) {
            continue;
        }
        if succeeded(pod) {
            uncounted
                .succeeded
                .get_or_insert_with(Vec::new)
                .push(pod_uid);
            continue;
        }
        if !failed(pod) {
            continue;
        }
        // Pods stopped because the Job was suspended are not failures.
        if spec.suspend == Some(true) && policy::phase(pod) != "Failed" {
            ignored.insert(pod_uid);
            continue;
        }
        let matched = policy
            .as_ref()
            .and_then(|p| match_pod_failure_policy(p, pod));
        match matched.as_ref().map(|m| m.action.as_str()) {
            Some("Ignore") => {
                // Not counted at all: a replacement is created without back-off.
                ignored.insert(pod_uid);
                continue;
            }
            Some("FailJob") if finish.is_none() && !finished => {
                let m = matched.clone().expect("matched");
                finish = Some(Finish::failed("PodFailurePolicy", m.message));
            }
            Some("FailIndex") => {
                if let Some(i) = pod_index(pod) {
                    failed_indexes.insert(i);
                }
            }
            _ => {}
        }
        if indexed
            && let (Some(limit), Some(i)) = (spec.backoff_limit_per_index, pod_index(pod))
            && indexed::failure_count(pod) + 1 > limit
        {
            failed_indexes.insert(i);
        }
        uncounted.failed.get_or_insert_with(Vec::new).push(pod_uid);
    }
    if uncounted != st.uncounted_terminated_pods.clone().unwrap_or_default() {
        st.uncounted_terminated_pods = Some(uncounted.clone());
        write_status(&jobs_api, &key, &job, &st).await?;
    }

    // 2. Drop the finalizers of recorded pods, then 3. count them.
    let mut completed = parse_indexes(st.completed_indexes.as_deref(), &spec);
    let recorded: Vec<Arc<Pod>> = pods
        .finished_tracked
        .iter()
        .filter(|p| {
            let u = p.uid().unwrap_or_default();
            uncounted.succeeded.iter().flatten().any(|x| *x == u)
                || uncounted.failed.iter().flatten().any(|x| *x == u)
                || ignored.contains(&u)
        })
        .cloned()
        .collect();
    let results = join_all(recorded.iter().map(|p| remove_finalizer(&pods_api, p))).await;
    let mut now_removed = Vec::new();
    for (pod, res) in recorded.iter().zip(results) {
        if let Err(e) = res {
            tracing::debug!(job = %key, pod = %pod.name_any(), error = %e, "finalizer not removed yet");
            continue;
        }
        let u = pod.uid().unwrap_or_default();
        count(
            &mut st,
            &mut uncounted,
            &mut completed,
            indexed,
            &u,
            Some(pod),
        );
        now_removed.push(u);
    }
    ctx.removed.record(&key, now_removed);
    // Uncounted uids whose pod is gone or lost its finalizer before they were counted (a
    // status write that failed after the removal) are counted now.
    let waiting: Vec<String> = [&uncounted.succeeded, &uncounted.failed]
        .into_iter()
        .flatten()
        .flatten()
        .cloned()
        .collect();
    for u in settled(&waiting, &pods.all, &removed) {
        let pod = pods.all.iter().find(|p| p.uid().as_deref() == Some(&u));
        count(
            &mut st,
            &mut uncounted,
            &mut completed,
            indexed,
            &u,
            pod.map(|p| p.as_ref()),
        );
    }
    if indexed {
        st.completed_indexes = Some(indexes::format(&completed));
        if spec.backoff_limit_per_index.is_some() {
            st.failed_indexes = Some(indexes::format(&failed_indexes));
        }
    }
    st.uncounted_terminated_pods = Some(uncounted.clone());

    if finished {
        st.active = Some(0);
        st.ready = Some(0);
        st.terminating = Some(pods.terminating.len() as i32);
        if st != old_status {
            write_status(&jobs_api, &key, &job, &st).await?;
        }
        return Ok(Action::await_change());
    }

    // 4. Decide whether the Job is done.
    let succeeded_count = st.succeeded.unwrap_or(0);
    let failed_count =
        st.failed.unwrap_or(0) + uncounted.failed.as_ref().map_or(0, Vec::len) as i32;
    let suspended = spec.suspend == Some(true);
    if !suspended && st.start_time.is_none() {
        st.start_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
    }
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let restarts: i32 = if spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure")
    {
        pods.active
            .iter()
            .flat_map(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
            })
            .map(|c| c.restart_count)
            .sum()
    } else {
        0
    };
    if finish.is_none()
        && let Some(c) = st
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "FailureTarget" && c.status == "True")
    {
        finish = Some(Finish::failed(
            c.reason.as_deref().unwrap_or(""),
            c.message.clone().unwrap_or_default(),
        ));
    }
    if finish.is_none() && !condition_true(&st, "SuccessCriteriaMet") {
        if spec.backoff_limit_per_index.is_none()
            && (failed_count > backoff_limit || (restarts > 0 && restarts >= backoff_limit))
        {
            finish = Some(Finish::failed(
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".into(),
            ));
        } else if let Some(max) = spec.max_failed_indexes
            && failed_indexes.len() as i32 > max
        {
            finish = Some(Finish::failed(
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes".into(),
            ));
        } else if let (Some(ads), Some(start)) = (spec.active_deadline_seconds, &st.start_time)
            && !suspended
            && now.duration_since(start.0).as_secs() >= ads
        {
            finish = Some(Finish::failed(
                "DeadlineExceeded",
                "Job was active longer than specified deadline".into(),
            ));
        }
    }
    let success = finish.is_none()
        && (condition_true(&st, "SuccessCriteriaMet")
            || status::success_reached(&spec, succeeded_count, &completed, pods.active.len()));
    let indexes_exhausted = indexed
        && spec.backoff_limit_per_index.is_some()
        && !failed_indexes.is_empty()
        && (completed.len() + failed_indexes.len()) as i32 >= spec.completions.unwrap_or(0);
    if finish.is_none() && !success && indexes_exhausted {
        finish = Some(Finish::failed(
            "FailedIndexes",
            "Job has failed indexes".into(),
        ));
    }
    if success && finish.is_none() {
        finish = Some(Finish::succeeded(&spec));
    }

    // 5. Create or delete pods.
    let mut created_or_deleted = false;
    let mut requeue: Option<Duration> = None;
    if let Some(f) = &finish {
        // Terminal: the interim condition first, active pods deleted, then the final one
        // once nothing runs.
        let newly = set_condition(&mut st, f.interim, "True", &f.reason, &f.message, now);
        if newly && f.interim == "FailureTarget" {
            ctx.events
                .warning(job_ref.clone(), &f.reason, f.message.clone());
        }
        delete_pods(
            &ctx,
            &pods_api,
            &job,
            &key,
            &pods.active,
            &mut created_or_deleted,
        )
        .await;
        let all_counted = pods
            .finished_tracked
            .iter()
            .all(|p| recorded.iter().any(|r| r.uid() == p.uid()));
        if pods.active.is_empty() && pods.terminating.is_empty() && all_counted {
            set_condition(&mut st, f.terminal, "True", &f.reason, &f.message, now);
            if f.terminal == "Complete" {
                st.completion_time =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
                ctx.events
                    .normal(job_ref.clone(), "Completed", "Job completed".into());
            }
        } else {
            requeue = Some(Duration::from_secs(1));
        }
    } else if suspended {
        if set_condition(
            &mut st,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        ) {
            ctx.events
                .normal(job_ref.clone(), "Suspended", "Job suspended".into());
        }
        delete_pods(
            &ctx,
            &pods_api,
            &job,
            &key,
            &pods.active,
            &mut created_or_deleted,
        )
        .await;
    } else {
        if condition_true(&st, "Suspended") {
            set_condition(
                &mut st,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
                now,
            );
            st.start_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
            ctx.events
                .normal(job_ref.clone(), "Resumed", "Job resumed".into());
        }
        if let (Some(ads), Some(start)) = (spec.active_deadline_seconds, &st.start_time) {
            let left = (ads - now.duration_since(start.0).as_secs()).max(1) as u64;
            requeue = Some(Duration::from_secs(left));
        }
        if satisfied {
            let wait = backoff_wait(&pods.all, now, policy.as_ref());
            if !wait.is_zero() {
                requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
            } else {
                manage_pods(
                    &ctx,
                    &pods_api,
                    &job,
                    &key,
                    &pods,
                    &completed,
                    &failed_indexes,
                    succeeded_count,
                    &mut created_or_deleted,
                )
                .await?;
            }
        } else {
            requeue = Some(Duration::from_secs(1));
        }
    }

    st.active = Some(pods.active.len() as i32);
    st.ready = Some(pods.active.iter().filter(|p| is_ready(p)).count() as i32);
    st.terminating = Some(pods.terminating.len() as i32);
    if st != old_status {
        write_status(&jobs_api, &key, &job, &st).await?;
    }
    if created_or_deleted {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    Ok(Action::requeue(requeue.unwrap_or(Duration::from_secs(300))))
}

/// How long replacements must wait after the failures since the last success.
fn backoff_wait(all: &[Arc<Pod>], now: Timestamp, policy: Option<&PodFailurePolicy>) -> Duration {
    let last_success = all
        .iter()
        .filter(|p| succeeded(p))
        .filter_map(|p| finished_at(p))
        .max();
    let failures: Vec<Timestamp> = all
        .iter()
        .filter(|p| failed(p))
        .filter(|p| {
            policy
                .and_then(|pfp| match_pod_failure_policy(pfp, p))
                .is_none_or(|m| m.action != "Ignore")
        })
        .filter_map(|p| finished_at(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    remaining_backoff(now, failures.iter().max().copied(), failures.len() as u32)
}

#[allow(clippy::too_many_arguments)]
async fn manage_pods(
    ctx: &JobContext,
    pods_api: &Api<Pod>,
    job: &Job,
    key: &str,
    pods: &Pods,
    completed: &BTreeSet<i32>,
    failed_indexes: &BTreeSet<i32>,
    succeeded_count: i32,
    changed: &mut bool,
) -> Result<()> {
    let spec = job.spec.clone().unwrap_or_default();
    let parallelism = spec.parallelism.unwrap_or(1).max(0) as usize;
    let replace_only_failed = spec.pod_replacement_policy.as_deref() == Some("Failed");
    let mut busy = pods.active.len();
    if replace_only_failed {
        busy += pods.terminating.len();
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let want = if indexed {
        let remaining = spec.completions.unwrap_or(0) as usize
            - (completed.len() + failed_indexes.len()).min(spec.completions.unwrap_or(0) as usize);
        parallelism.min(remaining)
    } else {
        match spec.completions {
            Some(c) => parallelism.min((c - succeeded_count).max(0) as usize),
            None if succeeded_count > 0 => 0,
            None => parallelism,
        }
    };
    let owner = controller_ref(job).ok_or(Error::Missing {
        object: key.to_string(),
        field: "metadata.uid",
    })?;
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    if busy < want {
        let room = (want - busy).min(BURST);
        let templates: Vec<Pod> = if indexed {
            let active: BTreeSet<i32> = pods
                .active
                .iter()
                .chain(if replace_only_failed {
                    pods.terminating.iter()
                } else {
                    [].iter()
                })
                .filter_map(|p| pod_index(p))
                .collect();
            indexed::indexes_to_create(
                spec.completions.unwrap_or(0),
                room,
                completed,
                failed_indexes,
                &active,
            )
            .into_iter()
            .map(|i| {
                let failures = pods
                    .all
                    .iter()
                    .filter(|p| pod_index(p) == Some(i) && failed(p))
                    .count();
                job_pod(job, &ns, &name, owner.clone(), Some((i, failures)))
            })
            .collect()
        } else {
            (0..room)
                .map(|_| job_pod(job, &ns, &name, owner.clone(), None))
                .collect()
        };
        let pp = PostParams::default();
        let results = join_all(templates.iter().map(|p| pods_api.create(&pp, p))).await;
        let mut created = Vec::new();
        for r in results {
            match r {
                Ok(p) => {
                    ctx.events.normal(
                        job.object_ref(&()),
                        "SuccessfulCreate",
                        format!("Created pod: {}", p.name_any()),
                    );
                    created.push(p.name_any());
                }
                Err(e) => ctx.events.warning(
                    job.object_ref(&()),
                    "FailedCreate",
                    format!("Error creating: {e}"),
                ),
            }
        }
        *changed |= !created.is_empty();
        ctx.expectations.expect_creations(key, created);
    } else if busy > want && !pods.active.is_empty() {
        let extra = (busy - want).min(pods.active.len());
        let victims = pods_to_delete(&pods.active, extra);
        delete_pods(ctx, pods_api, job, key, &victims, changed).await;
    }
    Ok(())
}

/// A pod for `job`: the template, the tracking finalizer, and for an Indexed Job the
/// completion index (annotation, label, `JOB_COMPLETION_INDEX`, hostname `<job>-<index>`).
fn job_pod(
    job: &Job,
    ns: &str,
    name: &str,
    owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    index: Option<(i32, usize)>,
) -> Pod {
    let template = job.spec.clone().unwrap_or_default().template;
    let prefix = match index {
        Some((i, _)) => format!("{name}-{i}-"),
        None => format!("{name}-"),
    };
    let mut pod = pod_from_template(&template, ns, &prefix, owner);
    pod.metadata
        .finalizers
        .get_or_insert_with(Vec::new)
        .push(TRACKING_FINALIZER.into());
    if let Some((i, failures)) = index {
        let idx = i.to_string();
        let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.insert(INDEX_ANNOTATION.into(), idx.clone());
        if job
            .spec
            .as_ref()
            .and_then(|s| s.backoff_limit_per_index)
            .is_some()
        {
            annotations.insert(INDEX_FAILURE_COUNT.into(), failures.to_string());
        }
        pod.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(INDEX_ANNOTATION.into(), idx.clone());
        if let Some(spec) = pod.spec.as_mut() {
            if spec.hostname.is_none() {
                spec.hostname = Some(format!("{name}-{i}"));
            }
            for c in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten())
            {
                c.env.get_or_insert_with(Vec::new).push(EnvVar {
                    name: "JOB_COMPLETION_INDEX".into(),
                    value: Some(idx.clone()),
                    value_from: None,
                });
            }
        }
    }
    pod
}

async fn delete_pods(
    ctx: &JobContext,
    pods_api: &Api<Pod>,
    job: &Job,
    key: &str,
    victims: &[Arc<Pod>],
    changed: &mut bool,
) {
    if victims.is_empty() {
        return;
    }
    let take = &victims[..victims.len().min(BURST)];
    ctx.expectations
        .expect_deletions(key, take.iter().filter_map(|p| p.uid()));
    let dp = DeleteParams::default();
    let names: Vec<String> = take.iter().map(|p| p.name_any()).collect();
    let results = join_all(names.iter().map(|n| pods_api.delete(n, &dp))).await;
    for (p, r) in take.iter().zip(results) {
        match r {
            Ok(_) => {
                *changed = true;
                ctx.events.normal(
                    job.object_ref(&()),
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", p.name_any()),
                )
            }
            Err(e) if not_found(&e) => {}
            Err(e) => ctx.events.warning(
                job.object_ref(&()),
                "FailedDelete",
                format!("Error deleting: {e}"),
            ),
        }
    }
}

/// Moves `uid` from the uncounted lists to the counters. For an Indexed Job a success counts
/// only as the first of its index (a pod that is gone has no index to count).
fn count(
    st: &mut JobStatus,
    uncounted: &mut k8s_openapi::api::batch::v1::UncountedTerminatedPods,
    completed: &mut BTreeSet<i32>,
    indexed: bool,
    uid: &str,
    pod: Option<&Pod>,
) {
    if take(&mut uncounted.succeeded, uid) {
        let counts = !indexed || pod.and_then(pod_index).is_some_and(|i| completed.insert(i));
        if counts {
            st.succeeded = Some(st.succeeded.unwrap_or(0) + 1);
        }
    } else if take(&mut uncounted.failed, uid) {
        st.failed = Some(st.failed.unwrap_or(0) + 1);
    }
}

fn parse_indexes(text: Option<&str>, spec: &k8s_openapi::api::batch::v1::JobSpec) -> BTreeSet<i32> {
    indexes::parse(text.unwrap_or(""), spec.completions.unwrap_or(i32::MAX)).unwrap_or_default()
}

fn take(list: &mut Option<Vec<String>>, uid: &str) -> bool {
    match list {
        Some(l) => {
            let before = l.len();
            l.retain(|u| u != uid);
            l.len() != before
        }
        None => false,
    }
}

async fn write_status(api: &Api<Job>, key: &str, job: &Job, st: &JobStatus) -> Result<()> {
    let patch = json!({"status": st});
    match api
        .patch_status(
            &job.name_any(),
            &crate::patch_params(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if not_found(&e) => Ok(()),
        Err(e) => Err(Error::api(key.to_string())(e)),
    }
}

fn error_policy(job: Arc<Job>, err: &Error, _ctx: Arc<JobContext>) -> Action {
    tracing::warn!(job = %key_of(job.as_ref()), error = %err, "job reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// The Job a pod event concerns: its controller, when that is a Job.
fn job_for_pod(pod: &Pod) -> Option<ObjectRef<Job>> {
    let c = controller_of(pod)?;
    (c.kind == "Job").then(|| ObjectRef::new(&c.name).within(&pod.namespace().unwrap_or_default()))
}

/// Runs the Job controller until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let (pods, pods_ready, pod_events) = watched_store::<Pod>(&client);
    let controller = Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default());
    let ctx = Arc::new(JobContext {
        client: client.clone(),
        pods,
        pods_ready,
        expectations: Expectations::default(),
        removed: RemovedFinalizers::default(),
        events: EventRecorder::for_controller(client, "job-controller"),
    });
    tokio::spawn(orphans::sweep(
        ctx.client.clone(),
        ctx.pods.clone(),
        controller.store(),
        shutdown.clone(),
    ));
    let controller = controller.watches_stream(pod_events, |pod: Pod| job_for_pod(&pod));
    let timed_reconcile = |obj, ctx| timed("job", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}
