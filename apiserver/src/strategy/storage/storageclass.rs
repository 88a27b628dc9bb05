//! StorageClasses (storage.k8s.io/v1, cluster-scoped): defaults (`Delete`, `Immediate`),
//! `ValidateStorageClass` (provisioner, reclaim policy, binding mode), the fields that
//! may not change, and the table with `(default)` after the default class's name.

use jiff::Timestamp;
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{Value, json};
use skiff_api::storage::is_default_class;
use skiff_api::validation::is_qualified_name;

use crate::error::Cause;
use crate::strategy::table::{AGE, NAME, age, col};
use crate::strategy::{Column, Strategy, decode, decode_for_validation, with_typed};

/// Strategy for storage.k8s.io/v1 storage classes.
pub struct StorageClassStrategy;

fn validate_class(sc: &StorageClass) -> Vec<Cause> {
    let mut out = Vec::new();
    if sc.provisioner.is_empty() {
        out.push(Cause::required("provisioner"));
    } else {
        for msg in is_qualified_name(&sc.provisioner.to_lowercase()) {
            out.push(Cause::invalid("provisioner", &json!(sc.provisioner), msg));
        }
    }
    if let Some(p) = sc.reclaim_policy.as_deref()
        && !matches!(p, "Delete" | "Retain")
    {
        out.push(Cause::not_supported(
            "reclaimPolicy",
            &json!(p),
            &["Delete", "Retain"],
        ));
    }
    match sc.volume_binding_mode.as_deref() {
        None => out.push(Cause::required("volumeBindingMode")),
        Some("Immediate" | "WaitForFirstConsumer") => {}
        Some(m) => out.push(Cause::not_supported(
            "volumeBindingMode",
            &json!(m),
            &["Immediate", "WaitForFirstConsumer"],
        )),
    }
    out
}

impl Strategy for StorageClassStrategy {
    fn default(&self, obj: &mut Value) {
        with_typed::<StorageClass>(obj, |sc| {
            sc.reclaim_policy.get_or_insert_with(|| "Delete".into());
            sc.volume_binding_mode
                .get_or_insert_with(|| "Immediate".into());
        });
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        decode_for_validation::<StorageClass>(obj)
            .map(|sc| validate_class(&sc))
            .unwrap_or_else(|c| c)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        for (field, key) in [
            ("parameters", "/parameters"),
            ("provisioner", "/provisioner"),
            ("reclaimPolicy", "/reclaimPolicy"),
        ] {
            if new.pointer(key) != old.pointer(key) {
                out.push(Cause::forbidden(
                    field,
                    format!("updates to {field} are forbidden."),
                ));
            }
        }
        let (n, o) = (
            new.pointer("/volumeBindingMode"),
            old.pointer("/volumeBindingMode"),
        );
        if n != o {
            out.push(Cause::immutable(
                "volumeBindingMode",
                n.unwrap_or(&Value::Null),
            ));
        }
        out
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Provisioner",
                "string",
                "provisioner indicates the type of the provisioner.",
            ),
            col(
                "ReclaimPolicy",
                "string",
                "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class.",
            ),
            col(
                "VolumeBindingMode",
                "string",
                "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.",
            ),
            col(
                "AllowVolumeExpansion",
                "string",
                "allowVolumeExpansion shows whether the storage class allow volume expand.",
            ),
            AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        class_cells(obj, Timestamp::now())
    }
}

fn class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let sc: StorageClass = decode(obj).unwrap_or_default();
    let mut name = sc.metadata.name.clone().unwrap_or_default();
    if is_default_class(sc.metadata.annotations.as_ref()) {
        name.push_str(" (default)");
    }
    vec![
        json!(name),
        json!(sc.provisioner),
        json!(sc.reclaim_policy.unwrap_or_else(|| "Delete".into())),
        json!(sc.volume_binding_mode.unwrap_or_else(|| "Immediate".into())),
        json!(sc.allow_volume_expansion.unwrap_or(false)),
        age(obj, now),
    ]
}

#[cfg(test)]
pub(super) fn cells_at(obj: &Value, now: Timestamp) -> Vec<Value> {
    class_cells(obj, now)
}
