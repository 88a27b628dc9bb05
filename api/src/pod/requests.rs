//! A pod's effective resource requests as the scheduler counts them (Kubernetes'
//! `resourcehelper.PodRequests`): the larger of the running containers' sum and the largest
//! init container, sidecars included, plus the pod overhead.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CPU assumed for a container without a CPU request when scoring (kube-scheduler's 100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for a container without a memory request when scoring (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// A set of resource amounts: CPU in millicores, memory and storage in bytes, pod slots, and
/// any other (extended) resource in its integer units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Pod slots (only meaningful for a node's allocatable).
    pub pods: i64,
    /// Extended resources (`example.com/gpu`, `hugepages-2Mi`), by name.
    pub scalar: BTreeMap<String, i64>,
}

fn parse(q: &Quantity, milli: bool) -> i64 {
    match crate::quantity::Quantity::parse(&q.0) {
        Ok(v) => {
            let n = if milli { v.milli_value() } else { v.value() };
            n.clamp(0, i64::MAX as i128) as i64
        }
        Err(_) => 0,
    }
}

impl Resources {
    /// Reads a Kubernetes resource list (`requests`, `allocatable`).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list {
            match name.as_str() {
                "cpu" => r.milli_cpu = parse(q, true),
                "memory" => r.memory = parse(q, false),
                "ephemeral-storage" => r.ephemeral_storage = parse(q, false),
                "pods" => r.pods = parse(q, false),
                _ => {
                    r.scalar.insert(name.clone(), parse(q, false));
                }
            }
        }
        r
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    /// Subtracts `other` from `self`.
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Raises every amount of `self` to at least that of `other`.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.pods = self.pods.max(other.pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

/// How a container that requests no CPU or memory is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// As zero (fit).
    Zero,
    /// As the scoring defaults (`NonMissingContainerRequests`).
    ScoringDefaults,
}

fn container_requests(c: &Container, missing: Missing) -> Resources {
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = requests.map(Resources::from_list).unwrap_or_default();
    if missing == Missing::ScoringDefaults {
        let has = |name: &str| requests.is_some_and(|m| m.contains_key(name));
        if !has("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

fn requests(pod: &Pod, missing: Missing) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut sum = Resources::default();
    for c in &spec.containers {
        sum.add(&container_requests(c, missing));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, missing);
        if c.restart_policy.as_deref() == Some("Always") {
            // A sidecar keeps running next to the app containers and the later inits.
            sum.add(&r);
            sidecars.add(&r);
        } else {
            let mut with_sidecars = r;
            with_sidecars.add(&sidecars);
            init_max.max_with(&with_sidecars);
        }
    }
    sum.max_with(&init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        sum.add(&Resources::from_list(overhead));
    }
    sum.pods = 0;
    sum
}

/// The pod's effective requests: max(sum of containers plus sidecars, the largest init
/// container plus the sidecars started before it), plus the pod overhead. This is what a
/// node must have free for the pod to fit.
pub fn pod_requests(pod: &Pod) -> Resources {
    requests(pod, Missing::Zero)
}

/// [`pod_requests`] with containers that request no CPU or memory counted at the scoring
/// defaults instead (as kube-scheduler does when spreading by load).
pub fn pod_non_zero_requests(pod: &Pod) -> Resources {
    requests(pod, Missing::ScoringDefaults)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn c(name: &str, cpu: &str, mem: &str) -> serde_json::Value {
        json!({"name": name, "image": "i", "resources": {"requests": {"cpu": cpu, "memory": mem}}})
    }

    #[test]
    fn sums_containers_and_takes_max_with_init() {
        let p = pod(json!({
            "containers": [c("a", "100m", "1Mi"), c("b", "200m", "1Mi")],
            "initContainers": [c("i1", "500m", "1Ki"), c("i2", "50m", "10Mi")],
        }));
        let r = pod_requests(&p);
        assert_eq!(r.milli_cpu, 500);
        assert_eq!(r.memory, 10 * 1024 * 1024);
    }

    #[test]
    fn sidecars_add_to_containers_and_later_inits() {
        let mut side = c("s", "100m", "1Mi");
        side["restartPolicy"] = json!("Always");
        let p = pod(json!({
            "containers": [c("a", "100m", "1Mi")],
            "initContainers": [side, c("i", "250m", "1Mi")],
            "overhead": {"cpu": "10m"},
        }));
        let r = pod_requests(&p);
        // init i runs beside sidecar s: 350m > 100m + 100m; plus 10m overhead.
        assert_eq!(r.milli_cpu, 360);
        assert_eq!(r.memory, 2 * 1024 * 1024);
    }

    #[test]
    fn non_zero_defaults_apply_per_container() {
        let p = pod(json!({"containers": [{"name": "a", "image": "i"}, c("b", "1", "1Gi")]}));
        assert_eq!(pod_requests(&p).milli_cpu, 1000);
        let nz = pod_non_zero_requests(&p);
        assert_eq!(nz.milli_cpu, 1100);
        assert_eq!(nz.memory, (1 << 30) + DEFAULT_MEMORY_REQUEST);
    }
}
