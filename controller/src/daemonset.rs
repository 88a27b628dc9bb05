//! The DaemonSet controller: one pod per eligible node, pinned there through node affinity
//! so the scheduler binds it, replaced by RollingUpdate or OnDelete, with status.
//!
//! Each template is kept as a ControllerRevision (see `revision_history`), so `kubectl rollout
//! history|undo ds` work; the pods' `controller-revision-hash` label is the template hash.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::Shutdown;
use crate::claim::{Workload, claim, controller_ref, controllers_for};
use crate::daemon_eligibility::{add_default_tolerations, node_fit, pin_to_node, target_node};
use crate::daemon_plan::{
    CONTROLLER_REVISION_HASH, DaemonCounts, NodeDaemons, Plan, UpdateStrategy, counts, manage,
    rolling_update,
};
use crate::error::{Error, Result, not_found};
use crate::expectations::Expectations;
use crate::metrics::timed;
use crate::pod_control::{pod_from_template, slow_start_batches};
use crate::replicaset::key_of;
use crate::revision_history::{self, Owner, Synced};
use crate::template_hash::compute_hash;
use skiff_client::EventRecorder;
use skiff_client::controller::drive;
use skiff_client::{ReadyGate, watched_store};

/// At most this many pods are created or deleted in one reconcile.
const BURST: usize = 500;

/// What the DaemonSet reconciler shares between calls.
pub struct DaemonSetContext {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    pods_ready: ReadyGate,
    nodes_ready: ReadyGate,
    expectations: Expectations,
    /// The template hash whose history was last synced, per DaemonSet uid.
    synced: Mutex<HashMap<String, String>>,
    events: EventRecorder,
}

fn strategy(ds: &DaemonSet) -> UpdateStrategy {
    let us = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.clone())
        .unwrap_or_default();
    if us.type_.as_deref() == Some("OnDelete") {
        return UpdateStrategy::OnDelete;
    }
    let ru = us.rolling_update.unwrap_or_default();
    UpdateStrategy::RollingUpdate {
        max_unavailable: ru.max_unavailable,
        max_surge: ru.max_surge,
    }
}

fn created_at(p: &Pod) -> Option<jiff::Timestamp> {
    p.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Brings the DaemonSet's ControllerRevisions up to date when its template hash changed
/// since the last successful sync (remembered per DaemonSet uid). False when the hash
/// collided with another template's revision and the collision count was raised.
async fn sync_history(
    ctx: &DaemonSetContext,
    ds: &DaemonSet,
    hash: &str,
    owned: &[Arc<Pod>],
) -> Result<bool> {
    let uid = ds.uid().unwrap_or_default();
    if ctx
        .synced
        .lock()
        .expect("history lock")
        .get(&uid)
        .map(String::as_str)
        == Some(hash)
    {
        return Ok(true);
    }
    let name = ds.name_any();
    let in_use: HashSet<String> = owned
        .iter()
        .filter_map(|p| p.labels().get(CONTROLLER_REVISION_HASH))
        .map(|h| revision_history::revision_name(&name, h))
        .collect();
    let spec = ds.spec.clone().unwrap_or_default();
    let owner = Owner::of(
        ds,
        &spec.selector,
        &spec.template,
        spec.revision_history_limit,
    )?;
    if let Synced::Collision = revision_history::sync(&ctx.client, &owner, hash, &in_use).await? {
        // Another template holds this hash's name: hash again with a higher collision count.
        bump_collision_count(ctx, ds).await?;
        return Ok(false);
    }
    ctx.synced
        .lock()
        .expect("history lock")
        .insert(uid, hash.to_string());
    Ok(true)
}

/// Creates and deletes what `plan` says; returns the first failure's reason and message.
async fn execute(
    ctx: &DaemonSetContext,
    ds: &DaemonSet,
    plan: Plan,
    hash: &str,
) -> Option<(String, String)> {
    let key = key_of(ds);
    let ns = ds.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = controller_ref(ds)?;
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut failure = None;

    let victims: Vec<_> = plan.delete.into_iter().take(BURST).collect();
    ctx.expectations
        .expect_deletions(&key, victims.iter().filter_map(|p| p.uid()));
    let dp = DeleteParams::default();
    let names: Vec<String> = victims.iter().map(|p| p.name_any()).collect();
    let results = join_all(names.iter().map(|n| api.delete(n, &dp))).await;
    for (p, r) in victims.iter().zip(results) {
        match r {
            Ok(_) => ctx.events.normal(
                ds.object_ref(&()),
                "SuccessfulDelete",
                format!("Deleted pod: {}", p.name_any()),
            ),
            Err(e) if not_found(&e) => {}
            Err(e) => failure = Some(("FailedDelete".to_string(), e.to_string())),
        }
    }

    let mut targets = plan.create_on.into_iter().take(BURST);
    'batches: for batch in slow_start_batches(targets.len()) {
        let pods: Vec<(String, Pod)> = targets
            .by_ref()
            .take(batch)
            .map(|node| {
                let mut pod = pod_from_template(
                    &template,
                    &ns,
                    &format!("{}-", ds.name_any()),
                    owner.clone(),
                );
                pod.metadata
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(CONTROLLER_REVISION_HASH.into(), hash.into());
                let spec = pod.spec.get_or_insert_with(Default::default);
                add_default_tolerations(spec);
                pin_to_node(spec, &node);
                (node, pod)
            })
            .collect();
        let pp = PostParams::default();
        let results = join_all(pods.iter().map(|(_, p)| api.create(&pp, p))).await;
        let mut created = Vec::new();
        for ((node, _), r) in pods.iter().zip(results) {
            match r {
                Ok(p) => {
                    tracing::debug!(daemonset = %key, node = %node, pod = %p.name_any(), "created daemon pod");
                    created.push(p.name_any());
                }
                Err(e) => failure = Some(("FailedCreate".to_string(), e.to_string())),
            }
        }
        for p in &created {
            ctx.events.normal(
                ds.object_ref(&()),
                "SuccessfulCreate",
                format!("Created pod: {p}"),
            );
        }
        ctx.expectations.expect_creations(&key, created);
        if failure.is_some() {
            break 'batches;
        }
    }
    failure
}

/// Raises `status.collisionCount`, so the next reconcile hashes the template differently.
async fn bump_collision_count(ctx: &DaemonSetContext, ds: &DaemonSet) -> Result<()> {
    let api: Api<DaemonSet> =
        Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    let count = ds
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let patch = json!({"status": {"collisionCount": count + 1}});
    api.patch_status(
        &ds.name_any(),
        &crate::patch_params(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(Error::api(key_of(ds)))?;
    Ok(())
}

async fn patch_status(ctx: &DaemonSetContext, ds: &DaemonSet, c: DaemonCounts) -> Result<()> {
    let old = ds.status.clone().unwrap_or_default();
    let unchanged = old.desired_number_scheduled == c.desired
        && old.current_number_scheduled == c.current
        && old.number_misscheduled == c.misscheduled
        && old.number_ready == c.ready
        && old.number_available.unwrap_or(0) == c.available
        && old.number_unavailable.unwrap_or(0) == c.unavailable()
        && old.updated_number_scheduled.unwrap_or(0) == c.updated
        && old.observed_generation == ds.metadata.generation;
    if unchanged {
        return Ok(());
    }
    let api: Api<DaemonSet> =
        Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    let patch = json!({"status": {
        "desiredNumberScheduled": c.desired,
        "currentNumberScheduled": c.current,
        "numberMisscheduled": c.misscheduled,
        "numberReady": c.ready,
        "numberAvailable": c.available,
        "numberUnavailable": c.unavailable(),
        "updatedNumberScheduled": c.updated,
        "observedGeneration": ds.metadata.generation,
    }});
    match api
        .patch_status(
            &ds.name_any(),
            &crate::patch_params(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if not_found(&e) => Ok(()),
        Err(e) => Err(Error::api(key_of(ds))(e)),
    }
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<DaemonSetContext>) -> Result<Action> {
    let key = key_of(ds.as_ref());
    let spec = ds.spec.clone().unwrap_or_default();
    let Workload {
        namespace: ns,
        selector,
        owner,
    } = Workload::of(ds.as_ref(), &spec.selector)?;
    if ctx.pods_ready.wait().await.is_err() || ctx.nodes_ready.wait().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let collision = ds.status.as_ref().and_then(|s| s.collision_count);
    let hash = compute_hash(&spec.template, collision);

    let in_ns: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(&ns))
        .collect();
    let seen: HashSet<String> = in_ns.iter().map(|p| p.name_any()).collect();
    let alive: HashSet<String> = in_ns
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.uid())
        .collect();
    let deleting = ds.metadata.deletion_timestamp.is_some();
    let mut owned = claim(&ctx_pods_api(&ctx, &ns), &owner, &selector, deleting, in_ns).await?;
    let satisfied = ctx
        .expectations
        .satisfied(&key, |n| seen.contains(n), |u| alive.contains(u));
    if !sync_history(&ctx, &ds, &hash, &owned).await? {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }

    // Group the pods by the node they are for, oldest first.
    owned.sort_by_key(|p| created_at(p));
    let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
    for p in owned {
        if let Some(node) = p.spec.as_ref().and_then(target_node) {
            by_node.entry(node).or_default().push(p);
        }
    }
    let template_spec = spec.template.spec.clone().unwrap_or_default();
    let mut nodes: Vec<NodeDaemons> = ctx
        .nodes
        .state()
        .iter()
        .map(|n| NodeDaemons {
            name: n.name_any(),
            fit: node_fit(&template_spec, n),
            pods: by_node.remove(&n.name_any()).unwrap_or_default(),
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    // Pods for nodes that no longer exist go too (Kubernetes leaves them to pod GC).
    let gone: Vec<Arc<Pod>> = by_node
        .into_values()
        .flatten()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();

    let mut failure = None;
    if satisfied && !deleting {
        let strategy = strategy(&ds);
        let surge = matches!(crate::daemon_plan::update_budget(&strategy, 1), (s, _) if s > 0);
        let mut plan = manage(&nodes, &hash, surge);
        plan.delete.extend(gone);
        if plan.is_empty() && strategy != UpdateStrategy::OnDelete {
            let desired = nodes.iter().filter(|n| n.fit.should_run).count() as i32;
            plan = rolling_update(
                &nodes,
                &hash,
                &strategy,
                desired,
                spec.min_ready_seconds.unwrap_or(0),
                jiff::Timestamp::now(),
            );
        }
        if !plan.is_empty() {
            tracing::debug!(daemonset = %key, create = plan.create_on.len(), delete = plan.delete.len(), "daemonset plan");
            failure = execute(&ctx, &ds, plan, &hash).await;
        }
    }

    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let c = counts(&nodes, &hash, min_ready, jiff::Timestamp::now());
    patch_status(&ctx, &ds, c).await?;
    if let Some((reason, message)) = failure {
        ctx.events.warning(ds.object_ref(&()), &reason, message);
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    if !satisfied {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    if min_ready > 0 && c.ready != c.available {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64 + 1)));
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn ctx_pods_api(ctx: &DaemonSetContext, ns: &str) -> Api<Pod> {
    Api::namespaced(ctx.client.clone(), ns)
}

fn error_policy(ds: Arc<DaemonSet>, err: &Error, _ctx: Arc<DaemonSetContext>) -> Action {
    tracing::warn!(daemonset = %key_of(ds.as_ref()), error = %err, "daemonset reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// The DaemonSets a pod event concerns: its controller, or for an orphan every DaemonSet in
/// its namespace whose selector matches it (so it can be adopted).
fn daemonsets_for_pod(pod: &Pod, daemonsets: &Store<DaemonSet>) -> Vec<ObjectRef<DaemonSet>> {
    controllers_for(pod, daemonsets, |ds| {
        ds.spec.as_ref().map(|s| s.selector.clone())
    })
}

/// What of a node decides where daemon pods go: its labels and taints. Heartbeats and status
/// changes leave it alone, so they do not wake every DaemonSet.
fn node_fingerprint(node: &Node) -> String {
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone());
    json!([node.metadata.labels, taints]).to_string()
}

/// Runs the DaemonSet controller until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let (pods, pods_ready, pod_events) = watched_store::<Pod>(&client);
    let (nodes, nodes_ready, node_events) = watched_store::<Node>(&client);
    let controller = Controller::new(
        Api::<DaemonSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let ds_for_pods = controller.store();
    let ds_for_nodes = controller.store();
    let node_store = nodes.clone();
    let fingerprints: Mutex<HashMap<String, String>> = Mutex::default();
    let ctx = Arc::new(DaemonSetContext {
        client: client.clone(),
        pods_ready,
        nodes_ready,
        pods,
        nodes,
        expectations: Expectations::default(),
        synced: Mutex::default(),
        events: EventRecorder::for_controller(client, "daemonset-controller"),
    });
    let controller = controller
        .watches_stream(pod_events, move |pod: Pod| {
            daemonsets_for_pod(&pod, &ds_for_pods)
        })
        .watches_stream(node_events, move |node: Node| {
            let name = node.name_any();
            let mut seen = fingerprints.lock().expect("fingerprint lock");
            // The reflector has already applied the event: absent from the store means deleted.
            let changed = if node_store.get(&ObjectRef::from_obj(&node)).is_none() {
                seen.remove(&name).is_some()
            } else {
                let fp = node_fingerprint(&node);
                seen.insert(name, fp.clone()).as_ref() != Some(&fp)
            };
            if !changed {
                return Vec::new();
            }
            ds_for_nodes
                .state()
                .iter()
                .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                .collect()
        });
    let timed_reconcile = |obj, ctx| timed("daemonset", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}
