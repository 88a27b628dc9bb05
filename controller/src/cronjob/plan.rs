//! What a CronJob should do at a given instant, decided from its spec, its status and its
//! Jobs with the clock passed in: start a run (and for Replace, stop the running ones),
//! skip it (Forbid, missed deadline), or wait; and which finished Jobs the history limits
//! remove. The controller carries out the plan.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use skiff_api::cron;

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// Nothing is due.
    Wait,
    /// Start the Job scheduled at this time (deleting the active Jobs first when `replace`).
    Start {
        /// The scheduled time.
        scheduled: Timestamp,
        /// concurrencyPolicy Replace: the active Jobs go first.
        replace: bool,
    },
    /// A run is due but Forbid keeps it from starting while another runs.
    Forbidden(Timestamp),
    /// The run was due longer ago than startingDeadlineSeconds allows.
    MissedDeadline(Timestamp),
}

/// The whole decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The run decision.
    pub run: Run,
    /// More than 100 start times were missed (reported as an event).
    pub too_many_missed: bool,
    /// When to look again.
    pub requeue: Duration,
}

/// Whether the Job has finished (Complete or Failed true), and how.
pub fn finished(job: &Job) -> Option<&'static str> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find_map(|c| match (c.type_.as_str(), c.status.as_str()) {
            ("Complete", "True") => Some("Complete"),
            ("Failed", "True") => Some("Failed"),
            _ => None,
        })
}

/// The CronJob's time zone (UTC unless `spec.timeZone`).
pub fn zone(cj: &CronJob) -> TimeZone {
    cj.spec
        .as_ref()
        .and_then(|s| s.time_zone.as_deref())
        .and_then(|tz| cron::time_zone(tz).ok())
        .unwrap_or(TimeZone::UTC)
}

/// Decides what `cj` should do at `now`, with `active` Jobs still running.
pub fn plan(cj: &CronJob, active: usize, now: Timestamp) -> Result<Plan, String> {
    let spec = cj.spec.clone().unwrap_or_default();
    let schedule = cron::parse(&spec.schedule)?;
    let tz = zone(cj);
    let next_wait = |after: Timestamp| {
        schedule
            .next_after(after, &tz)
            .map(|t| t.duration_since(now).unsigned_abs() + Duration::from_millis(100))
            .unwrap_or(Duration::from_secs(3600))
    };
    if spec.suspend == Some(true) {
        return Ok(Plan {
            run: Run::Wait,
            too_many_missed: false,
            requeue: next_wait(now),
        });
    }
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let mut earliest = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map(|t| t.0)
        .unwrap_or(created);
    if let Some(sds) = spec.starting_deadline_seconds {
        let horizon = now - Duration::from_secs(sds.max(0) as u64);
        if horizon > earliest {
            earliest = horizon;
        }
    }
    let missed = schedule.missed(earliest, now, &tz);
    let requeue = next_wait(now);
    let Some(scheduled) = missed.most_recent else {
        return Ok(Plan {
            run: Run::Wait,
            too_many_missed: false,
            requeue,
        });
    };
    let too_late = spec
        .starting_deadline_seconds
        .is_some_and(|sds| scheduled + Duration::from_secs(sds.max(0) as u64) < now);
    let run = if too_late {
        Run::MissedDeadline(scheduled)
    } else {
        match spec.concurrency_policy.as_deref().unwrap_or("Allow") {
            "Forbid" if active > 0 => Run::Forbidden(scheduled),
            "Replace" => Run::Start {
                scheduled,
                replace: active > 0,
            },
            _ => Run::Start {
                scheduled,
                replace: false,
            },
        }
    };
    let requeue = if matches!(run, Run::Forbidden(_)) {
        // Look again soon: the running Job may end before the next scheduled time.
        requeue.min(Duration::from_secs(10))
    } else {
        requeue
    };
    Ok(Plan {
        run,
        too_many_missed: missed.too_many(),
        requeue,
    })
}

/// The name of the Job for a scheduled time: `<cronjob>-<minutes since the epoch>`.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// Finished Jobs beyond the history limits, oldest first: successful ones past
/// `successfulJobsHistoryLimit`, failed ones past `failedJobsHistoryLimit`.
pub fn history_to_delete<'a>(cj: &CronJob, jobs: &[&'a Job]) -> Vec<&'a Job> {
    let spec = cj.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
        ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut done: Vec<&Job> = jobs
            .iter()
            .copied()
            .filter(|j| finished(j) == Some(kind))
            .collect();
        done.sort_by_key(|j| {
            j.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .or(j.metadata.creation_timestamp.as_ref())
                .map(|t| t.0)
        });
        let extra = done.len().saturating_sub(limit.max(0) as usize);
        out.extend(done.into_iter().take(extra));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cronjob(extra: serde_json::Value, last: Option<&str>) -> CronJob {
        let mut spec =
            json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {}}}});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let mut cj = json!({"metadata": {"name": "tick", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": spec});
        if let Some(l) = last {
            cj["status"] = json!({"lastScheduleTime": l});
        }
        serde_json::from_value(cj).unwrap()
    }

    #[test]
    fn starts_the_most_recent_due_run_once() {
        let cj = cronjob(json!({}), None);
        let p = plan(&cj, 0, ts("2024-01-01T00:04:00Z")).unwrap();
        assert_eq!(p.run, Run::Wait);
        assert_eq!(p.requeue.as_secs(), 60);
        let p = plan(&cj, 0, ts("2024-01-01T00:11:00Z")).unwrap();
        assert_eq!(
            p.run,
            Run::Start {
                scheduled: ts("2024-01-01T00:10:00Z"),
                replace: false
            }
        );
        let done = cronjob(json!({}), Some("2024-01-01T00:10:00Z"));
        assert_eq!(
            plan(&done, 0, ts("2024-01-01T00:11:00Z")).unwrap().run,
            Run::Wait
        );
        assert_eq!(
            job_name("tick", ts("2024-01-01T00:10:00Z")),
            "tick-28401130"
        );
    }

    #[test]
    fn concurrency_policies() {
        let now = ts("2024-01-01T00:05:01Z");
        let forbid = cronjob(json!({"concurrencyPolicy": "Forbid"}), None);
        assert_eq!(
            plan(&forbid, 1, now).unwrap().run,
            Run::Forbidden(ts("2024-01-01T00:05:00Z"))
        );
        assert!(matches!(
            plan(&forbid, 0, now).unwrap().run,
            Run::Start { .. }
        ));
        let replace = cronjob(json!({"concurrencyPolicy": "Replace"}), None);
        assert!(matches!(
            plan(&replace, 1, now).unwrap().run,
            Run::Start { replace: true, .. }
        ));
        let allow = cronjob(json!({}), None);
        assert!(matches!(
            plan(&allow, 3, now).unwrap().run,
            Run::Start { replace: false, .. }
        ));
        let suspended = cronjob(json!({"suspend": true}), None);
        assert_eq!(plan(&suspended, 0, now).unwrap().run, Run::Wait);
    }

    #[test]
    fn deadlines_and_missed_runs() {
        let cj = cronjob(json!({"startingDeadlineSeconds": 30}), None);
        assert_eq!(
            plan(&cj, 0, ts("2024-01-01T00:06:00Z")).unwrap().run,
            Run::Wait,
            "the 00:05 run is outside the 30 s window"
        );
        let every_minute = cronjob(
            json!({"schedule": "* * * * *"}),
            Some("2024-01-01T00:00:00Z"),
        );
        let p = plan(&every_minute, 0, ts("2024-01-02T00:00:30Z")).unwrap();
        assert!(p.too_many_missed);
        assert_eq!(
            p.run,
            Run::Start {
                scheduled: ts("2024-01-02T00:00:00Z"),
                replace: false
            }
        );
        let tz = cronjob(
            json!({"schedule": "0 9 * * *", "timeZone": "America/New_York"}),
            None,
        );
        let p = plan(&tz, 0, ts("2024-01-01T14:00:05Z")).unwrap();
        assert_eq!(
            p.run,
            Run::Start {
                scheduled: ts("2024-01-01T14:00:00Z"),
                replace: false
            }
        );
    }

    #[test]
    fn history_limits_remove_the_oldest() {
        let job = |name: &str, kind: &str, start: &str| -> Job {
            serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"template": {}},
                "status": {"startTime": start, "conditions": [{"type": kind, "status": "True"}]}}))
            .unwrap()
        };
        let jobs = [
            job("a", "Complete", "2024-01-01T00:01:00Z"),
            job("b", "Complete", "2024-01-01T00:02:00Z"),
            job("c", "Failed", "2024-01-01T00:03:00Z"),
            job("d", "Failed", "2024-01-01T00:04:00Z"),
            job("e", "Complete", "2024-01-01T00:05:00Z"),
        ];
        let refs: Vec<&Job> = jobs.iter().collect();
        let cj = cronjob(
            json!({"successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1}),
            None,
        );
        let names: Vec<String> = history_to_delete(&cj, &refs)
            .iter()
            .map(|j| j.name_any())
            .collect();
        assert_eq!(names, ["a", "c"]);
    }

    use kube::ResourceExt;
}
