//! The TTL-after-finished controller: deletes a Job `ttlSecondsAfterFinished` seconds after it
//! completed or failed, with Background propagation so the garbage collector removes its pods.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use skiff_client::controller::drive;

use crate::Shutdown;
use crate::error::{Error, Result, not_found};
use crate::metrics::timed;
use crate::replicaset::key_of;

/// What the TTL reconciler shares between calls.
pub struct TtlContext {
    client: Client,
}

/// When the Job finished: its completion time, else the Complete/Failed condition's
/// transition time. `None` while it runs.
pub fn finish_time(job: &Job) -> Option<Timestamp> {
    let st = job.status.as_ref()?;
    let terminal = st
        .conditions
        .iter()
        .flatten()
        .find(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")?;
    st.completion_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| terminal.last_transition_time.as_ref().map(|t| t.0))
}

/// How long until the finished Job may be deleted (zero: now), or `None` when it has no TTL
/// or has not finished.
pub fn time_left(job: &Job, now: Timestamp) -> Option<Duration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let expires = finish_time(job)? + Duration::from_secs(ttl.max(0) as u64);
    Some(if expires <= now {
        Duration::ZERO
    } else {
        expires.duration_since(now).unsigned_abs()
    })
}

async fn reconcile(job: Arc<Job>, ctx: Arc<TtlContext>) -> Result<Action> {
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(left) = time_left(&job, Timestamp::now()) else {
        return Ok(Action::await_change());
    };
    if !left.is_zero() {
        return Ok(Action::requeue(left));
    }
    let key = key_of(job.as_ref());
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: job.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    tracing::info!(job = %key, "deleting finished job after its ttl");
    match api.delete(&job.name_any(), &dp).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(Error::api(key)(e)),
    }
}

fn error_policy(job: Arc<Job>, err: &Error, _ctx: Arc<TtlContext>) -> Action {
    tracing::warn!(job = %key_of(job.as_ref()), error = %err, "ttl-after-finished failed");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the TTL-after-finished controller until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let controller = Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default());
    let ctx = Arc::new(TtlContext { client });
    let timed_reconcile = |obj, ctx| timed("ttl-after-finished", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expires_ttl_after_the_finish() {
        let job: Job = serde_json::from_value(
            json!({"spec": {"template": {}, "ttlSecondsAfterFinished": 5},
            "status": {"completionTime": "2024-01-01T00:00:10Z",
                "conditions": [{"type": "Complete", "status": "True"}]}}),
        )
        .unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            time_left(&job, at("2024-01-01T00:00:12Z")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            time_left(&job, at("2024-01-01T00:00:20Z")),
            Some(Duration::ZERO)
        );
        let running: Job =
            serde_json::from_value(json!({"spec": {"template": {}, "ttlSecondsAfterFinished": 5}}))
                .unwrap();
        assert_eq!(time_left(&running, at("2024-01-01T00:00:20Z")), None);
        let failed: Job = serde_json::from_value(json!({"spec": {"template": {}, "ttlSecondsAfterFinished": 0},
            "status": {"conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": "2024-01-01T00:00:10Z"}]}}))
        .unwrap();
        assert_eq!(
            time_left(&failed, at("2024-01-01T00:00:10Z")),
            Some(Duration::ZERO)
        );
    }
}
