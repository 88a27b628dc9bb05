//! The pod-to-endpoint rules shared by the EndpointSlice and Endpoints controllers, as
//! Kubernetes' `endpointslice` utilities state them: which pods are endpoints at all, the
//! ready / serving / terminating conditions, the hostname rule, the address families of a
//! Service and how a Service port (a number or a container port's name) resolves per pod.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

/// `endpoints.kubernetes.io/last-change-trigger-time`.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// `service.kubernetes.io/headless`, set on the endpoints of a Service without a cluster IP.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// `kubernetes.io/service-name`, naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// `endpointslice.kubernetes.io/managed-by`, naming a slice's controller.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// `topology.kubernetes.io/zone` on a Node.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Whether the pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// When the pod's `Ready` condition last changed: the pod's trigger time.
pub fn ready_transition(pod: &Pod) -> Option<jiff::Timestamp> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    cond.last_transition_time.as_ref().map(|t| t.0)
}

/// `ShouldPodBeInEndpoints`: not terminal (Succeeded/Failed), has an IP, and is not being
/// deleted unless terminating pods are wanted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return false;
    }
    let has_ip = status.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
        || status.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty());
    has_ip && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// The conditions of a pod's endpoint: `serving` is the pod's readiness, `terminating` its
/// deletion, and `ready` is serving and not terminating — or always, with
/// `publishNotReadyAddresses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conditions {
    /// Whether traffic should go to the endpoint.
    pub ready: bool,
    /// Whether the endpoint answers (readiness, regardless of termination).
    pub serving: bool,
    /// Whether the pod is being deleted.
    pub terminating: bool,
}

/// The conditions of `pod` as an endpoint of `svc`.
pub fn conditions(pod: &Pod, svc: &Service) -> Conditions {
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    Conditions {
        ready: publish_not_ready(svc) || (serving && !terminating),
        serving,
        terminating,
    }
}

/// `spec.publishNotReadyAddresses`.
pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// `ShouldSetHostname`: the pod names a hostname and this Service as its subdomain.
pub fn hostname_for(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    let same = spec.subdomain.as_deref() == Some(svc.name_any().as_str())
        && pod.namespace() == svc.namespace();
    same.then(|| hostname.to_string())
}

/// The `targetRef` of a pod's endpoint.
pub fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.uid(),
        ..Default::default()
    }
}

/// An IP family of a Service and the slice address type it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// `IPv4`.
    V4,
    /// `IPv6`.
    V6,
}

impl Family {
    /// The EndpointSlice `addressType`.
    pub fn address_type(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }
}

/// Whether the Service has a cluster IP (is not headless and has been allocated one).
pub fn is_service_ip_set(svc: &Service) -> bool {
    let ip = svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    !matches!(ip, None | Some("") | Some("None"))
}

/// `getAddressTypesForService`: the Service's `ipFamilies`; without them the family of its
/// cluster IP, and both for a headless Service.
pub fn service_families(svc: &Service) -> BTreeSet<Family> {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut out: BTreeSet<Family> = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        })
        .collect();
    if !out.is_empty() {
        return out;
    }
    match spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    {
        Some(ip) => {
            out.insert(if ip.contains(':') {
                Family::V6
            } else {
                Family::V4
            });
        }
        None => {
            out.insert(Family::V4);
            out.insert(Family::V6);
        }
    }
    out
}

/// The pod's addresses of one family, re-printed in canonical form (IPv4 octets with
/// leading zeros read as decimal, as Go's sloppy parser does).
pub fn pod_addresses(pod: &Pod, family: Family) -> Vec<String> {
    let status = pod.status.clone().unwrap_or_default();
    let mut ips: Vec<String> = status
        .pod_ips
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.ip)
        .collect();
    if ips.is_empty()
        && let Some(ip) = status.pod_ip.filter(|ip| !ip.is_empty())
    {
        ips.push(ip);
    }
    ips.iter()
        .filter_map(|ip| parse_ip_sloppy(ip))
        .filter(|ip| Family::of(ip) == family)
        .map(|ip| ip.to_string())
        .collect()
}

fn parse_ip_sloppy(v: &str) -> Option<IpAddr> {
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(ip);
    }
    let octets: Vec<u8> = v
        .split('.')
        .map(|p| p.parse::<u8>().ok())
        .collect::<Option<_>>()?;
    let [a, b, c, d] = octets[..] else {
        return None;
    };
    Some(IpAddr::from([a, b, c, d]))
}

/// `FindPort`: a numeric `targetPort` as is; a named one looked up among the pod's
/// containers (and restartable init containers) by name and protocol. `None` when the pod
/// has no such port, which leaves the port out of its endpoint.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// One Service port resolved for one pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResolvedPort {
    /// The Service port's name ("" when unnamed).
    pub name: String,
    /// The pod's port number.
    pub port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The Service port's `appProtocol`.
    pub app_protocol: Option<String>,
}

/// Whether the Service is headless (`clusterIP: None`).
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// The Service's ports as `pod` serves them, in Service order; ports the pod cannot
/// resolve are left out.
pub fn resolve_ports(svc: &Service, pod: &Pod) -> Vec<ResolvedPort> {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    ports
        .iter()
        .filter_map(|sp| {
            let port = find_port(pod, sp)?;
            Some(ResolvedPort {
                name: sp.name.clone().unwrap_or_default(),
                port,
                protocol: sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// Whether the Service gets endpoints from the selector controllers: it has a selector and
/// is not an ExternalName.
pub fn selects_pods(svc: &Service) -> bool {
    let Some(spec) = svc.spec.as_ref() else {
        return false;
    };
    spec.selector.is_some() && spec.type_.as_deref() != Some("ExternalName")
}

/// Whether the Service's selector matches `pod` (in its namespace). A `None` selector
/// matches nothing; an empty one everything.
pub fn selects(svc: &Service, pod: &Pod) -> bool {
    if pod.namespace() != svc.namespace() {
        return false;
    }
    let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    let labels = pod.labels();
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn conditions_follow_readiness_termination_and_publish_not_ready() {
        let ready = pod(json!({"metadata": {"name": "a", "namespace": "d"},
            "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}}));
        let mut terminating = ready.clone();
        terminating.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        let plain =
            svc(json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"selector": {}}}));
        let publish = svc(json!({"metadata": {"name": "s", "namespace": "d"},
            "spec": {"selector": {}, "publishNotReadyAddresses": true}}));
        assert_eq!(
            conditions(&ready, &plain),
            Conditions {
                ready: true,
                serving: true,
                terminating: false
            }
        );
        assert_eq!(
            conditions(&terminating, &plain),
            Conditions {
                ready: false,
                serving: true,
                terminating: true
            }
        );
        assert!(conditions(&terminating, &publish).ready);
        assert!(should_pod_be_in_endpoints(&terminating, true));
        assert!(!should_pod_be_in_endpoints(&terminating, false));
        let no_ip = pod(json!({"metadata": {"name": "b"}, "status": {"phase": "Running"}}));
        assert!(!should_pod_be_in_endpoints(&no_ip, true));
        let done = pod(
            json!({"metadata": {"name": "c"}, "status": {"phase": "Succeeded", "podIP": "10.0.0.2"}}),
        );
        assert!(!should_pod_be_in_endpoints(&done, true));
    }

    #[test]
    fn named_ports_resolve_per_pod_and_protocol() {
        let p = pod(json!({"metadata": {"name": "a"}, "spec": {"containers": [
            {"name": "c", "image": "x", "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]}]}}));
        let s = svc(json!({"metadata": {"name": "s"}, "spec": {"ports": [
            {"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "dns-tcp", "port": 53, "targetPort": "dns", "protocol": "TCP"},
            {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"},
            {"name": "raw", "port": 9000, "targetPort": 9001, "protocol": "TCP"}]}}));
        let got: Vec<(String, i32)> = resolve_ports(&s, &p)
            .into_iter()
            .map(|r| (r.name, r.port))
            .collect();
        assert_eq!(
            got,
            [
                ("web".into(), 8080),
                ("dns".into(), 5353),
                ("raw".into(), 9001)
            ]
        );
    }

    #[test]
    fn families_and_hostnames() {
        let headless = svc(
            json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"clusterIP": "None"}}),
        );
        assert_eq!(service_families(&headless).len(), 2);
        let dual =
            svc(json!({"metadata": {"name": "s"}, "spec": {"ipFamilies": ["IPv6", "IPv4"]}}));
        assert_eq!(service_families(&dual).len(), 2);
        let p = pod(json!({"metadata": {"name": "web-0", "namespace": "d"},
            "spec": {"hostname": "web-0", "subdomain": "s", "containers": []},
            "status": {"podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}}));
        assert_eq!(hostname_for(&p, &headless).as_deref(), Some("web-0"));
        assert_eq!(pod_addresses(&p, Family::V6), ["fd00::1"]);
        assert_eq!(pod_addresses(&p, Family::V4), ["10.0.0.1"]);
    }
}
