//! OpenAPI v3 documents, enough for kubectl --validate=strict and kubectl explain.
// lead's compile placeholders; replaced by the discovery helper's implementation
use serde_json::Value;
pub fn v3_index() -> Value { Value::Null }
pub fn v3_document(_p: &str) -> Option<std::sync::Arc<Vec<u8>>> { None }
