//! The disruption controller: keeps each PodDisruptionBudget's status (expected and healthy
//! pods, disruptions allowed, pending disruptions, the DisruptionAllowed condition) in step
//! with its pods, reconciling on budget and pod changes. The arithmetic is
//! `disruption_budget`; this file gathers the pods and their controllers' scale.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use skiff_api::labels::Selector;

use crate::Shutdown;
use crate::claim::controller_of;
use crate::disruption_budget::{ControllerScales, budget_status, needs_scale};
use crate::error::{Error, Result, not_found};
use crate::metrics::timed;
use crate::replicaset::key_of;
use skiff_client::controller::drive;
use skiff_client::{ReadyGate, watched_store};

/// What the disruption reconciler shares between calls.
pub struct DisruptionContext {
    client: Client,
    pods: Store<Pod>,
    pods_ready: ReadyGate,
}

/// The pods a budget covers: in its namespace and matched by its selector (in policy/v1 an
/// empty selector matches every pod; an unparsable one matches none).
fn pods_of(pdb: &PodDisruptionBudget, pods: &Store<Pod>) -> Vec<Arc<Pod>> {
    let ns = pdb.namespace().unwrap_or_default();
    let Some(sel) = selector_of(pdb) else {
        return Vec::new();
    };
    pods.state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(&ns) && sel.matches(p.labels()))
        .collect()
}

fn selector_of(pdb: &PodDisruptionBudget) -> Option<Selector> {
    let sel = pdb.spec.as_ref()?.selector.clone().unwrap_or_default();
    Selector::from_label_selector(&sel).ok()
}

/// The workload owning `owner` (a pod's controller) and its desired replicas, as the
/// disruption controller's finders resolve it: a ReplicaSet (or the Deployment controlling
/// it), a StatefulSet, otherwise any kind through its scale subresource. `None` when the
/// controller is gone or has another uid.
async fn scale_of(
    client: &Client,
    ns: &str,
    owner: &OwnerReference,
) -> Result<Option<(String, i32)>> {
    let object = format!("{ns}/{}", owner.name);
    let (group, version) = match owner.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", owner.api_version.as_str()),
    };
    let found = match (group, owner.kind.as_str()) {
        ("apps", "ReplicaSet") => {
            let rs = get(
                Api::<ReplicaSet>::namespaced(client.clone(), ns),
                &owner.name,
            )
            .await?;
            match rs.filter(|rs| rs.uid().as_deref() == Some(&owner.uid)) {
                Some(rs) => match controller_of(&rs).filter(|c| c.kind == "Deployment") {
                    Some(dep) => {
                        let d = get(Api::<Deployment>::namespaced(client.clone(), ns), &dep.name)
                            .await?
                            .filter(|d| d.uid().as_deref() == Some(&dep.uid));
                        d.map(|d| (dep.uid.clone(), replicas(d.spec.and_then(|s| s.replicas))))
                    }
                    None => Some((
                        owner.uid.clone(),
                        replicas(rs.spec.and_then(|s| s.replicas)),
                    )),
                },
                None => None,
            }
        }
        ("apps", "StatefulSet") => get(
            Api::<StatefulSet>::namespaced(client.clone(), ns),
            &owner.name,
        )
        .await?
        .filter(|s| s.uid().as_deref() == Some(&owner.uid))
        .map(|s| (owner.uid.clone(), replicas(s.spec.and_then(|s| s.replicas)))),
        _ => {
            let gvk = GroupVersionKind::gvk(group, version, &owner.kind);
            let Ok((resource, _)) = kube::discovery::pinned_kind(client, &gvk).await else {
                return Ok(None);
            };
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource);
            match api.get_scale(&owner.name).await {
                Ok(s) if s.metadata.uid.as_deref() == Some(&owner.uid) => Some((
                    owner.uid.clone(),
                    s.spec.and_then(|s| s.replicas).unwrap_or(0),
                )),
                Ok(_) => None,
                Err(e) if not_found(&e) => None,
                Err(e) => return Err(Error::api(object)(e)),
            }
        }
    };
    Ok(found)
}

fn replicas(r: Option<i32>) -> i32 {
    r.unwrap_or(1)
}

async fn get<K>(api: Api<K>, name: &str) -> Result<Option<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.map_err(Error::api(name))
}

/// The scale of every distinct controller of `pods`.
async fn controller_scales(client: &Client, ns: &str, pods: &[&Pod]) -> Result<ControllerScales> {
    let mut scales = ControllerScales::new();
    let mut seen = HashSet::new();
    for owner in pods.iter().filter_map(|p| controller_of(*p)) {
        if !seen.insert(owner.uid.clone()) {
            continue;
        }
        if let Some(found) = scale_of(client, ns, owner).await? {
            scales.insert(owner.uid.clone(), found);
        }
    }
    Ok(scales)
}

/// Brings one budget's status up to date.
async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<DisruptionContext>) -> Result<Action> {
    if ctx.pods_ready.wait().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let key = key_of(pdb.as_ref());
    let ns = pdb.namespace().unwrap_or_default();
    let matched = pods_of(&pdb, &ctx.pods);
    let pods: Vec<&Pod> = matched.iter().map(Arc::as_ref).collect();
    let scales = if needs_scale(&pdb) {
        controller_scales(&ctx.client, &ns, &pods).await?
    } else {
        ControllerScales::new()
    };
    let now = jiff::Timestamp::now();
    let (status, recheck) = budget_status(&pdb, &pods, &scales, now);
    if pdb.status.as_ref() != Some(&status) {
        let api = Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), &ns);
        // A whole-status write, conditioned on the cached resourceVersion: entries dropped
        // from disruptedPods must go, and an eviction's concurrent write must win a conflict.
        let mut next = (*pdb).clone();
        next.status = Some(status.clone());
        api.replace_status(&pdb.name_any(), &PostParams::default(), &next)
            .await
            .map_err(Error::api(key.clone()))?;
        tracing::debug!(pdb = %key, allowed = status.disruptions_allowed, healthy = status.current_healthy, "budget status updated");
    }
    Ok(match recheck {
        Some(at) => {
            let wait = at.duration_since(now).unsigned_abs();
            Action::requeue(wait + Duration::from_secs(1))
        }
        None => Action::requeue(Duration::from_secs(300)),
    })
}

fn error_policy(
    pdb: Arc<PodDisruptionBudget>,
    err: &Error,
    _ctx: Arc<DisruptionContext>,
) -> Action {
    tracing::warn!(pdb = %key_of(pdb.as_ref()), error = %err, "disruption budget reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// The budgets a pod event concerns: every budget in its namespace that selects it.
fn budgets_for_pod(
    pod: &Pod,
    budgets: &Store<PodDisruptionBudget>,
) -> Vec<ObjectRef<PodDisruptionBudget>> {
    let ns = pod.namespace().unwrap_or_default();
    budgets
        .state()
        .iter()
        .filter(|b| b.namespace().as_deref() == Some(&ns))
        .filter(|b| selector_of(b).is_some_and(|s| s.matches(pod.labels())))
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

/// Runs the disruption controller until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let (pods, pods_ready, pod_events) = watched_store::<Pod>(&client);
    let controller = Controller::new(
        Api::<PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
    );
    let budgets = controller.store();
    let ctx = Arc::new(DisruptionContext {
        client,
        pods,
        pods_ready,
    });
    let controller =
        controller.watches_stream(pod_events, move |pod: Pod| budgets_for_pod(&pod, &budgets));
    let timed_reconcile = |obj, ctx| timed("disruption", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}
