//! rbac.authorization.k8s.io/v1 Roles, ClusterRoles, RoleBindings and ClusterRoleBindings:
//! kube-apiserver's validation (names are path segments, so `system:node` is valid; rules
//! need verbs and API groups; namespaced rules cannot name URLs; a binding's roleRef is
//! fixed once made) and its table columns (bindings show their role, and with `-o wide`
//! their users, groups and service accounts).

use jiff::Timestamp;
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};
use serde_json::{Value, json};

use super::table::{AGE, NAME, age, col, name, wide};
use super::{Column, Strategy};
use crate::error::Cause;

/// The RBAC API group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Which RBAC kind a strategy serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RbacKind {
    /// A namespaced Role.
    Role,
    /// A ClusterRole.
    ClusterRole,
    /// A namespaced RoleBinding.
    RoleBinding,
    /// A ClusterRoleBinding.
    ClusterRoleBinding,
}

/// Strategy for the four RBAC kinds.
pub struct RbacStrategy(pub RbacKind);

/// RBAC names are path segments (`ValidatePathSegmentName`), not DNS names.
pub fn path_segment_name(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    match name {
        "." => out.push("may not be '.'".to_string()),
        ".." => out.push("may not be '..'".to_string()),
        _ => {}
    }
    for c in ['/', '%'] {
        if name.contains(c) {
            out.push(format!("may not contain '{c}'"));
        }
    }
    out
}

fn rules_of(obj: &Value) -> Result<Vec<PolicyRule>, Vec<Cause>> {
    match obj.get("rules") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| vec![Cause::invalid("rules", v, e.to_string())]),
    }
}

fn validate_rules(rules: &[PolicyRule], namespaced: bool) -> Vec<Cause> {
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let at = |f: &str| format!("rules[{i}].{f}");
        if r.verbs.is_empty() {
            out.push(Cause::required_detail(
                at("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = r.non_resource_urls.as_deref().unwrap_or_default();
        let resources = r.resources.as_deref().unwrap_or_default();
        let groups = r.api_groups.as_deref().unwrap_or_default();
        if !urls.is_empty() {
            if namespaced {
                out.push(Cause::invalid(
                    at("nonResourceURLs"),
                    &json!(urls),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !groups.is_empty() || !resources.is_empty() {
                out.push(Cause::invalid(
                    at("nonResourceURLs"),
                    &json!(urls),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if groups.is_empty() {
            out.push(Cause::required_detail(
                at("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if resources.is_empty() {
            out.push(Cause::required_detail(
                at("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    out
}

fn role_ref(obj: &Value) -> Result<RoleRef, Vec<Cause>> {
    match obj.get("roleRef") {
        None | Some(Value::Null) => Err(vec![Cause::required("roleRef.name")]),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| vec![Cause::invalid("roleRef", v, e.to_string())]),
    }
}

fn validate_binding(obj: &Value, cluster: bool) -> Vec<Cause> {
    let mut out = Vec::new();
    match role_ref(obj) {
        Err(c) => out.extend(c),
        Ok(r) => {
            if r.api_group != RBAC_GROUP {
                out.push(Cause::not_supported(
                    "roleRef.apiGroup",
                    &json!(r.api_group),
                    &[RBAC_GROUP],
                ));
            }
            let kinds: &[&str] = if cluster {
                &["ClusterRole"]
            } else {
                &["Role", "ClusterRole"]
            };
            if !kinds.contains(&r.kind.as_str()) {
                out.push(Cause::not_supported("roleRef.kind", &json!(r.kind), kinds));
            }
            if r.name.is_empty() {
                out.push(Cause::required("roleRef.name"));
            } else {
                for m in path_segment_name(&r.name) {
                    out.push(Cause::invalid("roleRef.name", &json!(r.name), m));
                }
            }
        }
    }
    let subjects: Vec<Subject> = match obj.get("subjects") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => match serde_json::from_value(v.clone()) {
            Ok(s) => s,
            Err(e) => return vec![Cause::invalid("subjects", v, e.to_string())],
        },
    };
    for (i, s) in subjects.iter().enumerate() {
        out.extend(validate_subject(s, &format!("subjects[{i}]"), cluster));
    }
    out
}

fn validate_subject(s: &Subject, at: &str, cluster: bool) -> Vec<Cause> {
    let mut out = Vec::new();
    if s.name.is_empty() {
        out.push(Cause::required(format!("{at}.name")));
    }
    let group = s.api_group.as_deref().unwrap_or("");
    match s.kind.as_str() {
        "ServiceAccount" => {
            if !s.name.is_empty() {
                for m in skiff_api::validation::is_dns1123_subdomain(&s.name) {
                    out.push(Cause::invalid(format!("{at}.name"), &json!(s.name), m));
                }
            }
            if !group.is_empty() {
                out.push(Cause::not_supported(
                    format!("{at}.apiGroup"),
                    &json!(group),
                    &[""],
                ));
            }
            if cluster && s.namespace.as_deref().unwrap_or("").is_empty() {
                out.push(Cause::required(format!("{at}.namespace")));
            }
        }
        "User" | "Group" => {
            if group != RBAC_GROUP {
                out.push(Cause::not_supported(
                    format!("{at}.apiGroup"),
                    &json!(group),
                    &[RBAC_GROUP],
                ));
            }
        }
        other => out.push(Cause::not_supported(
            format!("{at}.kind"),
            &json!(other),
            &["ServiceAccount", "User", "Group"],
        )),
    }
    out
}

/// Subjects of a binding of one kind, as the wide columns list them.
fn subject_names(obj: &Value, kind: &str) -> String {
    let names: Vec<String> = obj["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["kind"] == kind)
        .map(|s| {
            let n = s["name"].as_str().unwrap_or_default();
            match s["namespace"].as_str() {
                Some(ns) if kind == "ServiceAccount" => format!("{ns}/{n}"),
                _ => n.to_string(),
            }
        })
        .collect();
    names.join(", ")
}

impl Strategy for RbacStrategy {
    fn name_rule(&self) -> fn(&str) -> Vec<String> {
        path_segment_name
    }

    fn default(&self, obj: &mut Value) {
        // A subject's apiGroup defaults as kube-apiserver's SetDefaults_Subject does.
        if let Some(subjects) = obj.get_mut("subjects").and_then(Value::as_array_mut) {
            for s in subjects {
                if s.get("apiGroup").is_none_or(Value::is_null) {
                    let g = match s["kind"].as_str() {
                        Some("User" | "Group") => RBAC_GROUP,
                        _ => "",
                    };
                    s["apiGroup"] = json!(g);
                }
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        match self.0 {
            RbacKind::Role | RbacKind::ClusterRole => match rules_of(obj) {
                Ok(rules) => validate_rules(&rules, self.0 == RbacKind::Role),
                Err(c) => c,
            },
            RbacKind::RoleBinding => validate_binding(obj, false),
            RbacKind::ClusterRoleBinding => validate_binding(obj, true),
        }
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let binding = matches!(self.0, RbacKind::RoleBinding | RbacKind::ClusterRoleBinding);
        if binding && new.get("roleRef") != old.get("roleRef") {
            return vec![Cause::invalid(
                "roleRef",
                new.get("roleRef").unwrap_or(&Value::Null),
                "cannot change roleRef",
            )];
        }
        Vec::new()
    }

    fn columns(&self) -> Vec<Column> {
        match self.0 {
            RbacKind::Role | RbacKind::ClusterRole => vec![
                NAME,
                col(
                    "Created At",
                    "date",
                    "CreationTimestamp is a timestamp representing the server time when this object was created.",
                ),
            ],
            RbacKind::RoleBinding | RbacKind::ClusterRoleBinding => vec![
                NAME,
                col("Role", "string", "RoleRef is the reference to the role."),
                AGE,
                wide("Users", "string", "Users in the binding"),
                wide("Groups", "string", "Groups in the binding"),
                wide(
                    "ServiceAccounts",
                    "string",
                    "ServiceAccounts in the binding",
                ),
            ],
        }
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        match self.0 {
            RbacKind::Role | RbacKind::ClusterRole => vec![
                name(obj),
                obj.pointer("/metadata/creationTimestamp")
                    .cloned()
                    .unwrap_or(Value::Null),
            ],
            RbacKind::RoleBinding | RbacKind::ClusterRoleBinding => vec![
                name(obj),
                json!(format!(
                    "{}/{}",
                    obj["roleRef"]["kind"].as_str().unwrap_or_default(),
                    obj["roleRef"]["name"].as_str().unwrap_or_default()
                )),
                age(obj, Timestamp::now()),
                json!(subject_names(obj, "User")),
                json!(subject_names(obj, "Group")),
                json!(subject_names(obj, "ServiceAccount")),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_path_segments() {
        assert!(path_segment_name("system:node").is_empty());
        assert_eq!(path_segment_name(".."), ["may not be '..'"]);
        assert_eq!(
            path_segment_name("a/b%"),
            ["may not contain '/'", "may not contain '%'"]
        );
    }

    #[test]
    fn rules_need_verbs_groups_and_resources() {
        let s = RbacStrategy(RbacKind::Role);
        let bad = json!({"rules": [
            {"resources": ["pods"]},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
        ]});
        let fields: Vec<String> = s.validate(&bad).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "rules[0].verbs",
                "rules[0].apiGroups",
                "rules[1].nonResourceURLs"
            ]
        );
        let ok = json!({"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        assert!(s.validate(&ok).is_empty());
        let urls = json!({"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
        assert!(
            RbacStrategy(RbacKind::ClusterRole)
                .validate(&urls)
                .is_empty()
        );
    }

    #[test]
    fn bindings_check_their_role_and_subjects() {
        let s = RbacStrategy(RbacKind::ClusterRoleBinding);
        let mut b = json!({
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "view"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "sa"}, {"kind": "Robot", "name": "r"}]
        });
        s.default(&mut b);
        assert_eq!(b["subjects"][0]["apiGroup"], RBAC_GROUP);
        let msgs: Vec<String> = s
            .validate(&b)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            msgs,
            [
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[1].namespace: Required value",
                "subjects[2].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            ]
        );
        let old = json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "a"}});
        let new = json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "b"}});
        assert_eq!(
            s.validate_update(&new, &old)[0].message,
            "Invalid value: {\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":\"b\"}: cannot change roleRef"
        );
    }

    #[test]
    fn binding_rows_name_the_role_and_subjects() {
        let b = json!({"metadata": {"name": "x"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "Group", "name": "dev"},
                {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}]});
        let cells = RbacStrategy(RbacKind::RoleBinding).cells(&b);
        assert_eq!(cells[1], "ClusterRole/view");
        assert_eq!(cells[3..], [json!("jane"), json!("dev"), json!("build/ci")]);
    }
}
