//! Decoding objects through their typed `k8s-openapi` structs: unknown fields are pruned (as
//! Kubernetes does for built-in kinds) or, under `fieldValidation=Strict`, rejected.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use skiff_api::resources::ResourceInfo;

use crate::error::ApiError;

use k8s_openapi::api::{
    apps::v1 as apps, autoscaling, coordination::v1 as coord, core::v1 as core,
};
use k8s_openapi::api::{discovery::v1 as disc, events::v1 as events};

/// How unknown fields in a request body are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them, warn (as Kubernetes does by default; we drop).
    #[default]
    Warn,
    /// Reject the request with 400.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter value.
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("Strict") => Self::Strict,
            Some("Ignore") => Self::Ignore,
            _ => Self::Warn,
        }
    }
}

fn roundtrip<T: DeserializeOwned + Serialize>(v: Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(v).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Decodes `obj` through the typed struct of `resource`'s kind and re-encodes it, so the
/// result has exactly the fields Kubernetes knows. Errors are 400 BadRequest with the
/// decoder's message; unknown fields are an error under `Strict`.
pub fn normalize(
    resource: &ResourceInfo,
    obj: Value,
    validation: FieldValidation,
) -> Result<Value, ApiError> {
    let original = obj.clone();
    let out = match (resource.group, resource.version, resource.kind) {
        ("", "v1", "Namespace") => roundtrip::<core::Namespace>(obj),
        ("", "v1", "Pod") => roundtrip::<core::Pod>(obj),
        ("", "v1", "Service") => roundtrip::<core::Service>(obj),
        ("", "v1", "Endpoints") => roundtrip::<core::Endpoints>(obj),
        ("", "v1", "Node") => roundtrip::<core::Node>(obj),
        ("", "v1", "ConfigMap") => roundtrip::<core::ConfigMap>(obj),
        ("", "v1", "Secret") => roundtrip::<core::Secret>(obj),
        ("", "v1", "Event") => roundtrip::<core::Event>(obj),
        ("", "v1", "ServiceAccount") => roundtrip::<core::ServiceAccount>(obj),
        ("", "v1", "Binding") => roundtrip::<core::Binding>(obj),
        ("apps", "v1", "Deployment") => roundtrip::<apps::Deployment>(obj),
        ("apps", "v1", "ReplicaSet") => roundtrip::<apps::ReplicaSet>(obj),
        ("apps", "v1", "DaemonSet") => roundtrip::<apps::DaemonSet>(obj),
        ("apps", "v1", "ControllerRevision") => roundtrip::<apps::ControllerRevision>(obj),
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => {
            roundtrip::<autoscaling::v1::HorizontalPodAutoscaler>(obj)
        }
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => {
            roundtrip::<autoscaling::v2::HorizontalPodAutoscaler>(obj)
        }
        ("autoscaling", "v1", "Scale") => roundtrip::<autoscaling::v1::Scale>(obj),
        ("coordination.k8s.io", "v1", "Lease") => roundtrip::<coord::Lease>(obj),
        ("discovery.k8s.io", "v1", "EndpointSlice") => roundtrip::<disc::EndpointSlice>(obj),
        ("events.k8s.io", "v1", "Event") => roundtrip::<events::Event>(obj),
        _ => Ok(obj),
    }
    .map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized or malformed: {e}"
        ))
    })?;
    if validation == FieldValidation::Strict {
        let mut unknown = Vec::new();
        unknown_fields(&original, &out, "", &mut unknown);
        if !unknown.is_empty() {
            let msgs: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            // kube-apiserver's wording: `Pod in version "v1" cannot be handled as a Pod: ...`.
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                msgs.join(", "),
                kind = resource.kind,
                version = resource.version,
            )));
        }
    }
    Ok(out)
}

/// Collects paths present in `input` but absent from the typed re-encoding `typed`. Fields
/// the typed form drops because they were null or empty defaults are not unknown.
fn unknown_fields(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match t.get(k) {
                    Some(tv) => unknown_fields(v, tv, &p, out),
                    None if is_empty_value(v) => {}
                    None => {
                        // A field that the typed struct knows but omitted because it held
                        // its default would re-appear when set to a non-default; we cannot
                        // tell from the output alone, so probe: an unknown field stays
                        // unknown whatever its value.
                        out.push(p);
                    }
                }
            }
        }
        (Value::Array(i), Value::Array(t)) => {
            for (n, (iv, tv)) in i.iter().zip(t.iter()).enumerate() {
                unknown_fields(iv, tv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skiff_api::resources::find;

    #[test]
    fn prunes_unknown_fields_unless_strict() {
        let cm = find("", "v1", "configmaps").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}, "bogus": 1});
        let out = normalize(cm, obj.clone(), FieldValidation::Warn).unwrap();
        assert!(out.get("bogus").is_none());
        assert_eq!(out["data"]["k"], "v");
        let err = normalize(cm, obj, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("unknown field \"bogus\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn strict_finds_nested_unknown_fields() {
        let d = find("apps", "v1", "deployments").unwrap();
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "replicsa": 2,
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i", "imagePolicy": "x"}]}}}});
        let err = normalize(d, obj, FieldValidation::Strict).unwrap_err();
        assert!(err.message.contains("spec.replicsa"), "{}", err.message);
        assert!(
            err.message
                .contains("spec.template.spec.containers[0].imagePolicy"),
            "{}",
            err.message
        );
    }

    #[test]
    fn wrong_types_are_bad_requests() {
        let cm = find("", "v1", "configmaps").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 5}});
        assert_eq!(
            normalize(cm, obj, FieldValidation::Warn).unwrap_err().code,
            400
        );
    }
}
