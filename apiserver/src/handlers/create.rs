//! Create (POST): the generic rules of a new object — namespace from the path, generated
//! names, uid and timestamps, generation, no client status for kinds with a status
//! subresource (unless the kind keeps it) — then the kind's defaulting and validation, and a
//! store create that fails if the object exists.

use std::sync::Arc;

use axum::response::Response;
use serde_json::{Value, json};

use super::object::{
    canonical, decode_body, decode_kv, encode, has_status_sub, invalid, meta_mut, meta_str, now,
    owned_part, record_fields, sent_fields, set_rv, validate,
};
use super::request::ApiRequest;
use super::update::UpdateScope;
use super::{ApiState, json_response};
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::managed::{FieldWrite, Operation};
use crate::registry::Kind;

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// POST of a decoded body (`obj`, as the client sent it): 201 with the served object.
pub(super) async fn serve(
    state: &ApiState,
    req: &ApiRequest,
    obj: Value,
    user: Option<&UserInfo>,
) -> Result<Response, ApiError> {
    let by = req.field_write("CreateOptions", Operation::Update)?;
    serve_by(state, req, obj, user, &by).await
}

/// POST of a decoded body written by `by` (an Update, or the Apply that creates a missing
/// object).
pub(super) async fn serve_by(
    state: &ApiState,
    req: &ApiRequest,
    obj: Value,
    user: Option<&UserInfo>,
    by: &FieldWrite,
) -> Result<Response, ApiError> {
    let kinds = &state.kinds;
    let mut obj = decode_body(kinds, &req.kind, obj, req.query.field_validation)?;
    kinds
        .storage_of(&req.kind)
        .strategy()
        .set_requestor(&mut obj, user);
    let ns = req.namespace.as_deref();
    let out = create_by(state, &req.kind, obj, ns, req.query.dry_run, Some(by)).await?;
    Ok(json_response(201, &kinds.to_served(&req.kind, out)?))
}

fn check_namespace(k: &Kind, obj: &mut Value, path_ns: Option<&str>) -> Result<(), ApiError> {
    let body_ns = meta_str(obj, "namespace")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if !k.info.namespaced {
        meta_mut(obj).remove("namespace");
        return Ok(());
    }
    match (body_ns.as_deref(), path_ns) {
        (Some(b), Some(p)) if b != p => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        (_, Some(p)) => {
            meta_mut(obj).insert("namespace".into(), Value::String(p.into()));
            Ok(())
        }
        (Some(_), None) => Ok(()),
        (None, None) => Err(ApiError::bad_request(
            "a namespace is required for this resource",
        )),
    }
}

async fn check_namespace_exists(state: &ApiState, s: &Kind, obj: &Value) -> Result<(), ApiError> {
    if !s.info.namespaced {
        return Ok(());
    }
    let ns = meta_str(obj, "namespace").unwrap_or("");
    let nsr = state
        .kinds
        .find("", "v1", "namespaces")
        .expect("namespaces are served");
    match state
        .store
        .get(&nsr.info.key(None, ns))
        .await
        .map_err(ApiError::internal)?
    {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(kv) => {
            let nso = decode_kv(&kv)?;
            if nso.pointer("/metadata/deletionTimestamp").is_some() {
                Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        s.info.plural,
                        meta_str(obj, "name").unwrap_or("")
                    ),
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// Creates an object as the server's own write (no managedFields). See [`create_by`].
pub async fn create(
    state: &ApiState,
    kind: &Arc<Kind>,
    obj: Value,
    namespace: Option<&str>,
    dry_run: bool,
) -> Result<Value, ApiError> {
    create_by(state, kind, obj, namespace, dry_run, None).await
}

/// Creates an object of the served `kind` from a decoded body (storage form) written by
/// `by`, whose fields are recorded in managedFields. Returns the stored object in storage
/// form with its resourceVersion (not stored when `dry_run`).
pub async fn create_by(
    state: &ApiState,
    kind: &Arc<Kind>,
    mut obj: Value,
    namespace: Option<&str>,
    dry_run: bool,
    by: Option<&FieldWrite>,
) -> Result<Value, ApiError> {
    let r = kind.info;
    let sent = sent_fields(&obj);
    let s = state.kinds.storage_of(kind);
    let st = s.strategy();
    check_namespace(s, &mut obj, namespace)?;
    {
        let meta = meta_mut(&mut obj);
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty()
            && let Some(g) = meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|g| !g.is_empty())
        {
            let generated = format!("{g}{}", random_suffix());
            meta.insert("name".into(), Value::String(generated));
        }
        meta.insert(
            "uid".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        meta.insert("creationTimestamp".into(), Value::String(now()));
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ] {
            meta.remove(f);
        }
        if st.uses_generation() {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    if has_status_sub(s)
        && !st.keeps_status_on_create()
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    st.default(&mut obj);
    st.prepare_create(&mut obj);
    let causes = validate(s, &obj);
    if !causes.is_empty() {
        return Err(invalid(s, &obj, &causes));
    }
    let part = owned_part(s, UpdateScope::Main);
    record_fields(kind, None, &mut obj, sent, part, by);
    check_namespace_exists(state, s, &obj).await?;
    let name = meta_str(&obj, "name").unwrap_or("").to_string();
    let ns = meta_str(&obj, "namespace").map(str::to_string);
    let key = s.info.key(ns.as_deref(), &name);
    if dry_run {
        if state
            .store
            .get(&key)
            .await
            .map_err(ApiError::internal)?
            .is_some()
        {
            return Err(ApiError::already_exists(r.group, r.plural, &name));
        }
        state.hooks.begin_create(s, &mut obj, true).await?;
        return canonical(s, obj);
    }
    // Allocations happen once the object is known to be valid, and are undone if the
    // store refuses it.
    let finish = state.hooks.begin_create(s, &mut obj, false).await?;
    let mut obj = match canonical(s, obj) {
        Ok(o) => o,
        Err(e) => {
            finish.finish(false).await;
            return Err(e);
        }
    };
    let created = state.store.create(&key, encode(&obj)).await;
    finish.finish(created.is_ok()).await;
    let rev = created.map_err(|e| ApiError::from_store(e, r.group, r.plural, &name))?;
    set_rv(&mut obj, rev);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_use_kubernetes_alphabet() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
