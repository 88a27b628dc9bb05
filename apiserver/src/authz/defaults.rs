//! Puts the default RBAC policy in place at every server start, as kube-apiserver's
//! `rbac/bootstrap-roles` hook does: missing roles and bindings are created, and existing
//! ones annotated `rbac.authorization.kubernetes.io/autoupdate: "true"` get back the
//! rules and subjects they lost (what a user added is kept; `"false"` opts out).

use std::sync::Arc;

use serde_json::Value;

use super::bootstrap;
use super::rbac::Rule;
use crate::error::ApiError;
use crate::handlers::object::{ObjectRef, read};
use crate::handlers::update::UpdateScope;
use crate::handlers::{ApiState, create, update};
use crate::registry::Kind;
use crate::strategy::RBAC_GROUP;

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

/// What an existing default object lacks, merged into it; `None` when it lacks nothing.
fn reconciled(existing: &Value, default: &Value) -> Option<Value> {
    if existing["metadata"]["annotations"][AUTOUPDATE].as_str() == Some("false") {
        return None;
    }
    let mut out = existing.clone();
    let mut changed = false;
    if default.get("rules").is_some() {
        let have = Rule::all_of(existing);
        let mut rules = existing["rules"].as_array().cloned().unwrap_or_default();
        for r in default["rules"].as_array().into_iter().flatten() {
            if !have.contains(&Rule::from_json(r)) {
                rules.push(r.clone());
                changed = true;
            }
        }
        out["rules"] = Value::Array(rules);
    }
    if default.get("aggregationRule").is_some() && existing.get("aggregationRule").is_none() {
        out["aggregationRule"] = default["aggregationRule"].clone();
        changed = true;
    }
    if let Some(subjects) = default["subjects"].as_array() {
        let mut have = existing["subjects"].as_array().cloned().unwrap_or_default();
        for s in subjects {
            let same = |h: &Value| {
                h["kind"] == s["kind"] && h["name"] == s["name"] && h["namespace"] == s["namespace"]
            };
            if !have.iter().any(same) {
                have.push(s.clone());
                changed = true;
            }
        }
        out["subjects"] = Value::Array(have);
    }
    changed.then_some(out)
}

async fn ensure(state: &ApiState, kind: &Arc<Kind>, obj: Value) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
    match create::create(state, kind, obj.clone(), ns.as_deref(), false).await {
        Ok(_) => return Ok(()),
        Err(e) if e.code == 409 => {}
        Err(e) => return Err(e),
    }
    let at = ObjectRef::new(&state.kinds, kind, ns.as_deref(), &name);
    let (existing, rev) = read(state, &at).await?;
    if let Some(merged) = reconciled(&existing, &obj) {
        tracing::info!(kind = kind.info.kind, %name, "restoring the default RBAC rules");
        update::update(
            state,
            &at,
            merged,
            UpdateScope::Main,
            false,
            Some((existing, rev)),
            None,
        )
        .await?;
    }
    Ok(())
}

/// Creates or restores the default roles and bindings.
pub async fn ensure_defaults(state: &ApiState) -> Result<(), ApiError> {
    let find = |plural: &str| {
        state
            .kinds
            .find(RBAC_GROUP, "v1", plural)
            .expect("the RBAC kinds are served")
            .clone()
    };
    for (plural, objects) in [
        ("clusterroles", bootstrap::cluster_roles()),
        ("clusterrolebindings", bootstrap::cluster_role_bindings()),
        ("roles", bootstrap::roles()),
        ("rolebindings", bootstrap::role_bindings()),
    ] {
        let kind = find(plural);
        for obj in objects {
            ensure(state, &kind, obj).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lost_rules_and_subjects_come_back_and_additions_stay() {
        let default = json!({"metadata": {"name": "r"}, "rules": [
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        let edited = json!({"metadata": {"name": "r"}, "rules": [
            {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]});
        let out = reconciled(&edited, &default).unwrap();
        assert_eq!(out["rules"].as_array().unwrap().len(), 2);
        assert!(reconciled(&out, &default).is_none());
        let mut opted_out = edited.clone();
        opted_out["metadata"]["annotations"] = json!({AUTOUPDATE: "false"});
        assert!(reconciled(&opted_out, &default).is_none());
        let b = json!({"metadata": {"name": "b"}, "subjects": [{"kind": "Group", "name": "system:masters"}]});
        let emptied = json!({"metadata": {"name": "b"}, "subjects": []});
        assert_eq!(reconciled(&emptied, &b).unwrap()["subjects"], b["subjects"]);
    }
}
