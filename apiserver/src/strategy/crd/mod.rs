//! CustomResourceDefinitions (apiextensions.k8s.io/v1): the defaults kube-apiserver's
//! apiextensions strategy fills, `ValidateCustomResourceDefinition` (`validation.rs`, the
//! structural schema rules in `structural.rs`) and the Name / Created At table.

mod structural;
mod validation;

use serde_json::{Value, json};

use super::table::{NAME, name};
use super::{Column, Strategy};
use crate::error::Cause;

pub use validation::validate_definition;

/// Strategy for apiextensions.k8s.io/v1 CustomResourceDefinitions.
pub struct CrdStrategy;

const CREATED_AT: Column = Column {
    name: "Created At",
    kind: "date",
    format: "",
    priority: 0,
    description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.",
};

impl Strategy for CrdStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        // SetDefaults_CustomResourceDefinitionSpec: conversion strategy None, listKind
        // `<Kind>List`, singular the lower-cased kind.
        let conversion = spec.entry("conversion").or_insert_with(|| json!({}));
        if let Some(c) = conversion.as_object_mut() {
            c.entry("strategy").or_insert_with(|| json!("None"));
        }
        if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
            let kind = names
                .get("kind")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(kind) = kind.filter(|k| !k.is_empty()) {
                names
                    .entry("listKind")
                    .or_insert_with(|| json!(format!("{kind}List")));
                names
                    .entry("singular")
                    .or_insert_with(|| json!(kind.to_lowercase()));
            }
        }
    }

    fn prepare_create(&self, obj: &mut Value) {
        // PrepareForCreate: the storage version is recorded as stored from the start.
        let storage: Vec<Value> = obj
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .filter_map(|v| v.get("name").cloned())
            .collect();
        obj["status"] = json!({"storedVersions": storage, "conditions": [],
            "acceptedNames": {"kind": "", "plural": ""}});
        // Deleting a definition waits for its objects to go (`custom::run`).
        let meta = obj["metadata"].as_object_mut();
        if let Some(meta) = meta {
            let finalizers = meta.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(list) = finalizers.as_array_mut()
                && !list.iter().any(|f| f == crate::custom::CLEANUP_FINALIZER)
            {
                list.push(json!(crate::custom::CLEANUP_FINALIZER));
            }
        }
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        // PrepareForUpdate: a new storage version joins status.storedVersions.
        let mut stored: Vec<Value> = old
            .pointer("/status/storedVersions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for v in new
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if v.get("storage").and_then(Value::as_bool) == Some(true)
                && let Some(n) = v.get("name")
                && !stored.contains(n)
            {
                stored.push(n.clone());
            }
        }
        if let Some(status) = new.get_mut("status").and_then(Value::as_object_mut) {
            status.insert("storedVersions".into(), Value::Array(stored));
        }
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        validate_definition(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        validation::validate_update(new, old)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![NAME, CREATED_AT]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        vec![
            name(obj),
            obj.pointer("/metadata/creationTimestamp")
                .cloned()
                .unwrap_or(Value::Null),
        ]
    }
}

#[cfg(test)]
mod tests;
