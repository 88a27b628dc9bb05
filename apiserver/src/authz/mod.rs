//! Authorization: every request, resource or not, becomes the attributes Kubernetes
//! authorizes on (user, verb, namespace, API group, resource, subresource, name, or path),
//! and is let through only when `system:masters` or an RBAC rule allows it. Refusals are the
//! 403 `Status` kube-apiserver writes. Impersonation (`Impersonate-User`, `-Group`) is
//! authorized here too, and the effective user is what the handlers see.

pub mod bootstrap;
pub mod defaults;
pub mod escalation;
pub mod rbac;
pub mod review;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method};

use crate::auth::UserInfo;
use crate::auth::authn::{GROUP_AUTHENTICATED, GROUP_MASTERS};
use crate::error::ApiError;
use crate::handlers::ApiState;

pub use rbac::Authorizer;

/// User of requests without credentials (only the public paths let them through).
pub const USER_ANONYMOUS: &str = "system:anonymous";
/// Group of requests without credentials.
pub const GROUP_UNAUTHENTICATED: &str = "system:unauthenticated";

/// What a request asks to do, as Kubernetes' authorizers see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// Who asks.
    pub user: UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `impersonate`, `escalate`, `bind`, ... (for paths: the lower-case method).
    pub verb: String,
    /// Whether this names an API resource (else a path such as `/healthz`).
    pub resource_request: bool,
    /// The request path (for non-resource requests).
    pub path: String,
    /// Namespace, empty for cluster-scoped requests.
    pub namespace: String,
    /// API group, empty for the core group.
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource (`status`, `log`), or empty.
    pub subresource: String,
    /// Object name, or empty.
    pub name: String,
}

impl Default for UserInfo {
    fn default() -> Self {
        anonymous()
    }
}

/// The user of a request without credentials.
pub fn anonymous() -> UserInfo {
    UserInfo {
        name: USER_ANONYMOUS.into(),
        groups: vec![GROUP_UNAUTHENTICATED.into()],
    }
}

fn method_verb(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
}

/// The attributes of an HTTP request, parsed from its path as kube-apiserver's
/// `RequestInfoFactory` does: `/api/v1/...` and `/apis/<group>/<version>/...` with
/// `namespaces/<ns>/`, the legacy `watch/` prefix, `?watch=true`, and discovery documents
/// as non-resource paths.
pub fn attributes(user: UserInfo, method: &Method, path: &str, query: Option<&str>) -> Attributes {
    let mut a = Attributes {
        user,
        verb: method.as_str().to_ascii_lowercase(),
        path: path.to_string(),
        ..Default::default()
    };
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut cur: &[&str] = match parts.first() {
        Some(&"api") => &parts[1..],
        Some(&"apis") if parts.len() >= 3 => {
            a.api_group = parts[1].to_string();
            &parts[2..]
        }
        _ => return a,
    };
    if cur.len() < 2 {
        return a;
    }
    a.api_version = cur[0].to_string();
    cur = &cur[1..];
    a.resource_request = true;
    a.verb = method_verb(method).to_string();
    if cur[0] == "watch" {
        a.verb = "watch".into();
        cur = &cur[1..];
    }
    if cur.first() == Some(&"namespaces") {
        if cur.len() > 1 {
            a.namespace = cur[1].to_string();
            if cur.len() > 2 && !matches!(cur[2], "status" | "finalize") {
                cur = &cur[2..];
            }
        }
    }
    let params: Vec<(String, String)> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    a.resource = cur.first().copied().unwrap_or_default().to_string();
    a.name = cur.get(1).copied().unwrap_or_default().to_string();
    a.subresource = cur.get(2).copied().unwrap_or_default().to_string();
    if a.name.is_empty() {
        match a.verb.as_str() {
            "get" if matches!(param("watch"), Some("true" | "1")) => a.verb = "watch".into(),
            "get" => a.verb = "list".into(),
            "delete" => a.verb = "deletecollection".into(),
            _ => {}
        }
        // A list or watch of one object by name is authorized as that object.
        if matches!(a.verb.as_str(), "list" | "watch")
            && let Some(sel) = param("fieldSelector")
            && let Some(name) = sel.strip_prefix("metadata.name=")
            && !name.contains(',')
        {
            a.name = name.to_string();
        }
    } else if a.verb == "get" && matches!(param("watch"), Some("true" | "1")) {
        a.verb = "watch".into();
    }
    a
}

/// kube-apiserver's wording of a refusal (`forbiddenMessage`).
pub fn forbidden_message(a: &Attributes) -> String {
    let who = &a.user.name;
    if !a.resource_request {
        return format!("User {who:?} cannot {} path {:?}", a.verb, a.path);
    }
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    format!(
        "User {who:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        a.verb, a.api_group
    )
}

/// The 403 `Status` of a refused request (`NewForbidden` on the attributes' resource).
pub fn forbidden(a: &Attributes, reason: &str) -> ApiError {
    let mut why = forbidden_message(a);
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    if !a.resource_request {
        let mut e = ApiError::new(403, "Forbidden", format!("forbidden: {why}"));
        e.details = Some(serde_json::json!({}));
        return e;
    }
    let what = crate::error::qualified(&a.api_group, &a.resource);
    let message = if a.name.is_empty() {
        format!("{what} is forbidden: {why}")
    } else {
        format!("{what} {:?} is forbidden: {why}", a.name)
    };
    ApiError::new(403, "Forbidden", message).with_details(&a.api_group, &a.resource, &a.name)
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, with the reason (which binding).
    Allow(String),
    /// No rule allows it.
    NoOpinion,
}

impl Decision {
    /// Whether the request may go on.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// Authorizes `a`: `system:masters` always, else RBAC.
pub async fn authorize(authz: &Authorizer, a: &Attributes) -> Decision {
    if a.user.in_group(GROUP_MASTERS) {
        return Decision::Allow(String::new());
    }
    authz.authorize(a).await
}

tokio::task_local! {
    /// The effective user of the request being served (read by the RBAC escalation check,
    /// which runs inside the generic write path).
    pub static CURRENT_USER: UserInfo;
}

const IMPERSONATE_USER: &str = "impersonate-user";
const IMPERSONATE_GROUP: &str = "impersonate-group";
const IMPERSONATE_UID: &str = "impersonate-uid";
const IMPERSONATE_EXTRA: &str = "impersonate-extra-";

/// The user a request acts as: the authenticated one, or the one it impersonates when it is
/// allowed to (`impersonate` on users, groups, service accounts, uids and user extras).
async fn impersonated(
    authz: &Authorizer,
    user: UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let values = |h: &str| -> Vec<String> {
        headers
            .get_all(h)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let name = values(IMPERSONATE_USER).into_iter().next();
    let groups = values(IMPERSONATE_GROUP);
    let uid = values(IMPERSONATE_UID);
    let extras: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            let key = k.as_str().strip_prefix(IMPERSONATE_EXTRA)?;
            Some((key.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect();
    let Some(name) = name else {
        if groups.is_empty() && uid.is_empty() && extras.is_empty() {
            return Ok(user);
        }
        return Err(ApiError::bad_request(
            "requested impersonation of groups, a uid or extras without impersonating a user",
        ));
    };
    let check = |verb_target: Attributes| async move {
        match authorize(authz, &verb_target).await {
            Decision::Allow(_) => Ok(()),
            Decision::NoOpinion => Err(forbidden(&verb_target, "")),
        }
    };
    let target = |group: &str, resource: &str, namespace: &str, n: &str| Attributes {
        user: user.clone(),
        verb: "impersonate".into(),
        resource_request: true,
        api_group: group.into(),
        resource: resource.into(),
        namespace: namespace.into(),
        name: n.into(),
        ..Default::default()
    };
    let service_account = name
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'));
    match service_account {
        Some((ns, sa)) => check(target("", "serviceaccounts", ns, sa)).await?,
        None => check(target("", "users", "", &name)).await?,
    }
    for g in &groups {
        check(target("", "groups", "", g)).await?;
    }
    for u in &uid {
        check(target("authentication.k8s.io", "uids", "", u)).await?;
    }
    for (key, value) in &extras {
        let mut t = target("authentication.k8s.io", "userextras", "", value);
        t.subresource = key.clone();
        check(t).await?;
    }
    let mut all = groups;
    if let Some((ns, _)) = service_account {
        for g in [
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
        ] {
            if !all.contains(&g) {
                all.push(g);
            }
        }
    }
    if name != USER_ANONYMOUS && !all.iter().any(|g| g == GROUP_AUTHENTICATED) {
        all.push(GROUP_AUTHENTICATED.into());
    }
    Ok(UserInfo { name, groups: all })
}

/// The authorization layer: runs after authentication, on every request.
pub async fn middleware(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let user = req
        .extensions()
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(anonymous);
    let user = match impersonated(&state.authz, user, req.headers()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let a = attributes(
        user.clone(),
        req.method(),
        req.uri().path(),
        req.uri().query(),
    );
    if let Decision::NoOpinion = authorize(&state.authz, &a).await {
        tracing::debug!(user = %a.user.name, verb = %a.verb, resource = %a.resource,
            namespace = %a.namespace, path = %a.path, "forbidden");
        return forbidden(&a, "").into_response();
    }
    req.extensions_mut().insert::<UserInfo>(user.clone());
    CURRENT_USER.scope(user, next.run(req)).await
}

#[cfg(test)]
mod tests;
