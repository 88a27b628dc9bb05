//! PersistentVolumeClaims (core/v1): `ValidatePersistentVolumeClaim` (access modes, a
//! positive storage request, selector, class name), the spec that is immutable after
//! create except for its requests (which may only grow), a `volumeName` set once and a
//! class assigned once to a claim created without one, the initial `Pending` phase, the
//! pvc-protection finalizer, and the table.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::{Value, json};
use skiff_api::labels::Selector;
use skiff_api::quantity::Quantity;
use skiff_api::storage::PVC_PROTECTION;
use skiff_api::validation::is_dns1123_subdomain;

use super::{
    access_modes_short, add_finalizer, attributes_class, storage_of, validate_access_modes,
    validate_storage,
};
use crate::error::Cause;
use crate::strategy::table::{AGE, NAME, age, col, name, wide};
use crate::strategy::{Column, Strategy, decode, decode_for_validation, select, with_typed};

/// Strategy for core/v1 persistent volume claims.
pub struct PersistentVolumeClaimStrategy;

/// `ValidatePersistentVolumeClaimSpec` under `path` (also used for StatefulSet templates).
pub fn validate_claim_spec(obj: &Value, path: &str) -> Vec<Cause> {
    let claim: PersistentVolumeClaim = match serde_json::from_value(json!({"spec": obj})) {
        Ok(c) => c,
        Err(e) => {
            return vec![Cause::invalid(path, &Value::Null, e.to_string())];
        }
    };
    let spec = claim.spec.unwrap_or_default();
    let mut out = Vec::new();
    validate_access_modes(
        spec.access_modes.as_deref().unwrap_or_default(),
        &format!("{path}.accessModes"),
        &mut out,
    );
    if let Some(sel) = &spec.selector
        && let Err(e) = Selector::from_label_selector(sel)
    {
        out.push(Cause::invalid(
            format!("{path}.selector"),
            &serde_json::to_value(sel).unwrap_or_default(),
            e.to_string(),
        ));
    }
    let requests = spec.resources.as_ref().and_then(|r| r.requests.as_ref());
    match storage_of(requests) {
        None => out.push(Cause::required(format!("{path}.resources[storage]"))),
        Some(q) => validate_storage(
            q,
            &format!("{path}.resources.requests[storage]"),
            true,
            &mut out,
        ),
    }
    if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
        for msg in is_dns1123_subdomain(class) {
            out.push(Cause::invalid(
                format!("{path}.storageClassName"),
                &json!(class),
                msg,
            ));
        }
    }
    if let Some(m) = spec.volume_mode.as_deref()
        && !matches!(m, "Block" | "Filesystem")
    {
        out.push(Cause::not_supported(
            format!("{path}.volumeMode"),
            &json!(m),
            &["Block", "Filesystem"],
        ));
    }
    out
}

/// The spec with what may change after create taken out (`ValidatePersistentVolumeClaimUpdate`):
/// on a bound claim its storage request and volumeAttributesClassName, a volume name set
/// once, a class assigned once to a claim created without one.
fn fixed_part(new: &Value, old: &Value, bound: bool) -> Value {
    let mut spec = new.get("spec").cloned().unwrap_or(json!({}));
    if let Some(m) = spec.as_object_mut() {
        if bound {
            if let Some(r) = m
                .get_mut("resources")
                .and_then(|r| r.get_mut("requests"))
                .and_then(Value::as_object_mut)
            {
                r.remove("storage");
            }
            m.remove("volumeAttributesClassName");
        }
        // A volume name may be set once; a class may be assigned once to a claim created
        // without one (retroactive default class assignment).
        let old_volume = old.pointer("/spec/volumeName").and_then(Value::as_str);
        if old_volume.is_none_or(str::is_empty) {
            m.remove("volumeName");
        }
        if old
            .pointer("/spec/storageClassName")
            .is_none_or(Value::is_null)
        {
            m.remove("storageClassName");
        }
    }
    spec
}

fn quantity_at(obj: &Value, path: &str) -> Option<Quantity> {
    obj.pointer(path)
        .and_then(Value::as_str)
        .and_then(|s| Quantity::parse(s).ok())
}

impl Strategy for PersistentVolumeClaimStrategy {
    fn default(&self, obj: &mut Value) {
        with_typed::<PersistentVolumeClaim>(obj, |pvc| {
            let spec = pvc.spec.get_or_insert_with(Default::default);
            spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
        });
    }

    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending"});
        add_finalizer(obj, PVC_PROTECTION);
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        if let Err(c) = decode_for_validation::<PersistentVolumeClaim>(obj) {
            return c;
        }
        validate_claim_spec(obj.get("spec").unwrap_or(&Value::Null), "spec")
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        // The phase of the claim as updated (a spec write keeps the stored status).
        let bound = new.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
        if fixed_part(new, old, bound) != fixed_part(old, old, bound) {
            out.push(Cause::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
        // Kubernetes does not shrink volumes; with RecoverVolumeExpansionFailure (on by
        // default) a request may come back down to just above what the volume has.
        let new_size = quantity_at(new, "/spec/resources/requests/storage");
        let old_size = quantity_at(old, "/spec/resources/requests/storage");
        if let (Some(n), Some(o)) = (new_size, old_size)
            && n < o
        {
            let capacity = quantity_at(old, "/status/capacity/storage")
                .unwrap_or_else(|| Quantity::parse("0").expect("zero parses"));
            if n <= capacity {
                out.push(Cause::forbidden(
                    "spec.resources.requests.storage",
                    "field can not be less than status.capacity",
                ));
            }
        }
        out
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Status",
                "string",
                "phase represents the current phase of PersistentVolumeClaim.",
            ),
            col(
                "Volume",
                "string",
                "volumeName is the binding reference to the PersistentVolume backing this claim.",
            ),
            col(
                "Capacity",
                "string",
                "capacity represents the actual resources of the underlying volume.",
            ),
            col(
                "Access Modes",
                "string",
                "accessModes contains the desired access modes the volume should have.",
            ),
            col(
                "StorageClass",
                "string",
                "storageClassName is the name of the StorageClass required by the claim.",
            ),
            col(
                "VolumeAttributesClass",
                "string",
                "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim.",
            ),
            AGE,
            wide(
                "VolumeMode",
                "string",
                "volumeMode defines what type of volume is required by the claim.",
            ),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        pvc_cells(obj, Timestamp::now())
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        match path {
            "status.phase" | "spec.volumeName" => select(obj, path),
            _ => None,
        }
    }
}

fn pvc_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let pvc: PersistentVolumeClaim = decode(obj).unwrap_or_default();
    let spec = pvc.spec.unwrap_or_default();
    let status = pvc.status.unwrap_or_default();
    let phase = if pvc.metadata.deletion_timestamp.is_some() {
        "Terminating".to_string()
    } else {
        status.phase.clone().unwrap_or_default()
    };
    let bound = spec.volume_name.as_deref().is_some_and(|v| !v.is_empty());
    let (capacity, modes) = if bound {
        (
            storage_of(status.capacity.as_ref())
                .map(|q| q.0.clone())
                .unwrap_or_default(),
            access_modes_short(status.access_modes.as_deref().unwrap_or_default()),
        )
    } else {
        (String::new(), String::new())
    };
    vec![
        name(obj),
        json!(phase),
        json!(spec.volume_name.unwrap_or_default()),
        json!(capacity),
        json!(modes),
        json!(spec.storage_class_name.unwrap_or_default()),
        attributes_class(status.current_volume_attributes_class_name.as_deref()),
        age(obj, now),
        json!(spec.volume_mode.unwrap_or_else(|| "Filesystem".into())),
    ]
}

#[cfg(test)]
pub(super) fn cells_at(obj: &Value, now: Timestamp) -> Vec<Value> {
    pvc_cells(obj, now)
}
