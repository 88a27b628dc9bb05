//! Patches as Kubernetes applies them: JSON patch (RFC 6902), JSON merge patch (RFC 7386),
//! strategic merge patch and server-side apply.

use serde_json::Value;

use crate::error::ApiError;

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
pub fn apply_patch(_kind: PatchType, _original: &Value, _patch: &[u8]) -> Result<Value, ApiError> {
    todo!("patch engine")
}

/// Parses a server-side apply body (YAML or JSON).
pub fn parse_apply_body(_body: &[u8]) -> Result<Value, ApiError> {
    todo!("patch engine")
}
