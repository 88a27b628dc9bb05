//! Get (GET of one object): the object in the representation asked for (object, Table or
//! metadata), or the Scale view of a workload.

use axum::response::Response;

use super::object::{ObjectRef, read};
use super::request::ApiRequest;
use super::{ApiState, json_response, list, subresource};
use crate::error::ApiError;

/// GET of an object (its status and approval subresources answer the same).
pub(super) async fn serve(
    state: &ApiState,
    req: &ApiRequest,
    at: &ObjectRef<'_>,
) -> Result<Response, ApiError> {
    let (obj, _) = read(state, at).await?;
    Ok(json_response(200, &list::render_one(req, obj)?))
}

/// GET of a workload's Scale.
pub(super) async fn serve_scale(
    state: &ApiState,
    at: &ObjectRef<'_>,
) -> Result<Response, ApiError> {
    let (obj, _) = read(state, at).await?;
    Ok(json_response(
        200,
        &subresource::scale_of(&at.storage.strategy().scale_paths(), &obj),
    ))
}
