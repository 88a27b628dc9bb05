//! JSON patch (RFC 6902, `application/json-patch+json`): a list of add, remove, replace,
//! move, copy and test operations applied in order, all or nothing.

use json_patch::{Patch, PatchOperation};
use serde_json::Value;

use super::rejected;
use crate::error::ApiError;

/// Kubernetes' limit on the operations of one JSON patch.
const MAX_OPERATIONS: usize = 10_000;

/// Cap on the bytes `copy` operations may duplicate in one patch, so a handful of
/// self-copies cannot grow an object exponentially.
const MAX_COPIED_BYTES: usize = 16 << 20;

/// Applies a raw JSON patch body to `original`.
pub fn apply_json_patch(original: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch = decode(body)?;
    if patch.0.len() > MAX_OPERATIONS {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!(
                "The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {}",
                patch.0.len()
            ),
        ));
    }
    let mut doc = original.clone();
    let mut copied = 0usize;
    for (i, op) in patch.0.iter().enumerate() {
        if let PatchOperation::Copy(copy) = op {
            copied += doc
                .pointer(copy.from.as_str())
                .map_or(0, |v| v.to_string().len());
            if copied > MAX_COPIED_BYTES {
                return Err(rejected(format!(
                    "operation {i}: copy would duplicate more than {MAX_COPIED_BYTES} bytes"
                )));
            }
        }
        json_patch::patch(&mut doc, std::slice::from_ref(op)).map_err(|e| {
            rejected(format!(
                "{} operation {i} failed at path '{}': {}",
                op_name(op),
                e.path,
                e.kind
            ))
        })?;
    }
    Ok(doc)
}

/// Decodes the body: unreadable JSON or anything but a list of objects is a 400; objects
/// that are not valid operations (unknown `op`, missing `path`) fail like Kubernetes' apply
/// step, with a 422.
fn decode(body: &[u8]) -> Result<Patch, ApiError> {
    let raw: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Value::Array(ops) = raw else {
        return Err(ApiError::bad_request(
            "a JSON patch must be a JSON array of operations",
        ));
    };
    if let Some(i) = ops.iter().position(|op| !op.is_object()) {
        return Err(ApiError::bad_request(format!(
            "JSON patch operation {i} is not an object"
        )));
    }
    let mut out = Vec::with_capacity(ops.len());
    for (i, op) in ops.into_iter().enumerate() {
        let parsed = serde_json::from_value::<PatchOperation>(op)
            .map_err(|e| rejected(format!("operation {i}: {e}")))?;
        out.push(parsed);
    }
    Ok(Patch(out))
}

fn op_name(op: &PatchOperation) -> &'static str {
    match op {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deploy() -> Value {
        json!({
            "metadata": {"name": "web", "annotations": {"a": "1"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "app", "image": "app:1"}, {"name": "side", "image": "side:1"}
            ]}}}
        })
    }

    #[test]
    fn operations_apply_in_order() {
        // (name, patch, pointer, expected)
        let cases = [
            (
                "replace",
                json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
                "/spec/replicas",
                json!(3),
            ),
            (
                "add",
                json!([{"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}]),
                "/metadata/labels",
                json!({"x": "y"}),
            ),
            (
                "add to list end",
                json!([{"op": "add", "path": "/spec/template/spec/containers/-",
                "value": {"name": "c"}}]),
                "/spec/template/spec/containers/2/name",
                json!("c"),
            ),
            (
                "remove",
                json!([{"op": "remove", "path": "/metadata/annotations/a"}]),
                "/metadata/annotations",
                json!({}),
            ),
            (
                "test then replace",
                json!([
                    {"op": "test", "path": "/spec/template/spec/containers/0/image", "value": "app:1"},
                    {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "app:2"}
                ]),
                "/spec/template/spec/containers/0/image",
                json!("app:2"),
            ),
            (
                "move",
                json!([{"op": "move", "from": "/metadata/annotations", "path": "/metadata/labels"}]),
                "/metadata/labels",
                json!({"a": "1"}),
            ),
            (
                "copy",
                json!([{"op": "copy", "from": "/metadata/name", "path": "/metadata/annotations/n"}]),
                "/metadata/annotations/n",
                json!("web"),
            ),
            (
                "rollout undo shape",
                json!([
                    {"op": "replace", "path": "/spec/template", "value": {"spec": {"containers": [{"name": "app", "image": "app:0"}]}}},
                    {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "3"}}
                ]),
                "/spec/template/spec/containers",
                json!([{"name": "app", "image": "app:0"}]),
            ),
        ];
        for (name, patch, pointer, want) in cases {
            let got = apply_json_patch(&deploy(), patch.to_string().as_bytes()).expect(name);
            assert_eq!(got.pointer(pointer), Some(&want), "{name}");
        }
    }

    #[test]
    fn failures_are_422_and_leave_nothing_half_done() {
        let cases = [
            json!([{"op": "test", "path": "/spec/replicas", "value": 5}]),
            json!([{"op": "replace", "path": "/spec/replicas", "value": 2},
                   {"op": "test", "path": "/spec/replicas", "value": 1}]),
            json!([{"op": "replace", "path": "/spec/nothere", "value": 1}]),
            json!([{"op": "remove", "path": "/metadata/labels/x"}]),
            json!([{"op": "add", "path": "/no/such/parent", "value": 1}]),
            json!([{"op": "add", "path": "/spec/template/spec/containers/9", "value": 1}]),
            json!([{"op": "bogus", "path": "/spec"}]),
            json!([{"op": "add", "value": 1}]),
        ];
        for patch in cases {
            let err = apply_json_patch(&deploy(), patch.to_string().as_bytes())
                .expect_err(&patch.to_string());
            assert_eq!((err.code, err.reason), (422, "Invalid"), "{patch}");
            assert_eq!(
                err.message,
                "the server rejected our request due to an error in our request"
            );
            let cause = &err.details.as_ref().unwrap()["causes"][0];
            assert_eq!(cause["reason"], "UnexpectedServerResponse");
            assert!(!cause["message"].as_str().unwrap().is_empty());
        }
    }

    #[test]
    fn undecodable_patches_are_400() {
        for body in [
            "",
            "[",
            "{\"op\": \"add\"}",
            "[1]",
            "null",
            "[{\"op\":\"add\",\"path\":\"/a\",\"value\":1},]",
        ] {
            let err = apply_json_patch(&deploy(), body.as_bytes()).expect_err(body);
            assert_eq!((err.code, err.reason), (400, "BadRequest"), "{body}");
        }
    }

    #[test]
    fn self_copies_are_capped() {
        let ops: Vec<Value> = (0..60)
            .map(|i| json!({"op": "copy", "from": "/spec", "path": format!("/spec/c{i}")}))
            .collect();
        let err =
            apply_json_patch(&deploy(), Value::Array(ops).to_string().as_bytes()).unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn too_many_operations_is_413() {
        let ops: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/spec/replicas", "value": 1}))
            .collect();
        let err =
            apply_json_patch(&deploy(), Value::Array(ops).to_string().as_bytes()).unwrap_err();
        assert_eq!(err.code, 413);
    }
}
