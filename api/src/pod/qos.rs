//! A pod's QoS class, as Kubernetes' `ComputePodQOS` (pkg/apis/core/helper/qos) decides it
//! from the cpu and memory requests and limits of its containers and init containers.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::quantity::Quantity;

/// A pod's quality-of-service class (`status.qosClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// Every container limits cpu and memory, and the requests equal the limits.
    Guaranteed,
    /// Some request or limit, but not Guaranteed.
    Burstable,
    /// No container requests or limits cpu or memory.
    BestEffort,
}

impl QosClass {
    /// The class as `status.qosClass` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

impl fmt::Display for QosClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The only resources that decide the class.
const COMPUTE: [&str; 2] = ["cpu", "memory"];

/// A quantity's exact value when it is above zero; zero and unparsable quantities count as
/// unset, as `quantity.Cmp(zero) == 1` makes them in Kubernetes.
fn positive(q: Option<&ApiQuantity>) -> Option<i128> {
    let nanos = Quantity::parse(&q?.0).ok()?.nano_value();
    (nanos > 0).then_some(nanos)
}

/// The QoS class of a pod with this spec. Kubernetes compares the pod-wide sums of requests
/// and limits; a pod is Guaranteed only when every container also limits both cpu and
/// memory. A missing request counts as its limit: the apiserver's defaulting
/// (`SetDefaults_Pod`) has filled it in before Kubernetes computes the class, and doing the
/// same here gives an undefaulted spec the class it will have once stored.
pub fn qos_class(spec: &PodSpec) -> QosClass {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let res = c.resources.as_ref();
        let request_list = res.and_then(|r| r.requests.as_ref());
        let limit_list = res.and_then(|r| r.limits.as_ref());
        let mut limited = 0;
        for name in COMPUTE {
            let limit = limit_list.and_then(|l| l.get(name));
            let request = request_list.and_then(|l| l.get(name)).or(limit);
            if let Some(n) = positive(request) {
                let sum = requests.entry(name).or_default();
                *sum = sum.saturating_add(n);
            }
            if let Some(n) = positive(limit) {
                limited += 1;
                let sum = limits.entry(name).or_default();
                *sum = sum.saturating_add(n);
            }
        }
        if limited < COMPUTE.len() {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        QosClass::BestEffort
    } else if guaranteed && requests == limits {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn spec(containers: Value) -> PodSpec {
        serde_json::from_value(json!({"containers": containers})).unwrap()
    }

    fn one(resources: Value) -> QosClass {
        qos_class(&spec(json!([{"name": "a", "resources": resources}])))
    }

    #[test]
    fn no_requests_or_limits_is_best_effort() {
        assert_eq!(one(json!({})), QosClass::BestEffort);
        assert_eq!(
            qos_class(&spec(json!([{"name": "a"}]))),
            QosClass::BestEffort
        );
        // Other resources do not count.
        assert_eq!(
            one(json!({"limits": {"ephemeral-storage": "1Gi"}})),
            QosClass::BestEffort
        );
    }

    #[test]
    fn zero_quantities_count_as_unset() {
        // ComputePodQOS only adds quantities above zero.
        assert_eq!(
            one(json!({"requests": {"cpu": "0", "memory": "0"}})),
            QosClass::BestEffort
        );
        assert_eq!(
            one(json!({"limits": {"cpu": "0", "memory": "1Gi"}})),
            QosClass::Burstable
        );
    }

    #[test]
    fn equal_requests_and_limits_are_guaranteed() {
        assert_eq!(
            one(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}})
            ),
            QosClass::Guaranteed
        );
        // Limits imply requests (the apiserver defaults them).
        assert_eq!(
            one(json!({"limits": {"cpu": "100m", "memory": "64Mi"}})),
            QosClass::Guaranteed
        );
    }

    #[test]
    fn anything_less_is_burstable() {
        assert_eq!(
            one(json!({"requests": {"cpu": "100m"}})),
            QosClass::Burstable
        );
        assert_eq!(
            one(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}})
            ),
            QosClass::Burstable
        );
        // Both cpu and memory must be limited.
        assert_eq!(one(json!({"limits": {"cpu": "1"}})), QosClass::Burstable);
    }

    #[test]
    fn every_container_counts_init_containers_too() {
        let full = json!({"limits": {"cpu": "1", "memory": "1Gi"}});
        let both = spec(json!([
            {"name": "a", "resources": full},
            {"name": "b", "resources": full}
        ]));
        assert_eq!(qos_class(&both), QosClass::Guaranteed);
        let unlimited_sibling = spec(json!([{"name": "a", "resources": full}, {"name": "b"}]));
        assert_eq!(qos_class(&unlimited_sibling), QosClass::Burstable);
        let mut with_init = both.clone();
        with_init.init_containers = Some(vec![
            serde_json::from_value(json!({"name": "i", "resources": {"requests": {"cpu": "1"}}}))
                .unwrap(),
        ]);
        assert_eq!(qos_class(&with_init), QosClass::Burstable);
    }

    #[test]
    fn prints_as_the_status_field() {
        assert_eq!(QosClass::BestEffort.to_string(), "BestEffort");
        assert_eq!(QosClass::Guaranteed.as_str(), "Guaranteed");
    }
}
