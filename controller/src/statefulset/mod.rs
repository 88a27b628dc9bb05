//! The StatefulSet controller (`pkg/controller/statefulset`): pods with stable names
//! `<set>-<ordinal>` and identities (`identity`), each with its own claims made from the
//! claim templates and owned as the retention policy says (`claims`), created, scaled and
//! updated in the order the pure planner decides (`plan`), with ControllerRevisions for
//! history (`revision_history`) and status (`status`).

pub mod claims;
pub mod identity;
pub mod plan;
pub mod status;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use kube::api::{Api, DeleteParams, Patch, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use skiff_client::controller::drive;
use skiff_client::{EventRecorder, ReadyGate, watched_store};

use self::claims::ClaimsReady;
use self::identity::{
    POD_INDEX_LABEL, POD_NAME_LABEL, identity_labels_match, new_pod, ordinal_of, pod_revision,
    start_ordinal,
};
use self::plan::{DeleteReason, Plan, Revision, SetView, Step};
use crate::Shutdown;
use crate::claim::{Workload, claim, controller_ref, controllers_for};
use crate::error::{Error, Result, not_found};
use crate::metrics::timed;
use crate::replicaset::key_of;
use crate::revision_history::{self, Owner, Synced, revision_template};
use crate::rollout::scaled_value;
use crate::template_hash::compute_hash;

/// What the StatefulSet reconciler shares between calls.
pub struct StatefulSetContext {
    client: Client,
    pods: Store<Pod>,
    claims: Store<PersistentVolumeClaim>,
    pods_ready: ReadyGate,
    claims_ready: ReadyGate,
    events: EventRecorder,
}

/// The revisions a pass works with.
struct Revisions {
    current: ControllerRevision,
    update: ControllerRevision,
}

/// Syncs the history and finds the current and update revisions (`getStatefulSetRevisions`);
/// `None` after a hash collision raised the collision count.
async fn revisions(
    ctx: &StatefulSetContext,
    set: &StatefulSet,
    owned: &[Arc<Pod>],
) -> Result<Option<Revisions>> {
    let spec = set.spec.clone().unwrap_or_default();
    let status = set.status.clone().unwrap_or_default();
    let collision = status.collision_count.unwrap_or(0);
    let hash = compute_hash(&spec.template, Some(collision).filter(|c| *c > 0));
    let owner = Owner::of(
        set,
        &spec.selector,
        &spec.template,
        spec.revision_history_limit,
    )?;
    let mut in_use: HashSet<String> = owned.iter().map(|p| pod_revision(p).to_string()).collect();
    in_use.extend(status.current_revision.clone());
    match revision_history::sync(&ctx.client, &owner, &hash, &in_use).await? {
        Synced::Collision => {
            let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &owner.namespace);
            let patch = json!({"status": {"collisionCount": collision + 1}});
            api.patch_status(&owner.name, &crate::patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(Error::api(owner.key.clone()))?;
            Ok(None)
        }
        Synced::Current { revision, history } => {
            let current = status
                .current_revision
                .as_ref()
                .and_then(|name| history.iter().find(|r| &r.name_any() == name).cloned())
                .unwrap_or_else(|| revision.clone());
            Ok(Some(Revisions {
                current,
                update: revision,
            }))
        }
    }
}

fn view(set: &StatefulSet, revs: &Revisions) -> SetView {
    let spec = set.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let us = spec.update_strategy.unwrap_or_default();
    let ru = us.rolling_update.unwrap_or_default();
    SetView {
        replicas,
        start: start_ordinal(set),
        monotonic: spec.pod_management_policy.as_deref() != Some("Parallel"),
        on_delete: us.type_.as_deref() == Some("OnDelete"),
        partition: ru.partition.unwrap_or(0),
        max_unavailable: ru
            .max_unavailable
            .as_ref()
            .map_or(1, |v| scaled_value(Some(v), replicas, false))
            .max(1),
        min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
        deleting: set.metadata.deletion_timestamp.is_some(),
        current_revision: revs.current.name_any(),
        update_revision: revs.update.name_any(),
    }
}

/// Carries out the plan's steps in order; stops at the first failure.
async fn execute(
    ctx: &StatefulSetContext,
    set: &StatefulSet,
    revs: &Revisions,
    plan: &Plan,
) -> Result<()> {
    let ns = set.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let name = set.name_any();
    let owner = controller_ref(set).ok_or(Error::Missing {
        object: key_of(set),
        field: "metadata.uid",
    })?;
    let spec_template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let current_template = revision_template(&revs.current).unwrap_or(spec_template.clone());
    for step in &plan.steps {
        match step {
            Step::Create { ordinal, revision } => {
                let (template, rev): (&PodTemplateSpec, String) = match revision {
                    Revision::Current => (&current_template, revs.current.name_any()),
                    Revision::Update => (&spec_template, revs.update.name_any()),
                };
                let pod = new_pod(set, template, owner.clone(), *ordinal, &rev);
                let pod_name = pod.name_any();
                match claims::create_missing(&ctx.client, &ctx.claims, set, *ordinal).await {
                    Ok(ClaimsReady::Yes(made)) => {
                        for c in made {
                            ctx.events.normal(
                                set.object_ref(&()),
                                "SuccessfulCreate",
                                format!(
                                    "create Claim {c} Pod {pod_name} in StatefulSet {name} success"
                                ),
                            );
                        }
                    }
                    Ok(ClaimsReady::Deleting(c)) => {
                        ctx.events.warning(
                            set.object_ref(&()),
                            "FailedCreate",
                            format!("create Pod {pod_name} in StatefulSet {name} failed error: pvc {c} is being deleted"),
                        );
                        return Ok(());
                    }
                    Err(e) => {
                        ctx.events.warning(
                            set.object_ref(&()),
                            "FailedCreate",
                            format!("create Claim for Pod {pod_name} in StatefulSet {name} failed error: {e}"),
                        );
                        return Err(e);
                    }
                }
                match api.create(&PostParams::default(), &pod).await {
                    Ok(_) => ctx.events.normal(
                        set.object_ref(&()),
                        "SuccessfulCreate",
                        format!("create Pod {pod_name} in StatefulSet {name} successful"),
                    ),
                    // Made by an earlier pass the cache had not shown yet.
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => {
                        ctx.events.warning(
                            set.object_ref(&()),
                            "FailedCreate",
                            format!(
                                "create Pod {pod_name} in StatefulSet {name} failed error: {e}"
                            ),
                        );
                        return Err(Error::api(format!("{ns}/{pod_name}"))(e));
                    }
                }
            }
            Step::Delete { pod, reason } => {
                let pod_name = pod.name_any();
                if *reason == DeleteReason::Failed {
                    ctx.events.warning(
                        set.object_ref(&()),
                        "RecreatingFailedPod",
                        format!("StatefulSet {ns}/{name} is recreating failed Pod {pod_name}"),
                    );
                }
                // The uid keeps a stale view from deleting a pod made again since.
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: pod.uid(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(&pod_name, &dp).await {
                    Ok(_) => ctx.events.normal(
                        set.object_ref(&()),
                        "SuccessfulDelete",
                        format!("delete Pod {pod_name} in StatefulSet {name} successful"),
                    ),
                    Err(e) if not_found(&e) || crate::error::conflict(&e) => {}
                    Err(e) => {
                        ctx.events.warning(
                            set.object_ref(&()),
                            "FailedDelete",
                            format!(
                                "delete Pod {pod_name} in StatefulSet {name} failed error: {e}"
                            ),
                        );
                        return Err(Error::api(format!("{ns}/{pod_name}"))(e));
                    }
                }
            }
            Step::Repair { pod, ordinal } => repair(ctx, set, &api, pod, *ordinal).await?,
        }
    }
    Ok(())
}

/// Restores a live pod's identity labels, makes its missing claims and fixes their owners
/// (`UpdateStatefulPod`; hostname, subdomain and volumes of a live pod are immutable).
async fn repair(
    ctx: &StatefulSetContext,
    set: &StatefulSet,
    api: &Api<Pod>,
    pod: &Pod,
    ordinal: i32,
) -> Result<()> {
    if !identity_labels_match(set, pod, ordinal) {
        let labels: BTreeMap<&str, String> = [
            (POD_NAME_LABEL, pod.name_any()),
            (POD_INDEX_LABEL, ordinal.to_string()),
        ]
        .into();
        let patch = json!({"metadata": {"uid": pod.uid(), "labels": labels}});
        match api
            .patch(
                &pod.name_any(),
                &crate::patch_params(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) || crate::error::conflict(&e) => {}
            Err(e) => return Err(Error::api(key_of(pod))(e)),
        }
    }
    claims::create_missing(&ctx.client, &ctx.claims, set, ordinal).await?;
    claims::fix_ownership(&ctx.client, &ctx.claims, set, pod, ordinal, false).await
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<StatefulSetContext>) -> Result<Action> {
    let key = key_of(set.as_ref());
    let spec = set.spec.clone().unwrap_or_default();
    let Workload {
        namespace: ns,
        selector,
        owner,
    } = Workload::of(set.as_ref(), &spec.selector)?;
    if ctx.pods_ready.wait().await.is_err() || ctx.claims_ready.wait().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    // Only pods named as the set's members are claimed (`isMemberOf`).
    let in_ns: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(&ns) && ordinal_of(&set, p).is_some())
        .collect();
    let deleting = set.metadata.deletion_timestamp.is_some();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owned = claim(&api, &owner, &selector, deleting, in_ns).await?;
    let Some(revs) = revisions(&ctx, &set, &owned).await? else {
        return Ok(Action::requeue(Duration::from_millis(200)));
    };
    let v = view(&set, &revs);
    let pods: Vec<(i32, Arc<Pod>)> = owned
        .iter()
        .filter_map(|p| ordinal_of(&set, p).map(|o| (o, p.clone())))
        .collect();

    // Claims of pods scaled away are handed to those pods first when whenScaled is Delete.
    let in_range = |o: i32| o >= v.start && o < v.start + v.replicas;
    if !deleting {
        for (ord, pod) in pods.iter().filter(|(o, _)| !in_range(*o)) {
            if claims::ownership_wrong(&ctx.claims, &set, pod, *ord, true) {
                claims::fix_ownership(&ctx.client, &ctx.claims, &set, pod, *ord, true).await?;
            }
        }
    }
    let now = jiff::Timestamp::now();
    let plan = plan::plan(&v, &pods, now, |pod, ord| {
        !identity_labels_match(&set, pod, ord)
            || claims::ownership_wrong(&ctx.claims, &set, pod, ord, false)
            || identity::claims_for(&set, ord)
                .iter()
                .any(|(_, c)| ctx.claims.get(&ObjectRef::new(c).within(&ns)).is_none())
    });
    if !plan.steps.is_empty() {
        tracing::debug!(statefulset = %key, steps = ?plan.steps.len(), "statefulset plan");
    }
    let outcome = execute(&ctx, &set, &revs, &plan).await;
    let collision = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let st = status::status_of(
        &set,
        plan.counts,
        &v.current_revision,
        &v.update_revision,
        collision,
    );
    status::write(&ctx.client, &set, &st).await?;
    outcome?;
    let min_ready = v.min_ready_seconds;
    if min_ready > 0 && plan.counts.ready != plan.counts.available {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64 + 1)));
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy(set: Arc<StatefulSet>, err: &Error, _ctx: Arc<StatefulSetContext>) -> Action {
    tracing::warn!(statefulset = %key_of(set.as_ref()), error = %err, "statefulset reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// The set a claim belongs to: the one owning it, or the one its name `<template>-<set>-<n>`
/// and labels point to.
fn set_for_claim(
    claim: &PersistentVolumeClaim,
    sets: &Store<StatefulSet>,
) -> Vec<ObjectRef<StatefulSet>> {
    let ns = claim.namespace().unwrap_or_default();
    let name = claim.name_any();
    sets.state()
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(&ns))
        .filter(|s| {
            claim
                .owner_references()
                .iter()
                .any(|r| Some(&r.uid) == s.uid().as_ref())
                || s.spec
                    .as_ref()
                    .and_then(|sp| sp.volume_claim_templates.as_ref())
                    .is_some_and(|ts| {
                        ts.iter().any(|t| {
                            identity::parent_and_ordinal(&name).is_some_and(|(prefix, _)| {
                                prefix == format!("{}-{}", t.name_any(), s.name_any())
                            })
                        })
                    })
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// Runs the StatefulSet controller until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let (pods, pods_ready, pod_events) = watched_store::<Pod>(&client);
    let (claims, claims_ready, claim_events) = watched_store::<PersistentVolumeClaim>(&client);
    let controller = Controller::new(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let sets_for_pods = controller.store();
    let sets_for_claims = controller.store();
    let ctx = Arc::new(StatefulSetContext {
        client: client.clone(),
        pods,
        claims,
        pods_ready,
        claims_ready,
        events: EventRecorder::for_controller(client, "statefulset-controller"),
    });
    let controller = controller
        .watches_stream(pod_events, move |pod: Pod| {
            controllers_for(&pod, &sets_for_pods, |s: &StatefulSet| {
                s.spec.as_ref().map(|s| s.selector.clone())
            })
        })
        .watches_stream(claim_events, move |claim: PersistentVolumeClaim| {
            set_for_claim(&claim, &sets_for_claims)
        });
    let timed_reconcile = |obj, ctx| timed("statefulset", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}
