//! The EndpointSlice plan for one Service, as Kubernetes' reconciler computes it: desired
//! endpoints grouped by address type and resolved port set, compared with the existing
//! slices so that endpoints stay in the slice they are in, changed slices are updated in
//! place and filled up first, leftovers go to the unchanged slice that they fill best, and
//! only then new slices are made; a slice about to be deleted is reused for a new one, and a
//! Service without endpoints keeps one empty placeholder slice.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointHints, EndpointPort, EndpointSlice, ForNode, ForZone,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

use super::rules::{
    self, Family, HEADLESS_LABEL, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, ZONE_LABEL,
};

/// The `managed-by` value of the slices this controller writes.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";

/// What to write for one Service.
#[derive(Debug, Default)]
pub struct Plan {
    /// New slices (with `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Existing slices with new content.
    pub update: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<EndpointSlice>,
    /// Pods left out because their Node is not known yet (the Service is retried).
    pub missing_nodes: usize,
}

/// The key that identifies one endpoint across syncs: its addresses, hostname and pod.
type EndpointKey = (Vec<String>, Option<String>, Option<String>, Option<String>);

fn endpoint_key(ep: &Endpoint) -> EndpointKey {
    let mut addrs = ep.addresses.clone();
    addrs.sort();
    let (ns, name) = ep
        .target_ref
        .as_ref()
        .map(|r| (r.namespace.clone(), r.name.clone()))
        .unwrap_or_default();
    (addrs, ep.hostname.clone(), ns, name)
}

/// A port set in canonical order, as a grouping key.
pub(crate) fn port_key(
    ports: &[EndpointPort],
) -> Vec<(String, Option<i32>, String, Option<String>)> {
    let mut key: Vec<_> = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port,
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect();
    key.sort();
    key
}

/// A canonical port set.
pub(crate) type PortKey = Vec<(String, Option<i32>, String, Option<String>)>;

/// The desired endpoints of one port set, by key, in a stable order.
struct Desired {
    ports: Vec<EndpointPort>,
    endpoints: BTreeMap<EndpointKey, Endpoint>,
}

/// Everything the plan is computed from.
pub struct Inputs<'a> {
    /// The Service.
    pub service: &'a Service,
    /// The pods its selector matches.
    pub pods: &'a [&'a Pod],
    /// Nodes by name (for zones).
    pub nodes: &'a HashMap<String, &'a Node>,
    /// The slices labelled for this Service and managed by this controller.
    pub existing: &'a [EndpointSlice],
    /// `--max-endpoints-per-slice`.
    pub max_per_slice: usize,
}

/// The endpoint of `pod` for `svc` in one address family; `None` without an address of
/// that family.
pub fn pod_to_endpoint(
    pod: &Pod,
    node: Option<&Node>,
    svc: &Service,
    family: Family,
) -> Option<Endpoint> {
    let addresses = rules::pod_addresses(pod, family);
    if addresses.is_empty() {
        return None;
    }
    let c = rules::conditions(pod, svc);
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let zone = node
        .and_then(|n| n.labels().get(ZONE_LABEL).cloned())
        .filter(|z| !z.is_empty());
    let hints = traffic_hints(svc, zone.as_deref(), node_name.as_deref());
    Some(Endpoint {
        addresses,
        conditions: Some(EndpointConditions {
            ready: Some(c.ready),
            serving: Some(c.serving),
            terminating: Some(c.terminating),
        }),
        target_ref: Some(rules::target_ref(pod)),
        node_name,
        zone,
        hostname: rules::hostname_for(pod, svc),
        hints,
        ..Default::default()
    })
}

/// Hints for `spec.trafficDistribution`: `PreferClose`/`PreferSameZone` hint the endpoint's
/// own zone, `PreferSameNode` also its node.
fn traffic_hints(svc: &Service, zone: Option<&str>, node: Option<&str>) -> Option<EndpointHints> {
    let dist = svc.spec.as_ref()?.traffic_distribution.as_deref()?;
    let zone = zone?;
    let for_zones = Some(vec![ForZone { name: zone.into() }]);
    match dist {
        "PreferClose" | "PreferSameZone" => Some(EndpointHints {
            for_zones,
            for_nodes: None,
        }),
        "PreferSameNode" => Some(EndpointHints {
            for_zones,
            for_nodes: node.map(|n| vec![ForNode { name: n.into() }]),
        }),
        _ => None,
    }
}

fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    rules::resolve_ports(svc, pod)
        .into_iter()
        .map(|p| EndpointPort {
            name: Some(p.name),
            port: Some(p.port),
            protocol: Some(p.protocol),
            app_protocol: p.app_protocol,
        })
        .collect()
}

/// Whether a slice's owner is this Service (by uid).
fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    let uid = svc.uid().unwrap_or_default();
    slice
        .owner_references()
        .iter()
        .any(|o| o.uid == uid && o.kind == "Service" && o.api_version == "v1")
}

/// `setEndpointSliceLabels`: the Service's labels (reserved keys skipped) plus the reserved
/// ones; the flag says whether the non-reserved labels differ from the slice's.
fn slice_labels(slice: &EndpointSlice, svc: &Service) -> (BTreeMap<String, String>, bool) {
    let reserved = |k: &str| [SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL].contains(&k);
    let current: BTreeMap<_, _> = slice
        .labels()
        .iter()
        .filter(|(k, _)| !reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut labels: BTreeMap<_, _> = svc
        .labels()
        .iter()
        .filter(|(k, _)| !reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let changed = current != labels;
    if !rules::is_service_ip_set(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    (labels, changed)
}

/// `getEndpointSlicePrefix`: `<service>-` (the Service name alone if that would not be a
/// valid name prefix).
fn name_prefix(svc: &str) -> String {
    if svc.len() < 253 {
        format!("{svc}-")
    } else {
        svc.to_string()
    }
}

/// A new, empty slice for the Service.
pub fn new_slice(svc: &Service, family: Family, ports: Vec<EndpointPort>) -> EndpointSlice {
    let mut slice = EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(name_prefix(&svc.name_any())),
            namespace: svc.namespace(),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                name: svc.name_any(),
                uid: svc.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        address_type: family.address_type().into(),
        endpoints: Vec::new(),
        ports: Some(ports),
    };
    let (labels, _) = slice_labels(&slice, svc);
    slice.metadata.labels = Some(labels);
    slice
}

/// Computes the plan for one Service.
pub fn plan(inputs: &Inputs<'_>) -> Plan {
    let svc = inputs.service;
    let families = rules::service_families(svc);
    let mut out = Plan::default();
    let mut by_family: BTreeMap<Family, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in inputs.existing {
        match families
            .iter()
            .find(|f| f.address_type() == slice.address_type)
        {
            Some(f) => by_family.entry(*f).or_default().push(slice),
            None => out.delete.push(slice.clone()),
        }
    }
    for family in &families {
        let existing = by_family.remove(family).unwrap_or_default();
        plan_family(inputs, *family, &existing, &mut out);
    }
    out
}

fn plan_family(inputs: &Inputs<'_>, family: Family, existing: &[&EndpointSlice], out: &mut Plan) {
    let svc = inputs.service;
    let mut to_delete: Vec<EndpointSlice> = Vec::new();
    let mut existing_by_ports: BTreeMap<PortKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        if owned_by(slice, svc) {
            let key = port_key(slice.ports.as_deref().unwrap_or_default());
            existing_by_ports.entry(key).or_default().push(slice);
        } else {
            to_delete.push((*slice).clone());
        }
    }

    let mut desired: BTreeMap<PortKey, Desired> = BTreeMap::new();
    for pod in inputs.pods {
        if !rules::should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let node = inputs.nodes.get(&node_name).copied();
        if node.is_none() && !rules::publish_not_ready(svc) {
            out.missing_nodes += 1;
            continue;
        }
        let Some(ep) = pod_to_endpoint(pod, node, svc, family) else {
            continue;
        };
        let ports = endpoint_ports(svc, pod);
        let group = desired.entry(port_key(&ports)).or_insert_with(|| Desired {
            ports,
            endpoints: BTreeMap::new(),
        });
        group.endpoints.insert(endpoint_key(&ep), ep);
    }

    let mut to_create = Vec::new();
    let mut to_update = Vec::new();
    for (key, group) in desired.iter_mut() {
        let slices = existing_by_ports.get(key).cloned().unwrap_or_default();
        let (c, u, d) = plan_ports(inputs, family, &slices, group);
        to_create.extend(c);
        to_update.extend(u);
        to_delete.extend(d);
    }
    for (key, slices) in &existing_by_ports {
        if !desired.contains_key(key) {
            to_delete.extend(slices.iter().map(|s| (*s).clone()));
        }
    }

    // A Service with no endpoints keeps exactly one empty slice.
    if existing.len() == to_delete.len() && to_create.is_empty() {
        let placeholder = new_slice(svc, family, Vec::new());
        let keep = to_delete.len() == 1 && is_placeholder_of(&to_delete[0], &placeholder);
        if keep {
            to_delete.clear();
        } else {
            to_create.push(placeholder);
        }
    }

    // Reuse slices about to be deleted for the new ones: an update instead of a create
    // and a delete.
    let mut i = 0;
    while i < to_delete.len() && !to_create.is_empty() {
        let old = &to_delete[i];
        if old.address_type == family.address_type() && owned_by(old, svc) {
            let mut slice = to_create.pop().expect("checked non-empty");
            slice.metadata = ObjectMeta {
                labels: slice.metadata.labels.take(),
                ..old.metadata.clone()
            };
            to_update.push(slice);
            to_delete.remove(i);
        } else {
            i += 1;
        }
    }
    out.create.extend(to_create);
    out.update.extend(to_update);
    out.delete.extend(to_delete);
}

/// `placeholderSliceCompare`: same namespace, labels, owner, type, no ports or endpoints.
fn is_placeholder_of(slice: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    slice.endpoints.is_empty()
        && slice.ports.as_deref().unwrap_or_default().is_empty()
        && slice.address_type == placeholder.address_type
        && slice.metadata.namespace == placeholder.metadata.namespace
        && slice.metadata.labels == placeholder.metadata.labels
        && slice.metadata.owner_references == placeholder.metadata.owner_references
}

/// `reconcileByPortMapping`: the slices of one port set to create, update and delete.
fn plan_ports(
    inputs: &Inputs<'_>,
    family: Family,
    existing: &[&EndpointSlice],
    group: &mut Desired,
) -> (Vec<EndpointSlice>, Vec<EndpointSlice>, Vec<EndpointSlice>) {
    let svc = inputs.service;
    let max = inputs.max_per_slice;
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut updated: BTreeSet<String> = BTreeSet::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();

    // 1. Keep desired endpoints where they are; drop the others.
    for slice in existing {
        let name = slice.name_any();
        let mut kept = Vec::new();
        let mut changed = false;
        for ep in &slice.endpoints {
            if let Some(want) = group.endpoints.remove(&endpoint_key(ep)) {
                changed |= &want != ep;
                kept.push(want);
            }
        }
        let (labels, labels_changed) = slice_labels(slice, svc);
        if changed || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                deleted.insert(name.clone());
                by_name.insert(name, (*slice).clone());
            } else {
                let mut s = (*slice).clone();
                s.endpoints = kept;
                s.metadata.labels = Some(labels);
                updated.insert(name.clone());
                by_name.insert(name, s);
            }
        } else if labels_changed {
            let mut s = (*slice).clone();
            s.metadata.labels = Some(labels);
            updated.insert(name.clone());
            by_name.insert(name, s);
        } else {
            unchanged.insert(name.clone());
            by_name.insert(name, (*slice).clone());
        }
    }

    let mut remaining: Vec<Endpoint> = std::mem::take(&mut group.endpoints).into_values().collect();
    remaining.reverse(); // popped from the back, so new endpoints go in key order

    // 2. Fill the slices being updated anyway, fullest first.
    let mut order: Vec<String> = updated.iter().cloned().collect();
    order.sort_by_key(|n| std::cmp::Reverse(by_name[n].endpoints.len()));
    for name in order {
        let slice = by_name.get_mut(&name).expect("named slice");
        while slice.endpoints.len() < max {
            let Some(ep) = remaining.pop() else { break };
            slice.endpoints.push(ep);
        }
    }

    // 3. Put what is left in the unchanged slice it fills best, else in new slices.
    let mut create = Vec::new();
    while !remaining.is_empty() {
        let fill = if remaining.len() < max {
            slice_to_fill(&unchanged, &by_name, remaining.len(), max)
        } else {
            None
        };
        let mut slice = match &fill {
            Some(name) => by_name[name].clone(),
            None => new_slice(svc, family, group.ports.clone()),
        };
        while slice.endpoints.len() < max {
            let Some(ep) = remaining.pop() else { break };
            slice.endpoints.push(ep);
        }
        match fill {
            Some(name) => {
                unchanged.remove(&name);
                updated.insert(name.clone());
                by_name.insert(name, slice);
            }
            None => create.push(slice),
        }
    }

    let update = updated.iter().map(|n| by_name[n].clone()).collect();
    let delete = deleted.iter().map(|n| by_name[n].clone()).collect();
    (create, update, delete)
}

/// `getSliceToFill`: the unchanged slice left closest to full by `n` more endpoints.
fn slice_to_fill(
    unchanged: &BTreeSet<String>,
    by_name: &BTreeMap<String, EndpointSlice>,
    n: usize,
    max: usize,
) -> Option<String> {
    unchanged
        .iter()
        .filter_map(|name| {
            let len = by_name[name].endpoints.len();
            (len + n <= max).then(|| (max - (len + n), name))
        })
        .min_by_key(|(diff, _)| *diff)
        .map(|(_, name)| name.clone())
}

#[cfg(test)]
#[path = "reconciler_tests.rs"]
mod tests;
