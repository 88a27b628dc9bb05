//! Taints and tolerations: Kubernetes' `Toleration.ToleratesTaint` and
//! `FindMatchingUntoleratedTaint`, shared by the scheduler's TaintToleration filter and the
//! DaemonSet controller.

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Whether `toleration` tolerates `taint`: an empty effect matches every effect, an empty
/// key every key (with `Exists`, an empty key and effect tolerate every taint); `Exists`
/// ignores the value, `Equal` (or no operator) needs the same value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first of `taints` that `include` selects and no toleration tolerates.
pub fn find_untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    include: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .find(|taint| include(taint) && !tolerated(tolerations, taint))
}

/// Whether a taint keeps new pods off the node (`NoSchedule` or `NoExecute`).
pub fn is_scheduling_taint(taint: &Taint) -> bool {
    matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taint(v: serde_json::Value) -> Taint {
        serde_json::from_value(v).unwrap()
    }

    fn toleration(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn key_value_and_effect_must_match() {
        let t = taint(json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}));
        let ok = |v| tolerates(&toleration(v), &t);
        assert!(ok(
            json!({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"})
        ));
        // No operator means Equal; no effect means every effect.
        assert!(ok(json!({"key": "dedicated", "value": "gpu"})));
        assert!(!ok(json!({"key": "dedicated", "value": "cpu"})));
        assert!(!ok(json!({"key": "other", "operator": "Exists"})));
        assert!(!ok(
            json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"})
        ));
        assert!(ok(json!({"key": "dedicated", "operator": "Exists"})));
        assert!(!ok(
            json!({"key": "dedicated", "operator": "Gt", "value": "1"})
        ));
    }

    #[test]
    fn exists_with_an_empty_key_tolerates_everything() {
        let all = toleration(json!({"operator": "Exists"}));
        for effect in ["NoSchedule", "NoExecute", "PreferNoSchedule"] {
            assert!(tolerates(
                &all,
                &taint(json!({"key": "k", "value": "v", "effect": effect}))
            ));
        }
        let only_no_execute = toleration(json!({"operator": "Exists", "effect": "NoExecute"}));
        assert!(!tolerates(
            &only_no_execute,
            &taint(json!({"key": "k", "effect": "NoSchedule"}))
        ));
    }

    #[test]
    fn finds_the_first_untolerated_taint_the_filter_selects() {
        let taints = vec![
            taint(json!({"key": "soft", "effect": "PreferNoSchedule"})),
            taint(json!({"key": "a", "effect": "NoSchedule"})),
            taint(json!({"key": "b", "effect": "NoExecute"})),
        ];
        let tols = vec![toleration(json!({"key": "a", "operator": "Exists"}))];
        let found = find_untolerated_taint(&taints, &tols, is_scheduling_taint);
        assert_eq!(found.map(|t| t.key.as_str()), Some("b"));
        let none = find_untolerated_taint(&taints, &tols, |t| t.effect == "NoSchedule");
        assert!(none.is_none());
    }
}
