//! Services: defaults (`SetDefaults_Service` and the single-stack IP family fields),
//! validation and the fixed cluster IP, and the table.

use std::collections::HashSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};
use skiff_api::validation::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_ip, is_valid_label_value,
    is_valid_port_name, is_valid_port_num,
};

use super::table::{AGE, NAME, age, col, format_labels, name, wide};
use super::{Column, Strategy, decode, decode_for_validation, with_typed};
use crate::error::Cause;

/// Strategy for core/v1 services.
pub struct ServiceStrategy;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn svc_type(spec: &ServiceSpec) -> &str {
    spec.type_.as_deref().unwrap_or("ClusterIP")
}

fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some("None")
}

fn default_service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(Default::default);
    if spec.session_affinity.as_deref().unwrap_or("").is_empty() {
        spec.session_affinity = Some("None".into());
    }
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            let cfg = spec
                .session_affinity_config
                .get_or_insert_with(Default::default);
            let ip = cfg.client_ip.get_or_insert_with(Default::default);
            ip.timeout_seconds.get_or_insert(10800);
        }
        _ => {}
    }
    if spec.type_.as_deref().unwrap_or("").is_empty() {
        spec.type_ = Some("ClusterIP".into());
    }
    for p in spec.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
        let unset = match &p.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset {
            p.target_port = Some(IntOrString::Int(p.port));
        }
    }
    let ty = svc_type(spec).to_string();
    let externally_accessible = ty == "NodePort"
        || ty == "LoadBalancer"
        || (ty == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|e| !e.is_empty()));
    if externally_accessible
        && spec
            .external_traffic_policy
            .as_deref()
            .unwrap_or("")
            .is_empty()
    {
        spec.external_traffic_policy = Some("Cluster".into());
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        spec.internal_traffic_policy
            .get_or_insert_with(|| "Cluster".into());
    }
    if ty == "LoadBalancer" {
        spec.allocate_load_balancer_node_ports.get_or_insert(true);
    }
    // `ipFamilyPolicy` and `ipFamilies` depend on the cluster's service CIDRs: the
    // allocator (crate::alloc) fills them, as kube-apiserver's Service REST storage does.
    match (&spec.cluster_ip, &spec.cluster_ips) {
        (Some(ip), None) if !ip.is_empty() => spec.cluster_ips = Some(vec![ip.clone()]),
        (None, Some(ips)) if !ips.is_empty() => spec.cluster_ip = Some(ips[0].clone()),
        _ => {}
    }
}

fn validate_service(svc: &Service) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = svc.spec.clone().unwrap_or_default();
    let ty = svc_type(&spec);
    if !TYPES.contains(&ty) {
        out.push(Cause::not_supported("spec.type", &json!(ty), TYPES));
    }
    if ty == "ExternalName" {
        if !ip_list(&spec).is_empty() {
            out.push(Cause::forbidden(
                "spec.clusterIPs",
                "may not be set for type 'ExternalName'",
            ));
        }
        match spec.external_name.as_deref() {
            None | Some("") => out.push(Cause::required("spec.externalName")),
            Some(n) => {
                for msg in is_dns1123_subdomain(n.trim_end_matches('.')) {
                    out.push(Cause::invalid("spec.externalName", &json!(n), msg));
                }
            }
        }
    }
    for (i, ip) in ip_list(&spec).iter().enumerate() {
        if !(i == 0 && ip == "None") {
            for msg in is_valid_ip(ip) {
                out.push(Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    &json!(ip),
                    msg,
                ));
            }
        }
    }
    if is_headless(&spec) && matches!(ty, "NodePort" | "LoadBalancer") {
        out.push(Cause::invalid(
            "spec.clusterIPs[0]",
            &json!("None"),
            format!("may not be set to 'None' for {ty} services"),
        ));
    }
    let ports = spec.ports.clone().unwrap_or_default();
    if ports.is_empty() && !is_headless(&spec) && ty != "ExternalName" {
        out.push(Cause::required("spec.ports"));
    }
    let mut names = HashSet::new();
    let mut seen = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        match p.name.as_deref().filter(|n| !n.is_empty()) {
            None if ports.len() > 1 => out.push(Cause::required(format!("{at}.name"))),
            None => {}
            Some(n) => {
                for msg in is_dns1123_label(n) {
                    out.push(Cause::invalid(format!("{at}.name"), &json!(n), msg));
                }
                if !names.insert(n.to_string()) {
                    out.push(Cause::duplicate(format!("{at}.name"), &json!(n)));
                }
            }
        }
        for msg in is_valid_port_num(i64::from(p.port)) {
            out.push(Cause::invalid(format!("{at}.port"), &json!(p.port), msg));
        }
        let protocol = p.protocol.as_deref().unwrap_or("");
        match protocol {
            "" => out.push(Cause::required(format!("{at}.protocol"))),
            "TCP" | "UDP" | "SCTP" => {}
            other => out.push(Cause::not_supported(
                format!("{at}.protocol"),
                &json!(other),
                &["SCTP", "TCP", "UDP"],
            )),
        }
        match &p.target_port {
            Some(IntOrString::Int(t)) => {
                for msg in is_valid_port_num(i64::from(*t)) {
                    out.push(Cause::invalid(format!("{at}.targetPort"), &json!(t), msg));
                }
            }
            Some(IntOrString::String(s)) => {
                for msg in is_valid_port_name(s) {
                    out.push(Cause::invalid(format!("{at}.targetPort"), &json!(s), msg));
                }
            }
            None => {}
        }
        if let Some(np) = p.node_port.filter(|n| *n != 0) {
            if ty == "ClusterIP" {
                out.push(Cause::forbidden(
                    format!("{at}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else {
                for msg in is_valid_port_num(i64::from(np)) {
                    out.push(Cause::invalid(format!("{at}.nodePort"), &json!(np), msg));
                }
            }
        }
        if !seen.insert((protocol.to_string(), p.port)) {
            out.push(Cause::duplicate(
                at,
                &json!({"port": p.port, "protocol": protocol}),
            ));
        }
    }
    for (k, v) in spec.selector.iter().flatten() {
        for msg in is_qualified_name(k) {
            out.push(Cause::invalid("spec.selector", &json!(k), msg));
        }
        for msg in is_valid_label_value(v) {
            out.push(Cause::invalid("spec.selector", &json!(v), msg));
        }
    }
    match spec.session_affinity.as_deref().unwrap_or("") {
        "" => out.push(Cause::required("spec.sessionAffinity")),
        "None" | "ClientIP" => {}
        other => out.push(Cause::not_supported(
            "spec.sessionAffinity",
            &json!(other),
            &["ClientIP", "None"],
        )),
    }
    out
}

/// What a type change leaves behind, cleared when the update did not touch it (as
/// Kubernetes' `dropTypeDependentFields`): the cluster IPs of a Service turned
/// ExternalName, the node ports of one that no longer needs them, a health check port no
/// longer asked for. The allocator then releases them.
fn drop_type_dependent_fields(ns: &mut ServiceSpec, os: &ServiceSpec) {
    let (new_ty, old_ty) = (svc_type(ns).to_string(), svc_type(os));
    if new_ty == "ExternalName" && old_ty != "ExternalName" {
        if ns.cluster_ip == os.cluster_ip && ns.cluster_ips == os.cluster_ips {
            ns.cluster_ip = None;
            ns.cluster_ips = None;
        }
        if ns.ip_families == os.ip_families {
            ns.ip_families = None;
        }
        if ns.ip_family_policy == os.ip_family_policy {
            ns.ip_family_policy = None;
        }
    }
    let wants_node_ports = |s: &ServiceSpec| match svc_type(s) {
        "NodePort" => true,
        "LoadBalancer" => s.allocate_load_balancer_node_ports != Some(false),
        _ => false,
    };
    if !wants_node_ports(ns) {
        let old_ports: Vec<(i32, Option<String>, i32)> = os
            .ports
            .iter()
            .flatten()
            .map(|p| (p.port, p.protocol.clone(), p.node_port.unwrap_or(0)))
            .collect();
        for p in ns.ports.iter_mut().flatten() {
            let np = p.node_port.unwrap_or(0);
            if np != 0
                && old_ports
                    .iter()
                    .any(|(port, proto, onp)| *port == p.port && *proto == p.protocol && *onp == np)
                // A LoadBalancer without allocated node ports keeps what the user set.
                && new_ty != "LoadBalancer"
            {
                p.node_port = None;
            }
        }
    }
    let wants_health = |s: &ServiceSpec| {
        svc_type(s) == "LoadBalancer" && s.external_traffic_policy.as_deref() == Some("Local")
    };
    if !wants_health(ns) && ns.health_check_node_port == os.health_check_node_port {
        ns.health_check_node_port = None;
    }
    if new_ty != "LoadBalancer" {
        if ns.allocate_load_balancer_node_ports == os.allocate_load_balancer_node_ports {
            ns.allocate_load_balancer_node_ports = None;
        }
        if ns.load_balancer_class == os.load_balancer_class {
            ns.load_balancer_class = None;
        }
    }
}

fn ip_list(spec: &ServiceSpec) -> Vec<String> {
    match (&spec.cluster_ips, &spec.cluster_ip) {
        (Some(ips), _) if !ips.is_empty() => ips.clone(),
        (_, Some(ip)) if !ip.is_empty() => vec![ip.clone()],
        _ => Vec::new(),
    }
}

impl Strategy for ServiceStrategy {
    fn default(&self, obj: &mut Value) {
        with_typed::<Service>(obj, default_service);
    }

    fn prepare_create(&self, obj: &mut Value) {
        // ServiceStatus and its LoadBalancer are plain structs in Kubernetes' v1 types.
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), json!({"loadBalancer": {}}));
        }
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        // An update that leaves out the allocated IPs and node ports keeps them, as the
        // Service REST storage does (`kubectl replace` of the original manifest).
        let (Some(mut n), Some(o)) = (decode::<Service>(new), decode::<Service>(old)) else {
            return;
        };
        let (ns, os) = (
            n.spec.get_or_insert_with(Default::default),
            o.spec.unwrap_or_default(),
        );
        let keeps_ip = |s: &ServiceSpec| svc_type(s) != "ExternalName";
        if keeps_ip(ns) && keeps_ip(&os) && ns.cluster_ip.as_deref().unwrap_or("").is_empty() {
            ns.cluster_ip.clone_from(&os.cluster_ip);
            ns.cluster_ips.clone_from(&os.cluster_ips);
        }
        drop_type_dependent_fields(ns, &os);
        if svc_type(ns) != "ClusterIP" && svc_type(ns) != "ExternalName" {
            for p in ns.ports.iter_mut().flatten() {
                if p.node_port.unwrap_or(0) == 0
                    && let Some(op) = os
                        .ports
                        .iter()
                        .flatten()
                        .find(|op| op.port == p.port && op.protocol == p.protocol)
                {
                    p.node_port = op.node_port;
                }
            }
        }
        super::encode(&n, new);
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        match decode_for_validation::<Service>(obj) {
            Ok(s) => validate_service(&s),
            Err(c) => c,
        }
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let (Some(n), Some(o)) = (decode::<Service>(new), decode::<Service>(old)) else {
            return Vec::new();
        };
        let (ns, os) = (n.spec.unwrap_or_default(), o.spec.unwrap_or_default());
        if svc_type(&ns) == "ExternalName" || svc_type(&os) == "ExternalName" {
            return Vec::new();
        }
        let (new_ips, old_ips) = (ip_list(&ns), ip_list(&os));
        if !new_ips.is_empty() && !old_ips.is_empty() && new_ips[0] != old_ips[0] {
            return vec![Cause::invalid(
                "spec.clusterIPs[0]",
                &json!(new_ips),
                "may not change once set",
            )];
        }
        Vec::new()
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Type",
                "string",
                "Type determines how the Service is exposed.",
            ),
            col(
                "Cluster-IP",
                "string",
                "ClusterIP is the IP address of the service and is usually assigned randomly by the master.",
            ),
            col(
                "External-IP",
                "string",
                "ExternalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            col(
                "Port(s)",
                "string",
                "The list of ports that are exposed by this service.",
            ),
            AGE,
            wide(
                "Selector",
                "string",
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        service_cells(obj, Timestamp::now())
    }
}

fn external_ip(svc: &Service) -> String {
    let spec = svc.spec.clone().unwrap_or_default();
    let external = spec.external_ips.clone().unwrap_or_default();
    match svc_type(&spec) {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut ips: Vec<String> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| i.ip.filter(|s| !s.is_empty()).or(i.hostname))
                .collect();
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => spec.external_name.unwrap_or_default(),
        _ => "<unknown>".into(),
    }
}

fn service_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let svc: Service = decode(obj).unwrap_or_default();
    let spec = svc.spec.clone().unwrap_or_default();
    let cluster_ip = ip_list(&spec)
        .first()
        .cloned()
        .unwrap_or_else(|| "<none>".into());
    let ports: Vec<String> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port.filter(|n| *n != 0) {
                Some(np) => format!("{}:{np}/{proto}", p.port),
                None => format!("{}/{proto}", p.port),
            }
        })
        .collect();
    vec![
        name(obj),
        json!(svc_type(&spec)),
        json!(cluster_ip),
        json!(external_ip(&svc)),
        json!(if ports.is_empty() {
            "<none>".into()
        } else {
            ports.join(",")
        }),
        age(obj, now),
        json!(format_labels(spec.selector.as_ref())),
    ]
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
