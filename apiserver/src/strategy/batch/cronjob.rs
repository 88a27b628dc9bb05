//! CronJobs (batch/v1): defaults (`SetDefaults_CronJob`), the schedule checked by the
//! shared cron parser, `timeZone` against the tz database, the job template's rules, and
//! the Schedule / Timezone / Suspend / Active / Last Schedule table.

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::CronJob;
use serde_json::{Value, json};
use skiff_api::cron;

use super::{default_job_spec, validate_job_spec};
use crate::error::Cause;
use crate::strategy::pod::validation::to_json;
use crate::strategy::table::{AGE, NAME, age, col, format_selector, name, since, wide};
use crate::strategy::{Column, Strategy, decode, decode_for_validation, with_typed};

/// Strategy for batch/v1 cronjobs.
pub struct CronJobStrategy;

fn validate_cronjob(cj: &CronJob) -> Vec<Cause> {
    let spec = cj.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    if spec.schedule.is_empty() {
        out.push(Cause::required("spec.schedule"));
    } else {
        if let Err(e) = cron::parse(&spec.schedule) {
            out.push(Cause::invalid("spec.schedule", &json!(spec.schedule), e));
        }
        if cron::tz_in_schedule(&spec.schedule) {
            out.push(Cause::invalid(
                "spec.schedule",
                &json!(spec.schedule),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    if let Some(tz) = &spec.time_zone
        && let Err(e) = cron::time_zone(tz)
    {
        out.push(Cause::invalid("spec.timeZone", &json!(tz), e));
    }
    if let Some(d) = spec.starting_deadline_seconds.filter(|d| *d < 0) {
        out.push(Cause::invalid(
            "spec.startingDeadlineSeconds",
            &json!(d),
            "must be greater than or equal to 0",
        ));
    }
    for (field, v) in [
        (
            "spec.successfulJobsHistoryLimit",
            spec.successful_jobs_history_limit,
        ),
        (
            "spec.failedJobsHistoryLimit",
            spec.failed_jobs_history_limit,
        ),
    ] {
        if let Some(v) = v.filter(|v| *v < 0) {
            out.push(Cause::invalid(
                field,
                &json!(v),
                "must be greater than or equal to 0",
            ));
        }
    }
    match spec.concurrency_policy.as_deref().unwrap_or("") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => out.push(Cause::required("spec.concurrencyPolicy")),
        other => out.push(Cause::not_supported(
            "spec.concurrencyPolicy",
            &json!(other),
            &["Allow", "Forbid", "Replace"],
        )),
    }
    // ValidateJobTemplateSpec: the Jobs' selectors are always generated.
    let job_spec = spec.job_template.spec.clone().unwrap_or_default();
    out.extend(validate_job_spec(&job_spec, "spec.jobTemplate.spec"));
    if let Some(sel) = &job_spec.selector {
        out.push(Cause::invalid(
            "spec.jobTemplate.spec.selector",
            &to_json(sel),
            "`selector` will be auto-generated",
        ));
    }
    if job_spec.manual_selector == Some(true) {
        out.push(Cause::not_supported(
            "spec.jobTemplate.spec.manualSelector",
            &json!(true),
            &["nil", "false"],
        ));
    }
    // A CronJob's name leaves room for the 11-character scheduled-time suffix of its Jobs.
    let name = cj.metadata.name.as_deref().unwrap_or("");
    if name.len() > 52 {
        out.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            "must be no more than 52 characters",
        ));
    }
    out
}

impl Strategy for CronJobStrategy {
    fn default(&self, obj: &mut Value) {
        with_typed::<CronJob>(obj, |cj| {
            let spec = cj.spec.get_or_insert_with(Default::default);
            spec.concurrency_policy
                .get_or_insert_with(|| "Allow".into());
            spec.suspend.get_or_insert(false);
            spec.successful_jobs_history_limit.get_or_insert(3);
            spec.failed_jobs_history_limit.get_or_insert(1);
            default_job_spec(spec.job_template.spec.get_or_insert_with(Default::default));
        });
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        decode_for_validation::<CronJob>(obj)
            .map(|c| validate_cronjob(&c))
            .unwrap_or_else(|c| c)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Schedule",
                "string",
                "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
            ),
            col(
                "Timezone",
                "string",
                "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.",
            ),
            col(
                "Suspend",
                "boolean",
                "This flag tells the controller to suspend subsequent executions.",
            ),
            col(
                "Active",
                "integer",
                "A list of pointers to currently running jobs.",
            ),
            col(
                "Last Schedule",
                "string",
                "Information when was the last time the job was successfully scheduled.",
            ),
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
        cronjob_cells(obj, Timestamp::now())
    }
}

pub(super) fn cronjob_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let cj: CronJob = decode(obj).unwrap_or_default();
    let spec = cj.spec.unwrap_or_default();
    let st = cj.status.unwrap_or_default();
    let last = st
        .last_schedule_time
        .map(|t| since(Some(&t.0.to_string()), now))
        .unwrap_or_else(|| "<none>".into());
    let job_spec = spec.job_template.spec.unwrap_or_default();
    let pod_spec = job_spec.template.spec.unwrap_or_default();
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
        json!(spec.schedule),
        json!(spec.time_zone.unwrap_or_else(|| "<none>".into())),
        json!(if spec.suspend.unwrap_or(false) {
            "True"
        } else {
            "False"
        }),
        json!(st.active.map_or(0, |a| a.len())),
        json!(last),
        age(obj, now),
        json!(names.join(",")),
        json!(images.join(",")),
        json!(format_selector(job_spec.selector.as_ref())),
    ]
}
