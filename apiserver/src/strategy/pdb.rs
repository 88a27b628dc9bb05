//! PodDisruptionBudgets (policy/v1), served for the API only: spec validation as
//! `ValidatePodDisruptionBudgetSpec` (minAvailable xor maxUnavailable, each a non-negative
//! count or a percentage up to 100%, a well-formed selector), non-negative status counts, and
//! the Min Available / Max Unavailable / Allowed Disruptions table.

use jiff::Timestamp;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};
use skiff_api::labels::Selector;

use super::table::{AGE, NAME, age, col, name};
use super::workload::validate_int_or_percent;
use super::{Column, Strategy, decode, decode_for_validation};
use crate::error::Cause;

/// Strategy for policy/v1 pod disruption budgets.
pub struct PodDisruptionBudgetStrategy;

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn validate_pdb(pdb: &PodDisruptionBudget) -> Vec<Cause> {
    let spec = pdb.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    if spec.min_available.is_some() && spec.max_unavailable.is_some() {
        out.push(Cause::invalid(
            "spec",
            &to_json(&spec),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    validate_int_or_percent(
        spec.min_available.as_ref(),
        "spec.minAvailable",
        true,
        &mut out,
    );
    validate_int_or_percent(
        spec.max_unavailable.as_ref(),
        "spec.maxUnavailable",
        true,
        &mut out,
    );
    if let Some(sel) = &spec.selector
        && let Err(e) = Selector::from_label_selector(sel)
    {
        out.push(Cause::invalid(
            "spec.selector",
            &to_json(sel),
            e.to_string(),
        ));
    }
    if let Some(p) = spec.unhealthy_pod_eviction_policy.as_deref()
        && !matches!(p, "IfHealthyBudget" | "AlwaysAllow")
    {
        out.push(Cause::not_supported(
            "spec.unhealthyPodEvictionPolicy",
            &json!(p),
            &["AlwaysAllow", "IfHealthyBudget"],
        ));
    }
    out.extend(validate_status(pdb.status.as_ref()));
    out
}

/// `ValidatePodDisruptionBudgetStatusUpdate`: the counts are never negative.
fn validate_status(status: Option<&PodDisruptionBudgetStatus>) -> Vec<Cause> {
    let Some(s) = status else {
        return Vec::new();
    };
    [
        ("status.disruptionsAllowed", s.disruptions_allowed),
        ("status.currentHealthy", s.current_healthy),
        ("status.desiredHealthy", s.desired_healthy),
        ("status.expectedPods", s.expected_pods),
    ]
    .into_iter()
    .filter(|(_, v)| *v < 0)
    .map(|(field, v)| Cause::invalid(field, &json!(v), "must be greater than or equal to 0"))
    .collect()
}

impl Strategy for PodDisruptionBudgetStrategy {
    fn validate(&self, obj: &Value) -> Vec<Cause> {
        decode_for_validation::<PodDisruptionBudget>(obj)
            .map(|p| validate_pdb(&p))
            .unwrap_or_else(|c| c)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Min Available",
                "string",
                "The minimum number of pods that must be available.",
            ),
            col(
                "Max Unavailable",
                "string",
                "The maximum number of pods that may be unavailable.",
            ),
            col(
                "Allowed Disruptions",
                "integer",
                "Calculated number of pods that may be disrupted at this time.",
            ),
            AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        pdb_cells(obj, Timestamp::now())
    }
}

fn int_or_string(v: Option<&IntOrString>) -> String {
    match v {
        Some(IntOrString::Int(i)) => i.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => "N/A".into(),
    }
}

fn pdb_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let pdb: PodDisruptionBudget = decode(obj).unwrap_or_default();
    let spec = pdb.spec.unwrap_or_default();
    let allowed = pdb.status.map(|s| s.disruptions_allowed).unwrap_or(0);
    vec![
        name(obj),
        json!(int_or_string(spec.min_available.as_ref())),
        json!(int_or_string(spec.max_unavailable.as_ref())),
        json!(allowed),
        age(obj, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(spec: Value) -> Value {
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": spec})
    }

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn min_available_xor_max_unavailable() {
        let st = PodDisruptionBudgetStrategy;
        let sel = json!({"matchLabels": {"app": "web"}});
        assert!(
            st.validate(&pdb(json!({"minAvailable": 2, "selector": sel})))
                .is_empty()
        );
        assert!(
            st.validate(&pdb(json!({"maxUnavailable": "25%", "selector": sel})))
                .is_empty()
        );
        let both = st.validate(&pdb(json!({"minAvailable": 1, "maxUnavailable": 1})));
        assert_eq!(fields(&both), ["spec"]);
        assert!(
            both[0]
                .message
                .ends_with(": minAvailable and maxUnavailable cannot be both set"),
            "{}",
            both[0].message
        );
    }

    #[test]
    fn counts_percentages_and_selector_are_checked() {
        let st = PodDisruptionBudgetStrategy;
        let causes = st.validate(&pdb(json!({"minAvailable": -1})));
        assert_eq!(
            causes[0].message,
            "Invalid value: -1: must be greater than or equal to 0"
        );
        let causes = st.validate(&pdb(json!({"maxUnavailable": "150%"})));
        assert_eq!(fields(&causes), ["spec.maxUnavailable"]);
        let causes = st.validate(&pdb(json!({"minAvailable": 1,
            "selector": {"matchExpressions": [{"key": "app", "operator": "Bogus"}]}})));
        assert_eq!(fields(&causes), ["spec.selector"]);
        let mut bad_status = pdb(json!({"minAvailable": 1}));
        bad_status["status"] = json!({"disruptionsAllowed": -1, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0});
        assert_eq!(
            fields(&st.validate(&bad_status)),
            ["status.disruptionsAllowed"]
        );
    }

    #[test]
    fn row_prints_counts_or_na() {
        let mut p = pdb(json!({"minAvailable": "50%"}));
        p["status"] = json!({"disruptionsAllowed": 2, "currentHealthy": 3, "desiredHealthy": 1, "expectedPods": 3});
        let now: Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        assert_eq!(
            pdb_cells(&p, now),
            vec![
                json!("web"),
                json!("50%"),
                json!("N/A"),
                json!(2),
                json!("60s")
            ]
        );
        assert_eq!(
            PodDisruptionBudgetStrategy.columns().len(),
            pdb_cells(&p, now).len()
        );
    }
}
