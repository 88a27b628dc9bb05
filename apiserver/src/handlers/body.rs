//! Request bodies: reading them within the size limit, and parsing an object body by its
//! media type.

use axum::extract::Request;
use axum::http::{HeaderMap, header};
use serde_json::Value;

use super::{DRAIN_LIMIT, MAX_BODY};
use crate::error::ApiError;
use crate::registry::Registry;

/// Reads a request body, refusing (with 413) one larger than [`MAX_BODY`].
pub(super) async fn read(req: Request, headers: &HeaderMap) -> Result<bytes::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut body = req.into_body();
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    // Over the limit, the rest is read and dropped (up to DRAIN_LIMIT) so the client, still
    // writing, receives the 413 instead of a broken connection.
    let too_large = declared.is_some_and(|l| l > MAX_BODY);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if too_large || seen > MAX_BODY {
                if seen > DRAIN_LIMIT {
                    break;
                }
                buf.clear();
                continue;
            }
            buf.extend_from_slice(&data);
        }
    }
    if too_large || seen > MAX_BODY {
        return Err(ApiError::too_large(MAX_BODY));
    }
    Ok(buf.freeze())
}

/// Parses a create/update body: JSON, YAML or Kubernetes protobuf (decoded with the tables of
/// `kinds`) by Content-Type.
pub(super) fn parse_object(
    kinds: &Registry,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let base = ct.split(';').next().unwrap_or("").trim();
    let v: Value = match base {
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?,
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode_request(body, kinds)?,
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {other:?})"
                ),
            ));
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be an object",
        ));
    }
    Ok(v)
}
