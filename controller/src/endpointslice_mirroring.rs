//! The EndpointSlice mirroring controller (`endpointslicemirroring`): for a Service without a
//! selector, copies the user-managed Endpoints of the same name into EndpointSlices
//! (`managed-by: endpointslicemirroring-controller.k8s.io`, owned by the Service), one slice
//! group per subset port set and address family, ready and not-ready addresses with their
//! `ready` condition. Endpoints labelled `endpointslice.kubernetes.io/skip-mirror: "true"`
//! or holding a leader-election record are not mirrored; slices users create themselves
//! are never touched. Existing mirrored slices are updated in place.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use skiff_client::controller::drive;

use crate::Shutdown;
use crate::endpointslice::reconciler::{PortKey, new_slice, port_key};
use crate::endpointslice::rules::{
    Family, LAST_CHANGE_TRIGGER_TIME, MANAGED_BY_LABEL, SERVICE_NAME_LABEL,
};
use crate::error::{Error, Result, not_found};
use crate::metrics::timed;
use crate::replicaset::key_of;

/// The `managed-by` value of mirrored slices.
pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
/// Endpoints with this label set to `"true"` are not mirrored.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Most addresses mirrored from one subset (`--mirroring-max-endpoints-per-subset`).
pub const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What the mirroring reconciler shares between calls.
pub struct MirroringContext {
    client: Client,
}

fn should_mirror(ep: &Endpoints) -> bool {
    ep.labels().get(SKIP_MIRROR_LABEL).map(String::as_str) != Some("true")
        && !ep.annotations().contains_key(LEADER_ANNOTATION)
}

fn to_endpoint(a: &EndpointAddress, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![a.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            ..Default::default()
        }),
        hostname: a.hostname.clone().filter(|h| !h.is_empty()),
        node_name: a.node_name.clone(),
        target_ref: a.target_ref.clone(),
        ..Default::default()
    }
}

type GroupKey = (Family, PortKey);

/// The desired slices' contents: per (family, port set), endpoints in order, one per address.
fn desired(ep: &Endpoints) -> BTreeMap<GroupKey, (Vec<EndpointPort>, Vec<Endpoint>)> {
    let mut out: BTreeMap<GroupKey, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for ss in ep.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = ss
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let key_ports = port_key(&ports);
        let ready = ss.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = ss.not_ready_addresses.iter().flatten().map(|a| (a, false));
        for (a, is_ready) in ready.chain(not_ready).take(MAX_ENDPOINTS_PER_SUBSET) {
            let Ok(ip) = a.ip.parse::<IpAddr>() else {
                continue;
            };
            let group = out
                .entry((Family::of(&ip), key_ports.clone()))
                .or_insert_with(|| (ports.clone(), Vec::new()));
            if !group.1.iter().any(|e| e.addresses[0] == a.ip) {
                group.1.push(to_endpoint(a, is_ready));
            }
        }
    }
    out
}

/// Labels and annotations of a mirrored slice: the Endpoints' own, plus the reserved labels.
fn mirrored_meta(slice: &mut EndpointSlice, ep: &Endpoints, svc: &Service) {
    let mut labels = ep.labels().clone();
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    let mut annotations = ep.annotations().clone();
    annotations.remove(LAST_APPLIED);
    annotations.remove(LAST_CHANGE_TRIGGER_TIME);
    slice.metadata.labels = Some(labels);
    slice.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
}

fn slice_group(s: &EndpointSlice) -> Option<GroupKey> {
    let family = match s.address_type.as_str() {
        "IPv4" => Family::V4,
        "IPv6" => Family::V6,
        _ => return None,
    };
    let ports = port_key(s.ports.as_deref().unwrap_or_default());
    Some((family, ports))
}

/// Brings one selectorless Service's mirrored slices up to date.
async fn reconcile(svc: Arc<Service>, ctx: Arc<MirroringContext>) -> Result<Action> {
    let key = key_of(svc.as_ref());
    let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
    let slices = Api::<EndpointSlice>::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={CONTROLLER_NAME}");
    let existing = slices
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::api(key.clone()))?
        .items;
    let has_selector = svc.spec.as_ref().is_some_and(|s| s.selector.is_some());
    let endpoints = if has_selector {
        None
    } else {
        Api::<Endpoints>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&name)
            .await
            .map_err(Error::api(key.clone()))?
            .filter(should_mirror)
    };
    let wanted = endpoints.as_ref().map(desired).unwrap_or_default();

    let mut by_group: BTreeMap<GroupKey, Vec<EndpointSlice>> = BTreeMap::new();
    let mut to_delete = Vec::new();
    for s in existing {
        match slice_group(&s).filter(|g| wanted.contains_key(g)) {
            Some(g) => by_group.entry(g).or_default().push(s),
            None => to_delete.push(s),
        }
    }
    for (group, (ports, eps)) in wanted {
        let mut current = by_group.remove(&group).unwrap_or_default();
        current.sort_by_key(|s| s.name_any());
        let ep = endpoints.as_ref().expect("wanted implies endpoints");
        for (i, chunk) in eps.chunks(MAX_ENDPOINTS_PER_SUBSET).enumerate() {
            let mut slice = match current.get(i) {
                Some(s) => s.clone(),
                None => new_slice(&svc, group.0, ports.clone()),
            };
            let before = slice.clone();
            slice.endpoints = chunk.to_vec();
            slice.ports = Some(ports.clone());
            mirrored_meta(&mut slice, ep, &svc);
            if slice.metadata.name.is_none() {
                slices
                    .create(&PostParams::default(), &slice)
                    .await
                    .map_err(Error::api(key.clone()))?;
            } else if slice != before {
                slices
                    .replace(&slice.name_any(), &PostParams::default(), &slice)
                    .await
                    .map_err(Error::api(key.clone()))?;
            }
        }
        let used = eps.len().div_ceil(MAX_ENDPOINTS_PER_SUBSET);
        to_delete.extend(current.into_iter().skip(used));
    }
    to_delete.extend(by_group.into_values().flatten());
    for s in to_delete {
        match slices.delete(&s.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(Error::api(format!("{ns}/{}", s.name_any()))(e)),
        }
    }
    Ok(Action::await_change())
}

fn error_policy(svc: Arc<Service>, err: &Error, _ctx: Arc<MirroringContext>) -> Action {
    tracing::warn!(service = %key_of(svc.as_ref()), error = %err, "endpoint slice mirroring failed");
    Action::requeue(Duration::from_millis(500))
}

/// Runs the mirroring controller until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let slices_config =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={CONTROLLER_NAME}"));
    let controller = controller
        .owns(Api::<EndpointSlice>::all(client.clone()), slices_config)
        .watches(
            Api::<Endpoints>::all(client.clone()),
            watcher::Config::default(),
            |ep: Endpoints| {
                Some(
                    ObjectRef::<Service>::new(&ep.name_any())
                        .within(&ep.namespace().unwrap_or_default()),
                )
            },
        );
    let ctx = Arc::new(MirroringContext { client });
    let timed_reconcile = |obj, ctx| timed("endpointslicemirroring", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}
