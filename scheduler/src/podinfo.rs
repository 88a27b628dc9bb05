//! What the scheduler precomputes about a pod once: its key, requests, host ports, parsed
//! node affinity and inter-pod affinity terms, so filters and scores over many nodes do not
//! re-parse it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use skiff_api::labels::Selector;
use skiff_api::pod::requests::{Resources, pod_non_zero_requests, pod_requests};
use skiff_api::scheduling::{PreferredSchedulingTerms, RequiredNodeAffinity};

/// A host port a pod claims: IP (`0.0.0.0` when unset), protocol and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host IP; `0.0.0.0` means every address.
    pub ip: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The host port number.
    pub port: i32,
}

impl HostPort {
    /// Whether two claims collide (same protocol and port, overlapping addresses).
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A parsed pod (anti-)affinity term.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    /// Which pods the term is about; `None` (no selector) matches no pod.
    pub selector: Option<Selector>,
    /// Namespaces the term looks in; empty with `all_namespaces` false means none.
    pub namespaces: Vec<String>,
    /// An empty namespaceSelector (`{}`): every namespace.
    pub all_namespaces: bool,
    /// The node label that defines a topology domain.
    pub topology_key: String,
    /// Weight for preferred terms (1 for required ones).
    pub weight: i64,
}

impl AffinityTerm {
    fn parse(term: &PodAffinityTerm, owner_namespace: &str, weight: i32) -> AffinityTerm {
        let selector = term
            .label_selector
            .as_ref()
            .and_then(|s| Selector::from_label_selector(s).ok());
        let mut namespaces = term.namespaces.clone().unwrap_or_default();
        // An empty namespaceSelector selects every namespace; a non-empty one would need
        // namespace labels, which this scheduler does not watch, so it adds nothing.
        let all_namespaces = term.namespace_selector.as_ref().is_some_and(|s| {
            s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && s.match_expressions.as_ref().is_none_or(|m| m.is_empty())
        });
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.push(owner_namespace.to_string());
        }
        AffinityTerm {
            selector,
            namespaces,
            all_namespaces,
            topology_key: term.topology_key.clone(),
            weight: i64::from(weight),
        }
    }

    /// Whether the term selects `pod` (namespace and labels).
    pub fn matches(&self, pod: &PodInfo) -> bool {
        let Some(sel) = &self.selector else {
            return false;
        };
        (self.all_namespaces || self.namespaces.contains(&pod.namespace))
            && sel.matches(&pod.labels)
    }
}

/// A pod with everything the plugins need precomputed.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// The pod object.
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    /// The namespace.
    pub namespace: String,
    /// The pod's labels.
    pub labels: BTreeMap<String, String>,
    /// Effective requests (init containers and overhead included).
    pub requests: Resources,
    /// Requests with scoring defaults for containers that request no CPU or memory.
    pub non_zero_requests: Resources,
    /// Host ports the pod claims.
    pub host_ports: Vec<HostPort>,
    /// `nodeSelector` and required node affinity, parsed.
    pub required_node_affinity: RequiredNodeAffinity,
    /// Preferred node affinity terms, parsed.
    pub preferred_node_affinity: PreferredSchedulingTerms,
    /// Required pod affinity terms.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred pod affinity terms (weighted).
    pub preferred_affinity: Vec<AffinityTerm>,
    /// Preferred pod anti-affinity terms (weighted).
    pub preferred_anti_affinity: Vec<AffinityTerm>,
}

/// `namespace/name` of a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn required(terms: Option<&Vec<PodAffinityTerm>>, ns: &str) -> Vec<AffinityTerm> {
    terms
        .into_iter()
        .flatten()
        .map(|t| AffinityTerm::parse(t, ns, 1))
        .collect()
}

fn preferred(terms: Option<&Vec<WeightedPodAffinityTerm>>, ns: &str) -> Vec<AffinityTerm> {
    terms
        .into_iter()
        .flatten()
        .map(|t| AffinityTerm::parse(&t.pod_affinity_term, ns, t.weight))
        .collect()
}

impl PodInfo {
    /// Precomputes a pod's scheduling facts.
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let spec = pod.spec.as_ref();
        let host_ports = spec
            .into_iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| p.host_port.unwrap_or(0) > 0)
            .map(|p| HostPort {
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: p.host_port.unwrap_or(0),
            })
            .collect();
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        PodInfo {
            key: pod_key(&pod),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            requests: pod_requests(&pod),
            non_zero_requests: pod_non_zero_requests(&pod),
            host_ports,
            required_node_affinity: spec.map(RequiredNodeAffinity::of).unwrap_or_default(),
            preferred_node_affinity: spec.map(PreferredSchedulingTerms::of).unwrap_or_default(),
            required_affinity: required(
                pa.and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                &namespace,
            ),
            required_anti_affinity: required(
                paa.and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                &namespace,
            ),
            preferred_affinity: preferred(
                pa.and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                &namespace,
            ),
            preferred_anti_affinity: preferred(
                paa.and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                &namespace,
            ),
            namespace,
            pod,
        }
    }

    /// Whether the pod has any (anti-)affinity term, required or preferred.
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terms_default_to_own_namespace_and_empty_selector_means_all() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "a", "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
              "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "h"},
                {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "h", "namespaceSelector": {}}
              ]}}}
        }))
        .unwrap();
        let info = PodInfo::new(Arc::new(pod.clone()));
        assert_eq!(info.host_ports[0].ip, "0.0.0.0");
        assert_eq!(info.host_ports[0].protocol, "TCP");
        let mut other = pod;
        other.metadata.namespace = Some("b".into());
        let other = PodInfo::new(Arc::new(other));
        assert!(info.required_anti_affinity[0].matches(&info));
        assert!(!info.required_anti_affinity[0].matches(&other));
        assert!(info.required_anti_affinity[1].matches(&other));
    }

    #[test]
    fn host_ports_conflict_on_overlapping_addresses() {
        let hp = |ip: &str, proto: &str, port| HostPort {
            ip: ip.into(),
            protocol: proto.into(),
            port,
        };
        assert!(hp("0.0.0.0", "TCP", 80).conflicts(&hp("10.0.0.1", "TCP", 80)));
        assert!(!hp("10.0.0.2", "TCP", 80).conflicts(&hp("10.0.0.1", "TCP", 80)));
        assert!(!hp("0.0.0.0", "UDP", 80).conflicts(&hp("0.0.0.0", "TCP", 80)));
        assert!(!hp("0.0.0.0", "TCP", 81).conflicts(&hp("0.0.0.0", "TCP", 80)));
    }
}
