//! The EndpointSlice controller: for every Service with a selector, keeps
//! discovery.k8s.io/v1 EndpointSlices (`<service>-<random>`, at most
//! `--max-endpoints-per-slice` endpoints each, one address type per IP family, one slice
//! group per resolved port set) in step with the pods it selects. Reconciles are driven by
//! Service, pod, node and slice watches; the plan is `reconciler`, the per-pod rules
//! `rules`. Deleted Services lose their slices through ownerReferences (the garbage
//! collector).

pub mod reconciler;
pub mod rules;
pub mod trigger_time;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use skiff_client::controller::drive;
use skiff_client::{ReadyGate, watched_store};

use crate::Shutdown;
use crate::error::{Error, Result, not_found};
use crate::metrics::timed;
use crate::replicaset::key_of;
use reconciler::{CONTROLLER_NAME, Inputs, plan};
use rules::{LAST_CHANGE_TRIGGER_TIME, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use trigger_time::TriggerTimeTracker;

/// Kubernetes' default `--max-endpoints-per-slice`.
pub const DEFAULT_MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// What the EndpointSlice reconciler shares between calls.
pub struct EndpointSliceContext {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    gates: [ReadyGate; 2],
    max_per_slice: usize,
    triggers: TriggerTimeTracker,
}

/// The pods of the Service's namespace its selector matches.
pub(crate) fn selected_pods(svc: &Service, pods: &Store<Pod>) -> Vec<Arc<Pod>> {
    pods.state()
        .into_iter()
        .filter(|p| rules::selects(svc, p))
        .collect()
}

/// The Services (with selectors) in the pod's namespace that select it.
pub(crate) fn services_for_pod(pod: &Pod, services: &Store<Service>) -> Vec<ObjectRef<Service>> {
    services
        .state()
        .iter()
        .filter(|s| rules::selects(s, pod))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// Brings one Service's slices up to date.
async fn reconcile(svc: Arc<Service>, ctx: Arc<EndpointSliceContext>) -> Result<Action> {
    for gate in &ctx.gates {
        if gate.wait().await.is_err() {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
    }
    if !rules::selects_pods(&svc) {
        return Ok(Action::await_change());
    }
    let key = key_of(svc.as_ref());
    let ns = svc.namespace().unwrap_or_default();
    let api = Api::<EndpointSlice>::namespaced(ctx.client.clone(), &ns);
    // Read the slices from the API server rather than a cache: a slice this controller has
    // just written is then always seen, so a quick second sync cannot duplicate it.
    let selector = format!(
        "{SERVICE_NAME_LABEL}={},{MANAGED_BY_LABEL}={CONTROLLER_NAME}",
        svc.name_any()
    );
    let existing = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::api(key.clone()))?
        .items;
    let matched = selected_pods(&svc, &ctx.pods);
    let pods: Vec<&Pod> = matched.iter().map(Arc::as_ref).collect();
    let node_objs = ctx.nodes.state();
    let nodes: HashMap<String, &Node> = node_objs
        .iter()
        .map(|n| (n.name_any(), n.as_ref()))
        .collect();
    let trigger = ctx.triggers.compute(&svc, &pods);
    let plan = plan(&Inputs {
        service: &svc,
        pods: &pods,
        nodes: &nodes,
        existing: &existing,
        max_per_slice: ctx.max_per_slice,
    });
    let stamp = |mut s: EndpointSlice| {
        let annotations = s.metadata.annotations.get_or_insert_with(Default::default);
        match trigger {
            Some(t) => {
                annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), trigger_time::format(t));
            }
            None => {
                annotations.remove(LAST_CHANGE_TRIGGER_TIME);
            }
        }
        s
    };
    let (created, updated, deleted) = (plan.create.len(), plan.update.len(), plan.delete.len());
    // No new slices for a Service on its way out: the garbage collector is removing them.
    if svc.metadata.deletion_timestamp.is_none() {
        for slice in plan.create {
            api.create(&PostParams::default(), &stamp(slice))
                .await
                .map_err(Error::api(key.clone()))?;
        }
    }
    for slice in plan.update {
        let name = slice.name_any();
        api.replace(&name, &PostParams::default(), &stamp(slice))
            .await
            .map_err(Error::api(format!("{ns}/{name}")))?;
    }
    for slice in plan.delete {
        let name = slice.name_any();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(Error::api(format!("{ns}/{name}"))(e)),
        }
    }
    if created + updated + deleted > 0 {
        tracing::debug!(service = %key, created, updated, deleted, "endpoint slices synced");
    }
    if plan.missing_nodes > 0 {
        tracing::info!(service = %key, pods = plan.missing_nodes, "pods on unknown nodes left out");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    Ok(Action::await_change())
}

fn error_policy(svc: Arc<Service>, err: &Error, _ctx: Arc<EndpointSliceContext>) -> Action {
    tracing::warn!(service = %key_of(svc.as_ref()), error = %err, "endpoint slice sync failed");
    Action::requeue(Duration::from_millis(500))
}

/// Runs the EndpointSlice controller until `shutdown`.
pub async fn run(client: Client, max_per_slice: usize, shutdown: Shutdown) -> anyhow::Result<()> {
    let (pods, pods_ready, pod_events) = watched_store::<Pod>(&client);
    let (nodes, nodes_ready, node_events) = watched_store::<Node>(&client);
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let services = controller.store();
    let services_for_nodes = services.clone();
    let pods_for_nodes = pods.clone();
    let ctx = Arc::new(EndpointSliceContext {
        client: client.clone(),
        pods,
        nodes,
        gates: [pods_ready, nodes_ready],
        max_per_slice: max_per_slice.clamp(1, 1000),
        triggers: TriggerTimeTracker::default(),
    });
    let slices_config =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={CONTROLLER_NAME}"));
    let controller = controller
        .owns(Api::<EndpointSlice>::all(client), slices_config)
        .watches_stream(pod_events, move |pod: Pod| {
            services_for_pod(&pod, &services)
        })
        .watches_stream(node_events, move |node: Node| {
            // A node's zone is on its pods' endpoints.
            let name = node.name_any();
            pods_for_nodes
                .state()
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
                .flat_map(|p| services_for_pod(p, &services_for_nodes))
                .collect::<Vec<_>>()
        });
    let timed_reconcile = |obj, ctx| timed("endpointslice", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}
