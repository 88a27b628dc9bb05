//! Jobs and CronJobs on a real node, driven as a user drives them: an Indexed Job whose
//! first pod fails by exit code completes after Kubernetes' back-off with the counts it
//! would show, and each pod prints its completion index; a pod failure policy ends a Job at
//! once; a finished Job with a TTL disappears with its pods; `kubectl` and `skiff` create,
//! wait for and read Jobs; CronJobs run each minute, keep their history limit and honour
//! Forbid; bad Jobs and CronJobs are refused with Kubernetes' messages.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_e2e::workload::{apply, json, pods};
use skiff_e2e::{Cluster, can_run_nodes, fails, ok};

/// Polls `f` every half second (each poll runs kubectl) until it gives `Some`.
fn poll<T>(secs: u64, what: &str, c: &Cluster, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!(
                "timed out after {secs}s waiting for {what}\n{}",
                String::from_utf8_lossy(
                    &c.kubectl(&["get", "jobs,cronjobs,pods", "-o", "wide"])
                        .stdout
                )
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind && c["status"] == "True")
}

fn time(v: &Value) -> k8s_openapi::jiff::Timestamp {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
}

fn start(node: &str, n: u8) -> Option<(Cluster, skiff_e2e::node::Node)> {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return None;
    }
    let c = Cluster::start(skiff_e2e::Backend::Embedded).unwrap();
    let node = c.start_node(node, n).unwrap();
    Some((c, node))
}

#[test]
fn an_indexed_job_that_fails_once_completes_after_the_backoff_and_prints_its_indexes() {
    let Some((c, _node)) = start("e2e-node-batch-a", 12) else {
        return;
    };
    let marks = tempfile::tempdir().unwrap();
    // Index 4, the last to start, fails once by exit code a few seconds in (its first run
    // leaves the marker), after every other index has succeeded: Kubernetes' back-off counts
    // failures since the last success. Every other run prints its completion index.
    apply(
        &c,
        &format!(
            r#"apiVersion: batch/v1
kind: Job
metadata: {{name: flaky}}
spec:
  completions: 5
  parallelism: 2
  completionMode: Indexed
  backoffLimit: 6
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      volumes: [{{name: marks, hostPath: {{path: "{}"}}}}]
      containers:
      - name: work
        image: busybox:1.36
        imagePullPolicy: Never
        volumeMounts: [{{name: marks, mountPath: /marks}}]
        command: ["sh", "-c", "if [ \"$JOB_COMPLETION_INDEX\" = 4 ] && [ ! -e /marks/failed-once ]; then touch /marks/failed-once; sleep 3; exit 3; fi; echo index $JOB_COMPLETION_INDEX"]
"#,
            marks.path().display()
        ),
    );
    let job = poll(180, "flaky to complete", &c, || {
        let j = json(&c, &["get", "job", "flaky"]);
        condition(&j, "Complete").is_some().then_some(j)
    });
    let st = &job["status"];
    assert_eq!(st["succeeded"], 5, "{st}");
    assert_eq!(st["failed"], 1, "{st}");
    assert_eq!(st["completedIndexes"], "0-4", "{st}");
    assert!(condition(&job, "SuccessCriteriaMet").is_some(), "{st}");
    assert!(st["completionTime"].is_string(), "{st}");
    assert!(marks.path().join("failed-once").exists());

    // Six pods: the failed one and five that succeeded, one per index.
    let ps = pods(&c, "batch.kubernetes.io/job-name=flaky");
    assert_eq!(ps.len(), 6, "{ps:?}");
    let failed: Vec<&Value> = ps
        .iter()
        .filter(|p| p["status"]["phase"] == "Failed")
        .collect();
    assert_eq!(failed.len(), 1);
    let index_of = |p: &Value| {
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"].clone()
    };
    assert_eq!(index_of(failed[0]), "4");
    let term = &failed[0]["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 3, "{term}");
    // No pod was made for 10 s after the failure: the first step of Kubernetes' back-off.
    let failed_at = time(&term["finishedAt"]);
    let after: Vec<&Value> = ps
        .iter()
        .filter(|p| time(&p["metadata"]["creationTimestamp"]) > failed_at)
        .collect();
    assert!(!after.is_empty());
    for p in &after {
        let gap = time(&p["metadata"]["creationTimestamp"]).duration_since(failed_at);
        assert!(
            gap.as_secs() >= 9,
            "{} made {gap:?} after the failure",
            p["metadata"]["name"]
        );
    }
    assert_eq!(after.len(), 1, "only the failed index runs again");
    let replacement = after
        .iter()
        .find(|p| index_of(p) == "4")
        .expect("index 4 rerun");
    assert!(
        time(&replacement["metadata"]["creationTimestamp"])
            .duration_since(failed_at)
            .as_secs()
            < 40
    );

    // Each succeeded pod printed its own index.
    let mut printed = BTreeSet::new();
    for p in ps.iter().filter(|p| p["status"]["phase"] == "Succeeded") {
        let name = p["metadata"]["name"].as_str().unwrap();
        let log = ok(&c.kubectl(&["logs", name]));
        let i = index_of(p);
        assert_eq!(
            log.trim(),
            format!("index {}", i.as_str().unwrap()),
            "{name}"
        );
        assert!(name.starts_with(&format!("flaky-{}-", i.as_str().unwrap())));
        printed.insert(i.as_str().unwrap().to_string());
    }
    assert_eq!(printed, ["0", "1", "2", "3", "4"].map(String::from).into());
    // `logs job/NAME` picks the same one of the Job's pods through kubectl and skiff.
    let (k, s) = (
        c.kubectl(&["logs", "job/flaky"]),
        c.skiff(&["logs", "job/flaky"]),
    );
    assert_eq!(ok(&k), ok(&s));
    let picked = String::from_utf8_lossy(&k.stderr).into_owned();
    assert!(
        picked.starts_with("Found 6 pods, using pod/flaky-"),
        "{picked}"
    );
    assert_eq!(String::from_utf8_lossy(&s.stderr), picked);

    // The Job's own events.
    let events = ok(&c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=flaky",
    ]));
    assert!(events.contains("SuccessfulCreate"), "{events}");
    assert!(events.contains("Completed"), "{events}");
}

#[test]
fn failure_policy_ttl_cli_and_bad_input() {
    let Some((c, _node)) = start("e2e-node-batch-b", 13) else {
        return;
    };
    // A FailJob rule on exit code 42 ends the Job at the first such failure, long before the
    // backoffLimit of 6 with its back-off would.
    let began = Instant::now();
    apply(
        &c,
        r#"apiVersion: batch/v1
kind: Job
metadata: {name: doomed}
spec:
  completions: 4
  parallelism: 1
  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: FailJob
      onExitCodes: {containerName: main, operator: In, values: [42]}
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: "busybox:1.36", imagePullPolicy: Never, command: ["sh", "-c", "exit 42"]}
"#,
    );
    let job = poll(90, "doomed to fail", &c, || {
        let j = json(&c, &["get", "job", "doomed"]);
        condition(&j, "Failed").is_some().then_some(j)
    });
    let failed = condition(&job, "Failed").unwrap();
    assert_eq!(failed["reason"], "PodFailurePolicy", "{failed}");
    let msg = failed["message"].as_str().unwrap();
    assert!(
        msg.contains("failed with exit code 42 matching FailJob rule at index 0"),
        "{msg}"
    );
    assert!(condition(&job, "FailureTarget").is_some());
    assert_eq!(job["status"]["failed"], 1, "{}", job["status"]);
    assert!(job["status"]["succeeded"].as_i64().unwrap_or(0) == 0);
    assert!(began.elapsed() < Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(pods(&c, "batch.kubernetes.io/job-name=doomed").len(), 1);

    // ttlSecondsAfterFinished: 5 removes the Job and its pods once it has finished.
    apply(
        &c,
        r#"apiVersion: batch/v1
kind: Job
metadata: {name: brief}
spec:
  ttlSecondsAfterFinished: 5
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: "busybox:1.36", imagePullPolicy: Never, command: ["true"]}
"#,
    );
    let done = poll(60, "brief to complete", &c, || {
        let out = c.kubectl(&["get", "job", "brief", "-o", "json"]);
        let j: Value = serde_json::from_slice(&out.stdout).ok()?;
        condition(&j, "Complete").map(|c| time(&c["lastTransitionTime"]))
    });
    poll(60, "brief and its pods to go", &c, || {
        let gone = !c.kubectl(&["get", "job", "brief"]).status.success();
        (gone && pods(&c, "batch.kubernetes.io/job-name=brief").is_empty()).then_some(())
    });
    let after = k8s_openapi::jiff::Timestamp::now().duration_since(done);
    assert!(after.as_secs() >= 4, "removed {after:?} after completion");

    // kubectl create job, wait, logs.
    let out = ok(&c.kubectl(&[
        "create",
        "job",
        "hello",
        "--image=busybox:1.36",
        "--",
        "echo",
        "hello",
        "from",
        "kubectl",
    ]));
    assert_eq!(out.trim(), "job.batch/hello created");
    let out = ok(&c.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/hello",
        "--timeout=90s",
    ]));
    assert_eq!(out.trim(), "job.batch/hello condition met");
    assert_eq!(
        ok(&c.kubectl(&["logs", "job/hello"])).trim(),
        "hello from kubectl"
    );

    // The same through skiff.
    let out = ok(&c.skiff(&[
        "create",
        "job",
        "hi",
        "--image=busybox:1.36",
        "--",
        "echo",
        "hi",
        "from",
        "skiff",
    ]));
    assert_eq!(out.trim(), "job.batch/hi created");
    let made = json(&c, &["get", "job", "hi"]);
    let pod = &made["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["containers"][0]["name"], "hi");
    let out = ok(&c.skiff(&[
        "wait",
        "--for=condition=complete",
        "job/hi",
        "--timeout=90s",
    ]));
    assert_eq!(out.trim(), "job.batch/hi condition met");
    assert_eq!(ok(&c.skiff(&["logs", "job/hi"])).trim(), "hi from skiff");
    let out = ok(&c.skiff(&["wait", "--for=jsonpath={.status.succeeded}=1", "job/hi"]));
    assert_eq!(out.trim(), "job.batch/hi condition met");
    // A condition that never comes true times out as kubectl's does.
    let err = fails(&c.skiff(&["wait", "--for=condition=failed", "job/hi", "--timeout=2s"]));
    assert!(
        err.contains("timed out waiting for the condition on jobs/hi"),
        "{err}"
    );
    let err = fails(&c.kubectl(&["wait", "--for=condition=failed", "job/hi", "--timeout=2s"]));
    assert!(
        err.contains("timed out waiting for the condition on jobs/hi"),
        "{err}"
    );
    // Foreground deletion keeps the Job until its pod is gone, so the wait sees it go.
    ok(&c.kubectl(&[
        "delete",
        "job",
        "hi",
        "--cascade=foreground",
        "--wait=false",
    ]));
    let out = ok(&c.skiff(&["wait", "--for=delete", "job/hi", "--timeout=60s"]));
    assert_eq!(out.trim(), "job.batch/hi condition met");
    assert!(!c.kubectl(&["get", "job", "hi"]).status.success());
    // Waiting for the deletion of what is already gone succeeds at once, silently, in both.
    for out in [
        c.kubectl(&["wait", "--for=delete", "job/hi", "--timeout=5s"]),
        c.skiff(&["wait", "--for=delete", "job/hi", "--timeout=5s"]),
    ] {
        assert_eq!(ok(&out), "");
    }
    let err = fails(&c.skiff(&["create", "job", "x"]));
    assert!(
        err.contains("either --image or --from must be specified"),
        "{err}"
    );

    // Bad input: 422 with Kubernetes' messages, nothing created.
    let bad_job = r#"apiVersion: batch/v1
kind: Job
metadata: {name: negative}
spec:
  completions: -1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: "busybox:1.36"}]
"#;
    let err = fails(&c.kubectl_stdin(&["create", "-f", "-"], Some(bad_job)));
    assert!(
        err.contains(r#"The Job "negative" is invalid: spec.completions: Invalid value: -1: must be greater than or equal to 0"#),
        "{err}"
    );
    let cron = |name: &str, schedule: &str, tz: &str| {
        format!(
            r#"apiVersion: batch/v1
kind: CronJob
metadata: {{name: {name}}}
spec:
  schedule: "{schedule}"
  {tz}
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{{name: c, image: "busybox:1.36"}}]
"#
        )
    };
    let err = fails(&c.kubectl_stdin(
        &["create", "-f", "-"],
        Some(&cron("badsched", "every minute", "")),
    ));
    assert!(
        err.contains(r#"The CronJob "badsched" is invalid: spec.schedule: Invalid value: "every minute": expected exactly 5 fields, found 2: [every minute]"#),
        "{err}"
    );
    let err = fails(&c.kubectl_stdin(
        &["create", "-f", "-"],
        Some(&cron("badzone", "*/1 * * * *", "timeZone: Mars/Olympus")),
    ));
    assert!(
        err.contains(r#"The CronJob "badzone" is invalid: spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus"#),
        "{err}"
    );
    // The same refusal reaches skiff's users in kubectl's words.
    let err = fails(&c.skiff(&[
        "create",
        "cronjob",
        "badsched",
        "--image=busybox:1.36",
        "--schedule=nope",
    ]));
    assert!(
        err.contains("spec.schedule: Invalid value: \"nope\""),
        "{err}"
    );
    for (kind, name) in [
        ("job", "negative"),
        ("cronjob", "badsched"),
        ("cronjob", "badzone"),
    ] {
        let err = fails(&c.kubectl(&["get", kind, name]));
        assert!(err.contains("NotFound"), "{err}");
    }
}

/// The Jobs a CronJob owns, oldest first.
fn jobs_of(c: &Cluster, cronjob: &str) -> Vec<Value> {
    let mut jobs: Vec<Value> = json(c, &["get", "jobs"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| {
            j["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| {
                    o.iter()
                        .any(|r| r["kind"] == "CronJob" && r["name"] == cronjob)
                })
        })
        .cloned()
        .collect();
    jobs.sort_by_key(|j| {
        j["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or("")
            .to_string()
    });
    jobs
}

#[test]
fn cronjobs_run_each_minute_keep_their_history_and_honour_forbid() {
    let Some((c, _node)) = start("e2e-node-batch-c", 14) else {
        return;
    };
    // "tick" keeps one successful Job; "slow" runs longer than its period under Forbid.
    let out = ok(&c.skiff(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox:1.36",
        "--schedule=*/1 * * * *",
        "--restart=Never",
        "--",
        "echo",
        "tick",
    ]));
    assert_eq!(out.trim(), "cronjob.batch/tick created");
    ok(&c.kubectl(&[
        "patch",
        "cronjob",
        "tick",
        "--type=merge",
        "-p",
        r#"{"spec": {"successfulJobsHistoryLimit": 1}}"#,
    ]));
    apply(
        &c,
        r#"apiVersion: batch/v1
kind: CronJob
metadata: {name: slow}
spec:
  schedule: "*/1 * * * *"
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - {name: c, image: "busybox:1.36", imagePullPolicy: Never, command: ["sleep", "150"]}
"#,
    );

    // Manual runs from a suspended CronJob's template, as kubectl and skiff make them.
    ok(&c.skiff(&[
        "create",
        "cronjob",
        "manual",
        "--image=busybox:1.36",
        "--schedule=0 0 1 1 *",
        "--",
        "echo",
        "by hand",
    ]));
    ok(&c.kubectl(&[
        "patch",
        "cronjob",
        "manual",
        "--type=merge",
        "-p",
        r#"{"spec": {"suspend": true}}"#,
    ]));
    let out = ok(&c.skiff(&["create", "job", "by-skiff", "--from=cronjob/manual"]));
    assert_eq!(out.trim(), "job.batch/by-skiff created");
    ok(&c.kubectl(&["create", "job", "by-kubectl", "--from=cronjob/manual"]));
    let cj_uid = json(&c, &["get", "cronjob", "manual"])["metadata"]["uid"].clone();
    for name in ["by-skiff", "by-kubectl"] {
        let j = json(&c, &["get", "job", name]);
        assert_eq!(
            j["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"], "manual",
            "{name}"
        );
        let owner = &j["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "CronJob", "{name}");
        assert_eq!(owner["uid"], cj_uid, "{name}");
        assert_eq!(owner["controller"], true, "{name}");
        let job = format!("job/{name}");
        let out = ok(&c.skiff(&["wait", "--for=condition=complete", &job, "--timeout=60s"]));
        assert_eq!(out.trim(), format!("job.batch/{name} condition met"));
        assert_eq!(ok(&c.kubectl(&["logs", &job])).trim(), "by hand");
    }

    // Two scheduled runs of tick, each named for its minute, the second a minute after.
    let mut scheduled: BTreeSet<String> = BTreeSet::new();
    let second = poll(150, "two scheduled runs of tick", &c, || {
        for j in jobs_of(&c, "tick") {
            let name = j["metadata"]["name"].as_str().unwrap().to_string();
            if j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
                .is_string()
            {
                scheduled.insert(name);
            }
        }
        (scheduled.len() >= 2).then(|| scheduled.iter().nth(1).unwrap().clone())
    });
    let minutes: Vec<i64> = scheduled
        .iter()
        .map(|n| n.rsplit('-').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(minutes[1] - minutes[0], 1, "{scheduled:?}");
    ok(&c.kubectl(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{second}"),
        "--timeout=60s",
    ]));
    // Only the newest successful Job is kept.
    let kept = poll(30, "the history limit of 1", &c, || {
        let finished: Vec<Value> = jobs_of(&c, "tick")
            .into_iter()
            .filter(|j| condition(j, "Complete").is_some())
            .collect();
        (finished.len() == 1).then_some(finished)
    });
    assert_eq!(kept[0]["metadata"]["name"], second.as_str());
    let tick = json(&c, &["get", "cronjob", "tick"]);
    assert!(
        tick["status"]["lastScheduleTime"].is_string(),
        "{}",
        tick["status"]
    );
    assert!(
        tick["status"]["lastSuccessfulTime"].is_string(),
        "{}",
        tick["status"]
    );

    // Meanwhile slow's first run is still going, so Forbid skipped its second minute.
    std::thread::sleep(Duration::from_secs(5));
    let slow = jobs_of(&c, "slow");
    assert_eq!(slow.len(), 1, "{slow:?}");
    assert!(condition(&slow[0], "Complete").is_none());
    let status = json(&c, &["get", "cronjob", "slow"])["status"].clone();
    assert_eq!(
        status["active"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    assert_eq!(status["active"][0]["name"], slow[0]["metadata"]["name"]);

    // Deleting the CronJobs removes their Jobs and pods.
    ok(&c.kubectl(&[
        "delete",
        "cronjob",
        "slow",
        "tick",
        "manual",
        "--timeout=90s",
    ]));
    poll(90, "the CronJobs' Jobs and pods to go", &c, || {
        (["tick", "slow", "manual"]
            .iter()
            .all(|cj| jobs_of(&c, cj).is_empty())
            && pods(&c, "batch.kubernetes.io/controller-uid").is_empty())
        .then_some(())
    });
}
