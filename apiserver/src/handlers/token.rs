//! ServiceAccount tokens through the API: POST serviceaccounts/<name>/token (a TokenRequest,
//! what `kubectl create token` and the kubelet send) issues a bound token, as kube-apiserver's
//! `TokenREST`; and a bearer token of that shape authenticates as the ServiceAccount only
//! while the ServiceAccount, and the object the token is bound to, still exist with the
//! uids the token names (so deleting a pod invalidates its tokens at once).

use std::sync::Arc;

use serde_json::{Value, json};
use skiff_api::validation::Cause;

use super::ApiState;
use super::object::{ObjectRef, read, read_core};
use crate::auth::UserInfo;
use crate::auth::authn::GROUP_AUTHENTICATED;
use crate::auth::service_account::{
    BoundRef, Claims, ISSUER, KubernetesClaim, SigningKey, groups, user_name,
};
use crate::error::ApiError;

/// kube-apiserver's default and minimum token lifetimes.
const DEFAULT_EXPIRATION: i64 = 3600;
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;

fn key(state: &ApiState) -> Result<&Arc<SigningKey>, ApiError> {
    state.service_account_key.as_ref().ok_or_else(|| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            "this server has no service-account signing key",
        )
    })
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// POST serviceaccounts/<name>/token: the TokenRequest answered with its token.
pub async fn request_token(
    state: &ApiState,
    at: &ObjectRef<'_>,
    body: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let key = key(state)?;
    let (sa, _) = read(state, at).await?;
    let namespace = at.namespace.unwrap_or_default();
    let name = at.name;
    let spec = &body["spec"];
    let invalid = |field: &str, v: &Value, why: &str| {
        ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            &[Cause::invalid(field, v, why)],
        )
    };
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION,
        v => {
            let secs = v.as_i64().unwrap_or(0);
            if secs < MIN_EXPIRATION {
                return Err(invalid(
                    "spec.expirationSeconds",
                    v,
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if secs > MAX_EXPIRATION {
                return Err(invalid(
                    "spec.expirationSeconds",
                    v,
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
            secs
        }
    };
    let audiences: Vec<String> = match spec["audiences"].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => vec![ISSUER.to_string()],
    };
    let mut kubernetes = KubernetesClaim {
        namespace: namespace.to_string(),
        serviceaccount: BoundRef {
            name: name.to_string(),
            uid: uid(&sa),
        },
        pod: None,
        secret: None,
        node: None,
    };
    let bound = &spec["boundObjectRef"];
    if bound.is_object() {
        let kind = bound["kind"].as_str().unwrap_or_default();
        let api_version = bound["apiVersion"].as_str().unwrap_or("v1");
        let obj_name = bound["name"].as_str().unwrap_or_default();
        let (plural, ns) = match (kind, api_version) {
            ("Pod", "v1") => ("pods", Some(namespace)),
            ("Secret", "v1") => ("secrets", Some(namespace)),
            ("Node", "v1") => ("nodes", None),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {name:?} to object of kind \"{api_version}, Kind={kind}\""
                )));
            }
        };
        let obj = read_core(state, plural, ns, obj_name).await?;
        let actual = uid(&obj);
        if let Some(want) = bound["uid"].as_str().filter(|u| !u.is_empty())
            && want != actual
        {
            return Err(ApiError::conflict(
                "",
                kind,
                obj_name,
                &format!(
                    "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        if kind == "Pod" {
            let runs_as = obj["spec"]["serviceAccountName"]
                .as_str()
                .unwrap_or("default");
            if runs_as != name {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {name:?} to pod {obj_name:?} running with different serviceaccount name."
                )));
            }
        }
        let r = Some(BoundRef {
            name: obj_name.to_string(),
            uid: actual,
        });
        match kind {
            "Pod" => kubernetes.pod = r,
            "Secret" => kubernetes.secret = r,
            _ => kubernetes.node = r,
        }
    }
    let now = jiff::Timestamp::now();
    let exp = now.as_second() + expiration;
    let mut out = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace,
            "creationTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()},
        "spec": {"audiences": audiences, "expirationSeconds": expiration},
        "status": {"token": "", "expirationTimestamp":
            jiff::Timestamp::from_second(exp).map_err(ApiError::internal)?
                .strftime("%Y-%m-%dT%H:%M:%SZ").to_string()},
    });
    if bound.is_object() {
        out["spec"]["boundObjectRef"] = bound.clone();
    }
    if dry_run {
        return Ok(out);
    }
    let claims = Claims {
        iss: ISSUER.into(),
        sub: user_name(namespace, name),
        aud: audiences,
        exp,
        iat: now.as_second(),
        nbf: now.as_second(),
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes,
    };
    out["status"]["token"] = key.issue(&claims).map_err(ApiError::internal)?.into();
    Ok(out)
}

/// The ServiceAccount user of a bearer token this cluster issued for the API server's
/// audience, if the token is valid now: signed by the cluster's key, not expired, and its
/// ServiceAccount and bound object still there with the same uids.
pub async fn authenticate(state: &ApiState, token: &str) -> Option<UserInfo> {
    authenticate_for(state, token, &[ISSUER])
        .await
        .map(|(user, _)| user)
}

/// [`authenticate`] for any of `audiences`: the user and the audiences the token is for
/// among them.
pub async fn authenticate_for(
    state: &ApiState,
    token: &str,
    audiences: &[&str],
) -> Option<(UserInfo, Vec<String>)> {
    let key = state.service_account_key.as_ref()?;
    let claims = key.verify(token, audiences)?;
    let k = &claims.kubernetes;
    let ns = Some(k.namespace.as_str());
    let still = |obj: &Value, want: &str| uid(obj) == want;
    let sa = read_core(state, "serviceaccounts", ns, &k.serviceaccount.name)
        .await
        .ok()?;
    if !still(&sa, &k.serviceaccount.uid) {
        return None;
    }
    for (plural, bound, ns) in [
        ("pods", &k.pod, ns),
        ("secrets", &k.secret, ns),
        ("nodes", &k.node, None),
    ] {
        if let Some(b) = bound {
            let obj = read_core(state, plural, ns, &b.name).await.ok()?;
            if !still(&obj, &b.uid) || obj["metadata"]["deletionTimestamp"].is_string() {
                return None;
            }
        }
    }
    let mut groups = groups(&k.namespace);
    groups.push(GROUP_AUTHENTICATED.into());
    let user = UserInfo {
        name: user_name(&k.namespace, &k.serviceaccount.name),
        groups,
    };
    let matched = claims
        .aud
        .iter()
        .filter(|a| audiences.contains(&a.as_str()))
        .cloned()
        .collect();
    Some((user, matched))
}

/// The status of a TokenReview (authentication.k8s.io/v1): who `spec.token` authenticates
/// as, for `spec.audiences` (the API server's own when none are given). Static tokens are
/// for the API server's audience only, as kube-apiserver treats authenticators that know no
/// audiences.
pub async fn review(state: &ApiState, spec: &Value) -> Result<Value, ApiError> {
    let token = spec["token"].as_str().unwrap_or_default().trim();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication group",
        ));
    }
    let wanted: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let implicit = wanted.is_empty();
    let wanted = if implicit {
        vec![ISSUER.to_string()]
    } else {
        wanted
    };
    let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let mut found = authenticate_for(state, token, &refs).await;
    if found.is_none()
        && refs.contains(&ISSUER)
        && let Some(static_tokens) = &state.authn
    {
        found = static_tokens
            .authenticate_bearer(token)
            .map(|u| (u, vec![ISSUER.to_string()]));
    }
    Ok(match found {
        Some((user, audiences)) => json!({
            "authenticated": true,
            "user": {"username": user.name, "groups": user.groups},
            "audiences": if implicit { Vec::new() } else { audiences },
        }),
        None => json!({"user": {}, "error": "invalid bearer token"}),
    })
}
