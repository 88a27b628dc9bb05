//! The ReplicaSet controller: keeps `spec.replicas` active pods matching the selector,
//! adopting and releasing pods through ownerReferences, creating in slow-start batches,
//! deleting the least useful pods first, and reporting status. The same logic keeps
//! core/v1 ReplicationControllers (one implementation, two kinds, as Kubernetes' own
//! controller does through its conversion adapter): [`Replicated`] reads either kind in a
//! ReplicaSet's terms.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{
    ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::Shutdown;
use crate::claim::{Workload, claim, controller_of, controllers_for};
use crate::error::{Error, Result, not_found};
use crate::expectations::Expectations;
use crate::metrics::timed;
use crate::pod_control::{
    fully_labeled, is_active, is_available, is_ready, pod_from_template, pods_to_delete,
    slow_start_batches,
};
use skiff_client::EventRecorder;
use skiff_client::controller::drive;
use skiff_client::{ReadyGate, watched_store};

/// At most this many pods are created or deleted in one reconcile (kube's burstReplicas).
const BURST_REPLICAS: usize = 500;

/// A kind the ReplicaSet logic keeps, read in a ReplicaSet's terms.
pub trait Replicated:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The controller's name (logs, metrics, events).
    const CONTROLLER: &'static str;
    /// Whether the kind's status has `terminatingReplicas`.
    const REPORTS_TERMINATING: bool;
    /// The spec as a ReplicaSet's.
    fn replica_spec(&self) -> ReplicaSetSpec;
    /// The status as a ReplicaSet's.
    fn replica_status(&self) -> ReplicaSetStatus;
}

impl Replicated for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset";
    const REPORTS_TERMINATING: bool = true;
    fn replica_spec(&self) -> ReplicaSetSpec {
        self.spec.clone().unwrap_or_default()
    }
    fn replica_status(&self) -> ReplicaSetStatus {
        self.status.clone().unwrap_or_default()
    }
}

impl Replicated for ReplicationController {
    const CONTROLLER: &'static str = "replicationcontroller";
    const REPORTS_TERMINATING: bool = false;
    fn replica_spec(&self) -> ReplicaSetSpec {
        let spec = self.spec.clone().unwrap_or_default();
        ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: rc_selector(self),
            template: spec.template,
        }
    }
    fn replica_status(&self) -> ReplicaSetStatus {
        let st = self.status.clone().unwrap_or_default();
        ReplicaSetStatus {
            replicas: st.replicas,
            fully_labeled_replicas: st.fully_labeled_replicas,
            ready_replicas: st.ready_replicas,
            available_replicas: st.available_replicas,
            observed_generation: st.observed_generation,
            conditions: st.conditions.map(|cs| {
                cs.into_iter()
                    .map(|c| ReplicaSetCondition {
                        type_: c.type_,
                        status: c.status,
                        reason: c.reason,
                        message: c.message,
                        last_transition_time: c.last_transition_time,
                    })
                    .collect()
            }),
            terminating_replicas: None,
        }
    }
}

/// A ReplicationController's equality selector as a LabelSelector.
fn rc_selector(rc: &ReplicationController) -> LabelSelector {
    LabelSelector {
        match_labels: rc.spec.as_ref().and_then(|s| s.selector.clone()),
        match_expressions: None,
    }
}

/// What the ReplicaSet reconciler shares between calls.
pub struct ReplicaSetContext {
    client: Client,
    pods: Store<Pod>,
    pods_ready: ReadyGate,
    expectations: Expectations,
    events: EventRecorder,
}

/// `namespace/name` of an object.
pub(crate) fn key_of<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

async fn reconcile<K: Replicated>(rs: Arc<K>, ctx: Arc<ReplicaSetContext>) -> Result<Action> {
    let key = key_of(rs.as_ref());
    tracing::debug!(controller = K::CONTROLLER, object = %key, "reconcile starts");
    let name = rs.name_any();
    let spec = rs.replica_spec();
    let Workload {
        namespace: ns,
        selector,
        owner,
    } = Workload::of(rs.as_ref(), &spec.selector)?;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    if ctx.pods_ready.wait().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }

    let in_ns: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(&ns))
        .collect();
    let seen: HashSet<String> = in_ns.iter().map(|p| p.name_any()).collect();
    let alive: HashSet<String> = in_ns
        .iter()
        .filter(|p| is_active(p))
        .filter_map(|p| p.uid())
        .collect();
    // Pods of this ReplicaSet still shutting down: Recreate waits for them (status
    // terminatingReplicas, as Kubernetes reports it).
    let terminating = in_ns
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .filter(|p| controller_of(p.as_ref()).is_some_and(|c| c.uid == owner.uid))
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .count() as i32;
    let candidates: Vec<Arc<Pod>> = in_ns.into_iter().filter(|p| is_active(p)).collect();
    let deleting = rs.meta().deletion_timestamp.is_some();
    let owned = claim(&pods_api, &owner, &selector, deleting, candidates).await?;
    let satisfied = ctx
        .expectations
        .satisfied(&key, |n| seen.contains(n), |u| alive.contains(u));

    tracing::debug!(controller = K::CONTROLLER, object = %key, generation = ?rs.meta().generation, want = ?spec.replicas, owned = owned.len(), satisfied, "reconciling");
    let mut failure: Option<(String, String)> = None;
    if satisfied && !deleting {
        let want = spec.replicas.unwrap_or(1).max(0) as usize;
        if owned.len() < want {
            let template = spec.template.clone().unwrap_or_default();
            let pod = pod_from_template(&template, &ns, &format!("{name}-"), owner.clone());
            let count = (want - owned.len()).min(BURST_REPLICAS);
            'batches: for batch in slow_start_batches(count) {
                let pp = PostParams::default();
                let results = join_all((0..batch).map(|_| pods_api.create(&pp, &pod))).await;
                let mut created = Vec::new();
                for r in results {
                    match r {
                        Ok(p) => created.push(p.name_any()),
                        Err(e) => failure = Some(("FailedCreate".into(), e.to_string())),
                    }
                }
                for p in &created {
                    ctx.events.normal(
                        rs.object_ref(&()),
                        "SuccessfulCreate",
                        format!("Created pod: {p}"),
                    );
                }
                ctx.expectations.expect_creations(&key, created);
                if failure.is_some() {
                    break 'batches;
                }
            }
        } else if owned.len() > want {
            let victims = pods_to_delete(&owned, (owned.len() - want).min(BURST_REPLICAS));
            ctx.expectations
                .expect_deletions(&key, victims.iter().filter_map(|p| p.uid()));
            let dp = DeleteParams::default();
            let names: Vec<String> = victims.iter().map(|p| p.name_any()).collect();
            let results = join_all(names.iter().map(|n| pods_api.delete(n, &dp))).await;
            for (p, r) in victims.iter().zip(results) {
                match r {
                    Ok(_) => ctx.events.normal(
                        rs.object_ref(&()),
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", p.name_any()),
                    ),
                    Err(e) if not_found(&e) => {}
                    Err(e) => failure = Some(("FailedDelete".into(), e.to_string())),
                }
            }
        }
    }

    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = jiff::Timestamp::now();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut status = ReplicaSetStatus {
        replicas: owned.len() as i32,
        fully_labeled_replicas: Some(
            owned
                .iter()
                .filter(|p| fully_labeled(p, &template_labels))
                .count() as i32,
        ),
        ready_replicas: Some(owned.iter().filter(|p| is_ready(p)).count() as i32),
        available_replicas: Some(
            owned
                .iter()
                .filter(|p| is_available(p, min_ready, now))
                .count() as i32,
        ),
        observed_generation: rs.meta().generation,
        conditions: None,
        terminating_replicas: Some(terminating),
    };
    let old = rs.replica_status();
    let mut conditions: Vec<ReplicaSetCondition> = old
        .conditions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "ReplicaFailure")
        .collect();
    if let Some((reason, message)) = &failure {
        let prior = old
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "ReplicaFailure" && c.reason.as_deref() == Some(reason));
        conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(reason.clone()),
            message: Some(message.clone()),
            last_transition_time: Some(
                prior
                    .and_then(|c| c.last_transition_time.clone())
                    .unwrap_or(Time(now)),
            ),
        });
        ctx.events
            .warning(rs.object_ref(&()), reason, message.clone());
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    let changed = old.replicas != status.replicas
        || old.fully_labeled_replicas.unwrap_or(0) != status.fully_labeled_replicas.unwrap_or(0)
        || old.ready_replicas.unwrap_or(0) != status.ready_replicas.unwrap_or(0)
        || old.available_replicas.unwrap_or(0) != status.available_replicas.unwrap_or(0)
        || old.observed_generation != status.observed_generation
        || old.terminating_replicas.unwrap_or(0) != terminating
        || old.conditions.as_ref().map(|c| c.len()) != status.conditions.as_ref().map(|c| c.len())
        || failure.is_some();
    if changed {
        let rs_api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
        let mut patch = json!({"status": {
            "replicas": status.replicas,
            "fullyLabeledReplicas": status.fully_labeled_replicas,
            "readyReplicas": status.ready_replicas,
            "availableReplicas": status.available_replicas,
            "observedGeneration": status.observed_generation,
            "conditions": status.conditions,
        }});
        if K::REPORTS_TERMINATING {
            patch["status"]["terminatingReplicas"] = json!(status.terminating_replicas);
        }
        match rs_api
            .patch_status(&name, &crate::patch_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(Error::api(key)(e)),
        }
    }
    if failure.is_some() {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    if !satisfied {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    // Pods that are ready but not yet available become available by the clock alone.
    if min_ready > 0 && status.ready_replicas != status.available_replicas {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64 + 1)));
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy<K: Replicated>(rs: Arc<K>, err: &Error, _ctx: Arc<ReplicaSetContext>) -> Action {
    tracing::warn!(controller = K::CONTROLLER, object = %key_of(rs.as_ref()), error = %err, "reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the ReplicaSet controller until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    run_kind::<ReplicaSet>(client, shutdown, "replicaset-controller", |rs| {
        rs.spec.as_ref().map(|s| s.selector.clone())
    })
    .await
}

/// Runs the ReplicationController controller (the same logic) until `shutdown`.
pub async fn run_replication_controllers(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    run_kind::<ReplicationController>(client, shutdown, "replication-controller", |rc| {
        Some(rc_selector(rc))
    })
    .await
}

async fn run_kind<K: Replicated>(
    client: Client,
    shutdown: Shutdown,
    component: &'static str,
    selector_of: fn(&K) -> Option<LabelSelector>,
) -> anyhow::Result<()> {
    let (pods, pods_ready, pod_events) = watched_store::<Pod>(&client);
    let controller = Controller::new(Api::<K>::all(client.clone()), watcher::Config::default());
    let store = controller.store();
    let ctx = Arc::new(ReplicaSetContext {
        client: client.clone(),
        pods_ready,
        pods,
        expectations: Expectations::default(),
        events: EventRecorder::for_controller(client, component),
    });
    // The objects a pod event concerns: its controller, or for an orphan every one in its
    // namespace whose selector matches it (so it can be adopted).
    let controller = controller.watches_stream(pod_events, move |pod: Pod| {
        controllers_for(&pod, &store, selector_of)
    });
    let timed_reconcile = |obj, ctx| timed(K::CONTROLLER, reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}
