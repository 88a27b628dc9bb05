//! PersistentVolumes (core/v1, cluster-scoped): defaults (`Retain`, `Filesystem`),
//! `ValidatePersistentVolume` (capacity, access modes, reclaim policy, exactly one volume
//! source, hostPath and local paths, node affinity for local volumes), the immutable
//! source, the initial `Pending` phase and the pv-protection finalizer, and the table.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolume;
use serde_json::{Value, json};
use skiff_api::storage::PV_PROTECTION;
use skiff_api::validation::is_dns1123_subdomain;

use super::{
    access_modes_short, add_finalizer, attributes_class, storage_of, validate_access_modes,
    validate_storage,
};
use crate::error::Cause;
use crate::strategy::table::{AGE, NAME, age, col, name, wide};
use crate::strategy::{Column, Strategy, decode, decode_for_validation, select, with_typed};

/// The volume sources a PersistentVolume may name (exactly one).
const SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

/// Strategy for core/v1 persistent volumes.
pub struct PersistentVolumeStrategy;

fn sources(obj: &Value) -> Vec<&'static str> {
    let spec = obj.get("spec");
    SOURCES
        .iter()
        .copied()
        .filter(|s| spec.and_then(|sp| sp.get(*s)).is_some_and(|v| !v.is_null()))
        .collect()
}

fn validate_pv(obj: &Value, pv: &PersistentVolume) -> Vec<Cause> {
    let spec = pv.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    match storage_of(spec.capacity.as_ref()) {
        None if spec.capacity.as_ref().is_none_or(|c| c.is_empty()) => {
            out.push(Cause::required("spec.capacity"))
        }
        None => {
            let keys: Vec<&String> = spec.capacity.iter().flatten().map(|(k, _)| k).collect();
            out.push(Cause::not_supported(
                "spec.capacity",
                &json!(keys),
                &["storage"],
            ))
        }
        Some(q) => validate_storage(q, "spec.capacity[storage]", false, &mut out),
    }
    validate_access_modes(
        spec.access_modes.as_deref().unwrap_or_default(),
        "spec.accessModes",
        &mut out,
    );
    if let Some(p) = spec.persistent_volume_reclaim_policy.as_deref()
        && !matches!(p, "Delete" | "Recycle" | "Retain")
    {
        out.push(Cause::not_supported(
            "spec.persistentVolumeReclaimPolicy",
            &json!(p),
            &["Delete", "Recycle", "Retain"],
        ));
    }
    if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
        for msg in is_dns1123_subdomain(class) {
            out.push(Cause::invalid("spec.storageClassName", &json!(class), msg));
        }
    }
    if let Some(m) = spec.volume_mode.as_deref()
        && !matches!(m, "Block" | "Filesystem")
    {
        out.push(Cause::not_supported(
            "spec.volumeMode",
            &json!(m),
            &["Block", "Filesystem"],
        ));
    }
    let named = sources(obj);
    match named.as_slice() {
        [] => out.push(Cause::required_detail("spec", "must specify a volume type")),
        [_] => {}
        [_, rest @ ..] => {
            for s in rest {
                out.push(Cause::forbidden(
                    format!("spec.{s}"),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    if let Some(hp) = &spec.host_path {
        if hp.path.is_empty() {
            out.push(Cause::required("spec.hostPath.path"));
        } else if hp.path.split('/').any(|p| p == "..") {
            out.push(Cause::invalid(
                "spec.hostPath.path",
                &json!(hp.path),
                "must not contain '..'",
            ));
        }
    }
    if let Some(local) = &spec.local {
        if local.path.is_empty() {
            out.push(Cause::required("spec.local.path"));
        }
        if spec
            .node_affinity
            .as_ref()
            .and_then(|a| a.required.as_ref())
            .is_none()
        {
            out.push(Cause::required_detail(
                "spec.nodeAffinity",
                "Local volume requires node affinity",
            ));
        }
    }
    out
}

impl Strategy for PersistentVolumeStrategy {
    fn default(&self, obj: &mut Value) {
        with_typed::<PersistentVolume>(obj, |pv| {
            let spec = pv.spec.get_or_insert_with(Default::default);
            spec.persistent_volume_reclaim_policy
                .get_or_insert_with(|| "Retain".into());
            spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
        });
    }

    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending"});
        add_finalizer(obj, PV_PROTECTION);
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        decode_for_validation::<PersistentVolume>(obj)
            .map(|pv| validate_pv(obj, &pv))
            .unwrap_or_else(|c| c)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let source = |o: &Value| -> Vec<Value> {
            SOURCES
                .iter()
                .map(|s| {
                    o.pointer(&format!("/spec/{s}"))
                        .cloned()
                        .unwrap_or(Value::Null)
                })
                .collect()
        };
        let mut out = Vec::new();
        if source(new) != source(old) {
            out.push(Cause::forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is forbidden to be changed",
            ));
        }
        let (na, oa) = (
            new.pointer("/spec/nodeAffinity"),
            old.pointer("/spec/nodeAffinity"),
        );
        if oa.is_some() && na != oa {
            out.push(Cause::immutable("nodeAffinity", na.unwrap_or(&Value::Null)));
        }
        out
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Capacity",
                "string",
                "capacity is the description of the persistent volume's resources and capacity.",
            ),
            col(
                "Access Modes",
                "string",
                "accessModes contains all ways the volume can be mounted.",
            ),
            col(
                "Reclaim Policy",
                "string",
                "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
            ),
            col(
                "Status",
                "string",
                "phase indicates if a volume is available, bound to a claim, or released by a claim.",
            ),
            col(
                "Claim",
                "string",
                "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
            ),
            col(
                "StorageClass",
                "string",
                "storageClassName is the name of StorageClass to which this persistent volume belongs.",
            ),
            col(
                "VolumeAttributesClass",
                "string",
                "Name of VolumeAttributesClass to which this persistent volume belongs.",
            ),
            col(
                "Reason",
                "string",
                "reason is a brief CamelCase string that describes any failure.",
            ),
            AGE,
            wide(
                "VolumeMode",
                "string",
                "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
            ),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        pv_cells(obj, Timestamp::now())
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        match path {
            "status.phase" | "spec.storageClassName" => select(obj, path),
            _ => None,
        }
    }
}

fn pv_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let pv: PersistentVolume = decode(obj).unwrap_or_default();
    let spec = pv.spec.unwrap_or_default();
    let status = pv.status.unwrap_or_default();
    let claim = spec
        .claim_ref
        .as_ref()
        .map(|c| {
            format!(
                "{}/{}",
                c.namespace.as_deref().unwrap_or(""),
                c.name.as_deref().unwrap_or("")
            )
        })
        .unwrap_or_default();
    vec![
        name(obj),
        json!(
            storage_of(spec.capacity.as_ref())
                .map(|q| q.0.clone())
                .unwrap_or_default()
        ),
        json!(access_modes_short(
            spec.access_modes.as_deref().unwrap_or_default()
        )),
        json!(spec.persistent_volume_reclaim_policy.unwrap_or_default()),
        json!(status.phase.unwrap_or_default()),
        json!(claim),
        json!(spec.storage_class_name.unwrap_or_default()),
        attributes_class(spec.volume_attributes_class_name.as_deref()),
        json!(status.reason.unwrap_or_default()),
        age(obj, now),
        json!(spec.volume_mode.unwrap_or_else(|| "Filesystem".into())),
    ]
}

#[cfg(test)]
pub(super) fn cells_at(obj: &Value, now: Timestamp) -> Vec<Value> {
    pv_cells(obj, now)
}
