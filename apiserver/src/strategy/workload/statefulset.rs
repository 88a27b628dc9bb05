//! StatefulSets (apps/v1): defaults as apps/v1's defaulter sets them (OrderedReady,
//! RollingUpdate with partition 0, Retain/Retain, claim templates defaulted as claims),
//! `ValidateStatefulSetSpec`, the name a DNS label, the fields an update may change, and the
//! table.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use super::{
    CONTAINERS, IMAGES, READY, containers_images, default_template, default_workload,
    int_or_percent, ios_json, nonnegative, ready_cell, validate_int_or_percent,
    validate_restart_and_deadline, validate_selector,
};
use crate::error::Cause;
use crate::strategy::table::{AGE, NAME, age, name};
use crate::strategy::{Column, Strategy, decode, decode_for_validation};

/// Strategy for apps/v1 statefulsets.
pub struct StatefulSetStrategy;

/// The spec fields an update may change (`ValidateStatefulSetUpdate`).
const MUTABLE: [&str; 7] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
    "revisionHistoryLimit",
];

fn default_spec(spec: &mut StatefulSetSpec) {
    spec.replicas.get_or_insert(1);
    if spec
        .pod_management_policy
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        spec.pod_management_policy = Some("OrderedReady".into());
    }
    let us = spec
        .update_strategy
        .get_or_insert_with(StatefulSetUpdateStrategy::default);
    if us.type_.as_deref().unwrap_or("").is_empty() {
        us.type_ = Some("RollingUpdate".into());
    }
    if us.type_.as_deref() == Some("RollingUpdate") {
        let ru = us
            .rolling_update
            .get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
        ru.partition.get_or_insert(0);
    }
    let policy = spec
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
    for p in [&mut policy.when_deleted, &mut policy.when_scaled] {
        if p.as_deref().unwrap_or("").is_empty() {
            *p = Some("Retain".into());
        }
    }
    spec.revision_history_limit.get_or_insert(10);
    // Claim templates are defaulted as claims are (`SetDefaults_PersistentVolumeClaim`).
    for claim in spec.volume_claim_templates.iter_mut().flatten() {
        let cs = claim.spec.get_or_insert_with(Default::default);
        cs.volume_mode.get_or_insert_with(|| "Filesystem".into());
        let st = claim.status.get_or_insert_with(Default::default);
        st.phase.get_or_insert_with(|| "Pending".into());
    }
    default_template(&mut spec.template);
}

fn validate_update_strategy(us: Option<&StatefulSetUpdateStrategy>, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let us = us.cloned().unwrap_or_default();
    match us.type_.as_deref().unwrap_or("") {
        "" => out.push(Cause::required("spec.updateStrategy")),
        "OnDelete" if us.rolling_update.is_some() => out.push(Cause::invalid(
            "spec.updateStrategy.rollingUpdate",
            obj.pointer("/spec/updateStrategy/rollingUpdate")
                .unwrap_or(&Value::Null),
            "only allowed for updateStrategy 'RollingUpdate'",
        )),
        "OnDelete" => {}
        "RollingUpdate" => {
            let ru = us.rolling_update.unwrap_or_default();
            let path = "spec.updateStrategy.rollingUpdate";
            nonnegative(&mut out, &format!("{path}.partition"), ru.partition);
            if let Some(mu) = &ru.max_unavailable {
                let field = format!("{path}.maxUnavailable");
                validate_int_or_percent(Some(mu), &field, true, &mut out);
                if int_or_percent(Some(mu)) == 0 && !matches!(mu, IntOrString::Int(i) if *i < 0) {
                    out.push(Cause::invalid(field, &ios_json(mu), "cannot be 0"));
                }
            }
        }
        _ => out.push(Cause::invalid(
            "spec.updateStrategy",
            obj.pointer("/spec/updateStrategy").unwrap_or(&Value::Null),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    out
}

/// `ValidateStatefulSetStatusUpdate`: non-negative counts, none above `replicas`, available
/// not above ready, and a collision count that never goes down.
fn validate_status(new: &Value, old: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let st = decode::<StatefulSet>(new)
        .and_then(|s| s.status)
        .unwrap_or_default();
    let zero = |v: Option<i32>| v.unwrap_or(0);
    let (ready, current, updated, available) = (
        zero(st.ready_replicas),
        zero(st.current_replicas),
        zero(st.updated_replicas),
        zero(st.available_replicas),
    );
    for (field, v) in [
        ("replicas", Some(st.replicas)),
        ("readyReplicas", Some(ready)),
        ("currentReplicas", Some(current)),
        ("updatedReplicas", Some(updated)),
        ("availableReplicas", Some(available)),
        (
            "observedGeneration",
            st.observed_generation.map(|g| g.clamp(-1, 0) as i32),
        ),
        ("collisionCount", st.collision_count),
    ] {
        if let Some(v) = v.filter(|v| *v < 0) {
            let shown = new
                .pointer(&format!("/status/{field}"))
                .cloned()
                .unwrap_or(json!(v));
            out.push(Cause::invalid(
                format!("status.{field}"),
                &shown,
                "must be greater than or equal to 0",
            ));
        }
    }
    let over = "cannot be greater than status.replicas";
    for (field, v) in [
        ("readyReplicas", ready),
        ("currentReplicas", current),
        ("updatedReplicas", updated),
        ("availableReplicas", available),
    ] {
        if v > st.replicas {
            out.push(Cause::invalid(format!("status.{field}"), &json!(v), over));
        }
    }
    if available > ready {
        out.push(Cause::invalid(
            "status.availableReplicas",
            &json!(available),
            "cannot be greater than status.readyReplicas",
        ));
    }
    let old_count = old
        .pointer("/status/collisionCount")
        .and_then(Value::as_i64);
    if let Some(o) = old_count
        && zero(st.collision_count) < o as i32
    {
        out.push(Cause::invalid(
            "status.collisionCount",
            &json!(zero(st.collision_count)),
            "cannot be decremented",
        ));
    }
    out
}

impl Strategy for StatefulSetStrategy {
    fn default(&self, obj: &mut Value) {
        default_workload::<StatefulSet>(obj, |s| {
            default_spec(s.spec.get_or_insert_with(Default::default));
        });
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let set = match decode_for_validation::<StatefulSet>(obj) {
            Ok(s) => s,
            Err(c) => return c,
        };
        let spec = set.spec.unwrap_or_default();
        let mut out = Vec::new();
        match spec.pod_management_policy.as_deref().unwrap_or("") {
            "" => out.push(Cause::required("spec.podManagementPolicy")),
            "OrderedReady" | "Parallel" => {}
            other => out.push(Cause::invalid(
                "spec.podManagementPolicy",
                &json!(other),
                "must be 'OrderedReady' or 'Parallel'",
            )),
        }
        out.extend(validate_update_strategy(spec.update_strategy.as_ref(), obj));
        if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
            let path = "spec.persistentVolumeClaimRetentionPolicy";
            for (field, v) in [
                ("whenDeleted", &policy.when_deleted),
                ("whenScaled", &policy.when_scaled),
            ] {
                let v = v.as_deref().unwrap_or("");
                if !matches!(v, "Retain" | "Delete") {
                    out.push(Cause::not_supported(
                        format!("{path}.{field}"),
                        &json!(v),
                        &["Delete", "Retain"],
                    ));
                }
            }
        }
        nonnegative(&mut out, "spec.replicas", spec.replicas);
        nonnegative(&mut out, "spec.minReadySeconds", spec.min_ready_seconds);
        if let Some(o) = &spec.ordinals {
            nonnegative(&mut out, "spec.ordinals.start", o.start);
        }
        let selector = obj.pointer("/spec/selector").map(|_| &spec.selector);
        validate_selector(selector, &spec.template, "statefulset", &mut out);
        // As in kube-apiserver, neither the pod spec (whose mounts name claim templates) nor
        // the claim templates (only warned about) are validated here; a bad one shows as the
        // controller's FailedCreate event when it makes the pod or the claim.
        let template_spec = spec.template.spec.clone().unwrap_or_default();
        validate_restart_and_deadline(&template_spec, "StatefulSet", &mut out);
        out
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        if new.get("status") != old.get("status") {
            return validate_status(new, old);
        }
        let fixed = |obj: &Value| {
            let mut spec = obj.get("spec").cloned().unwrap_or(json!({}));
            if let Some(m) = spec.as_object_mut() {
                for f in MUTABLE {
                    m.remove(f);
                }
            }
            spec
        };
        if fixed(new) == fixed(old) {
            return Vec::new();
        }
        vec![Cause::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        )]
    }

    fn name_rule(&self) -> fn(&str) -> Vec<String> {
        // Pods take the set's name as their hostname.
        skiff_api::validation::is_dns1123_label
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![NAME, READY, AGE, CONTAINERS, IMAGES]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        statefulset_cells(obj, Timestamp::now())
    }
}

pub(super) fn statefulset_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let set: StatefulSet = decode(obj).unwrap_or_default();
    let spec = set.spec.unwrap_or_default();
    let st = set.status.unwrap_or_default();
    let (containers, images) = containers_images(Some(&spec.template));
    vec![
        name(obj),
        ready_cell(st.ready_replicas, spec.replicas),
        age(obj, now),
        containers,
        images,
    ]
}
