//! Patch (PATCH): read the object, apply the patch (JSON, merge, strategic merge or
//! server-side apply) to its served form, then update as a PUT would; a Scale patch applies
//! to the Scale view. Server-side apply of a missing object creates it.

use axum::http::{HeaderMap, header};
use axum::response::Response;

use serde_json::{Value, json};

use super::object::{ObjectRef, decode_body, now, owned_part, read};
use super::request::ApiRequest;
use super::update::{UpdateScope, update};
use super::{ApiState, create, json_response, subresource};
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::managed::{self, FieldWrite, Operation, Writer};
use crate::patch::{self, PatchType};

/// What a patch applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// The object, or the part of it `UpdateScope` names.
    Object(UpdateScope),
    /// The Scale view of a workload.
    Scale,
}

/// PATCH of the object at `at` (or its Scale). Retries on conflicts when the patch carries
/// no resourceVersion precondition.
pub(super) async fn serve(
    state: &ApiState,
    req: &ApiRequest,
    at: &ObjectRef<'_>,
    headers: &HeaderMap,
    body: &[u8],
    target: Target,
    user: Option<&UserInfo>,
) -> Result<Response, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind =
        PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    if kind == PatchType::StrategicMerge && !at.storage.strategy().strategic_merge() {
        // kube-apiserver has no patch metadata for custom kinds.
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            ),
        ));
    }
    let kinds = &state.kinds;
    let dry = req.query.dry_run;
    let whole_object = req.subresource.is_none();
    let operation = match kind {
        PatchType::Apply => Operation::Apply,
        _ => Operation::Update,
    };
    let by = req.field_write("PatchOptions", operation)?;
    for _ in 0..5 {
        let current = match read(state, at).await {
            Ok(c) => c,
            Err(e) if e.code == 404 && kind == PatchType::Apply && whole_object => {
                let config = apply_config(at, body, UpdateScope::Main)?;
                let obj = apply(at, &json!({}), &config, &by, UpdateScope::Main, req)?;
                return create::serve_by(state, req, obj, user, &by).await;
            }
            Err(e) => return Err(e),
        };
        let scope = match target {
            Target::Scale => {
                // A Scale's apply merges into the Scale view; the workload records it as an
                // update of the fields it changed.
                let scale_by = FieldWrite {
                    operation: Operation::Update,
                    ..by.clone()
                };
                let view = subresource::scale_of(&at.storage.strategy().scale_paths(), &current.0);
                let patched = patch::apply_patch(kind, &view, body)?;
                let precondition_in_patch = patched.pointer("/metadata/resourceVersion")
                    != view.pointer("/metadata/resourceVersion");
                // A controller writing the workload's status between the read and the write
                // is a conflict the client did not ask for: retry, as for the object.
                match subresource::update_scale(state, at, patched, dry, Some(&scale_by)).await {
                    Err(e) if e.code == 409 && e.reason == "Conflict" && !precondition_in_patch => {
                        continue;
                    }
                    out => return Ok(json_response(200, &out?)),
                }
            }
            Target::Object(scope) => scope,
        };
        let served = kinds.to_served(at.kind, current.0.clone())?;
        let patched = match kind {
            PatchType::Apply => {
                let config = apply_config(at, body, scope)?;
                apply(at, &served, &config, &by, scope, req)?
            }
            _ => patch::apply_patch(kind, &served, body)?,
        };
        let precondition_in_patch = patched.pointer("/metadata/resourceVersion")
            != served.pointer("/metadata/resourceVersion");
        let obj = decode_body(kinds, at.kind, patched, req.query.field_validation)?;
        match update(state, at, obj, scope, dry, Some(current), Some(&by)).await {
            Err(e) if e.code == 409 && e.reason == "Conflict" && !precondition_in_patch => continue,
            Err(e) => return Err(e),
            Ok(out) => return Ok(json_response(200, &kinds.to_served(at.kind, out)?)),
        }
    }
    Err(at.conflict("the object kept changing while the patch was applied; try again"))
}

/// The applied configuration of a server-side apply body: what the writer of `scope` may
/// set (`status` only through the status subresource, for kinds that split it off).
fn apply_config(at: &ObjectRef<'_>, body: &[u8], scope: UpdateScope) -> Result<Value, ApiError> {
    let mut config = patch::parse_apply_body(body)?;
    let status_split = at.storage.info.subresource("status").is_some();
    if let Some(m) = config.as_object_mut() {
        match scope {
            UpdateScope::Main if status_split => {
                m.shift_remove("status");
            }
            UpdateScope::Status | UpdateScope::Approval => {
                m.retain(|k, _| {
                    matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status")
                });
            }
            _ => {}
        }
    }
    Ok(config)
}

/// Server-side apply of `config` over `live` (served form) by `by`: the merged object with
/// its managedFields, or the 409 of the conflicts.
fn apply(
    at: &ObjectRef<'_>,
    live: &Value,
    config: &Value,
    by: &FieldWrite,
    scope: UpdateScope,
    req: &ApiRequest,
) -> Result<Value, ApiError> {
    let now = now();
    let api_version = at.kind.info.api_version();
    let writer = Writer {
        manager: &by.manager,
        api_version: &api_version,
        subresource: &by.subresource,
        part: owned_part(at.storage, scope),
        now: &now,
    };
    let codec = at.kind.codec();
    let shape_of = |n: &[&str], l: bool| codec.field_shape(n, l);
    managed::apply(live, config, &writer, req.query.force, &shape_of)
}
