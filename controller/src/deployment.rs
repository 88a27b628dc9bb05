//! The Deployment controller: one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>`, rolled forward with RollingUpdate (maxSurge,
//! maxUnavailable against availability) or Recreate, with revisions, rollback, pause,
//! history cleanup and the status `kubectl rollout status` reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, DeleteParams, Patch, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use skiff_api::labels::Selector;

use crate::Shutdown;
use crate::claim::{claim, controller_of, controller_ref};
use crate::deployment_status::{self, RolloutEvent, StatusInput};
use crate::error::{Error, Result, conflict, not_found};
use crate::metrics::timed;
use crate::replicaset::key_of;
use crate::rollout::{RsCounts, fenceposts, new_rs_replicas, scale_down_old};
use crate::template_hash::{POD_TEMPLATE_HASH, compute_hash, equal_ignore_hash};
use skiff_client::EventRecorder;
use skiff_client::controller::drive;
use skiff_client::{ReadyGate, watched_store};

/// Revision annotation on Deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The Deployment's `spec.replicas` when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// What the Deployment reconciler shares between calls.
pub struct DeploymentContext {
    client: Client,
    replicasets: Store<ReplicaSet>,
    replicasets_ready: ReadyGate,
    events: EventRecorder,
}

/// A ReplicaSet's revision annotation (0 when absent).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn counts(rs: &ReplicaSet) -> RsCounts {
    RsCounts {
        replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        available: rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
    }
}

/// Scales one ReplicaSet, with a resourceVersion precondition so a stale cache cannot undo
/// a newer scale, and records ScalingReplicaSet on the Deployment.
async fn scale(
    ctx: &DeploymentContext,
    d: &Deployment,
    rs: &ReplicaSet,
    to: i32,
    annotations: BTreeMap<String, String>,
) -> Result<ReplicaSet> {
    let from = counts(rs).replicas;
    let ns = rs.namespace().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = json!({"metadata": {"resourceVersion": rs.resource_version(), "annotations": annotations}, "spec": {"replicas": to}});
    let out = api
        .patch(
            &rs.name_any(),
            &crate::patch_params(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(Error::api(key_of(rs)))?;
    if from != to {
        let dir = if to > from { "up" } else { "down" };
        ctx.events.normal(
            d.object_ref(&()),
            "ScalingReplicaSet",
            format!(
                "Scaled {dir} replica set {} from {from} to {to}",
                rs.name_any()
            ),
        );
    }
    Ok(out)
}

/// Scales `rs` to `to` if its size or annotations differ.
async fn scale_if_needed(
    ctx: &DeploymentContext,
    d: &Deployment,
    rs: &mut ReplicaSet,
    to: i32,
    annotations: &BTreeMap<String, String>,
) -> Result<()> {
    let current = rs.annotations();
    let stale = annotations.iter().any(|(k, v)| current.get(k) != Some(v));
    if counts(rs).replicas != to || stale {
        *rs = scale(ctx, d, rs, to, annotations.clone()).await?;
    }
    Ok(())
}

/// The ReplicaSet for the Deployment's current template, built fresh.
fn new_replicaset(
    d: &Deployment,
    hash: &str,
    replicas: i32,
    annotations: BTreeMap<String, String>,
) -> Result<ReplicaSet> {
    let spec = d.spec.clone().unwrap_or_default();
    let owner = controller_ref(d).ok_or(Error::Missing {
        object: key_of(d),
        field: "metadata.uid",
    })?;
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(POD_TEMPLATE_HASH.into(), hash.into());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(POD_TEMPLATE_HASH.into(), hash.into());
    let mut rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {
            "name": format!("{}-{hash}", d.name_any()),
            "namespace": d.namespace(),
            "labels": meta.labels,
            "annotations": annotations,
            "ownerReferences": [owner],
        },
        "spec": {"replicas": replicas, "minReadySeconds": spec.min_ready_seconds.unwrap_or(0), "selector": selector},
    }))
    .expect("replicaset from known fields");
    rs.spec.as_mut().expect("spec set above").template = Some(template);
    Ok(rs)
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<DeploymentContext>) -> Result<Action> {
    let key = key_of(d.as_ref());
    let ns = d.namespace().ok_or(Error::Missing {
        object: key.clone(),
        field: "metadata.namespace",
    })?;
    let spec = d.spec.clone().unwrap_or_default();
    let selector =
        Selector::from_label_selector(&spec.selector).map_err(|source| Error::Selector {
            object: key.clone(),
            source,
        })?;
    let owner = controller_ref(d.as_ref()).ok_or(Error::Missing {
        object: key.clone(),
        field: "metadata.uid",
    })?;
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    if ctx.replicasets_ready.wait().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let candidates: Vec<Arc<ReplicaSet>> = ctx
        .replicasets
        .state()
        .into_iter()
        .filter(|rs| {
            rs.namespace().as_deref() == Some(&ns) && rs.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let deleting = d.metadata.deletion_timestamp.is_some();
    let owned = claim(&rs_api, &owner, &selector, deleting, candidates).await?;
    if deleting {
        return Ok(Action::await_change());
    }

    let desired = spec.replicas.unwrap_or(1);
    let paused = spec.paused.unwrap_or(false);
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        != "Recreate";
    let ru = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let (surge, max_unavailable) = if rolling {
        fenceposts(ru.max_surge.as_ref(), ru.max_unavailable.as_ref(), desired)
    } else {
        (0, 0)
    };

    let mut all: Vec<ReplicaSet> = owned.iter().map(|r| (**r).clone()).collect();
    all.sort_by(|a, b| {
        let c = |r: &ReplicaSet| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
        c(a).cmp(&c(b))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    let new_idx = all.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| equal_ignore_hash(t, &spec.template))
    });
    let mut new_rs = new_idx.map(|i| all.remove(i));
    let mut olds = all;
    let max_old_revision = olds.iter().map(revision).max().unwrap_or(0);
    let old_status = d.status.clone().unwrap_or_default();
    let mut event = RolloutEvent::None;

    let annotations = |rev: i64| -> BTreeMap<String, String> {
        [
            (REVISION.to_string(), rev.to_string()),
            (DESIRED_REPLICAS.to_string(), desired.to_string()),
            (MAX_REPLICAS.to_string(), (desired + surge).to_string()),
        ]
        .into()
    };

    if new_rs.is_none() && !paused {
        let old_sum: i32 = olds.iter().map(|r| counts(r).replicas).sum();
        let start = if rolling {
            new_rs_replicas(desired, surge, RsCounts::default(), old_sum)
        } else if old_sum == 0 {
            desired
        } else {
            0
        };
        let hash = compute_hash(&spec.template, old_status.collision_count);
        let rs = new_replicaset(&d, &hash, start, annotations(max_old_revision + 1))?;
        match rs_api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                event = RolloutEvent::Created;
                if start > 0 {
                    ctx.events.normal(
                        d.object_ref(&()),
                        "ScalingReplicaSet",
                        format!(
                            "Scaled up replica set {} from 0 to {start}",
                            created.name_any()
                        ),
                    );
                }
                new_rs = Some(created);
            }
            Err(e) if conflict(&e) => {
                let existing = rs_api.get(&rs.name_any()).await.map_err(Error::api(&key))?;
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &spec.template));
                let ours = controller_of(&existing)
                    .is_some_and(|c| Some(&c.uid) == d.metadata.uid.as_ref());
                if !(same && ours) {
                    // A hash collision: bump the count so the next name differs.
                    let count = old_status.collision_count.unwrap_or(0) + 1;
                    let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
                    dapi.patch_status(
                        &d.name_any(),
                        &crate::patch_params(),
                        &Patch::Merge(&json!({"status": {"collisionCount": count}})),
                    )
                    .await
                    .map_err(Error::api(&key))?;
                }
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(e) => return Err(Error::api(key)(e)),
        }
    }

    if let Some(rs) = new_rs.as_mut().filter(|_| !paused) {
        // A rolled-back-to ReplicaSet becomes the newest revision again.
        let rev = if revision(rs) <= max_old_revision {
            max_old_revision + 1
        } else {
            revision(rs)
        };
        let ann = annotations(rev);
        let active_olds = olds.iter().any(|o| counts(o).replicas > 0);
        if !rolling {
            for o in olds.iter_mut().filter(|o| counts(o).replicas > 0) {
                let keep = BTreeMap::new();
                *o = scale(&ctx, &d, o, 0, keep).await?;
            }
            // Terminating pods count: they may still be serving the old template.
            let old_pods: i32 = olds
                .iter()
                .map(|o| {
                    o.status
                        .as_ref()
                        .map_or(0, |s| s.replicas + s.terminating_replicas.unwrap_or(0))
                })
                .sum();
            // Recreate starts new pods only once every old pod is gone.
            let to = if old_pods == 0 && !olds.iter().any(|o| counts(o).replicas > 0) {
                desired
            } else {
                counts(rs).replicas
            };
            scale_if_needed(&ctx, &d, rs, to, &ann).await?;
        } else if !active_olds {
            scale_if_needed(&ctx, &d, rs, desired, &ann).await?;
        } else {
            let total: i32 =
                counts(rs).replicas + olds.iter().map(|o| counts(o).replicas).sum::<i32>();
            let to = new_rs_replicas(desired, surge, counts(rs), total);
            scale_if_needed(&ctx, &d, rs, to, &ann).await?;
            let old_counts: Vec<RsCounts> = olds.iter().map(counts).collect();
            let targets = scale_down_old(desired, max_unavailable, counts(rs), &old_counts);
            for (o, to) in olds.iter_mut().zip(targets) {
                if counts(o).replicas != to {
                    *o = scale(&ctx, &d, o, to, BTreeMap::new()).await?;
                }
            }
        }
    } else if let Some(rs) = new_rs.as_mut() {
        // Paused: follow scaling of the Deployment, but roll nothing.
        if !olds.iter().any(|o| counts(o).replicas > 0) && counts(rs).replicas != desired {
            let rev = revision(rs);
            scale_if_needed(&ctx, &d, rs, desired, &annotations(rev)).await?;
        }
    }

    let mut all: Vec<ReplicaSet> = olds.clone();
    all.extend(new_rs.clone());
    let now = jiff::Timestamp::now();
    let status = deployment_status::compute(&StatusInput {
        all: &all,
        new_rs: new_rs.as_ref(),
        desired,
        max_unavailable,
        generation: d.metadata.generation,
        paused,
        progress_deadline: spec.progress_deadline_seconds,
        old: &old_status,
        event,
        now,
    });
    let complete = deployment_status::is_complete(&status, desired);

    if complete && !paused {
        cleanup_history(&rs_api, &olds, spec.revision_history_limit.unwrap_or(10)).await?;
    }

    let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let rev = new_rs.as_ref().map(revision).filter(|r| *r > 0);
    if let Some(rev) = rev
        && d.annotations().get(REVISION) != Some(&rev.to_string())
    {
        let patch = json!({"metadata": {"annotations": {REVISION: rev.to_string()}}});
        dapi.patch(&d.name_any(), &crate::patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(Error::api(&key))?;
    }
    if serde_json::to_value(&status).ok() != serde_json::to_value(&old_status).ok() {
        match dapi
            .patch_status(
                &d.name_any(),
                &crate::patch_params(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(Error::api(key)(e)),
        }
    }
    if !complete
        && !paused
        && let Some(left) =
            deployment_status::until_deadline(&status, spec.progress_deadline_seconds, now)
    {
        let secs = left.as_secs().max(0) as u64 + 1;
        return Ok(Action::requeue(Duration::from_secs(secs.min(300))));
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Deletes the oldest scaled-down ReplicaSets beyond `limit`.
async fn cleanup_history(api: &Api<ReplicaSet>, olds: &[ReplicaSet], limit: i32) -> Result<()> {
    let mut idle: Vec<&ReplicaSet> = olds
        .iter()
        .filter(|o| {
            counts(o).replicas == 0
                && o.status.as_ref().map_or(0, |s| s.replicas) == 0
                && o.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let excess = idle.len().saturating_sub(limit.max(0) as usize);
    idle.sort_by_key(|o| revision(o));
    for o in idle.into_iter().take(excess) {
        match api.delete(&o.name_any(), &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(replicaset = %key_of(o), "deleted old replicaset beyond revisionHistoryLimit")
            }
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(Error::api(key_of(o))(e)),
        }
    }
    Ok(())
}

fn error_policy(d: Arc<Deployment>, err: &Error, _ctx: Arc<DeploymentContext>) -> Action {
    tracing::warn!(deployment = %key_of(d.as_ref()), error = %err, "deployment reconcile failed");
    Action::requeue(Duration::from_millis(500))
}

/// The Deployments a ReplicaSet event concerns: its controller, or matching Deployments for
/// an orphan.
fn deployments_for_rs(
    rs: &ReplicaSet,
    deployments: &Store<Deployment>,
) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(c) = controller_of(rs) {
        return if c.kind == "Deployment" {
            vec![ObjectRef::new(&c.name).within(&ns)]
        } else {
            vec![]
        };
    }
    deployments
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(&ns))
        .filter(|d| {
            d.spec
                .as_ref()
                .and_then(|s| Selector::from_label_selector(&s.selector).ok())
                .is_some_and(|sel| !sel.is_empty() && sel.matches(rs.labels()))
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

/// Runs the Deployment controller until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let (replicasets, replicasets_ready, rs_events) = watched_store::<ReplicaSet>(&client);
    let controller = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    );
    let d_store = controller.store();
    let ctx = Arc::new(DeploymentContext {
        client: client.clone(),
        replicasets_ready,
        replicasets,
        events: EventRecorder::for_controller(client, "deployment-controller"),
    });
    let controller = controller.watches_stream(rs_events, move |rs: ReplicaSet| {
        deployments_for_rs(&rs, &d_store)
    });
    let timed_reconcile = |obj, ctx| timed("deployment", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}
