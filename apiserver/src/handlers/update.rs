//! Update (PUT, and the second half of PATCH): the incoming object merged over the stored one
//! by scope (main resource, status, approval), immutable metadata kept, generation bumped on
//! spec changes, the kind's defaulting and update validation, a write conditioned on the
//! revision read. A deletion whose last finalizer goes completes here.

use axum::response::Response;
use serde_json::{Value, json};
use skiff_api::validation::Cause;

use super::object::{
    ObjectRef, canonical, decode_body, encode, finalizers_empty, has_status_sub, invalid, meta_mut,
    meta_str, owned_part, read, record_fields, sent_fields, set_rv, validate,
};
use super::request::ApiRequest;
use super::{ApiState, json_response};
use crate::error::ApiError;
use crate::managed::{FieldWrite, Operation};
use crate::registry::Kind;
use crate::storage::Revision;

/// PUT of a decoded body to the object or its `scope` subresource: 200 with the served
/// object.
pub(super) async fn serve(
    state: &ApiState,
    req: &ApiRequest,
    at: &ObjectRef<'_>,
    obj: Value,
    scope: UpdateScope,
) -> Result<Response, ApiError> {
    let by = req.field_write("UpdateOptions", Operation::Update)?;
    let obj = decode_body(&state.kinds, at.kind, obj, req.query.field_validation)?;
    let out = update(state, at, obj, scope, req.query.dry_run, None, Some(&by)).await?;
    Ok(json_response(200, &state.kinds.to_served(at.kind, out)?))
}

fn parse_rv(obj: &Value) -> Result<Option<Revision>, ApiError> {
    match meta_str(obj, "resourceVersion").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "metadata.resourceVersion: Invalid value: {s:?}: must be an integer"
            ))
        }),
    }
}

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateScope {
    /// The main resource: everything but status (for kinds with a status subresource).
    Main,
    /// The status subresource: only status.
    Status,
    /// An internal update allowed to touch both (bindings, scale).
    Both,
    /// The approval subresource: only `status.conditions` (CertificateSigningRequests).
    Approval,
}

fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

/// Merges an incoming object (storage form) over the current one according to the update
/// scope and the generic metadata rules, then defaults and validates it.
fn prepare_update(
    s: &Kind,
    old: &Value,
    incoming: Value,
    scope: UpdateScope,
) -> Result<Value, ApiError> {
    let mut new = match scope {
        UpdateScope::Status => {
            let mut n = old.clone();
            n["status"] = incoming.get("status").cloned().unwrap_or(Value::Null);
            if n["status"].is_null() {
                n.as_object_mut().map(|m| m.remove("status"));
            }
            n
        }
        UpdateScope::Approval => {
            let mut n = old.clone();
            match incoming.pointer("/status/conditions") {
                Some(c) if !c.is_null() => n["status"]["conditions"] = c.clone(),
                _ => {
                    if let Some(st) = n.get_mut("status").and_then(Value::as_object_mut) {
                        st.remove("conditions");
                    }
                }
            }
            n
        }
        UpdateScope::Main if has_status_sub(s) => {
            let mut n = incoming;
            match old.get("status") {
                Some(st) => n["status"] = st.clone(),
                None => {
                    n.as_object_mut().map(|m| m.remove("status"));
                }
            }
            n
        }
        _ => incoming,
    };
    let st = s.strategy();
    let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
    {
        let meta = meta_mut(&mut new);
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(f) {
                Some(v) => meta.insert(f.into(), v.clone()),
                None => meta.remove(f),
            };
        }
        meta.remove("managedFields");
    }
    st.default(&mut new);
    st.prepare_update(&mut new, old);
    if scope == UpdateScope::Status {
        st.prepare_status_update(&mut new, old);
    }
    if st.uses_generation() && spec_part(&new) != spec_part(old) {
        let g = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(&mut new).insert("generation".into(), json!(g + 1));
    }
    let mut causes = validate(s, &new);
    if scope != UpdateScope::Both {
        causes.extend(st.validate_update(&new, old));
    }
    if old_meta.get("deletionTimestamp").is_some() {
        // Finalizers may be removed but not added once deletion has started.
        let old_f: Vec<&Value> = old_meta
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        if let Some(newf) = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
        {
            for f in newf {
                if !old_f.contains(&f) {
                    causes.push(Cause::forbidden("metadata.finalizers", format!("no new finalizers can be added if the object is being deleted, found new finalizers [{}]", f.as_str().unwrap_or(""))));
                }
            }
        }
    }
    if !causes.is_empty() {
        return Err(invalid(s, &new, &causes));
    }
    Ok(new)
}

/// Replaces an object (PUT or the second half of PATCH) written by `by`, whose fields are
/// recorded in managedFields (`None` for the server's own writes, which keep the entries as
/// they are). `incoming` is in storage form; `current` the object and revision the change
/// is based on, if already read.
pub async fn update(
    state: &ApiState,
    at: &ObjectRef<'_>,
    incoming: Value,
    scope: UpdateScope,
    dry_run: bool,
    current: Option<(Value, Revision)>,
    by: Option<&FieldWrite>,
) -> Result<Value, ApiError> {
    let s = at.storage;
    let body_name = meta_str(&incoming, "name").unwrap_or("");
    if !body_name.is_empty() && body_name != at.name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            at.name
        )));
    }
    if let (Some(b), Some(p)) = (
        meta_str(&incoming, "namespace").filter(|s| !s.is_empty()),
        at.namespace,
    ) && s.info.namespaced
        && b != p
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let precondition = parse_rv(&incoming)?;
    let (old, rev) = match current {
        Some(c) => c,
        None => read(state, at).await?,
    };
    if let Some(p) = precondition
        && p != rev
    {
        return Err(at.conflict(
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
    }
    let sent = sent_fields(&incoming);
    let mut new = prepare_update(s, &old, incoming, scope)?;
    record_fields(
        at.kind,
        Some(&old),
        &mut new,
        sent,
        owned_part(s, scope),
        by,
    );
    let mut cmp_old = old.clone();
    let mut cmp_new = new.clone();
    for o in [&mut cmp_old, &mut cmp_new] {
        meta_mut(o).remove("resourceVersion");
    }
    if cmp_old == cmp_new {
        return Ok(old);
    }
    if dry_run {
        state.hooks.begin_update(s, &mut new, &old, true).await?;
        return canonical(s, new);
    }
    let key = at.key();
    // A deletion in progress completes once the last finalizer goes, unless the kind still
    // waits for someone to finish it (a bound pod's kubelet).
    let waiting = s.strategy().graceful_delete(
        &new,
        Some(
            new.pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        ),
    ) > 0;
    if new.pointer("/metadata/deletionTimestamp").is_some() && finalizers_empty(&new) && !waiting {
        let (drev, _) = state
            .store
            .delete(&key, Some(rev))
            .await
            .map_err(|e| at.store_err(e))?;
        state.hooks.after_delete(s, &new).await;
        let mut out = new;
        set_rv(&mut out, drev);
        return Ok(out);
    }
    let finish = state.hooks.begin_update(s, &mut new, &old, false).await?;
    let new = match canonical(s, new) {
        Ok(n) => n,
        Err(e) => {
            finish.finish(false).await;
            return Err(e);
        }
    };
    let updated = state.store.update(&key, encode(&new), rev).await;
    finish.finish(updated.is_ok()).await;
    let nrev = updated.map_err(|e| at.store_err(e))?;
    let mut out = new;
    set_rv(&mut out, nrev);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_part_ignores_metadata_and_status() {
        let a = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"y": 1}});
        let b = json!({"metadata": {"name": "b"}, "spec": {"x": 1}, "status": {"y": 2}});
        assert_eq!(spec_part(&a), spec_part(&b));
    }
}
