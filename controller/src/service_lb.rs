//! The service load balancer (`servicelb`): gives each `type: LoadBalancer` Service without
//! a class, or with class `skiff.io/servicelb`, an address from `--service-lb-pool` — or
//! the nodes' InternalIP addresses when no pool is set, as k3s does — and writes it to
//! `status.loadBalancer.ingress` (ipMode VIP); the proxy on every node answers on it. No
//! address is handed to two Services: what is held is read from the Services' status (so
//! a restart rebuilds it) plus the writes this controller has in flight. The decision is
//! `service_lb_pool::decide`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use skiff_client::controller::drive;
use skiff_client::{EventRecorder, ReadyGate, watched_store};
use tokio::sync::Mutex;

use crate::Shutdown;
use crate::error::{Error, Result};
use crate::metrics::timed;
use crate::replicaset::key_of;
pub use crate::service_lb_pool::{Decision, LB_CLASS, LbPool, Wanted, decide};

/// What the load balancer reconciler shares between calls.
pub struct ServiceLbContext {
    client: Client,
    pool: LbPool,
    services: Store<Service>,
    nodes: Store<Node>,
    nodes_ready: ReadyGate,
    /// Addresses given by this controller whose status write the cache may not show yet.
    given: Mutex<BTreeMap<IpAddr, String>>,
    events: EventRecorder,
}

fn wanted(svc: &Service) -> Wanted {
    let spec = svc.spec.clone().unwrap_or_default();
    Wanted {
        is_lb: spec.type_.as_deref() == Some("LoadBalancer"),
        class: spec.load_balancer_class.clone(),
        requested: spec
            .load_balancer_ip
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|s| s.parse().ok()),
        current: ingress_of(svc),
    }
}

fn ingress_of(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

fn is_ours(svc: &Service) -> bool {
    matches!(
        decide(
            &wanted(svc),
            &LbPool::default(),
            &BTreeMap::new(),
            &[IpAddr::from([0, 0, 0, 0])]
        ),
        Decision::Ingress(_)
    )
}

/// The pool addresses held by Services other than `key`.
fn holders(
    ctx: &ServiceLbContext,
    key: &str,
    given: &BTreeMap<IpAddr, String>,
) -> BTreeMap<IpAddr, String> {
    let mut out = BTreeMap::new();
    let mut live = std::collections::BTreeSet::new();
    for s in ctx.services.state() {
        let k = key_of(s.as_ref());
        if !is_ours(&s) {
            continue;
        }
        live.insert(k.clone());
        if k == key {
            continue;
        }
        for ip in ingress_of(&s)
            .into_iter()
            .filter(|ip| ctx.pool.contains(*ip))
        {
            out.entry(ip).or_insert_with(|| k.clone());
        }
    }
    for (ip, k) in given {
        if k != key && live.contains(k) {
            out.entry(*ip).or_insert_with(|| k.clone());
        }
    }
    out
}

fn node_addresses(nodes: &Store<Node>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = nodes
        .state()
        .iter()
        .flat_map(|n| n.status.iter().flat_map(|s| s.addresses.iter().flatten()))
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn write_ingress(ctx: &ServiceLbContext, svc: &Service, ips: &[IpAddr]) -> Result<()> {
    let ns = svc.namespace().unwrap_or_default();
    let api = Api::<Service>::namespaced(ctx.client.clone(), &ns);
    let ingress: serde_json::Value = if ips.is_empty() {
        serde_json::Value::Null
    } else {
        json!(
            ips.iter()
                .map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"}))
                .collect::<Vec<_>>()
        )
    };
    let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
    api.patch_status(
        &svc.name_any(),
        &crate::patch_params(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(Error::api(key_of(svc)))?;
    Ok(())
}

/// Brings one Service's load balancer status up to date.
async fn reconcile(svc: Arc<Service>, ctx: Arc<ServiceLbContext>) -> Result<Action> {
    if ctx.nodes_ready.wait().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let key = key_of(svc.as_ref());
    let want = wanted(&svc);
    // One decision at a time: two Services must not both see an address as free.
    let mut given = ctx.given.lock().await;
    given.retain(|_, k| {
        ctx.services
            .state()
            .iter()
            .any(|s| key_of(s.as_ref()) == *k && is_ours(s))
    });
    let held = holders(&ctx, &key, &given);
    let decision = decide(&want, &ctx.pool, &held, &node_addresses(&ctx.nodes));
    let action = match &decision {
        Decision::NotOurs => {
            given.retain(|_, k| *k != key);
            // A Service that stopped being a LoadBalancer loses the address it had.
            if !want.is_lb && !want.current.is_empty() {
                write_ingress(&ctx, &svc, &[]).await?;
            }
            Action::await_change()
        }
        Decision::Ingress(ips) => {
            given.retain(|_, k| *k != key);
            for ip in ips.iter().filter(|ip| ctx.pool.contains(**ip)) {
                given.insert(*ip, key.clone());
            }
            if want.current != *ips {
                write_ingress(&ctx, &svc, ips).await?;
                ctx.events.normal(
                    svc.object_ref(&()),
                    "IPAllocated",
                    format!(
                        "Assigned IP {}",
                        ips.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                );
                tracing::info!(service = %key, ingress = ?ips, "load balancer address assigned");
            }
            Action::requeue(Duration::from_secs(300))
        }
        Decision::Failed(why) => {
            given.retain(|_, k| *k != key);
            if !want.current.is_empty() {
                write_ingress(&ctx, &svc, &[]).await?;
            }
            ctx.events.warning(
                svc.object_ref(&()),
                "AllocationFailed",
                format!("Failed to allocate IP for \"{key}\": {why}"),
            );
            // Retried: an address may come free.
            Action::requeue(Duration::from_secs(10))
        }
    };
    Ok(action)
}

fn error_policy(svc: Arc<Service>, err: &Error, _ctx: Arc<ServiceLbContext>) -> Action {
    tracing::warn!(service = %key_of(svc.as_ref()), error = %err, "service load balancer reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the service load balancer until `shutdown`.
pub async fn run(client: Client, pool: LbPool, shutdown: Shutdown) -> anyhow::Result<()> {
    let (nodes, nodes_ready, node_events) = watched_store::<Node>(&client);
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let services = controller.store();
    let ctx = Arc::new(ServiceLbContext {
        events: EventRecorder::for_controller(client.clone(), "service-lb-controller"),
        client,
        pool: pool.clone(),
        services: services.clone(),
        nodes,
        nodes_ready,
        given: Mutex::new(BTreeMap::new()),
    });
    // Without a pool the nodes' addresses are the ingress: a node change touches every
    // LoadBalancer Service.
    let by_node = move |_node: Node| -> Vec<ObjectRef<Service>> {
        if !pool.is_empty() {
            return Vec::new();
        }
        services
            .state()
            .iter()
            .filter(|s| is_ours(s))
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect()
    };
    let controller = controller.watches_stream(node_events, by_node);
    let timed_reconcile = |obj, ctx| timed("servicelb", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}
