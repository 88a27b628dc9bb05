//! The node lifecycle controller: marks a node whose kubelet stopped renewing its Lease
//! Unknown after `--node-monitor-grace-period`, taints it by its conditions (`NoSchedule`
//! at once, `NoExecute` at its zone's rate), evicts the pods that do not tolerate the
//! `NoExecute` taint (after their `tolerationSeconds`), and lifts it all when the node
//! reports Ready again.
//!
//! Beyond Kubernetes, the pods of a node gone Unknown are marked not Ready in the same
//! pass, so the endpoint controllers withdraw them from their Services within the grace
//! period instead of after the eviction delay.
//!
//! Decisions are pure functions over the node, its Lease and its pods with an explicit
//! clock (`health.rs`, `taints.rs`, `zones.rs`, `eviction.rs`); this file gathers the state
//! and applies them.

pub mod eviction;
pub mod health;
pub mod taints;
pub mod zones;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use skiff_client::controller::drive;
use skiff_client::events::pod_reference;
use skiff_client::{EventRecorder, ReadyGate, watched_store};

use crate::Shutdown;
use crate::error::{Error, Result, not_found};
use crate::metrics::timed;
use eviction::{PodEviction, pod_eviction};
use health::{ProbeTracker, ready_status, unknown_conditions};
use taints::{NoExecute, desired_taints, no_execute_step};
use zones::{EvictionRates, Transition, Zones, zone_of};

/// Namespace of the nodes' Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// How the node lifecycle controller judges nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeLifecycleOptions {
    /// How long a node may go without renewing its Lease before it is Unknown
    /// (`--node-monitor-grace-period`, 40 s).
    pub grace_period: Duration,
    /// How often every node is looked at (`--node-monitor-period`, 5 s).
    pub monitor_period: Duration,
    /// Zone disruption rates.
    pub rates: EvictionRates,
}

impl Default for NodeLifecycleOptions {
    fn default() -> Self {
        NodeLifecycleOptions {
            grace_period: Duration::from_secs(40),
            monitor_period: Duration::from_secs(5),
            rates: EvictionRates::default(),
        }
    }
}

/// What the reconciler shares between calls.
struct LifecycleContext {
    client: Client,
    events: EventRecorder,
    options: NodeLifecycleOptions,
    leases: Store<Lease>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    ready: [ReadyGate; 2],
    state: Mutex<LifecycleState>,
}

/// What the controller remembers between passes (in memory, as Kubernetes does).
#[derive(Default)]
struct LifecycleState {
    probes: ProbeTracker,
    zones: Zones,
}

impl LifecycleContext {
    fn state(&self) -> std::sync::MutexGuard<'_, LifecycleState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Judges the zones from the node store, with `fresh` in place of its cached copy (a
    /// node whose conditions this pass just wrote), and handles the transition; whether
    /// evictions are stopped afterwards.
    fn judge_zones(&self, fresh: Option<&Node>, now: Timestamp) -> bool {
        let all = self.nodes.state();
        let refs: Vec<&Node> = all
            .iter()
            .map(|n| match fresh {
                Some(f) if f.name_any() == n.name_any() => f,
                _ => n.as_ref(),
            })
            .collect();
        let mut st = self.state();
        match st.zones.update(&refs, &self.options.rates, now) {
            Transition::None => {}
            Transition::EnteredFullDisruption => {
                tracing::warn!("every node is not ready; evictions stop (full disruption)")
            }
            Transition::LeftFullDisruption => {
                tracing::info!("some nodes are ready again; leaving full disruption");
                st.probes.reset_all(now);
            }
        }
        st.probes
            .retain(|n| all.iter().any(|node| node.name_any() == n));
        st.zones.evictions_stopped
    }

    fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        self.pods
            .state()
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .collect()
    }
}

fn write_params() -> PatchParams {
    crate::patch_params()
}

/// Writes `conditions` as the node's status, conditioned on the version read.
async fn write_conditions(
    api: &Api<Node>,
    node: &Node,
    conditions: &[k8s_openapi::api::core::v1::NodeCondition],
) -> Result<Node> {
    let name = node.name_any();
    let patch = json!({"metadata": {"resourceVersion": node.resource_version()},
                       "status": {"conditions": conditions}});
    api.patch_status(&name, &write_params(), &Patch::Merge(&patch))
        .await
        .map_err(Error::api(name))
}

/// Sets the Ready condition of every Ready pod on `node` to False (Kubernetes'
/// `MarkPodsNotReady`), so endpoints stop sending them traffic.
async fn mark_pods_not_ready(ctx: &LifecycleContext, node: &str, now: Timestamp) -> Result<()> {
    for pod in ctx.pods_on(node) {
        if !skiff_api::pod::is_ready(&pod) || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let key = crate::replicaset::key_of(pod.as_ref());
        let conditions: Vec<PodCondition> = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|mut c| {
                if c.type_ == "Ready" {
                    c.status = "False".into();
                    c.last_transition_time = Some(Time(now));
                }
                c
            })
            .collect();
        let patch = json!({"metadata": {"resourceVersion": pod.resource_version()},
                           "status": {"conditions": conditions}});
        let api: Api<Pod> =
            Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
        match api
            .patch_status(&pod.name_any(), &write_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(pod = %key, node, "marked pod not ready: its node is unreachable");
                ctx.events.warning(
                    pod_reference(&pod, None),
                    "NodeNotReady",
                    "Node is not ready".into(),
                );
            }
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(Error::api(key)(e)),
        }
    }
    Ok(())
}

/// Deletes `pod` for its node's `NoExecute` taint, noting why in a `DisruptionTarget`
/// condition first, as Kubernetes' taint eviction controller does.
async fn evict(ctx: &LifecycleContext, pod: &Pod, now: Timestamp) -> Result<()> {
    let key = crate::replicaset::key_of(pod);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    let mut conditions: Vec<PodCondition> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    conditions.retain(|c| c.type_ != "DisruptionTarget");
    conditions.push(PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: Some("DeletionByTaintManager".into()),
        message: Some("Taint manager: deleting due to NoExecute taint".into()),
        last_transition_time: Some(Time(now)),
        ..Default::default()
    });
    let patch = json!({"status": {"conditions": conditions}});
    if let Err(e) = api
        .patch_status(&pod.name_any(), &write_params(), &Patch::Merge(&patch))
        .await
    {
        if not_found(&e) {
            return Ok(());
        }
        tracing::debug!(pod = %key, error = %e, "disruption condition not written");
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    ctx.events.normal(
        pod_reference(pod, None),
        "TaintManagerEviction",
        format!("Marking for deletion Pod {key}"),
    );
    tracing::info!(pod = %key, "evicting pod for its node's NoExecute taint");
    match api.delete(&pod.name_any(), &dp).await {
        Ok(_) => Ok(()),
        Err(e) if not_found(&e) || matches!(&e, kube::Error::Api(s) if s.code == 409) => Ok(()),
        Err(e) => Err(Error::api(key)(e)),
    }
}

/// Evicts what must go now from `node` and returns the time of the next eviction due.
async fn evict_pods(
    ctx: &LifecycleContext,
    node: &Node,
    now: Timestamp,
) -> Result<Option<Timestamp>> {
    let node_taints = taints::taints(node);
    if !node_taints.iter().any(|t| t.effect == "NoExecute") {
        return Ok(None);
    }
    let mut next: Option<Timestamp> = None;
    for pod in ctx.pods_on(&node.name_any()) {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match pod_eviction(&pod, node_taints, now) {
            PodEviction::Keep => {}
            PodEviction::Now => evict(ctx, &pod, now).await?,
            PodEviction::At(t) => next = Some(next.map_or(t, |n| n.min(t))),
        }
    }
    Ok(next)
}

fn until(now: Timestamp, t: Timestamp) -> Duration {
    if t <= now {
        Duration::ZERO
    } else {
        t.duration_since(now).unsigned_abs()
    }
}

async fn reconcile(node: Arc<Node>, ctx: Arc<LifecycleContext>) -> Result<Action> {
    for gate in &ctx.ready {
        if gate.wait().await.is_err() {
            return Ok(Action::await_change());
        }
    }
    let now = Timestamp::now();
    let name = node.name_any();
    let api: Api<Node> = Api::all(ctx.client.clone());
    let lease = ctx
        .leases
        .get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
    let probe = ctx.state().probes.observe(&node, lease.as_deref(), now);
    let grace = ctx.options.grace_period;
    let mut node = (*node).clone();
    if let Some(conditions) = unknown_conditions(&node, probe, grace, now) {
        let was = ready_status(&node).to_string();
        node = write_conditions(&api, &node, &conditions).await?;
        tracing::info!(node = %name, was, "node stopped posting status; conditions now Unknown");
        ctx.events.normal(
            node.object_ref(&()),
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        );
    }
    let ready = ready_status(&node).to_string();
    if ready == "Unknown" {
        mark_pods_not_ready(&ctx, &name, now).await?;
    }
    // The zones are judged again with this node's fresh conditions before any taint is
    // added, so a node that is the last to go never gets a NoExecute taint in the moment
    // before the periodic pass sees full disruption.
    let stopped = if ready == "True" {
        ctx.state().zones.evictions_stopped
    } else {
        ctx.judge_zones(Some(&node), now)
    };
    let mut retry: Option<Duration> = None;
    let step = match no_execute_step(&node, &ready, stopped) {
        NoExecute::Add(key) => match ctx.state().zones.try_taint(&zone_of(&node), now) {
            Ok(()) => NoExecute::Add(key),
            Err(wait) => {
                retry = wait;
                NoExecute::Keep
            }
        },
        step => step,
    };
    if let Some(taints) = desired_taints(&node, step, now) {
        let patch = json!({"metadata": {"resourceVersion": node.resource_version()},
                           "spec": {"taints": taints}});
        node = api
            .patch(&name, &write_params(), &Patch::Merge(&patch))
            .await
            .map_err(Error::api(name.clone()))?;
        tracing::info!(node = %name, ?step, "node taints updated");
    }
    let next_eviction = evict_pods(&ctx, &node, now).await?;
    let mut wait = ctx.options.monitor_period;
    if ready == "True" {
        wait = wait.min(until(now, probe + grace) + Duration::from_millis(100));
    }
    for w in [retry, next_eviction.map(|t| until(now, t))]
        .into_iter()
        .flatten()
    {
        wait = wait.min(w.max(Duration::from_millis(100)));
    }
    Ok(Action::requeue(wait))
}

fn error_policy(node: Arc<Node>, err: &Error, _ctx: Arc<LifecycleContext>) -> Action {
    tracing::warn!(node = %node.name_any(), error = %err, "node lifecycle reconcile failed");
    Action::requeue(Duration::from_secs(1))
}

/// Judges the zones every monitor period and forgets deleted nodes.
async fn zone_pass(ctx: Arc<LifecycleContext>, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(ctx.options.monitor_period);
    loop {
        tokio::select! {
            _ = shutdown.signalled() => return,
            _ = tick.tick() => {}
        }
        ctx.judge_zones(None, Timestamp::now());
    }
}

/// Runs the node lifecycle controller until `shutdown`.
pub async fn run(
    client: Client,
    options: NodeLifecycleOptions,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let (leases, leases_ready, lease_events) = watched_store::<Lease>(&client);
    let (pods, pods_ready, pod_events) = watched_store::<Pod>(&client);
    let controller = Controller::new(Api::<Node>::all(client.clone()), watcher::Config::default());
    let nodes = controller.store();
    let ctx = Arc::new(LifecycleContext {
        events: EventRecorder::for_controller(client.clone(), "node-controller"),
        client,
        options,
        leases,
        pods,
        nodes,
        ready: [leases_ready, pods_ready],
        state: Mutex::new(LifecycleState::default()),
    });
    let pods_task = tokio::spawn(pod_events.for_each(|_| futures::future::ready(())));
    let zones_task = tokio::spawn(zone_pass(ctx.clone(), shutdown.clone()));
    let by_lease = |lease: Lease| {
        (lease.namespace().as_deref() == Some(LEASE_NAMESPACE))
            .then(|| ObjectRef::new(&lease.name_any()))
    };
    let controller = controller.watches_stream(lease_events, by_lease);
    let timed_reconcile = |obj, ctx| timed("node-lifecycle", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    pods_task.abort();
    zones_task.abort();
    Ok(())
}
