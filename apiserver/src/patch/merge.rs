//! JSON merge patch (RFC 7386, `application/merge-patch+json`): objects merge, `null`
//! deletes, anything else (lists included) replaces.

use serde_json::Value;

use crate::error::ApiError;

/// Applies a raw merge patch body to `original`.
pub fn apply_merge_patch(original: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    match patch {
        Value::Object(_) => {}
        // evanphx/json-patch's ErrBadJSONPatch, which Kubernetes answers with 400.
        Value::Null => return Err(ApiError::bad_request("Invalid JSON Patch")),
        // RFC 7386 would replace the whole object, which no API object survives.
        _ => {
            return Err(ApiError::bad_request(
                "a merge patch for an API object must be a JSON object",
            ));
        }
    }
    let mut doc = original.clone();
    json_patch::merge(&mut doc, &patch);
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_table() {
        let deploy = json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}
            ]}}}
        });
        // (name, patch, expected pointer, expected value)
        let cases = [
            (
                "scalar replaced",
                json!({"spec": {"replicas": 3}}),
                "/spec/replicas",
                json!(3),
            ),
            (
                "null deletes",
                json!({"metadata": {"labels": {"tier": null}}}),
                "/metadata/labels",
                json!({"app": "web"}),
            ),
            (
                "maps merge",
                json!({"metadata": {"labels": {"x": "y"}}}),
                "/metadata/labels",
                json!({"app": "web", "tier": "fe", "x": "y"}),
            ),
            (
                "lists replaced",
                json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:2"}]}}}}),
                "/spec/template/spec/containers",
                json!([{"name": "a", "image": "a:2"}]),
            ),
            (
                "new field added",
                json!({"spec": {"paused": true}}),
                "/spec/paused",
                json!(true),
            ),
            (
                "untouched kept",
                json!({"spec": {"replicas": 3}}),
                "/metadata/name",
                json!("web"),
            ),
        ];
        for (name, patch, pointer, want) in cases {
            let got = apply_merge_patch(&deploy, patch.to_string().as_bytes()).expect(name);
            assert_eq!(got.pointer(pointer), Some(&want), "{name}");
        }
    }

    #[test]
    fn bad_merge_patches_are_400() {
        let obj = json!({"a": 1});
        for body in ["{", "null", "[1,2]", "\"x\"", "", "{\"a\":}"] {
            let err = apply_merge_patch(&obj, body.as_bytes()).expect_err(body);
            assert_eq!((err.code, err.reason), (400, "BadRequest"), "{body}");
        }
    }
}
