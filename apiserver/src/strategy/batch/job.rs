//! Jobs (batch/v1): defaults, the generated selector and pod labels (unless
//! `manualSelector`), spec and status validation, the immutable fields, and the
//! Status / Completions / Duration table.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};
use skiff_api::labels::Selector;

use super::{default_job_spec, validate_job_spec};
use crate::error::Cause;
use crate::strategy::pod::validation::to_json;
use crate::strategy::table::{AGE, NAME, age, col, format_selector, human_duration, name, wide};
use crate::strategy::{Column, Strategy, decode, decode_for_validation, with_typed};

/// The label carrying the Job's uid on its pods and in its generated selector.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label carrying the Job's name on its pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";

/// Strategy for batch/v1 jobs.
pub struct JobStrategy;

/// `generateSelector`: the Job's pods carry its uid and name, and the selector picks them
/// by uid.
fn generate_selector(job: &mut Job) {
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let spec = job.spec.get_or_insert_with(Default::default);
    let meta = spec.template.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in [
        (CONTROLLER_UID_LABEL, &uid),
        (JOB_NAME_LABEL, &name),
        (LEGACY_CONTROLLER_UID, &uid),
        (LEGACY_JOB_NAME, &name),
    ] {
        labels.entry(k.into()).or_insert_with(|| v.clone());
    }
    if spec.selector.is_none() {
        spec.selector = Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(CONTROLLER_UID_LABEL.into(), uid)])),
            match_expressions: None,
        });
    }
}

fn validate_job(job: &Job) -> Vec<Cause> {
    let spec = job.spec.clone().unwrap_or_default();
    let mut out = validate_job_spec(&spec, "spec");
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    match &spec.selector {
        None => out.push(Cause::required("spec.selector")),
        Some(sel) => match Selector::from_label_selector(sel) {
            Err(e) => out.push(Cause::invalid(
                "spec.selector",
                &to_json(sel),
                e.to_string(),
            )),
            Ok(s) => {
                if !s.matches(&labels) {
                    out.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        &to_json(&labels),
                        "`selector` does not match template `labels`",
                    ));
                }
                if spec.manual_selector != Some(true) {
                    let uid = job.metadata.uid.clone().unwrap_or_default();
                    let expected = BTreeMap::from([
                        (CONTROLLER_UID_LABEL.to_string(), uid.clone()),
                        (
                            JOB_NAME_LABEL.to_string(),
                            job.metadata.name.clone().unwrap_or_default(),
                        ),
                    ]);
                    if !s.matches(&expected) {
                        out.push(Cause::invalid(
                            "spec.selector",
                            &to_json(sel),
                            "`selector` not auto-generated",
                        ));
                    }
                    if labels.get(CONTROLLER_UID_LABEL) != Some(&uid) {
                        out.push(Cause::invalid(
                            format!("spec.template.metadata.labels[{CONTROLLER_UID_LABEL}]"),
                            &json!(labels.get(CONTROLLER_UID_LABEL)),
                            format!("must be '{uid}'"),
                        ));
                    }
                }
            }
        },
    }
    if let Some(st) = &job.status {
        for (field, v) in [
            ("status.active", st.active),
            ("status.succeeded", st.succeeded),
            ("status.failed", st.failed),
            ("status.ready", st.ready),
            ("status.terminating", st.terminating),
        ] {
            if let Some(v) = v.filter(|v| *v < 0) {
                out.push(Cause::invalid(
                    field,
                    &json!(v),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    out
}

/// `ValidateJobSpecUpdate`: completions (unless scaled together with parallelism in an
/// Indexed Job), selector, completion mode, per-index limits and the template (apart from
/// what a suspended, never-started Job may change) are immutable.
fn validate_job_update(new: &Job, old: &Job) -> Vec<Cause> {
    let (n, o) = (
        new.spec.clone().unwrap_or_default(),
        old.spec.clone().unwrap_or_default(),
    );
    let mut out = Vec::new();
    let elastic = n.completion_mode.as_deref() == Some("Indexed")
        && n.completions == n.parallelism
        && o.completions == o.parallelism;
    if n.completions != o.completions && !elastic {
        out.push(Cause::immutable("spec.completions", &json!(n.completions)));
    }
    if n.selector != o.selector {
        out.push(Cause::immutable("spec.selector", &to_json(&n.selector)));
    }
    if n.completion_mode != o.completion_mode {
        out.push(Cause::immutable(
            "spec.completionMode",
            &json!(n.completion_mode),
        ));
    }
    if n.backoff_limit_per_index != o.backoff_limit_per_index {
        out.push(Cause::immutable(
            "spec.backoffLimitPerIndex",
            &json!(n.backoff_limit_per_index),
        ));
    }
    if n.pod_failure_policy != o.pod_failure_policy {
        out.push(Cause::immutable(
            "spec.podFailurePolicy",
            &to_json(&n.pod_failure_policy),
        ));
    }
    if !template_update_allowed(&n, &o, old) {
        out.push(Cause::immutable("spec.template", &to_json(&n.template)));
    }
    out
}

/// A suspended Job that never started may change its pods' scheduling directives (node
/// affinity, node selector, tolerations, labels, annotations, scheduling gates), as
/// Kubernetes allows for queueing controllers; nothing else of the template changes.
fn template_update_allowed(n: &JobSpec, o: &JobSpec, old: &Job) -> bool {
    if n.template == o.template {
        return true;
    }
    let never_started = old.status.as_ref().is_none_or(|s| s.start_time.is_none());
    if !(o.suspend == Some(true) && never_started) {
        return false;
    }
    let strip = |spec: &JobSpec| {
        let mut t = spec.template.clone();
        if let Some(m) = t.metadata.as_mut() {
            m.labels = None;
            m.annotations = None;
        }
        if let Some(s) = t.spec.as_mut() {
            s.affinity = None;
            s.node_selector = None;
            s.tolerations = None;
            s.scheduling_gates = None;
        }
        t
    };
    strip(n) == strip(o)
}

impl Strategy for JobStrategy {
    fn default(&self, obj: &mut Value) {
        with_typed::<Job>(obj, |job| {
            default_job_spec(job.spec.get_or_insert_with(Default::default));
        });
    }

    fn prepare_create(&self, obj: &mut Value) {
        let manual = obj.pointer("/spec/manualSelector") == Some(&json!(true));
        if !manual {
            with_typed::<Job>(obj, generate_selector);
        }
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        // The selector is the server's unless chosen by hand; an update never drops it.
        if new.pointer("/spec/selector").is_none()
            && let (Some(sel), Some(spec)) = (
                old.pointer("/spec/selector").cloned(),
                new.get_mut("spec").and_then(Value::as_object_mut),
            )
        {
            spec.insert("selector".into(), sel);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        decode_for_validation::<Job>(obj)
            .map(|j| validate_job(&j))
            .unwrap_or_else(|c| c)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        match (decode::<Job>(new), decode::<Job>(old)) {
            (Some(n), Some(o)) => validate_job_update(&n, &o),
            _ => Vec::new(),
        }
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Status", "string", "Status of the job."),
            col(
                "Completions",
                "string",
                "The completion status of the job, in the form succeeded/completions.",
            ),
            col("Duration", "string", "Time required to complete the job."),
            AGE,
            wide(
                "Containers",
                "string",
                "Names of each container in the template.",
            ),
            wide(
                "Images",
                "string",
                "Images referenced by each container in the template.",
            ),
            wide(
                "Selector",
                "string",
                "Selector is a label query over pods that should match the pod count.",
            ),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        job_cells(obj, Timestamp::now())
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        (path == "status.successful").then(|| {
            obj.pointer("/status/succeeded")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .to_string()
        })
    }
}

fn has_condition(job: &Job, kind: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// `printJob`'s Status column.
fn job_status_word(job: &Job) -> &'static str {
    if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if job.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else if has_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

pub(super) fn job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let job: Job = decode(obj).unwrap_or_default();
    let spec = job.spec.clone().unwrap_or_default();
    let st = job.status.clone().unwrap_or_default();
    let succeeded = st.succeeded.unwrap_or(0);
    let completions = match (spec.completions, spec.parallelism.unwrap_or(1)) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
        (None, _) => format!("{succeeded}/1"),
    };
    let duration = match (&st.start_time, &st.completion_time) {
        (Some(s), Some(c)) => human_duration(c.0.duration_since(s.0)),
        (Some(s), None) => human_duration(now.duration_since(s.0)),
        _ => String::new(),
    };
    let pod_spec = spec.template.spec.clone().unwrap_or_default();
    let names: Vec<&str> = pod_spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let images: Vec<&str> = pod_spec
        .containers
        .iter()
        .map(|c| c.image.as_deref().unwrap_or(""))
        .collect();
    vec![
        name(obj),
        json!(job_status_word(&job)),
        json!(completions),
        json!(duration),
        age(obj, now),
        json!(names.join(",")),
        json!(images.join(",")),
        json!(format_selector(spec.selector.as_ref())),
    ]
}
