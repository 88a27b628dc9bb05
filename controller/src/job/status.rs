//! Job conditions and the success rule: which interim and terminal conditions a finish
//! writes (FailureTarget then Failed, SuccessCriteriaMet then Complete), and when a Job's
//! completions (or its success policy) are met.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use skiff_api::indexes;

/// How a Job ends: the interim condition written while its pods stop, the terminal one
/// written once none runs, with their reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// `FailureTarget` or `SuccessCriteriaMet`.
    pub interim: &'static str,
    /// `Failed` or `Complete`.
    pub terminal: &'static str,
    /// Kubernetes' reason, e.g. `BackoffLimitExceeded`.
    pub reason: String,
    /// Kubernetes' message.
    pub message: String,
}

impl Finish {
    /// A failure for `reason`.
    pub fn failed(reason: &str, message: String) -> Finish {
        Finish {
            interim: "FailureTarget",
            terminal: "Failed",
            reason: reason.into(),
            message,
        }
    }

    /// A success: `SuccessPolicy` when a success policy decided it, else `CompletionsReached`.
    pub fn succeeded(spec: &JobSpec) -> Finish {
        let (reason, message) = if spec.success_policy.is_some() {
            ("SuccessPolicy", "Matched rules at index 0")
        } else {
            (
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            )
        };
        Finish {
            interim: "SuccessCriteriaMet",
            terminal: "Complete",
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Whether the Job has condition `kind` with status True.
pub fn condition_true(st: &JobStatus, kind: &str) -> bool {
    st.conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == kind && c.status == "True")
}

/// Sets condition `kind`; returns whether its status changed (a transition).
pub fn set_condition(
    st: &mut JobStatus,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let conditions = st.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == kind) {
        if c.status == status {
            return false;
        }
        c.status = status.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        c.last_transition_time = Some(Time(now));
        c.last_probe_time = Some(Time(now));
        return true;
    }
    conditions.push(JobCondition {
        type_: kind.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(Time(now)),
        last_probe_time: Some(Time(now)),
    });
    true
}

/// Whether the Job succeeded: its success policy matches, or (NonIndexed) `completions`
/// pods succeeded, or (no completions) one succeeded and none still runs, or (Indexed) every
/// index completed.
pub fn success_reached(
    spec: &JobSpec,
    succeeded: i32,
    completed: &BTreeSet<i32>,
    active: usize,
) -> bool {
    let completions = spec.completions;
    if let Some(sp) = &spec.success_policy {
        let total = completions.unwrap_or(0);
        let matched = sp.rules.iter().any(|rule| {
            let within: BTreeSet<i32> = match &rule.succeeded_indexes {
                Some(text) => indexes::parse(text, total)
                    .unwrap_or_default()
                    .intersection(completed)
                    .copied()
                    .collect(),
                None => completed.clone(),
            };
            let wanted_all = rule
                .succeeded_indexes
                .as_ref()
                .map(|t| indexes::parse(t, total).unwrap_or_default().len());
            match rule.succeeded_count {
                Some(n) => within.len() as i32 >= n,
                None => wanted_all.is_some_and(|w| within.len() == w),
            }
        });
        if matched {
            return true;
        }
    }
    match (spec.completion_mode.as_deref(), completions) {
        (Some("Indexed"), Some(c)) => completed.len() as i32 >= c,
        (_, Some(c)) => succeeded >= c,
        (_, None) => succeeded > 0 && active == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> JobSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn completions_decide_success() {
        let s = spec(json!({"template": {}, "completions": 5}));
        assert!(!success_reached(&s, 4, &BTreeSet::new(), 1));
        assert!(success_reached(&s, 5, &BTreeSet::new(), 0));
        let work_queue = spec(json!({"template": {}, "parallelism": 3}));
        assert!(!success_reached(&work_queue, 1, &BTreeSet::new(), 2));
        assert!(success_reached(&work_queue, 1, &BTreeSet::new(), 0));
        let indexed = spec(json!({"template": {}, "completions": 3, "completionMode": "Indexed"}));
        assert!(!success_reached(&indexed, 3, &BTreeSet::from([0, 1]), 0));
        assert!(success_reached(&indexed, 3, &BTreeSet::from([0, 1, 2]), 0));
    }

    #[test]
    fn success_policy_rules() {
        let s = spec(
            json!({"template": {}, "completions": 10, "completionMode": "Indexed",
            "successPolicy": {"rules": [{"succeededIndexes": "0-2", "succeededCount": 2}, {"succeededIndexes": "9"}]}}),
        );
        assert!(!success_reached(&s, 1, &BTreeSet::from([0, 5]), 3));
        assert!(success_reached(&s, 2, &BTreeSet::from([0, 2]), 3));
        assert!(success_reached(&s, 1, &BTreeSet::from([9]), 3));
    }

    #[test]
    fn conditions_transition_once() {
        let mut st = JobStatus::default();
        let now = Timestamp::now();
        assert!(set_condition(
            &mut st,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(!set_condition(
            &mut st,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(condition_true(&st, "Suspended"));
        assert!(set_condition(
            &mut st,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert!(!condition_true(&st, "Suspended"));
    }
}
