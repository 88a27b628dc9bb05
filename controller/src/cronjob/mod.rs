//! The CronJob controller: keeps `status.active`, `lastScheduleTime` and
//! `lastSuccessfulTime`, starts a Job named `<cronjob>-<minutes since epoch>` at each
//! scheduled time (in `spec.timeZone`), honours concurrencyPolicy, startingDeadlineSeconds
//! and suspend, and removes finished Jobs beyond the history limits. The decisions are in
//! `plan`, with the clock passed in.

pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use skiff_client::controller::drive;
use skiff_client::{EventRecorder, ReadyGate, watched_store};

use crate::Shutdown;
use crate::claim::{controller_of, controller_ref};
use crate::error::{Error, Result, not_found};
use crate::metrics::timed;
use crate::replicaset::key_of;
use plan::{Run, finished, history_to_delete, job_name, zone};

/// The annotation on a CronJob's Job carrying its scheduled time (RFC 3339, in the
/// CronJob's time zone).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// What the CronJob reconciler shares between calls.
pub struct CronJobContext {
    client: Client,
    jobs: Store<Job>,
    jobs_ready: ReadyGate,
    events: EventRecorder,
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<CronJobContext>) -> Result<Action> {
    let key = key_of(cj.as_ref());
    if ctx.jobs_ready.wait().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let ns = cj.namespace().unwrap_or_default();
    let uid = cj.uid().unwrap_or_default();
    let now = Timestamp::now();
    let me = cj.object_ref(&());
    let all = ctx.jobs.state();
    let mine: Vec<&Job> = all
        .iter()
        .map(|j| j.as_ref())
        .filter(|j| j.namespace().as_deref() == Some(&ns))
        .filter(|j| controller_of(*j).is_some_and(|c| c.uid == uid))
        .collect();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let old = cj.status.clone().unwrap_or_default();
    let mut status = old.clone();

    // Active Jobs are the unfinished ones we own; finished ones leave the list.
    let mut active: Vec<&Job> = mine
        .iter()
        .copied()
        .filter(|j| finished(j).is_none() && j.metadata.deletion_timestamp.is_none())
        .collect();
    for j in &mine {
        let was_active = old
            .active
            .iter()
            .flatten()
            .any(|r| r.uid.as_deref() == j.uid().as_deref());
        if let Some(how) = finished(j)
            && was_active
        {
            ctx.events.normal(
                me.clone(),
                "SawCompletedJob",
                format!("Saw completed job: {}, condition: {how}", j.name_any()),
            );
        }
        if finished(j) == Some("Complete")
            && let Some(t) = j.status.as_ref().and_then(|s| s.completion_time.clone())
            && status
                .last_successful_time
                .as_ref()
                .is_none_or(|l| l.0 < t.0)
        {
            status.last_successful_time = Some(t);
        }
    }

    let mut requeue = Duration::from_secs(300);
    if cj.metadata.deletion_timestamp.is_none() {
        match plan::plan(&cj, active.len(), now) {
            Err(e) => ctx.events.warning(
                me.clone(),
                "UnparseableSchedule",
                format!("unparseable schedule: {e}"),
            ),
            Ok(p) => {
                requeue = p.requeue;
                if p.too_many_missed {
                    ctx.events.warning(
                        me.clone(),
                        "TooManyMissedTimes",
                        "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
                    );
                }
                match p.run {
                    Run::Wait => {}
                    Run::MissedDeadline(t) => {
                        ctx.events.warning(
                            me.clone(),
                            "MissSchedule",
                            format!(
                                "Missed scheduled time to start a job: {}",
                                t.to_zoned(zone(&cj))
                            ),
                        );
                        status.last_schedule_time = Some(Time(t));
                    }
                    Run::Forbidden(_) => {
                        tracing::debug!(cronjob = %key, "not starting job: prior execution is running and concurrency policy is Forbid");
                    }
                    Run::Start { scheduled, replace } => {
                        if replace {
                            for j in &active {
                                delete_job(&ctx, &jobs_api, &me, j).await?;
                            }
                            active.clear();
                        }
                        match start_job(&ctx, &jobs_api, &cj, scheduled).await? {
                            Some(job) => {
                                ctx.events.normal(
                                    me.clone(),
                                    "SuccessfulCreate",
                                    format!("Created job {}", job.name_any()),
                                );
                                status
                                    .active
                                    .get_or_insert_with(Vec::new)
                                    .push(job_ref(&job));
                            }
                            None => {}
                        }
                        status.last_schedule_time = Some(Time(scheduled));
                    }
                }
            }
        }
    }
    let mut active_refs: Vec<ObjectReference> = active.iter().map(|j| job_ref(j)).collect();
    for r in status.active.iter().flatten() {
        let known = active_refs.iter().any(|a| a.uid == r.uid);
        let in_cache = mine.iter().any(|j| j.uid() == r.uid);
        // A Job created this pass is not in the cache yet; keep it.
        if !known && !in_cache {
            active_refs.push(r.clone());
        }
    }
    status.active = (!active_refs.is_empty()).then_some(active_refs);

    for j in history_to_delete(&cj, &mine) {
        delete_job(&ctx, &jobs_api, &me, j).await?;
    }

    if status != old {
        let cj_api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"status": {
            "active": status.active,
            "lastScheduleTime": status.last_schedule_time,
            "lastSuccessfulTime": status.last_successful_time,
        }});
        match cj_api
            .patch_status(
                &cj.name_any(),
                &crate::patch_params(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(Error::api(key)(e)),
        }
    }
    Ok(Action::requeue(requeue))
}

/// Creates the Job for `scheduled`; `None` when it already exists (an earlier pass made it).
async fn start_job(
    ctx: &CronJobContext,
    api: &Api<Job>,
    cj: &CronJob,
    scheduled: Timestamp,
) -> Result<Option<Job>> {
    let key = key_of(cj);
    let spec = cj.spec.clone().unwrap_or_default();
    let template = spec.job_template;
    let meta = template.metadata.clone().unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP.into(),
        scheduled
            .to_zoned(zone(cj))
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
    );
    let owner = controller_ref(cj).ok_or(Error::Missing {
        object: key.clone(),
        field: "metadata.uid",
    })?;
    let job = Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cj.name_any(), scheduled)),
            namespace: cj.namespace(),
            labels: Some(meta.labels.unwrap_or_else(BTreeMap::new)),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    };
    match api.create(&PostParams::default(), &job).await {
        Ok(j) => Ok(Some(j)),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
        Err(e) => {
            ctx.events.warning(
                cj.object_ref(&()),
                "FailedCreate",
                format!("Error creating job: {e}"),
            );
            Err(Error::api(key)(e))
        }
    }
}

async fn delete_job(
    ctx: &CronJobContext,
    api: &Api<Job>,
    me: &ObjectReference,
    job: &Job,
) -> Result<()> {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match api.delete(&job.name_any(), &dp).await {
        Ok(_) => {
            ctx.events.normal(
                me.clone(),
                "SuccessfulDelete",
                format!("Deleted job {}", job.name_any()),
            );
            Ok(())
        }
        Err(e) if not_found(&e) => Ok(()),
        Err(e) => Err(Error::api(key_of(job))(e)),
    }
}

fn error_policy(cj: Arc<CronJob>, err: &Error, _ctx: Arc<CronJobContext>) -> Action {
    tracing::warn!(cronjob = %key_of(cj.as_ref()), error = %err, "cronjob reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// The CronJob a Job event concerns: its controller, when that is a CronJob.
fn cronjob_for_job(job: &Job) -> Option<ObjectRef<CronJob>> {
    let c = controller_of(job)?;
    (c.kind == "CronJob")
        .then(|| ObjectRef::new(&c.name).within(&job.namespace().unwrap_or_default()))
}

/// Runs the CronJob controller until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let (jobs, jobs_ready, job_events) = watched_store::<Job>(&client);
    let controller = Controller::new(
        Api::<CronJob>::all(client.clone()),
        watcher::Config::default(),
    );
    let ctx = Arc::new(CronJobContext {
        client: client.clone(),
        jobs,
        jobs_ready,
        events: EventRecorder::for_controller(client, "cronjob-controller"),
    });
    let controller = controller.watches_stream(job_events, |job: Job| cronjob_for_job(&job));
    let timed_reconcile = |obj, ctx| timed("cronjob", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}
