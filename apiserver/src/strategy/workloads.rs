//! Deployments, ReplicaSets and DaemonSets: defaults as apps/v1's defaulters set them,
//! spec validation (selector, template, replicas, update strategy), the immutable
//! selector, and their tables. Pod-template rules come from the pod modules.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy as K8sDeploymentStrategy,
    ReplicaSet, RollingUpdateDaemonSet, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};
use skiff_api::labels::Selector;
use skiff_api::validation::is_valid_percent;

use super::pod::default_pod_spec;
use super::pod_validation::{to_json, validate_pod_spec};
use super::table::{AGE, NAME, age, col, format_labels, format_selector, wide};
use super::{Column, Strategy, decode, decode_for_validation, with_typed};
use crate::error::Cause;

/// Strategy for apps/v1 deployments.
pub struct DeploymentStrategy;
/// Strategy for apps/v1 replicasets.
pub struct ReplicaSetStrategy;
/// Strategy for apps/v1 daemonsets.
pub struct DaemonSetStrategy;

const NEGATIVE: &str = "must be greater than or equal to 0";

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
    let spec = template.spec.clone().unwrap_or_default();
    out.extend(validate_pod_spec(&spec, "spec.template.spec", false));
    if spec.restart_policy.as_deref() != Some("Always") {
        out.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            &json!(spec.restart_policy.unwrap_or_default()),
            &["Always"],
        ));
    }
    if spec.active_deadline_seconds.is_some() {
        out.push(Cause::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
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
fn validate_int_or_percent(
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

impl Strategy for DeploymentStrategy {
    fn default(&self, obj: &mut Value) {
        default_workload::<Deployment>(obj, |d| {
            let spec = d.spec.get_or_insert_with(Default::default);
            spec.replicas.get_or_insert(1);
            let strategy = spec
                .strategy
                .get_or_insert_with(K8sDeploymentStrategy::default);
            if strategy.type_.as_deref().unwrap_or("").is_empty() {
                strategy.type_ = Some("RollingUpdate".into());
            }
            if strategy.type_.as_deref() == Some("RollingUpdate") {
                let ru = strategy
                    .rolling_update
                    .get_or_insert_with(RollingUpdateDeployment::default);
                ru.max_unavailable
                    .get_or_insert_with(|| IntOrString::String("25%".into()));
                ru.max_surge
                    .get_or_insert_with(|| IntOrString::String("25%".into()));
            }
            spec.revision_history_limit.get_or_insert(10);
            spec.progress_deadline_seconds.get_or_insert(600);
            default_template(&mut spec.template);
        });
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let d = match decode_for_validation::<Deployment>(obj) {
            Ok(d) => d,
            Err(c) => return c,
        };
        let spec = d.spec.unwrap_or_default();
        let mut out = Vec::new();
        nonnegative(&mut out, "spec.replicas", spec.replicas);
        let selector = obj.pointer("/spec/selector").map(|_| &spec.selector);
        validate_selector_and_template(selector, &spec.template, "deployment", &mut out);
        let strategy = spec.strategy.unwrap_or_default();
        match strategy.type_.as_deref().unwrap_or("") {
            "Recreate" if strategy.rolling_update.is_some() => out.push(Cause::forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            )),
            "Recreate" => {}
            "RollingUpdate" => match &strategy.rolling_update {
                None => out.push(Cause::required("spec.strategy.rollingUpdate")),
                Some(ru) => validate_rolling(
                    ru.max_surge.as_ref(),
                    ru.max_unavailable.as_ref(),
                    "spec.strategy.rollingUpdate",
                    &mut out,
                ),
            },
            other => out.push(Cause::not_supported(
                "spec.strategy.type",
                &json!(other),
                &["Recreate", "RollingUpdate"],
            )),
        }
        nonnegative(&mut out, "spec.minReadySeconds", spec.min_ready_seconds);
        nonnegative(
            &mut out,
            "spec.revisionHistoryLimit",
            spec.revision_history_limit,
        );
        if let Some(p) = spec.progress_deadline_seconds {
            nonnegative(&mut out, "spec.progressDeadlineSeconds", Some(p));
            if p <= spec.min_ready_seconds.unwrap_or(0) {
                out.push(Cause::invalid(
                    "spec.progressDeadlineSeconds",
                    &json!(p),
                    "must be greater than minReadySeconds",
                ));
            }
        }
        out
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        selector_immutable(new, old)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Ready", "string", "Number of the pod with ready state"),
            col(
                "Up-to-date",
                "integer",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "integer",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        deployment_cells(obj, Timestamp::now())
    }
}

fn deployment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let d: Deployment = decode(obj).unwrap_or_default();
    let spec = d.spec.unwrap_or_default();
    let st = d.status.unwrap_or_default();
    let (containers, images) = containers_images(Some(&spec.template));
    vec![
        super::table::name(obj),
        json!(format!(
            "{}/{}",
            st.ready_replicas.unwrap_or(0),
            spec.replicas.unwrap_or(0)
        )),
        json!(st.updated_replicas.unwrap_or(0)),
        json!(st.available_replicas.unwrap_or(0)),
        age(obj, now),
        containers,
        images,
        json!(format_selector(Some(&spec.selector))),
    ]
}

impl Strategy for ReplicaSetStrategy {
    fn default(&self, obj: &mut Value) {
        default_workload::<ReplicaSet>(obj, |rs| {
            let spec = rs.spec.get_or_insert_with(Default::default);
            spec.replicas.get_or_insert(1);
            if let Some(t) = spec.template.as_mut() {
                default_template(t);
            }
        });
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let rs = match decode_for_validation::<ReplicaSet>(obj) {
            Ok(r) => r,
            Err(c) => return c,
        };
        let spec = rs.spec.unwrap_or_default();
        let mut out = Vec::new();
        nonnegative(&mut out, "spec.replicas", spec.replicas);
        nonnegative(&mut out, "spec.minReadySeconds", spec.min_ready_seconds);
        match &spec.template {
            None => out.push(Cause::required("spec.template")),
            // Kubernetes' ReplicaSet validation reuses the deployment wording.
            Some(t) => {
                let selector = obj.pointer("/spec/selector").map(|_| &spec.selector);
                validate_selector_and_template(selector, t, "deployment", &mut out)
            }
        }
        out
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        selector_immutable(new, old)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
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
            col(
                "Ready",
                "integer",
                "The number of ready replicas for this replica set.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            wide(
                "Selector",
                "string",
                "Selector is a label query over pods that should match the replica count.",
            ),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        replicaset_cells(obj, Timestamp::now())
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        (path == "status.replicas").then(|| {
            obj.pointer("/status/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .to_string()
        })
    }
}

fn replicaset_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let rs: ReplicaSet = decode(obj).unwrap_or_default();
    let spec = rs.spec.unwrap_or_default();
    let st = rs.status.unwrap_or_default();
    let (containers, images) = containers_images(spec.template.as_ref());
    vec![
        super::table::name(obj),
        json!(spec.replicas.unwrap_or(0)),
        json!(st.replicas),
        json!(st.ready_replicas.unwrap_or(0)),
        age(obj, now),
        containers,
        images,
        json!(format_selector(Some(&spec.selector))),
    ]
}

impl Strategy for DaemonSetStrategy {
    fn default(&self, obj: &mut Value) {
        default_workload::<DaemonSet>(obj, |ds| {
            let spec = ds.spec.get_or_insert_with(Default::default);
            let us = spec
                .update_strategy
                .get_or_insert_with(DaemonSetUpdateStrategy::default);
            if us.type_.as_deref().unwrap_or("").is_empty() {
                us.type_ = Some("RollingUpdate".into());
            }
            if us.type_.as_deref() == Some("RollingUpdate") {
                let ru = us
                    .rolling_update
                    .get_or_insert_with(RollingUpdateDaemonSet::default);
                ru.max_unavailable.get_or_insert(IntOrString::Int(1));
                ru.max_surge.get_or_insert(IntOrString::Int(0));
            }
            spec.revision_history_limit.get_or_insert(10);
            default_template(&mut spec.template);
        });
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let ds = match decode_for_validation::<DaemonSet>(obj) {
            Ok(d) => d,
            Err(c) => return c,
        };
        let spec = ds.spec.unwrap_or_default();
        let mut out = Vec::new();
        let selector = obj.pointer("/spec/selector").map(|_| &spec.selector);
        validate_selector_and_template(selector, &spec.template, "daemonset", &mut out);
        let us = spec.update_strategy.unwrap_or_default();
        match us.type_.as_deref().unwrap_or("") {
            "OnDelete" => {}
            "RollingUpdate" => match &us.rolling_update {
                None => out.push(Cause::required("spec.updateStrategy.rollingUpdate")),
                Some(ru) => {
                    validate_rolling(
                        ru.max_surge.as_ref(),
                        ru.max_unavailable.as_ref(),
                        "spec.updateStrategy.rollingUpdate",
                        &mut out,
                    );
                    if int_or_percent(ru.max_surge.as_ref()) > 100
                        && matches!(ru.max_surge, Some(IntOrString::String(_)))
                    {
                        let v = ru.max_surge.as_ref().map(ios_json).unwrap_or(Value::Null);
                        out.push(Cause::invalid(
                            "spec.updateStrategy.rollingUpdate.maxSurge",
                            &v,
                            "must not be greater than 100%",
                        ));
                    }
                }
            },
            other => out.push(Cause::not_supported(
                "spec.updateStrategy.type",
                &json!(other),
                &["OnDelete", "RollingUpdate"],
            )),
        }
        nonnegative(&mut out, "spec.minReadySeconds", spec.min_ready_seconds);
        nonnegative(
            &mut out,
            "spec.revisionHistoryLimit",
            spec.revision_history_limit,
        );
        out
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        selector_immutable(new, old)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Desired",
                "integer",
                "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
            ),
            col(
                "Current",
                "integer",
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
            ),
            col(
                "Ready",
                "integer",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
            ),
            col(
                "Up-to-date",
                "integer",
                "The total number of nodes that are running updated daemon pod",
            ),
            col(
                "Available",
                "integer",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
            ),
            col(
                "Node Selector",
                "string",
                "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            wide(
                "Selector",
                "string",
                "A label query over pods that are managed by the daemon set.",
            ),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        daemonset_cells(obj, Timestamp::now())
    }
}

fn daemonset_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ds: DaemonSet = decode(obj).unwrap_or_default();
    let spec = ds.spec.unwrap_or_default();
    let st = ds.status.unwrap_or_default();
    let (containers, images) = containers_images(Some(&spec.template));
    let node_selector = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref());
    vec![
        super::table::name(obj),
        json!(st.desired_number_scheduled),
        json!(st.current_number_scheduled),
        json!(st.number_ready),
        json!(st.updated_number_scheduled.unwrap_or(0)),
        json!(st.number_available.unwrap_or(0)),
        json!(format_labels(node_selector)),
        age(obj, now),
        containers,
        images,
        json!(format_selector(Some(&spec.selector))),
    ]
}

#[cfg(test)]
#[path = "workloads_tests.rs"]
mod tests;
