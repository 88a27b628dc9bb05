//! Server-side apply bodies (`application/apply-patch+yaml`): a YAML or JSON object merged
//! into the live object with strategic-merge rules, so fields it does not mention stay.

use serde_json::Value;

use super::strategic::{StrategicMergeError, strategic_merge};
use crate::error::ApiError;

/// Parses an apply body (YAML, or JSON, which is YAML too) into a JSON object.
/// A syntax error or a non-object body is a 400 carrying the parser's message.
pub fn parse_apply_body(body: &[u8]) -> Result<Value, ApiError> {
    let bad = |why: String| ApiError::bad_request(format!("error decoding YAML: {why}"));
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    // JSON first for JSON bodies: YAML rejects some valid JSON (tab indentation).
    let parsed = match first {
        Some(b'{') => match serde_json::from_slice::<Value>(body) {
            Ok(v) => v,
            Err(_) => from_yaml(body).map_err(bad)?,
        },
        _ => from_yaml(body).map_err(bad)?,
    };
    match parsed {
        Value::Object(_) => Ok(parsed),
        Value::Null => Err(bad("the body is empty; an object is required".into())),
        other => Err(bad(format!("expected an object, got {other}"))),
    }
}

fn from_yaml(body: &[u8]) -> Result<Value, String> {
    let mut yaml: serde_yaml::Value = serde_yaml::from_slice(body).map_err(|e| e.to_string())?;
    // `<<: *anchor` merge keys, which Kubernetes' YAML decoder resolves too.
    yaml.apply_merge().map_err(|e| e.to_string())?;
    serde_json::to_value(yaml).map_err(|e| e.to_string())
}

/// Merges the applied configuration in `body` into `original`.
pub fn apply_config(original: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let applied = parse_apply_body(body)?;
    strategic_merge(original, &applied).map_err(StrategicMergeError::into_api_error)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const DEPLOY_YAML: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: app
        image: app:2
";

    fn live() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "uid": "u1", "resourceVersion": "7", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {
                "containers": [
                    {"name": "app", "image": "app:1", "ports": [{"containerPort": 80}]},
                    {"name": "sidecar", "image": "side:1"}
                ]
            }}},
            "status": {"replicas": 1}
        })
    }

    #[test]
    fn parses_yaml_and_json() {
        let y = parse_apply_body(DEPLOY_YAML.as_bytes()).unwrap();
        assert_eq!(
            y["spec"]["template"]["spec"]["containers"][0]["image"],
            "app:2"
        );
        let j = parse_apply_body(b"{\n\t\"kind\": \"ConfigMap\",\n\t\"data\": {\"a\": \"1\"}\n}")
            .unwrap();
        assert_eq!(j["data"]["a"], "1");
        let anchors = parse_apply_body(b"base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n").unwrap();
        assert_eq!(anchors["derived"], json!({"x": 1, "y": 2}));
    }

    #[test]
    fn bad_apply_bodies_are_400_with_the_parser_message() {
        for body in [
            "a: [1, 2",
            "",
            "- 1\n- 2\n",
            "just a string",
            "a: b\n  c: d\n",
            "{\"a\": ",
            "? [1]\n: x\n",
        ] {
            let err = parse_apply_body(body.as_bytes()).expect_err(body);
            assert_eq!((err.code, err.reason), (400, "BadRequest"), "{body}");
            assert!(
                err.message.starts_with("error decoding YAML: "),
                "{body}: {}",
                err.message
            );
        }
        let err = parse_apply_body(b"a: [1, 2").unwrap_err();
        assert!(err.message.len() > "error decoding YAML: ".len());
    }

    #[test]
    fn apply_merges_into_the_live_object() {
        let got = apply_config(&live(), DEPLOY_YAML.as_bytes()).unwrap();
        assert_eq!(got["spec"]["replicas"], 2);
        let containers = &got["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "app:2");
        // Unmentioned fields stay: the other container, ports, selector, uid, status.
        assert_eq!(containers[0]["ports"], json!([{"containerPort": 80}]));
        assert_eq!(containers[1]["name"], "sidecar");
        assert_eq!(
            got["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}})
        );
        assert_eq!(got["metadata"]["uid"], "u1");
        assert_eq!(got["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(got["status"], json!({"replicas": 1}));
    }

    #[test]
    fn apply_onto_nothing_is_the_body() {
        let got = apply_config(&json!({}), DEPLOY_YAML.as_bytes()).unwrap();
        assert_eq!(got, parse_apply_body(DEPLOY_YAML.as_bytes()).unwrap());
    }
}
