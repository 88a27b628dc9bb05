//! Patch (PATCH): read the object, apply the patch (JSON, merge, strategic merge or
//! server-side apply) to its served form, then update as a PUT would; a Scale patch applies
//! to the Scale view. Server-side apply of a missing object creates it.

use axum::http::{HeaderMap, header};
use axum::response::Response;

use super::object::{ObjectRef, decode_body, read};
use super::request::ApiRequest;
use super::update::{UpdateScope, update};
use super::{ApiState, create, json_response, subresource};
use crate::auth::UserInfo;
use crate::error::ApiError;
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
    for _ in 0..5 {
        let current = match read(state, at).await {
            Ok(c) => c,
            Err(e) if e.code == 404 && kind == PatchType::Apply && whole_object => {
                let obj = patch::parse_apply_body(body)?;
                return create::serve(state, req, obj, user).await;
            }
            Err(e) => return Err(e),
        };
        let scope = match target {
            Target::Scale => {
                let view = subresource::scale_of(&at.storage.strategy().scale_paths(), &current.0);
                let patched = patch::apply_patch(kind, &view, body)?;
                let precondition_in_patch = patched.pointer("/metadata/resourceVersion")
                    != view.pointer("/metadata/resourceVersion");
                // A controller writing the workload's status between the read and the write
                // is a conflict the client did not ask for: retry, as for the object.
                match subresource::update_scale(state, at, patched, dry).await {
                    Err(e) if e.code == 409 && e.reason == "Conflict" && !precondition_in_patch => {
                        continue;
                    }
                    out => return Ok(json_response(200, &out?)),
                }
            }
            Target::Object(scope) => scope,
        };
        let served = kinds.to_served(at.kind, current.0.clone())?;
        let patched = patch::apply_patch(kind, &served, body)?;
        let precondition_in_patch = patched.pointer("/metadata/resourceVersion")
            != served.pointer("/metadata/resourceVersion");
        let obj = decode_body(kinds, at.kind, patched, req.query.field_validation)?;
        match update(state, at, obj, scope, dry, Some(current)).await {
            Err(e) if e.code == 409 && e.reason == "Conflict" && !precondition_in_patch => continue,
            Err(e) => return Err(e),
            Ok(out) => return Ok(json_response(200, &kinds.to_served(at.kind, out)?)),
        }
    }
    Err(at.conflict("the object kept changing while the patch was applied; try again"))
}
