//! Persistent storage kinds: PersistentVolumes and PersistentVolumeClaims (core/v1) and
//! StorageClasses (storage.k8s.io/v1), one file each; what they share is here: access-mode
//! rules and their short table form, storage quantities, and the protection finalizers
//! kube-apiserver's StorageObjectInUseProtection admission adds on create.

mod pv;
mod pvc;
mod storageclass;

pub use pv::PersistentVolumeStrategy;
pub use pvc::{PersistentVolumeClaimStrategy, validate_claim_spec};
pub use storageclass::StorageClassStrategy;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KubeQuantity;
use serde_json::{Value, json};
use skiff_api::quantity::Quantity;

use crate::error::Cause;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// `accessModes`: at least one, each known, ReadWriteOncePod alone.
fn validate_access_modes(modes: &[String], field: &str, out: &mut Vec<Cause>) {
    if modes.is_empty() {
        out.push(Cause::required_detail(
            field,
            "at least 1 access mode is required",
        ));
    }
    for m in modes {
        if !ACCESS_MODES.contains(&m.as_str()) {
            out.push(Cause::not_supported(field, &json!(m), ACCESS_MODES));
        }
    }
    if modes.iter().any(|m| m == "ReadWriteOncePod") && modes.len() > 1 {
        out.push(Cause::forbidden(
            field,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

/// Access modes as `GetAccessModesAsString` prints them (`RWO,ROX,RWX,RWOP`, fixed order).
fn access_modes_short(modes: &[String]) -> String {
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(long, _)| modes.iter().any(|m| m == long))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The `storage` entry of a resource list, as typed.
fn storage_of(list: Option<&BTreeMap<String, KubeQuantity>>) -> Option<&KubeQuantity> {
    list.and_then(|m| m.get("storage"))
}

/// A storage quantity that must parse and, with `positive`, be above zero
/// (`ValidatePositiveQuantityValue`), otherwise not negative (`ValidateResourceQuantityValue`).
fn validate_storage(q: &KubeQuantity, field: &str, positive: bool, out: &mut Vec<Cause>) {
    match Quantity::parse(&q.0) {
        Err(_) => out.push(Cause::invalid(
            field,
            &json!(q.0),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        )),
        Ok(v) if positive && (v.is_negative() || v.is_zero()) => {
            out.push(Cause::invalid(field, &json!(q.0), "must be greater than zero"))
        }
        Ok(v) if v.is_negative() => out.push(Cause::invalid(
            field,
            &json!(q.0),
            "must be greater than or equal to 0",
        )),
        Ok(_) => {}
    }
}

/// Adds `finalizer` to a new object's metadata unless it is there already.
fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(items) = list.as_array_mut()
        && !items.iter().any(|f| f == finalizer)
    {
        items.push(json!(finalizer));
    }
}

/// The `<unset>` a VolumeAttributesClass column prints without one.
fn attributes_class(name: Option<&str>) -> Value {
    json!(name.filter(|n| !n.is_empty()).unwrap_or("<unset>"))
}

#[cfg(test)]
mod tests;
