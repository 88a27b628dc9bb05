//! A CustomResourceDefinition turned into registry entries: one per served version, each
//! with the version's structural codec (pruning), its strategy, the `None` conversion
//! (the apiVersion rewritten, fields unchanged) and the Scale body when scale is enabled.

use std::sync::Arc;

use super::str_at;
use k8s_openapi::api::autoscaling::v1::Scale;
use serde_json::Value;

use super::intern::{InfoSpec, info};
use super::strategy::CustomResourceStrategy;
use crate::registry::{Conversion, Kind, StructuralCodec, Typed};

/// The `None` conversion strategy: objects keep their fields; only `apiVersion` changes.
struct ApiVersionRewrite {
    served: String,
    storage: String,
}

fn with_api_version(mut obj: Value, api_version: &str) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(api_version.into()));
    }
    obj
}

impl Conversion for ApiVersionRewrite {
    fn to_storage(&self, obj: Value) -> Value {
        with_api_version(obj, &self.storage)
    }

    fn to_served(&self, obj: Value) -> Value {
        with_api_version(obj, &self.served)
    }
}

fn strings(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Whether the CRD's condition `kind` is True.
pub fn condition_true(crd: &Value, kind: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| str_at(c, "/type") == kind && str_at(c, "/status") == "True")
}

/// The registry entries of a CRD's served versions (names as accepted in its status).
pub fn entries(crd: &Value) -> Vec<Kind> {
    let group = str_at(crd, "/spec/group");
    let names = match crd.pointer("/status/acceptedNames/plural") {
        Some(Value::String(p)) if !p.is_empty() => "/status/acceptedNames",
        _ => "/spec/names",
    };
    let versions: Vec<&Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let Some(storage) = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| str_at(v, "/name"))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for v in versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
    {
        let version = str_at(v, "/name");
        let spec = InfoSpec {
            group: group.into(),
            version: version.into(),
            kind: str_at(crd, &format!("{names}/kind")).into(),
            plural: str_at(crd, &format!("{names}/plural")).into(),
            singular: str_at(crd, &format!("{names}/singular")).into(),
            namespaced: str_at(crd, "/spec/scope") == "Namespaced",
            short_names: strings(crd, &format!("{names}/shortNames")),
            categories: strings(crd, &format!("{names}/categories")),
            status: v.pointer("/subresources/status").is_some(),
            scale: v.pointer("/subresources/scale").is_some(),
            storage_version: storage.into(),
        };
        let info = info(&spec);
        let schema = v
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .unwrap_or(serde_json::json!({"type": "object"}));
        let reversed: Vec<&str> = group.split('.').rev().collect();
        let schema_name = format!("{}.{version}.{}", reversed.join("."), spec.kind);
        let codec = Arc::new(StructuralCodec::new(schema_name, schema));
        let strategy = Arc::new(CustomResourceStrategy::new(v));
        let mut kind =
            Kind::new(info, codec, strategy).with_conversion(Arc::new(ApiVersionRewrite {
                served: info.api_version(),
                storage: skiff_api::resources::group_version(group, storage),
            }));
        if spec.scale {
            kind = kind.with_body("scale", Arc::new(Typed::<Scale>::new()), None);
        }
        out.push(kind);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    fn two_versions(storage: &str) -> Value {
        let version = |name: &str| {
            json!({"name": name, "served": true, "storage": name == storage,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}})
        };
        json!({"metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Cluster",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [version("v1beta1"), version("v1")]}})
    }

    #[test]
    fn every_served_version_reads_objects_of_any_storage_version() {
        let registry = Registry::builtin().extended(entries(&two_versions("v1")));
        let v1 = registry.find("example.com", "v1", "widgets").unwrap();
        let beta = registry.find("example.com", "v1beta1", "widgets").unwrap();
        assert_eq!(registry.storage_of(beta).info.version, "v1");
        // Written when v1beta1 was the storage version, read as v1 after the change.
        let old =
            json!({"apiVersion": "example.com/v1beta1", "kind": "Widget", "spec": {"size": 3}});
        let read = registry.to_served(v1, old.clone()).unwrap();
        assert_eq!(read["apiVersion"], "example.com/v1");
        assert_eq!(read["spec"], old["spec"]);
        let read = registry.to_served(beta, old.clone()).unwrap();
        assert_eq!(read["apiVersion"], "example.com/v1beta1");
        let stored = registry.to_storage(beta, old).unwrap();
        assert_eq!(stored["apiVersion"], "example.com/v1");
    }

    #[test]
    fn names_come_from_the_accepted_names_once_accepted() {
        let mut crd = two_versions("v1");
        crd["status"] = json!({"acceptedNames": {"plural": "widgets", "singular": "widget",
            "kind": "Widget", "shortNames": ["wd"], "categories": ["all"]}});
        let kinds = entries(&crd);
        assert_eq!(kinds.len(), 2);
        assert_eq!(kinds[0].info.short_names, ["wd"]);
        assert_eq!(kinds[0].info.categories, ["all"]);
        assert!(!kinds[0].info.namespaced);
    }
}
