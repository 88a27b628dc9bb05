//! Patches as Kubernetes applies them: JSON patch (RFC 6902), JSON merge patch (RFC 7386),
//! strategic merge patch and server-side apply.

mod apply;
mod json_patch;
mod list_order;
mod merge;
mod merge_keys;
mod strategic;

use serde_json::{Value, json};

use crate::error::ApiError;

pub use apply::parse_apply_body;
pub use merge_keys::{ListStrategy, list_strategy};
pub use strategic::{StrategicMergeError, strategic_merge};

/// The patch formats a PATCH request can carry, chosen by its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchType {
    /// The patch type for a Content-Type header value (parameters ignored).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Applies `patch` (the raw request body) to `original`, returning the patched object.
///
/// Errors: 400 BadRequest for a body that does not decode as the format; 422 Invalid for a
/// JSON patch that does not apply (failed `test`, missing path); 413 for a JSON patch with
/// too many operations.
pub fn apply_patch(kind: PatchType, original: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    match kind {
        PatchType::Json => json_patch::apply_json_patch(original, patch),
        PatchType::Merge => merge::apply_merge_patch(original, patch),
        PatchType::StrategicMerge => strategic::apply_strategic_patch(original, patch),
        PatchType::Apply => apply::apply_config(original, patch),
    }
}

/// The 422 Kubernetes answers when a patch decodes but cannot be applied
/// (`NewGenericServerResponse(422, ...)`): a fixed message, the cause in the details.
pub(crate) fn rejected(cause: impl Into<String>) -> ApiError {
    let mut e = ApiError::new(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
    );
    e.details = Some(json!({
        "causes": [{ "reason": "UnexpectedServerResponse", "message": cause.into() }],
    }));
    e
}
