//! Endpoints (core/v1) and EndpointSlices (discovery.k8s.io/v1): their defaults (ports
//! default to TCP, slice port names to ""), validation as `ValidateEndpoints` and
//! `ValidateEndpointSlice` word it (addresses valid and not special, an immutable
//! `addressType`, at most 1000 endpoints per slice, unique port names, hints), and the
//! `NAME ENDPOINTS AGE` / `NAME ADDRESSTYPE PORTS ENDPOINTS AGE` tables.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, Endpoints};
use k8s_openapi::api::discovery::v1::{self as discovery, EndpointSlice};
use serde_json::{Value, json};
use skiff_api::validation::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_ip, is_valid_label_value,
    is_valid_port_num, validate_labels,
};

use super::table::{AGE, NAME, age, col, list_with_more, name};
use super::{Column, Strategy, decode, decode_for_validation, with_typed};
use crate::error::Cause;

/// Strategy for core/v1 endpoints.
pub struct EndpointsStrategy;
/// Strategy for discovery.k8s.io/v1 endpoint slices.
pub struct EndpointSliceStrategy;

/// Protocols an endpoint port may carry, sorted as Kubernetes lists them.
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
/// Address types an EndpointSlice may carry, sorted as Kubernetes lists them.
const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
/// `maxEndpoints`: endpoints in one slice.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 1000;
/// `maxAddresses`: addresses of one endpoint.
const MAX_ADDRESSES: usize = 100;
/// `maxPorts`: ports of one slice (raised from 100 in Kubernetes 1.21 so a Service with many
/// ports still fits one slice).
const MAX_PORTS: usize = 20_000;
/// `maxTopologyLabels`: entries of `deprecatedTopology`.
const MAX_TOPOLOGY_LABELS: usize = 16;
/// `maxZoneHints` and `maxNodeHints`.
const MAX_HINTS: usize = 8;

/// `field.TooMany`: `Too many: <n>: must have at most <max> items`.
fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Cause {
    Cause {
        reason: "FieldValueTooMany",
        field: field.into(),
        message: format!("Too many: {actual}: must have at most {max} items"),
    }
}

/// Pushes one `Invalid` cause per message.
fn invalid_each(out: &mut Vec<Cause>, field: &str, value: &str, msgs: Vec<String>) {
    out.extend(
        msgs.into_iter()
            .map(|m| Cause::invalid(field, &json!(value), m)),
    );
}

/// Go's `ParseIPSloppy`: IPv4 octets may carry leading zeros (read as decimal), and an
/// IPv4-mapped IPv6 address counts as IPv4.
fn parse_ip_sloppy(v: &str) -> Option<IpAddr> {
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        });
    }
    if !is_valid_ip(v).is_empty() {
        return None;
    }
    let octets: Vec<u8> = v.split('.').filter_map(|p| p.parse().ok()).collect();
    let [a, b, c, d] = octets[..] else {
        return None;
    };
    Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
}

/// `ValidateEndpointIP`: unspecified, loopback and link-local addresses cannot be endpoints.
fn validate_endpoint_ip(ip: &str, field: &str) -> Vec<Cause> {
    let Some(addr) = parse_ip_sloppy(ip) else {
        return vec![Cause::invalid(
            field,
            &json!(ip),
            "must be a valid IP address",
        )];
    };
    let (unspecified, loopback, link_local, link_local_multicast) = match addr {
        IpAddr::V4(a) => (
            a.is_unspecified(),
            a.is_loopback(),
            a.is_link_local(),
            a.octets()[..3] == [224, 0, 0],
        ),
        IpAddr::V6(a) => {
            let s = a.segments();
            (
                a.is_unspecified(),
                a.is_loopback(),
                s[0] & 0xffc0 == 0xfe80,
                s[0] & 0xff0f == 0xff02,
            )
        }
    };
    let mut out = Vec::new();
    let mut bad = |cond: bool, msg: String| {
        if cond {
            out.push(Cause::invalid(field, &json!(ip), msg));
        }
    };
    bad(unspecified, format!("may not be unspecified ({ip})"));
    bad(
        loopback,
        "may not be in the loopback range (127.0.0.0/8, ::1/128)".into(),
    );
    bad(
        link_local,
        "may not be in the link-local range (169.254.0.0/16, fe80::/10)".into(),
    );
    bad(
        link_local_multicast,
        "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)".into(),
    );
    out
}

/// `ValidateNodeName`: a DNS-1123 subdomain.
fn validate_node_name(node: &str, field: &str, out: &mut Vec<Cause>) {
    invalid_each(out, field, node, is_dns1123_subdomain(node));
}

fn validate_protocol(protocol: Option<&str>, field: String, out: &mut Vec<Cause>) {
    match protocol {
        None | Some("") => out.push(Cause::required(field)),
        Some(p) if !PROTOCOLS.contains(&p) => {
            out.push(Cause::not_supported(field, &json!(p), PROTOCOLS));
        }
        Some(_) => {}
    }
}

fn validate_app_protocol(app: Option<&str>, field: String, out: &mut Vec<Cause>) {
    if let Some(app) = app {
        invalid_each(out, &field, app, is_qualified_name(app));
    }
}

// ---- core/v1 Endpoints ----

/// `SetDefaults_Endpoints`: every port's protocol defaults to TCP.
fn default_endpoints(ep: &mut Endpoints) {
    for port in ep
        .subsets
        .iter_mut()
        .flatten()
        .flat_map(|s| s.ports.iter_mut().flatten())
    {
        if port.protocol.as_deref().unwrap_or("").is_empty() {
            port.protocol = Some("TCP".into());
        }
    }
}

/// `validateEndpointSubsets`.
fn validate_endpoints(ep: &Endpoints) -> Vec<Cause> {
    let mut out = Vec::new();
    for (i, ss) in ep.subsets.iter().flatten().enumerate() {
        let path = format!("subsets[{i}]");
        let ready = ss.addresses.as_deref().unwrap_or_default();
        let not_ready = ss.not_ready_addresses.as_deref().unwrap_or_default();
        if ready.is_empty() && not_ready.is_empty() {
            out.push(Cause::required_detail(
                path.clone(),
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (j, a) in ready.iter().enumerate() {
            validate_endpoint_address(a, &format!("{path}.addresses[{j}]"), &mut out);
        }
        for (j, a) in not_ready.iter().enumerate() {
            validate_endpoint_address(a, &format!("{path}.notReadyAddresses[{j}]"), &mut out);
        }
        let ports = ss.ports.as_deref().unwrap_or_default();
        for (j, p) in ports.iter().enumerate() {
            validate_endpoint_port(p, ports.len() > 1, &format!("{path}.ports[{j}]"), &mut out);
        }
    }
    out
}

/// `validateEndpointAddress`.
fn validate_endpoint_address(a: &EndpointAddress, path: &str, out: &mut Vec<Cause>) {
    let ip_field = format!("{path}.ip");
    invalid_each(out, &ip_field, &a.ip, is_valid_ip(&a.ip));
    if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
        invalid_each(out, &format!("{path}.hostname"), h, is_dns1123_label(h));
    }
    if let Some(node) = &a.node_name {
        validate_node_name(node, &format!("{path}.nodeName"), out);
    }
    out.extend(validate_endpoint_ip(&a.ip, &ip_field));
}

/// `validateEndpointPort`: a name is required once a subset has more than one port.
fn validate_endpoint_port(p: &EndpointPort, require_name: bool, path: &str, out: &mut Vec<Cause>) {
    let name = p.name.as_deref().unwrap_or("");
    if require_name && name.is_empty() {
        out.push(Cause::required(format!("{path}.name")));
    } else if !name.is_empty() {
        invalid_each(out, &format!("{path}.name"), name, is_dns1123_label(name));
    }
    for msg in is_valid_port_num(p.port.into()) {
        out.push(Cause::invalid(format!("{path}.port"), &json!(p.port), msg));
    }
    validate_protocol(p.protocol.as_deref(), format!("{path}.protocol"), out);
    validate_app_protocol(
        p.app_protocol.as_deref(),
        format!("{path}.appProtocol"),
        out,
    );
}

impl Strategy for EndpointsStrategy {
    fn default(&self, obj: &mut Value) {
        with_typed(obj, default_endpoints);
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        decode_for_validation::<Endpoints>(obj)
            .map(|e| validate_endpoints(&e))
            .unwrap_or_else(|c| c)
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Endpoints", "string", "Endpoints of the service"),
            AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        endpoints_cells(obj, Timestamp::now())
    }
}

/// `formatEndpoints`: up to three ready `ip:port` pairs, then ` + N more...`; `<none>`
/// without subsets (a subset of only not-ready addresses prints as empty, as kubectl does).
fn endpoints_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ep: Endpoints = decode(obj).unwrap_or_default();
    let subsets = ep.subsets.unwrap_or_default();
    let mut list = Vec::new();
    for ss in &subsets {
        let addrs = ss.addresses.as_deref().unwrap_or_default();
        match ss.ports.as_deref() {
            None | Some([]) => list.extend(addrs.iter().map(|a| a.ip.clone())),
            Some(ports) => {
                for p in ports {
                    for a in addrs {
                        let host = if a.ip.contains(':') {
                            format!("[{}]", a.ip)
                        } else {
                            a.ip.clone()
                        };
                        list.push(format!("{host}:{}", p.port));
                    }
                }
            }
        }
    }
    let cell = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        list_with_more(&list, 3, "")
    };
    vec![name(obj), json!(cell), age(obj, now)]
}

// ---- discovery.k8s.io/v1 EndpointSlice ----

/// `SetDefaults_EndpointPort` (discovery/v1): the name defaults to "", the protocol to TCP.
fn default_slice(es: &mut EndpointSlice) {
    for p in es.ports.iter_mut().flatten() {
        p.name.get_or_insert_with(String::new);
        p.protocol.get_or_insert_with(|| "TCP".into());
    }
}

/// `ValidateEndpointSlice` (metadata is validated generically).
fn validate_slice(es: &EndpointSlice) -> Vec<Cause> {
    let mut out = Vec::new();
    let addr_type = es.address_type.as_str();
    if addr_type.is_empty() {
        out.push(Cause::required("addressType"));
    } else if !ADDRESS_TYPES.contains(&addr_type) {
        out.push(Cause::not_supported(
            "addressType",
            &json!(addr_type),
            ADDRESS_TYPES,
        ));
    }
    validate_slice_endpoints(&es.endpoints, addr_type, &mut out);
    validate_slice_ports(es.ports.as_deref().unwrap_or_default(), &mut out);
    out
}

fn validate_slice_endpoints(
    endpoints: &[discovery::Endpoint],
    addr_type: &str,
    out: &mut Vec<Cause>,
) {
    if endpoints.len() > MAX_ENDPOINTS_PER_SLICE {
        out.push(too_many(
            "endpoints",
            endpoints.len(),
            MAX_ENDPOINTS_PER_SLICE,
        ));
        return;
    }
    for (i, ep) in endpoints.iter().enumerate() {
        let path = format!("endpoints[{i}]");
        let addr_path = format!("{path}.addresses");
        if ep.addresses.is_empty() {
            out.push(Cause::required_detail(
                addr_path.clone(),
                "must contain at least 1 address",
            ));
        } else if ep.addresses.len() > MAX_ADDRESSES {
            out.push(too_many(
                addr_path.clone(),
                ep.addresses.len(),
                MAX_ADDRESSES,
            ));
        }
        for (j, a) in ep.addresses.iter().enumerate() {
            let field = format!("{addr_path}[{j}]");
            validate_slice_address(a, addr_type, &field, out);
        }
        if let Some(node) = &ep.node_name {
            validate_node_name(node, &format!("{path}.nodeName"), out);
        }
        if let Some(topo) = &ep.deprecated_topology {
            let field = format!("{path}.deprecatedTopology");
            if topo.len() > MAX_TOPOLOGY_LABELS {
                out.push(too_many(field.clone(), topo.len(), MAX_TOPOLOGY_LABELS));
            }
            out.extend(validate_labels(&json!(topo), &field));
        }
        if let Some(h) = &ep.hostname {
            invalid_each(out, &format!("{path}.hostname"), h, is_dns1123_label(h));
        }
        if let Some(hints) = &ep.hints {
            validate_hints(hints, &format!("{path}.hints"), out);
        }
    }
}

/// One address of a slice, checked against the slice's type (unknown types are not checked).
fn validate_slice_address(a: &str, addr_type: &str, field: &str, out: &mut Vec<Cause>) {
    match addr_type {
        "IPv4" | "IPv6" => {
            let v4 = addr_type == "IPv4";
            let fits = parse_ip_sloppy(a).is_some_and(|ip| ip.is_ipv4() == v4);
            if !fits {
                let msg = if v4 {
                    "must be a valid IPv4 address"
                } else {
                    "must be a valid IPv6 address"
                };
                out.push(Cause::invalid(field, &json!(a), msg));
            }
            out.extend(validate_endpoint_ip(a, field));
        }
        "FQDN" => {
            if let Some(c) = fqdn_cause(a, field) {
                out.push(c);
            }
        }
        _ => {}
    }
}

/// `IsFullyQualifiedDomainName`.
fn fqdn_cause(name: &str, field: &str) -> Option<Cause> {
    if name.is_empty() {
        return Some(Cause::required(field));
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let errs = is_dns1123_subdomain(name);
    if !errs.is_empty() {
        return Some(Cause::invalid(field, &json!(name), errs.join(",")));
    }
    if name.split('.').count() < 2 {
        return Some(Cause::invalid(
            field,
            &json!(name),
            "should be a domain with at least two segments separated by dots",
        ));
    }
    name.split('.').find_map(|label| {
        let errs = is_dns1123_label(label);
        (!errs.is_empty()).then(|| Cause::invalid(field, &json!(label), errs.join(",")))
    })
}

/// `validateHints`: at most 8 zone and 8 node hints, each unique and well formed.
fn validate_hints(hints: &discovery::EndpointHints, path: &str, out: &mut Vec<Cause>) {
    let zones: Vec<&str> = hints
        .for_zones
        .iter()
        .flatten()
        .map(|z| z.name.as_str())
        .collect();
    let nodes: Vec<&str> = hints
        .for_nodes
        .iter()
        .flatten()
        .map(|n| n.name.as_str())
        .collect();
    let check =
        |names: &[&str], list: &str, out: &mut Vec<Cause>, rule: fn(&str) -> Vec<String>| {
            let list_path = format!("{path}.{list}");
            if names.len() > MAX_HINTS {
                out.push(too_many(list_path, names.len(), MAX_HINTS));
                return;
            }
            let mut seen = HashSet::new();
            for (i, n) in names.iter().enumerate() {
                let field = format!("{list_path}[{i}].name");
                if !seen.insert(*n) {
                    out.push(Cause::duplicate(&field, &json!(n)));
                }
                invalid_each(out, &field, n, rule(n));
            }
        };
    check(&zones, "forZones", out, is_valid_label_value);
    check(&nodes, "forNodes", out, is_dns1123_subdomain);
}

/// `validatePorts`: unique names (DNS-1123 labels or empty), a protocol, a qualified
/// `appProtocol`.
fn validate_slice_ports(ports: &[discovery::EndpointPort], out: &mut Vec<Cause>) {
    if ports.len() > MAX_PORTS {
        out.push(too_many("ports", ports.len(), MAX_PORTS));
        return;
    }
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("ports[{i}]");
        let name = p.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            invalid_each(out, &format!("{path}.name"), name, is_dns1123_label(name));
        }
        if !names.insert(name) {
            out.push(Cause::duplicate(format!("{path}.name"), &json!(name)));
        }
        validate_protocol(p.protocol.as_deref(), format!("{path}.protocol"), out);
        validate_app_protocol(
            p.app_protocol.as_deref(),
            format!("{path}.appProtocol"),
            out,
        );
    }
}

impl Strategy for EndpointSliceStrategy {
    fn default(&self, obj: &mut Value) {
        with_typed(obj, default_slice);
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        decode_for_validation::<EndpointSlice>(obj)
            .map(|e| validate_slice(&e))
            .unwrap_or_else(|c| c)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let new_type = new.get("addressType").cloned().unwrap_or(Value::Null);
        if new_type != old.get("addressType").cloned().unwrap_or(Value::Null) {
            return vec![Cause::immutable("addressType", &new_type)];
        }
        Vec::new()
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("AddressType", "string", "The IP protocol for this slice"),
            col("Ports", "string", "The ports for this slice"),
            col("Endpoints", "string", "The endpoints for this slice"),
            AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        endpointslice_cells(obj, Timestamp::now())
    }
}

/// `printEndpointSlice`: up to three ports (number, else name, else `*`) and addresses.
fn endpointslice_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let es: EndpointSlice = decode(obj).unwrap_or_default();
    let ports: Vec<String> = es
        .ports
        .iter()
        .flatten()
        .map(|p| match (p.port, &p.name) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.clone(),
            _ => "*".into(),
        })
        .collect();
    let addrs: Vec<String> = es
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.clone())
        .collect();
    vec![
        name(obj),
        json!(es.address_type),
        json!(list_with_more(&ports, 3, "<unset>")),
        json!(list_with_more(&addrs, 3, "<unset>")),
        age(obj, now),
    ]
}

#[cfg(test)]
#[path = "endpoints_tests.rs"]
mod tests;
