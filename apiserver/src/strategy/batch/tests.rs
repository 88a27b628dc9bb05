use jiff::Timestamp;
use serde_json::{Value, json};

use super::cronjob::cronjob_cells;
use super::job::job_cells;
use super::{CronJobStrategy, JobStrategy};
use crate::error::Cause;
use crate::strategy::Strategy;

fn job(spec: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default", "uid": "u-1",
            "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": spec})
}

fn template(restart: Option<&str>) -> Value {
    let mut t = json!({"spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    if let Some(r) = restart {
        t["spec"]["restartPolicy"] = json!(r);
    }
    t
}

/// Defaults, generates the selector and validates, as a create does.
fn create(st: &dyn Strategy, mut obj: Value) -> (Value, Vec<Cause>) {
    st.default(&mut obj);
    st.prepare_create(&mut obj);
    let causes = st.validate(&obj);
    (obj, causes)
}

fn messages(causes: &[Cause]) -> Vec<String> {
    causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect()
}

#[test]
fn job_defaults_and_generated_selector() {
    let (obj, causes) = create(
        &JobStrategy,
        job(json!({"template": template(Some("Never"))})),
    );
    assert!(causes.is_empty(), "{causes:?}");
    assert_eq!(obj["spec"]["completions"], 1);
    assert_eq!(obj["spec"]["parallelism"], 1);
    assert_eq!(obj["spec"]["backoffLimit"], 6);
    assert_eq!(obj["spec"]["completionMode"], "NonIndexed");
    assert_eq!(obj["spec"]["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(
        obj["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
    );
    let labels = &obj["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
    assert_eq!(labels["controller-uid"], "u-1");
    assert_eq!(labels["job-name"], "pi");
}

#[test]
fn job_restart_policy_and_counts_are_checked() {
    let (_, causes) = create(&JobStrategy, job(json!({"template": template(None)})));
    assert_eq!(
        messages(&causes),
        [r#"spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#]
    );
    let (_, causes) = create(
        &JobStrategy,
        job(json!({"completions": -1, "template": template(Some("Never"))})),
    );
    assert_eq!(
        messages(&causes),
        ["spec.completions: Invalid value: -1: must be greater than or equal to 0"]
    );
    let (_, causes) = create(
        &JobStrategy,
        job(
            json!({"completionMode": "Indexed", "parallelism": 2, "template": template(Some("Never"))}),
        ),
    );
    assert_eq!(
        messages(&causes),
        ["spec.completions: Required value: when completion mode is Indexed"]
    );
    let (_, causes) = create(
        &JobStrategy,
        job(json!({"backoffLimitPerIndex": 1, "template": template(Some("Never"))})),
    );
    assert_eq!(
        messages(&causes),
        ["spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode"]
    );
}

#[test]
fn pod_failure_policy_rules() {
    let spec = json!({"template": template(Some("OnFailure")), "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0, 3, 2]}},
        {"action": "Bogus", "onPodConditions": [{"type": "DisruptionTarget"}]},
        {"action": "FailIndex", "onExitCodes": {"containerName": "nope", "operator": "NotIn", "values": [1]}},
    ]}});
    let (obj, causes) = create(&JobStrategy, job(spec));
    assert_eq!(obj["spec"]["podReplacementPolicy"], "Failed");
    assert_eq!(
        obj["spec"]["podFailurePolicy"]["rules"][1]["onPodConditions"][0]["status"],
        "True"
    );
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.podFailurePolicy.rules[0].onExitCodes.values[0]",
            "spec.podFailurePolicy.rules[0].onExitCodes.values[2]",
            "spec.podFailurePolicy.rules[1].action",
            "spec.podFailurePolicy.rules[2].action",
            "spec.podFailurePolicy.rules[2].onExitCodes.containerName",
            "spec.template.spec.restartPolicy",
        ],
        "{causes:?}"
    );
}

#[test]
fn job_template_and_completions_are_immutable() {
    let (old, _) = create(
        &JobStrategy,
        job(json!({"completions": 3, "template": template(Some("Never"))})),
    );
    let mut new = old.clone();
    new["spec"]["completions"] = json!(4);
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
    let fields: Vec<String> = JobStrategy
        .validate_update(&new, &old)
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(fields, ["spec.completions", "spec.template"]);
    let mut parallel = old.clone();
    parallel["spec"]["parallelism"] = json!(5);
    assert!(JobStrategy.validate_update(&parallel, &old).is_empty());
}

#[test]
fn job_rows_as_kubectl_prints_them() {
    let mut j =
        job(json!({"completions": 5, "parallelism": 2, "template": template(Some("Never"))}));
    j["status"] = json!({"succeeded": 3, "startTime": "2024-01-01T00:00:00Z"});
    let now: Timestamp = "2024-01-01T00:01:30Z".parse().unwrap();
    let cells = job_cells(&j, now);
    assert_eq!(
        &cells[..5],
        &[
            json!("pi"),
            json!("Running"),
            json!("3/5"),
            json!("90s"),
            json!("90s")
        ]
    );
    j["status"]["conditions"] = json!([{"type": "Complete", "status": "True"}]);
    j["status"]["completionTime"] = json!("2024-01-01T00:00:42Z");
    let cells = job_cells(&j, now);
    assert_eq!(
        &cells[1..4],
        &[json!("Complete"), json!("3/5"), json!("42s")]
    );
    assert_eq!(JobStrategy.columns().len(), cells.len());
}

fn cronjob(schedule: &str, tz: Option<&str>) -> Value {
    let mut cj = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "default", "uid": "u-2",
            "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"schedule": schedule,
            "jobTemplate": {"spec": {"template": template(Some("OnFailure"))}}}});
    if let Some(tz) = tz {
        cj["spec"]["timeZone"] = json!(tz);
    }
    cj
}

#[test]
fn cronjob_schedule_and_time_zone() {
    let (obj, causes) = create(
        &CronJobStrategy,
        cronjob("*/5 * * * *", Some("Europe/Paris")),
    );
    assert!(causes.is_empty(), "{causes:?}");
    assert_eq!(obj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(obj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(obj["spec"]["failedJobsHistoryLimit"], 1);
    assert_eq!(obj["spec"]["suspend"], false);
    let (_, causes) = create(&CronJobStrategy, cronjob("bad", None));
    assert_eq!(
        messages(&causes),
        [r#"spec.schedule: Invalid value: "bad": expected exactly 5 fields, found 1: [bad]"#]
    );
    let (_, causes) = create(&CronJobStrategy, cronjob("* * * * *", Some("Mars/Olympus")));
    assert_eq!(
        messages(&causes),
        [r#"spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus"#]
    );
    let (_, causes) = create(&CronJobStrategy, cronjob("CRON_TZ=UTC * * * * *", None));
    assert!(
        messages(&causes).iter().any(
            |m| m.ends_with("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
        ),
        "{causes:?}"
    );
}

#[test]
fn cronjob_rows() {
    let mut cj = cronjob("*/1 * * * *", None);
    cj["status"] =
        json!({"active": [{"name": "tick-1"}], "lastScheduleTime": "2024-01-01T00:00:00Z"});
    let now: Timestamp = "2024-01-01T00:00:20Z".parse().unwrap();
    let cells = cronjob_cells(&cj, now);
    assert_eq!(
        &cells[..7],
        &[
            json!("tick"),
            json!("*/1 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("20s"),
            json!("20s")
        ]
    );
    assert_eq!(CronJobStrategy.columns().len(), cells.len());
}
