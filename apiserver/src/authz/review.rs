//! The reviews: kinds that are answered on create and never stored.
//! - SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview and
//!   LocalSubjectAccessReview: may this user do this?
//! - SelfSubjectRulesReview (`kubectl auth can-i --list`): what may I do in a namespace?
//! - SelfSubjectReview (`kubectl auth whoami`): who am I?
//! - TokenReview: whom does this bearer token name (for webhooks and aggregated servers)?

use serde_json::{Value, json};

use super::rbac::Rule;
use super::{Attributes, Decision, authorize};
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::handlers::ApiState;
use crate::handlers::request::ApiRequest;

fn attributes_of(user: UserInfo, spec: &Value) -> Result<Attributes, ApiError> {
    if let Some(r) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
        return Ok(Attributes {
            user,
            verb: s("verb"),
            resource_request: true,
            namespace: s("namespace"),
            api_group: s("group"),
            api_version: s("version"),
            resource: s("resource"),
            subresource: s("subresource"),
            name: s("name"),
            ..Default::default()
        });
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes {
            user,
            verb: n["verb"].as_str().unwrap_or_default().into(),
            path: n["path"].as_str().unwrap_or_default().into(),
            ..Default::default()
        });
    }
    Err(ApiError::new(
        422,
        "Invalid",
        "spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
    ))
}

async fn access_status(state: &ApiState, a: &Attributes) -> Value {
    match authorize(&state.authz, a).await {
        Decision::Allow(reason) => json!({"allowed": true, "reason": reason}),
        Decision::NoOpinion => json!({"allowed": false}),
    }
}

fn rules_status(rules: &[Rule]) -> Value {
    let mut resource_rules = Vec::new();
    let mut url_rules = Vec::new();
    for r in rules {
        if r.non_resource_urls.is_empty() {
            let mut v =
                json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if !r.resource_names.is_empty() {
                v["resourceNames"] = json!(r.resource_names);
            }
            resource_rules.push(v);
        } else {
            url_rules.push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
        }
    }
    json!({"resourceRules": resource_rules, "nonResourceRules": url_rules, "incomplete": false})
}

/// Answers a review: the posted object with its `status` filled in.
pub async fn serve(
    state: &ApiState,
    req: &ApiRequest,
    mut obj: Value,
    user: Option<&UserInfo>,
) -> Result<Value, ApiError> {
    let me = user.cloned().unwrap_or_else(super::anonymous);
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let status = match req.kind.info.kind {
        "SelfSubjectAccessReview" => access_status(state, &attributes_of(me, &spec)?).await,
        "LocalSubjectAccessReview" | "SubjectAccessReview" => {
            let subject = UserInfo {
                name: spec["user"].as_str().unwrap_or_default().into(),
                groups: spec["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g.as_str().map(str::to_string))
                    .collect(),
            };
            if subject.name.is_empty() && subject.groups.is_empty() {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "{}.authorization.k8s.io \"\" is invalid: spec.user: Invalid value: \"\": at least one of user or group must be specified",
                        req.kind.info.kind
                    ),
                ));
            }
            let mut a = attributes_of(subject, &spec)?;
            if let Some(ns) = req.namespace.as_deref() {
                if a.resource_request && !a.namespace.is_empty() && a.namespace != ns {
                    return Err(ApiError::bad_request(format!(
                        "spec.resourceAttributes.namespace must match namespace: {}",
                        a.namespace
                    )));
                }
                a.namespace = ns.to_string();
            }
            access_status(state, &a).await
        }
        "SelfSubjectRulesReview" => {
            let ns = spec["namespace"].as_str().unwrap_or_default();
            let rules = state.authz.index().await.rules_for(&me, ns);
            rules_status(&rules)
        }
        "SelfSubjectReview" => json!({"userInfo": {"username": me.name, "groups": me.groups}}),
        "TokenReview" => crate::handlers::token::review(state, &spec).await?,
        other => {
            return Err(ApiError::internal(format!("{other} is not a review")));
        }
    };
    obj["status"] = status;
    if obj.get("metadata").is_none_or(Value::is_null) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["creationTimestamp"] = Value::Null;
    Ok(obj)
}
