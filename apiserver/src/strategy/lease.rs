//! Leases (coordination.k8s.io/v1): spec validation as `ValidateLeaseSpec` and the
//! Holder column.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use serde_json::{Value, json};

use super::table::{AGE, NAME, age, col, name};
use super::{Column, Strategy, decode, decode_for_validation};
use crate::error::Cause;

/// Strategy for coordination.k8s.io/v1 leases.
pub struct LeaseStrategy;

fn validate_lease(lease: &Lease) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = lease.spec.clone().unwrap_or_default();
    if let Some(d) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
        out.push(Cause::invalid(
            "spec.leaseDurationSeconds",
            &json!(d),
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec.lease_transitions.filter(|t| *t < 0) {
        out.push(Cause::invalid(
            "spec.leaseTransitions",
            &json!(t),
            "must be greater than or equal to 0",
        ));
    }
    if let Some(s) = spec.strategy.as_deref().filter(|s| !s.is_empty())
        && s != "OldestEmulationVersion"
    {
        out.push(Cause::not_supported(
            "spec.strategy",
            &json!(s),
            &["OldestEmulationVersion"],
        ));
    }
    if spec
        .preferred_holder
        .as_deref()
        .is_some_and(|p| !p.is_empty())
        && spec.strategy.as_deref().unwrap_or("").is_empty()
    {
        out.push(Cause::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
    out
}

impl Strategy for LeaseStrategy {
    fn validate(&self, obj: &Value) -> Vec<Cause> {
        decode_for_validation::<Lease>(obj)
            .map(|l| validate_lease(&l))
            .unwrap_or_else(|c| c)
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Holder", "string", "The holder of the lease"),
            AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        lease_cells(obj, Timestamp::now())
    }
}

fn lease_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let lease: Lease = decode(obj).unwrap_or_default();
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    vec![name(obj), json!(holder), age(obj, now)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(spec: Value) -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1", "namespace": "kube-node-lease", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": spec})
    }

    #[test]
    fn valid_lease_and_row() {
        let l = lease(json!({"holderIdentity": "n1", "leaseDurationSeconds": 40}));
        assert!(LeaseStrategy.validate(&l).is_empty());
        let now: Timestamp = "2024-01-01T00:00:05Z".parse().unwrap();
        assert_eq!(
            lease_cells(&l, now),
            vec![json!("n1"), json!("n1"), json!("5s")]
        );
    }

    #[test]
    fn duration_must_be_positive() {
        let causes = LeaseStrategy.validate(&lease(
            json!({"leaseDurationSeconds": 0, "leaseTransitions": -1}),
        ));
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.leaseDurationSeconds", "spec.leaseTransitions"]
        );
        assert_eq!(
            causes[0].message,
            "Invalid value: 0: must be greater than 0"
        );
    }
}
