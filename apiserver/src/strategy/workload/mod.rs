//! What the workload kinds (Deployments, ReplicaSets, DaemonSets, StatefulSets; one file each) share:
//! defaulting through the typed form, selector and pod-template validation, int-or-percent
//! and rolling-update rules, the immutable selector, and the template table columns.
//! Pod-template rules come from the pod modules.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};
use skiff_api::labels::Selector;
use skiff_api::validation::is_valid_percent;

use super::pod::default_pod_spec;
use super::pod::validation::{to_json, validate_pod_spec};
use super::table::{col, wide};
use super::{Column, with_typed};
use crate::error::Cause;

mod daemonset;
mod deployment;
mod replicaset;
mod replication_controller;
mod statefulset;

pub use daemonset::DaemonSetStrategy;
pub use deployment::DeploymentStrategy;
pub use replicaset::ReplicaSetStrategy;
pub use replication_controller::{ReplicationControllerStrategy, map_selector};
pub use statefulset::StatefulSetStrategy;

const NEGATIVE: &str = "must be greater than or equal to 0";

/// The table of ReplicaSets and ReplicationControllers; `ready` describes the Ready column.
fn replica_columns(ready: &'static str) -> Vec<Column> {
    vec![
        super::table::NAME,
        col(
            "Desired",
            "integer",
            "Replicas is the number of desired replicas.",
        ),
        col(
            "Current",
            "integer",
            "Replicas is the most recently observed number of replicas.",
        ),
        col("Ready", "integer", ready),
        super::table::AGE,
        CONTAINERS,
        IMAGES,
        wide(
            "Selector",
            "string",
            "Selector is a label query over pods that should match the replica count.",
        ),
    ]
}

/// The `status.replicas` field selector of ReplicaSets and ReplicationControllers.
fn status_replicas_field(obj: &Value, path: &str) -> Option<String> {
    (path == "status.replicas").then(|| {
        obj.pointer("/status/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string()
    })
}

/// Defaults a workload through its typed form without inventing a selector: the typed
/// struct always serializes one, but a missing selector must stay missing for validation.
fn default_workload<T>(obj: &mut Value, f: impl FnOnce(&mut T))
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let had_selector = obj.pointer("/spec/selector").is_some();
    with_typed(obj, f);
    if !had_selector && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("selector");
    }
}

fn default_template(t: &mut PodTemplateSpec) {
    default_pod_spec(t.spec.get_or_insert_with(Default::default));
}

fn nonnegative(out: &mut Vec<Cause>, field: &str, v: Option<i32>) {
    if let Some(v) = v.filter(|v| *v < 0) {
        out.push(Cause::invalid(field, &json!(v), NEGATIVE));
    }
}

/// Labels as Go's `%#v` prints a `map[string]string`, the way Kubernetes quotes them.
fn go_map(m: Option<&BTreeMap<String, String>>) -> String {
    let items: Vec<String> = m
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k:?}:{v:?}"))
        .collect();
    if m.is_none() {
        "map[string]string(nil)".into()
    } else {
        format!("map[string]string{{{}}}", items.join(", "))
    }
}

/// Selector presence, non-emptiness, well-formedness and agreement with the template's
/// labels; then the template itself (`ValidatePodTemplateSpecForReplicaSet`).
fn validate_selector_and_template(
    selector: Option<&LabelSelector>,
    template: &PodTemplateSpec,
    kind_word: &str,
    out: &mut Vec<Cause>,
) {
    validate_selector(selector, template, kind_word, out);
    let spec = template.spec.clone().unwrap_or_default();
    validate_template_spec(&spec, "ReplicaSet", out);
}

/// Selector presence, non-emptiness, well-formedness and agreement with the template's labels.
fn validate_selector(
    selector: Option<&LabelSelector>,
    template: &PodTemplateSpec,
    kind_word: &str,
    out: &mut Vec<Cause>,
) {
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    let mismatch = || Cause {
        reason: "FieldValueInvalid",
        field: "spec.template.metadata.labels".into(),
        message: format!(
            "Invalid value: {}: `selector` does not match template `labels`",
            go_map(labels)
        ),
    };
    match selector {
        // A missing selector selects nothing, so the template cannot match it either.
        None => out.extend([Cause::required("spec.selector"), mismatch()]),
        Some(sel) => {
            let empty = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty());
            if empty {
                out.push(Cause::invalid(
                    "spec.selector",
                    &to_json(sel),
                    format!("empty selector is invalid for {kind_word}"),
                ));
            }
            match Selector::from_label_selector(sel) {
                Err(e) => out.push(Cause::invalid(
                    "spec.selector",
                    &to_json(sel),
                    e.to_string(),
                )),
                Ok(s) if !empty && !s.matches(labels.unwrap_or(&BTreeMap::new())) => {
                    out.push(mismatch())
                }
                Ok(_) => {}
            }
        }
    }
}

/// The template's pod spec, then its restart policy and active deadline.
fn validate_template_spec(spec: &PodSpec, kind: &str, out: &mut Vec<Cause>) {
    out.extend(validate_pod_spec(spec, "spec.template.spec", false));
    validate_restart_and_deadline(spec, kind, out);
}

/// The template's `Always` restart policy and the absence of an active deadline (`kind`
/// names the workload in that message, as Kubernetes words it).
fn validate_restart_and_deadline(spec: &PodSpec, kind: &str, out: &mut Vec<Cause>) {
    if spec.restart_policy.as_deref() != Some("Always") {
        out.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            &json!(spec.restart_policy.clone().unwrap_or_default()),
            &["Always"],
        ));
    }
    if spec.active_deadline_seconds.is_some() {
        out.push(Cause::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// The integer or percentage value of maxSurge/maxUnavailable, for the both-zero rule.
fn int_or_percent(v: Option<&IntOrString>) -> i64 {
    match v {
        Some(IntOrString::Int(i)) => i64::from(*i),
        Some(IntOrString::String(s)) => s.trim_end_matches('%').parse().unwrap_or(0),
        None => 0,
    }
}

fn ios_json(v: &IntOrString) -> Value {
    match v {
        IntOrString::Int(i) => json!(i),
        IntOrString::String(s) => json!(s),
    }
}

/// `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent`.
pub(super) fn validate_int_or_percent(
    v: Option<&IntOrString>,
    field: &str,
    cap_100: bool,
    out: &mut Vec<Cause>,
) {
    let Some(v) = v else { return };
    match v {
        IntOrString::String(s) => {
            let msgs = is_valid_percent(s);
            let over = msgs.is_empty() && cap_100 && int_or_percent(Some(v)) > 100;
            for msg in msgs {
                out.push(Cause::invalid(field, &ios_json(v), msg));
            }
            if over {
                out.push(Cause::invalid(
                    field,
                    &ios_json(v),
                    "must not be greater than 100%",
                ));
            }
        }
        IntOrString::Int(i) if *i < 0 => out.push(Cause::invalid(field, &ios_json(v), NEGATIVE)),
        IntOrString::Int(_) => {}
    }
}

fn validate_rolling(
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
    path: &str,
    out: &mut Vec<Cause>,
) {
    validate_int_or_percent(unavailable, &format!("{path}.maxUnavailable"), true, out);
    validate_int_or_percent(surge, &format!("{path}.maxSurge"), false, out);
    if int_or_percent(unavailable) == 0 && int_or_percent(surge) == 0 {
        let v = unavailable.map(ios_json).unwrap_or(json!(0));
        out.push(Cause::invalid(
            format!("{path}.maxUnavailable"),
            &v,
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}

fn selector_immutable(new: &Value, old: &Value) -> Vec<Cause> {
    let (n, o) = (new.pointer("/spec/selector"), old.pointer("/spec/selector"));
    if n != o {
        vec![Cause::immutable("spec.selector", n.unwrap_or(&Value::Null))]
    } else {
        Vec::new()
    }
}

/// `containers` and `images` cells of a template, comma-joined.
fn containers_images(t: Option<&PodTemplateSpec>) -> (Value, Value) {
    let containers = t
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let names: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
    let images: Vec<String> = containers
        .iter()
        .map(|c| c.image.clone().unwrap_or_default())
        .collect();
    (json!(names.join(",")), json!(images.join(",")))
}

/// `ready/desired` of a workload's replicas.
fn ready_cell(ready: Option<i32>, desired: Option<i32>) -> Value {
    json!(format!("{}/{}", ready.unwrap_or(0), desired.unwrap_or(0)))
}

const READY: Column = col("Ready", "string", "Number of the pod with ready state");
const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);
const SELECTOR: Column = wide(
    "Selector",
    "string",
    "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
);

#[cfg(test)]
mod tests;
