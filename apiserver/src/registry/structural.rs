//! The codec of a kind known only by its OpenAPI v3 schema (a CustomResourceDefinition's
//! structural schema): no Rust type behind it. Bodies are pruned to the schema's properties,
//! as kube-apiserver prunes custom resources, and values of the wrong JSON type are rejected.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::generate::SchemaGenerator;
use serde_json::{Map, Value};

use super::KindCodec;

/// A kind's codec built at run time from its schema.
pub struct StructuralCodec {
    name: String,
    schema: Value,
}

impl StructuralCodec {
    /// A codec for objects described by `schema` (an OpenAPI v3 object schema), published as
    /// component `name`.
    pub fn new(name: impl Into<String>, schema: Value) -> Self {
        Self {
            name: name.into(),
            schema,
        }
    }
}

impl KindCodec for StructuralCodec {
    fn round_trip(&self, obj: Value) -> Result<Value, String> {
        let Value::Object(mut top) = obj else {
            return Err("expected an object".into());
        };
        // apiVersion, kind and metadata are the same for every kind: ObjectMeta's own rules.
        let metadata = match top.remove("metadata") {
            Some(m) => {
                let meta: ObjectMeta =
                    serde_json::from_value(m).map_err(|e| format!("metadata: {e}"))?;
                Some(serde_json::to_value(meta).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let mut out = match prune(&self.schema, Value::Object(top.clone()), "")? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for f in ["apiVersion", "kind"] {
            if let Some(v) = top.get(f) {
                out.insert(f.into(), v.clone());
            }
        }
        if let Some(m) = metadata {
            out.insert("metadata".into(), m);
        }
        Ok(Value::Object(out))
    }

    fn schema_name(&self) -> String {
        self.name.clone()
    }

    fn add_schema(&self, generator: &mut SchemaGenerator) {
        generator
            .definitions_mut()
            .insert(self.name.clone(), self.schema.clone());
    }
}

/// Keeps what `schema` describes of `value`; `path` names the value in errors.
fn prune(schema: &Value, value: Value, path: &str) -> Result<Value, String> {
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match (schema.get("type").and_then(Value::as_str), value) {
        (_, Value::Null) => Ok(Value::Null),
        (Some("object") | None, Value::Object(fields)) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let mut out = Map::new();
            for (k, v) in fields {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    out.insert(k, v);
                    continue;
                }
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (properties.and_then(|p| p.get(&k)), additional) {
                    (Some(s), _) | (None, Some(s)) => {
                        out.insert(k, prune(s, v, &child)?);
                    }
                    (None, None) if preserve => {
                        out.insert(k, v);
                    }
                    (None, None) => {}
                }
            }
            Ok(Value::Object(out))
        }
        (Some("array"), Value::Array(items)) => {
            let item_schema = schema.get("items").cloned().unwrap_or(Value::Null);
            items
                .into_iter()
                .enumerate()
                .map(|(n, v)| prune(&item_schema, v, &format!("{path}[{n}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        (Some("string"), v @ Value::String(_))
        | (Some("boolean"), v @ Value::Bool(_))
        | (Some("number"), v @ Value::Number(_)) => Ok(v),
        // A value of another type than the schema's is kept for validation to report (422),
        // as kube-apiserver prunes only unknown fields.
        (_, v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crontab() -> StructuralCodec {
        StructuralCodec::new(
            "com.example.v1.CronTab",
            json!({"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "cronSpec": {"type": "string"},
                    "replicas": {"type": "integer"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                }},
            }}),
        )
    }

    #[test]
    fn prunes_to_the_schema_and_keeps_type_and_metadata() {
        let obj = json!({"apiVersion": "example.com/v1", "kind": "CronTab",
            "metadata": {"name": "c", "bogus": 1}, "bogus": 2,
            "spec": {"cronSpec": "* * * * */5", "replicas": 1, "unknown": true,
                     "labels": {"a": "b"}, "extra": {"anything": [1]}}});
        let out = crontab().round_trip(obj).unwrap();
        assert_eq!(
            out,
            json!({"apiVersion": "example.com/v1", "kind": "CronTab", "metadata": {"name": "c"},
                "spec": {"cronSpec": "* * * * */5", "replicas": 1, "labels": {"a": "b"},
                         "extra": {"anything": [1]}}})
        );
    }

    #[test]
    fn keeps_values_of_the_wrong_type_for_validation() {
        let obj =
            json!({"apiVersion": "example.com/v1", "kind": "CronTab", "spec": {"replicas": "two"}});
        let out = crontab().round_trip(obj).unwrap();
        assert_eq!(out["spec"]["replicas"], "two");
    }

    #[test]
    fn entry_from_a_schema_is_served_like_a_builtin() {
        use crate::registry::{Kind, Registry};
        use skiff_api::resources::{ResourceInfo, Subresource};
        // Run-time kinds leak their names once, at registration: there are few and they live
        // as long as the server.
        static SUBS: &[Subresource] = &[];
        let info: &'static ResourceInfo = Box::leak(Box::new(ResourceInfo {
            group: "example.com",
            version: "v1",
            kind: "CronTab",
            plural: "crontabs",
            singular: "crontab",
            namespaced: true,
            short_names: &["ct"],
            categories: &[],
            subresources: SUBS,
            storage_group: "example.com",
            storage_plural: "crontabs",
            storage_version: "v1",
            verbs: skiff_api::resources::RESOURCE_VERBS,
        }));
        let strategy = std::sync::Arc::new(crate::strategy::GenericStrategy);
        let kinds =
            Registry::builtin().with(Kind::new(info, std::sync::Arc::new(crontab()), strategy));
        let k = kinds.find_by_kind("example.com/v1", "CronTab").unwrap();
        let out = k
            .normalize(
                json!({"apiVersion": "example.com/v1", "kind": "CronTab", "spec": {"replicas": 2, "x": 1}}),
                super::super::FieldValidation::Warn,
            )
            .unwrap();
        assert_eq!(out["spec"], json!({"replicas": 2}));
        let err = k
            .normalize(
                json!({"apiVersion": "example.com/v1", "kind": "CronTab", "spec": {"x": 1}}),
                super::super::FieldValidation::Strict,
            )
            .unwrap_err();
        assert!(
            err.message.contains("unknown field \"spec.x\""),
            "{}",
            err.message
        );
        assert!(kinds.find("example.com", "v1", "crontabs").is_some());
        assert_eq!(k.strategy().columns().len(), k.strategy().cells(&out).len());
    }
}
