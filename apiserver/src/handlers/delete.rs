//! Delete (DELETE of one object): preconditions, the kind's grace period, garbage-collector
//! finalizers by propagation policy, and either removal or a pending deletion
//! (`deletionTimestamp`) held by finalizers, a grace period or the object's contents.

use axum::response::Response;
use serde_json::{Value, json};
use skiff_api::validation::Cause;

use super::object::{ObjectRef, encode, finalizers_empty, meta_mut, meta_str, read, set_rv};
use super::request::ApiRequest;
use super::{ApiState, json_response};
use crate::error::ApiError;
use crate::registry::Registry;
use crate::storage::StoreError;
use crate::strategy::Deletion;

/// DELETE of one object: 200 with the object once gone, 202 while its deletion is pending.
pub(super) async fn serve(
    state: &ApiState,
    req: &ApiRequest,
    at: &ObjectRef<'_>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let opts = DeleteOptions::from_request(&state.kinds, req, body)?;
    let (obj, gone) = delete(state, at, &opts).await?;
    Ok(json_response(
        if gone { 200 } else { 202 },
        &state.kinds.to_served(at.kind, obj)?,
    ))
}

/// The finalizer that makes the garbage collector delete dependents before the owner.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer that makes the garbage collector orphan dependents before the owner goes.
pub const ORPHAN: &str = "orphan";

/// Adds a finalizer if absent (and drops the opposite GC finalizer, as Kubernetes does when
/// the propagation policy changes); true when the object changed.
fn add_finalizer(obj: &mut Value, finalizer: &str) -> bool {
    let other = if finalizer == FOREGROUND {
        ORPHAN
    } else {
        FOREGROUND
    };
    let meta = meta_mut(obj);
    let list = meta
        .entry("finalizers")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(arr) = list.as_array_mut() else {
        return false;
    };
    let before = arr.len();
    arr.retain(|f| f != other);
    let removed = arr.len() != before;
    if arr.iter().any(|f| f == finalizer) {
        return removed;
    }
    arr.push(Value::String(finalizer.to_string()));
    true
}

/// Options of a delete, from the DeleteOptions body or the query.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    /// `propagationPolicy`.
    pub propagation: Option<String>,
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun: [All]`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// The options of a DELETE: its body with the query's values beneath.
    pub fn from_request(kinds: &Registry, req: &ApiRequest, body: &[u8]) -> Result<Self, ApiError> {
        Self::parse(
            kinds,
            body,
            req.query.propagation_policy.clone(),
            req.query.grace_period_seconds,
            req.query.dry_run,
        )
    }

    /// Reads DeleteOptions from a JSON body (may be empty), overlaying query values.
    pub fn parse(
        kinds: &Registry,
        body: &[u8],
        propagation: Option<String>,
        grace: Option<i64>,
        dry_run: bool,
    ) -> Result<Self, ApiError> {
        let mut o = DeleteOptions {
            propagation,
            grace_period: grace,
            dry_run,
            ..Default::default()
        };
        if body.iter().any(|b| !b.is_ascii_whitespace()) {
            // kubectl's typed clients send DeleteOptions as protobuf.
            let v: Value = if body.starts_with(b"k8s\0") {
                crate::protobuf::decode_request(body, kinds)?
            } else {
                serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
            };
            if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
                o.propagation = Some(p.into());
            }
            if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
                o.grace_period = Some(g);
            }
            o.uid = v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(Into::into);
            o.resource_version = v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(Into::into);
            if v.get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x == "All"))
            {
                o.dry_run = true;
            }
        }
        if let Some(p) = &o.propagation
            && !matches!(p.as_str(), "Background" | "Foreground" | "Orphan")
        {
            return Err(ApiError::invalid(
                "",
                "DeleteOptions",
                "",
                &[Cause::not_supported(
                    "propagationPolicy",
                    &json!(p),
                    &["Foreground", "Background", "Orphan"],
                )],
            ));
        }
        Ok(o)
    }
}

/// Deletes an object. Returns the object and whether it is gone (`false`: deletion pending
/// on finalizers or a graceful pod shutdown).
pub async fn delete(
    state: &ApiState,
    at: &ObjectRef<'_>,
    opts: &DeleteOptions,
) -> Result<(Value, bool), ApiError> {
    let st = at.storage.strategy();
    let key = at.key();
    // kube-apiserver retries a conflicting delete until it wins; controllers writing the
    // status of a busy object can win several rounds in a row on a loaded machine, so the
    // later attempts wait a little to let them finish.
    for attempt in 0..32u64 {
        if attempt >= 4 {
            tokio::time::sleep(std::time::Duration::from_millis(5 * attempt)).await;
        }
        let (mut obj, rev) = read(state, at).await?;
        if let Some(uid) = &opts.uid
            && meta_str(&obj, "uid") != Some(uid.as_str())
        {
            return Err(at.conflict(&format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(&obj, "uid").unwrap_or("")
            )));
        }
        if let Some(want) = &opts.resource_version
            && *want != rev.to_string()
        {
            return Err(at.conflict(&format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"
                )));
        }
        let grace = st.graceful_delete(&obj, opts.grace_period);
        let after_contents = st.deletion() == Deletion::AfterContents;
        // Foreground and Orphan deletion hand the object to the garbage collector through a
        // finalizer, as Kubernetes does; Background deletes the owner now.
        let gc_finalizer = match opts.propagation.as_deref() {
            Some("Foreground") if !after_contents => Some(FOREGROUND),
            Some("Orphan") if !after_contents => Some(ORPHAN),
            _ => None,
        };
        let added_finalizer = gc_finalizer.is_some_and(|f| add_finalizer(&mut obj, f));
        let pending = !finalizers_empty(&obj) || grace > 0 || after_contents;
        if pending {
            let already = obj.pointer("/metadata/deletionTimestamp").is_some();
            let old_grace = obj
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            let shorter = old_grace.is_some_and(|g| g > grace);
            if already && !shorter && !added_finalizer {
                return Ok((obj, false));
            }
            let when = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
            if !already || shorter {
                let m = meta_mut(&mut obj);
                m.insert(
                    "deletionTimestamp".into(),
                    Value::String(when.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                );
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            st.prepare_delete(&mut obj);
            if opts.dry_run {
                return Ok((obj, false));
            }
            match state.store.update(&key, encode(&obj), rev).await {
                Ok(nrev) => {
                    set_rv(&mut obj, nrev);
                    if after_contents {
                        super::namespace::spawn_finalizer(
                            state.clone_handle(),
                            at.name.to_string(),
                        );
                    }
                    return Ok((obj, false));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(at.store_err(e)),
            }
        }
        if opts.dry_run {
            return Ok((obj, true));
        }
        match state.store.delete(&key, Some(rev)).await {
            Ok((drev, _)) => {
                state.hooks.after_delete(at.storage, &obj).await;
                set_rv(&mut obj, drev);
                return Ok((obj, true));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(at.store_err(e)),
        }
    }
    Err(at.conflict("the object kept changing during deletion; try again"))
}
