//! Escalation prevention, as kube-apiserver's RBAC storage does it: a user may write a Role
//! or ClusterRole only with rules it already holds (unless allowed `escalate` on it), and a
//! binding only to a role whose rules it holds (unless allowed `bind` on that role). Writes
//! the server makes itself (no request user) and `system:masters` are not checked.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::rbac::{Authorizer, Rule};
use super::{Attributes, CURRENT_USER, Decision, authorize};
use crate::auth::UserInfo;
use crate::auth::authn::GROUP_MASTERS;
use crate::error::ApiError;
use crate::handlers::hooks::{FinishWrite, NothingToFinish, WriteHook};
use crate::strategy::RBAC_GROUP;

/// One atomic permission: a verb on one group, resource and name, or on one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Atom {
    verb: String,
    group: String,
    resource: String,
    name: String,
    url: String,
}

fn atoms(rule: &Rule) -> Vec<Atom> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for url in &rule.non_resource_urls {
            out.push(Atom {
                verb: verb.clone(),
                group: String::new(),
                resource: String::new(),
                name: String::new(),
                url: url.clone(),
            });
        }
        for group in &rule.api_groups {
            for resource in &rule.resources {
                let names = if rule.resource_names.is_empty() {
                    vec![String::new()]
                } else {
                    rule.resource_names.clone()
                };
                for name in names {
                    out.push(Atom {
                        verb: verb.clone(),
                        group: group.clone(),
                        resource: resource.clone(),
                        name,
                        url: String::new(),
                    });
                }
            }
        }
    }
    out
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|v| v == "*" || v == want)
}

/// Whether an owner rule covers an atomic permission (a `*` asked for is covered only by a
/// `*` held).
fn covers(owner: &Rule, a: &Atom) -> bool {
    if !has(&owner.verbs, &a.verb) {
        return false;
    }
    if !a.url.is_empty() {
        return owner.non_resource_urls.iter().any(|u| {
            u == "*" || *u == a.url || u.strip_suffix('*').is_some_and(|p| a.url.starts_with(p))
        });
    }
    let resource = owner.resources.iter().any(|r| {
        r == "*"
            || *r == a.resource
            || r.strip_prefix("*/")
                .is_some_and(|sub| a.resource.split_once('/').is_some_and(|(_, s)| s == sub))
    });
    has(&owner.api_groups, &a.group)
        && resource
        && (owner.resource_names.is_empty() || owner.resource_names.contains(&a.name))
}

/// The rules of `wanted` that `held` does not cover, in Kubernetes' short form.
fn not_held(held: &[Rule], wanted: &[Rule]) -> Vec<String> {
    let mut missing = Vec::new();
    for rule in wanted {
        for a in atoms(rule) {
            if !held.iter().any(|h| covers(h, &a)) {
                let line = if a.url.is_empty() {
                    let names = if a.name.is_empty() {
                        String::new()
                    } else {
                        format!(", ResourceNames:[{:?}]", a.name)
                    };
                    format!(
                        "{{APIGroups:[{:?}], Resources:[{:?}]{names}, Verbs:[{:?}]}}",
                        a.group, a.resource, a.verb
                    )
                } else {
                    format!("{{NonResourceURLs:[{:?}], Verbs:[{:?}]}}", a.url, a.verb)
                };
                if !missing.contains(&line) {
                    missing.push(line);
                }
            }
        }
    }
    missing
}

/// Which RBAC kind a hook guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guarded {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

/// The escalation check of one RBAC kind.
pub struct EscalationCheck {
    authz: Arc<Authorizer>,
    kind: Guarded,
}

/// The hooks of the four RBAC kinds, by storage plural.
pub fn hooks(authz: &Arc<Authorizer>) -> Vec<(&'static str, Arc<dyn WriteHook>)> {
    [
        ("roles", Guarded::Role),
        ("clusterroles", Guarded::ClusterRole),
        ("rolebindings", Guarded::RoleBinding),
        ("clusterrolebindings", Guarded::ClusterRoleBinding),
    ]
    .into_iter()
    .map(|(plural, kind)| {
        let hook: Arc<dyn WriteHook> = Arc::new(EscalationCheck {
            authz: authz.clone(),
            kind,
        });
        (plural, hook)
    })
    .collect()
}

impl EscalationCheck {
    fn plural(&self) -> &'static str {
        match self.kind {
            Guarded::Role => "roles",
            Guarded::ClusterRole => "clusterroles",
            Guarded::RoleBinding => "rolebindings",
            Guarded::ClusterRoleBinding => "clusterrolebindings",
        }
    }

    async fn allowed_to(
        &self,
        user: &UserInfo,
        verb: &str,
        resource: &str,
        ns: &str,
        name: &str,
    ) -> bool {
        let a = Attributes {
            user: user.clone(),
            verb: verb.into(),
            resource_request: true,
            api_group: RBAC_GROUP.into(),
            resource: resource.into(),
            namespace: ns.into(),
            name: name.into(),
            ..Default::default()
        };
        matches!(authorize(&self.authz, &a).await, Decision::Allow(_))
    }

    async fn check(&self, obj: &Value) -> Result<(), ApiError> {
        let Ok(user) = CURRENT_USER.try_with(Clone::clone) else {
            return Ok(());
        };
        if user.in_group(GROUP_MASTERS) {
            return Ok(());
        }
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let idx = self.authz.index().await;
        let held = idx.rules_for(&user, ns);
        let wanted = match self.kind {
            Guarded::Role | Guarded::ClusterRole => {
                if self
                    .allowed_to(&user, "escalate", self.plural(), ns, name)
                    .await
                {
                    return Ok(());
                }
                Rule::all_of(obj)
            }
            Guarded::RoleBinding | Guarded::ClusterRoleBinding => {
                let kind = obj["roleRef"]["kind"].as_str().unwrap_or_default();
                let role = obj["roleRef"]["name"].as_str().unwrap_or_default();
                let role_plural = if kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                };
                if self.allowed_to(&user, "bind", role_plural, ns, role).await {
                    return Ok(());
                }
                match idx.role(ns, kind, role) {
                    Some(rules) => rules.to_vec(),
                    None => {
                        let what = if kind == "Role" {
                            "roles"
                        } else {
                            "clusterroles"
                        };
                        return Err(ApiError::forbidden(
                            RBAC_GROUP,
                            self.plural(),
                            name,
                            &format!(
                                "user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held: {what}.{RBAC_GROUP} {role:?} not found",
                                user.name, user.groups
                            ),
                        ));
                    }
                }
            }
        };
        let missing = not_held(&held, &wanted);
        if missing.is_empty() {
            return Ok(());
        }
        let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
        Err(ApiError::forbidden(
            RBAC_GROUP,
            self.plural(),
            name,
            &format!(
                "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
                user.name,
                groups.join(" "),
                missing.join("\n")
            ),
        ))
    }
}

#[async_trait]
impl WriteHook for EscalationCheck {
    async fn begin_create(
        &self,
        obj: &mut Value,
        _dry_run: bool,
    ) -> Result<Box<dyn FinishWrite>, ApiError> {
        self.check(obj).await?;
        Ok(Box::new(NothingToFinish))
    }

    async fn begin_update(
        &self,
        new: &mut Value,
        _old: &Value,
        _dry_run: bool,
    ) -> Result<Box<dyn FinishWrite>, ApiError> {
        self.check(new).await?;
        Ok(Box::new(NothingToFinish))
    }

    async fn after_delete(&self, _obj: &Value) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> Rule {
        Rule::from_json(&v)
    }

    #[test]
    fn held_rules_cover_what_they_grant() {
        let held = [
            rule(
                json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]}),
            ),
            rule(json!({"verbs": ["*"], "apiGroups": ["apps"], "resources": ["*"]})),
            rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz/*"]})),
        ];
        let ok = [
            rule(
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}),
            ),
            rule(
                json!({"verbs": ["delete", "create"], "apiGroups": ["apps"], "resources": ["deployments/scale"]}),
            ),
            rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz/ping"]})),
        ];
        assert!(not_held(&held, &ok).is_empty());
        let bad = [
            rule(
                json!({"verbs": ["get", "watch"], "apiGroups": [""], "resources": ["pods", "secrets"]}),
            ),
            rule(json!({"verbs": ["get"], "apiGroups": ["*"], "resources": ["pods"]})),
        ];
        assert_eq!(
            not_held(&held, &bad),
            [
                "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}",
                "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"watch\"]}",
                "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"watch\"]}",
                "{APIGroups:[\"*\"], Resources:[\"pods\"], Verbs:[\"get\"]}",
            ]
        );
    }
}
