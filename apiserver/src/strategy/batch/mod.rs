//! The batch/v1 kinds (Jobs and CronJobs; one file each) and what they share: Job spec
//! defaulting (`SetDefaults_Job`) and validation (`validateJobSpec`, pod failure policy,
//! indexed completion rules), used by Jobs directly and by a CronJob's `jobTemplate`.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::{JobSpec, PodFailurePolicyRule};
use serde_json::{Value, json};

use super::pod::default_pod_spec;
use super::pod::validation::validate_pod_spec;
use crate::error::Cause;

mod cronjob;
mod job;

pub use cronjob::CronJobStrategy;
pub use job::JobStrategy;

const NEGATIVE: &str = "must be greater than or equal to 0";
/// `maxParallelismForIndexedJob` and `maxCompletionsForIndexedJob`... as Kubernetes caps them.
const MAX_INDEXED_COMPLETIONS: i32 = 100_000;
const MAX_INDEXED_PARALLELISM: i32 = 100_000;
const MAX_POD_FAILURE_RULES: usize = 20;
const MAX_EXIT_CODE_VALUES: usize = 255;

/// `SetDefaults_Job` on a spec (a Job's, or a CronJob's job template).
pub(super) fn default_job_spec(spec: &mut JobSpec) {
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    if spec.backoff_limit.is_none() {
        spec.backoff_limit = Some(if spec.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            6
        });
    }
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".into());
    spec.suspend.get_or_insert(false);
    if spec.pod_replacement_policy.is_none() {
        let policy = if spec.pod_failure_policy.is_some() {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        spec.pod_replacement_policy = Some(policy.into());
    }
    if let Some(pfp) = spec.pod_failure_policy.as_mut() {
        for rule in &mut pfp.rules {
            for pattern in rule.on_pod_conditions.iter_mut().flatten() {
                if pattern.status.is_empty() {
                    pattern.status = "True".into();
                }
            }
        }
    }
    // Jobs keep an unset restartPolicy unset: validation names the two that are allowed.
    let template_spec = spec.template.spec.get_or_insert_with(Default::default);
    let restart = template_spec.restart_policy.take();
    default_pod_spec(template_spec);
    template_spec.restart_policy = restart;
}

fn nonnegative(out: &mut Vec<Cause>, field: String, v: Option<i32>) {
    if let Some(v) = v.filter(|v| *v < 0) {
        out.push(Cause::invalid(field, &json!(v), NEGATIVE));
    }
}

/// `validateJobSpec`: counts, completion mode, per-index back-off, pod failure policy,
/// replacement policy and the pod template (whose restartPolicy must be OnFailure or
/// Never). `path` is `spec` for a Job and `spec.jobTemplate.spec` for a CronJob.
pub(super) fn validate_job_spec(spec: &JobSpec, path: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    nonnegative(&mut out, format!("{path}.parallelism"), spec.parallelism);
    nonnegative(&mut out, format!("{path}.completions"), spec.completions);
    if let Some(d) = spec.active_deadline_seconds.filter(|d| *d < 0) {
        out.push(Cause::invalid(
            format!("{path}.activeDeadlineSeconds"),
            &json!(d),
            NEGATIVE,
        ));
    }
    nonnegative(&mut out, format!("{path}.backoffLimit"), spec.backoff_limit);
    if let Some(ttl) = spec.ttl_seconds_after_finished {
        nonnegative(
            &mut out,
            format!("{path}.ttlSecondsAfterFinished"),
            Some(ttl),
        );
    }
    let mode = spec.completion_mode.as_deref().unwrap_or("NonIndexed");
    let indexed = mode == "Indexed";
    if !matches!(mode, "NonIndexed" | "Indexed") {
        out.push(Cause::not_supported(
            format!("{path}.completionMode"),
            &json!(mode),
            &["NonIndexed", "Indexed"],
        ));
    }
    if indexed {
        match spec.completions {
            None => out.push(Cause::required_detail(
                format!("{path}.completions"),
                "when completion mode is Indexed",
            )),
            Some(c) if c > MAX_INDEXED_COMPLETIONS => out.push(Cause::invalid(
                format!("{path}.completions"),
                &json!(c),
                format!(
                    "must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode is Indexed"
                ),
            )),
            Some(_) => {}
        }
        if let Some(p) = spec.parallelism.filter(|p| *p > MAX_INDEXED_PARALLELISM) {
            out.push(Cause::invalid(
                format!("{path}.parallelism"),
                &json!(p),
                format!(
                    "must be less than or equal to {MAX_INDEXED_PARALLELISM} when completion mode is Indexed"
                ),
            ));
        }
    }
    validate_per_index(spec, path, indexed, &mut out);
    let restart = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("");
    if let Some(pfp) = &spec.pod_failure_policy {
        validate_pod_failure_policy(&pfp.rules, spec, path, &mut out);
        if restart == "OnFailure" {
            out.push(Cause::invalid(
                format!("{path}.template.spec.restartPolicy"),
                &json!(restart),
                "only \"Never\" is supported when podFailurePolicy is specified",
            ));
        }
    }
    if let Some(p) = spec.pod_replacement_policy.as_deref() {
        if !matches!(p, "Failed" | "TerminatingOrFailed") {
            out.push(Cause::not_supported(
                format!("{path}.podReplacementPolicy"),
                &json!(p),
                &["Failed", "TerminatingOrFailed"],
            ));
        } else if spec.pod_failure_policy.is_some() && p != "Failed" {
            out.push(Cause::not_supported(
                format!("{path}.podReplacementPolicy"),
                &json!(p),
                &["Failed"],
            ));
        }
    }
    if let Some(sp) = &spec.success_policy {
        validate_success_policy(sp, spec, path, indexed, &mut out);
    }
    let pod_spec = spec.template.spec.clone().unwrap_or_default();
    let restart_field = format!("{path}.template.spec.restartPolicy");
    // The pod rules require a restartPolicy too; the Job's own rule below words it.
    out.extend(
        validate_pod_spec(&pod_spec, &format!("{path}.template.spec"), false)
            .into_iter()
            .filter(|c| c.field != restart_field),
    );
    match restart {
        "" | "Always" => out.push(Cause::required_detail(
            format!("{path}.template.spec.restartPolicy"),
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" | "Never" => {}
        other => out.push(Cause::not_supported(
            format!("{path}.template.spec.restartPolicy"),
            &json!(other),
            &["OnFailure", "Never"],
        )),
    }
    out
}

fn validate_per_index(spec: &JobSpec, path: &str, indexed: bool, out: &mut Vec<Cause>) {
    if let Some(b) = spec.backoff_limit_per_index {
        nonnegative(out, format!("{path}.backoffLimitPerIndex"), Some(b));
        if !indexed {
            out.push(Cause::invalid(
                format!("{path}.backoffLimitPerIndex"),
                &json!(b),
                "requires indexed completion mode",
            ));
        }
    }
    if let Some(m) = spec.max_failed_indexes {
        nonnegative(out, format!("{path}.maxFailedIndexes"), Some(m));
        if spec.backoff_limit_per_index.is_none() {
            out.push(Cause::required_detail(
                format!("{path}.backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
        if let Some(c) = spec.completions.filter(|c| m > *c) {
            out.push(Cause::invalid(
                format!("{path}.maxFailedIndexes"),
                &json!(m),
                format!("must be less than or equal to completions ({c})"),
            ));
        }
    }
}

fn validate_pod_failure_policy(
    rules: &[PodFailurePolicyRule],
    spec: &JobSpec,
    path: &str,
    out: &mut Vec<Cause>,
) {
    let base = format!("{path}.podFailurePolicy.rules");
    if rules.len() > MAX_POD_FAILURE_RULES {
        out.push(Cause {
            reason: "FieldValueTooMany",
            field: base.clone(),
            message: format!(
                "Too many: {}: must have at most {MAX_POD_FAILURE_RULES} items",
                rules.len()
            ),
        });
    }
    let containers: BTreeSet<&str> = spec
        .template
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .map(|c| c.name.as_str())
        .collect();
    for (i, rule) in rules.iter().enumerate() {
        let rp = format!("{base}[{i}]");
        match rule.action.as_str() {
            "FailJob" | "Ignore" | "Count" => {}
            "FailIndex" if spec.backoff_limit_per_index.is_none() => out.push(Cause::invalid(
                format!("{rp}.action"),
                &json!("FailIndex"),
                "requires the backoffLimitPerIndex to be set",
            )),
            "FailIndex" => {}
            other => out.push(Cause::not_supported(
                format!("{rp}.action"),
                &json!(other),
                &["Count", "FailIndex", "FailJob", "Ignore"],
            )),
        }
        match (&rule.on_exit_codes, &rule.on_pod_conditions) {
            (Some(_), Some(c)) if !c.is_empty() => out.push(Cause::invalid(
                rp.clone(),
                &Value::Null,
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (None, None) => out.push(Cause::invalid(
                rp.clone(),
                &Value::Null,
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            _ => {}
        }
        if let Some(req) = &rule.on_exit_codes {
            let ep = format!("{rp}.onExitCodes");
            if let Some(name) = req.container_name.as_deref()
                && !containers.contains(name)
            {
                out.push(Cause::invalid(
                    format!("{ep}.containerName"),
                    &json!(name),
                    "must be one of the container or initContainer names in the pod template",
                ));
            }
            if !matches!(req.operator.as_str(), "In" | "NotIn") {
                out.push(Cause::not_supported(
                    format!("{ep}.operator"),
                    &json!(req.operator),
                    &["In", "NotIn"],
                ));
            }
            if req.values.is_empty() {
                out.push(Cause::invalid(
                    format!("{ep}.values"),
                    &json!(req.values),
                    "at least one value is required",
                ));
            }
            if req.values.len() > MAX_EXIT_CODE_VALUES {
                out.push(Cause {
                    reason: "FieldValueTooMany",
                    field: format!("{ep}.values"),
                    message: format!(
                        "Too many: {}: must have at most {MAX_EXIT_CODE_VALUES} items",
                        req.values.len()
                    ),
                });
            }
            let mut prev: Option<i32> = None;
            for (j, v) in req.values.iter().enumerate() {
                let vp = format!("{ep}.values[{j}]");
                if req.operator == "In" && *v == 0 {
                    out.push(Cause::invalid(
                        vp.clone(),
                        &json!(v),
                        "must not be 0 for the In operator",
                    ));
                }
                match prev {
                    Some(p) if p == *v => out.push(Cause::duplicate(vp, &json!(v))),
                    Some(p) if p > *v => out.push(Cause::invalid(vp, &json!(v), "must be ordered")),
                    _ => {}
                }
                prev = Some(*v);
            }
        }
        for (j, pattern) in rule.on_pod_conditions.iter().flatten().enumerate() {
            let cp = format!("{rp}.onPodConditions[{j}]");
            if !matches!(pattern.status.as_str(), "True" | "False" | "Unknown") {
                out.push(Cause::not_supported(
                    format!("{cp}.status"),
                    &json!(pattern.status),
                    &["False", "True", "Unknown"],
                ));
            }
            if pattern.type_.is_empty() {
                out.push(Cause::required(format!("{cp}.type")));
            }
        }
    }
}

fn validate_success_policy(
    sp: &k8s_openapi::api::batch::v1::SuccessPolicy,
    spec: &JobSpec,
    path: &str,
    indexed: bool,
    out: &mut Vec<Cause>,
) {
    let base = format!("{path}.successPolicy");
    if !indexed {
        out.push(Cause::invalid(
            base.clone(),
            &json!(format!("{} rules", sp.rules.len())),
            "requires indexed completion mode",
        ));
    }
    if sp.rules.is_empty() {
        out.push(Cause::required_detail(
            format!("{base}.rules"),
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    let completions = spec.completions.unwrap_or(0);
    for (i, rule) in sp.rules.iter().enumerate() {
        let rp = format!("{base}.rules[{i}]");
        if rule.succeeded_count.is_none() && rule.succeeded_indexes.is_none() {
            out.push(Cause::required_detail(
                rp.clone(),
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        if let Some(idx) = &rule.succeeded_indexes
            && let Err(e) = skiff_api::indexes::parse(idx, completions)
        {
            out.push(Cause::invalid(
                format!("{rp}.succeededIndexes"),
                &json!(idx),
                e,
            ));
        }
        if let Some(c) = rule.succeeded_count {
            if c < 0 {
                out.push(Cause::invalid(
                    format!("{rp}.succeededCount"),
                    &json!(c),
                    NEGATIVE,
                ));
            } else if c > completions {
                out.push(Cause::invalid(
                    format!("{rp}.succeededCount"),
                    &json!(c),
                    format!("must be less than or equal to {completions} (the number of specified completions)"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests;
