//! `rollout status`: kubectl's status viewers for Deployments, DaemonSets and StatefulSets, printed once
//! per observed change of the object until the rollout is done, fails or `--timeout` passes.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::{AsyncBufReadExt, TryStreamExt};
use kube::api::{ListParams, WatchParams};
use kube::core::Request;
use serde_json::Value;

use super::Ctx;
use super::resource::Res;

/// Where a rollout stands, as one of kubectl's progress lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The line kubectl prints (without the newline).
    pub message: String,
    /// Whether the rollout has finished.
    pub done: bool,
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The Deployment status viewer: done when the controller has observed the latest spec and
/// every replica is updated and available; `ProgressDeadlineExceeded` is a failure.
pub fn deployment_status(d: &Value, revision: i64) -> Result<Progress> {
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    if revision > 0 {
        let current = d["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            .as_str()
            .and_then(|r| r.parse::<i64>().ok())
            .unwrap_or(0);
        if current != revision {
            bail!(
                "desired revision ({revision}) is different from the running revision ({current})"
            );
        }
    }
    let status = &d["status"];
    let progress = |message: String, done: bool| Ok(Progress { message, done });
    if i(&d["metadata"]["generation"]) > i(&status["observedGeneration"]) {
        return progress(
            "Waiting for deployment spec update to be observed...".into(),
            false,
        );
    }
    let timed_out = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
    if timed_out {
        bail!("deployment {name:?} exceeded its progress deadline");
    }
    let (updated, replicas, available) = (
        i(&status["updatedReplicas"]),
        i(&status["replicas"]),
        i(&status["availableReplicas"]),
    );
    if let Some(spec) = d["spec"]["replicas"].as_i64()
        && updated < spec
    {
        return progress(
            format!(
                "Waiting for deployment {name:?} rollout to finish: {updated} out of {spec} new replicas have been updated..."
            ),
            false,
        );
    }
    if replicas > updated {
        return progress(
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
            false,
        );
    }
    if available < updated {
        return progress(
            format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
            ),
            false,
        );
    }
    progress(format!("deployment {name:?} successfully rolled out"), true)
}

/// The DaemonSet status viewer.
pub fn daemonset_status(ds: &Value) -> Result<Progress> {
    let name = ds["metadata"]["name"].as_str().unwrap_or_default();
    let strategy = ds["spec"]["updateStrategy"]["type"]
        .as_str()
        .unwrap_or("RollingUpdate");
    if strategy != "RollingUpdate" {
        bail!("rollout status is only available for RollingUpdate strategy type");
    }
    let status = &ds["status"];
    let progress = |message: String, done: bool| Ok(Progress { message, done });
    if i(&ds["metadata"]["generation"]) > i(&status["observedGeneration"]) {
        return progress(
            "Waiting for daemon set spec update to be observed...".into(),
            false,
        );
    }
    let desired = i(&status["desiredNumberScheduled"]);
    let updated = i(&status["updatedNumberScheduled"]);
    let available = i(&status["numberAvailable"]);
    if updated < desired {
        return progress(
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
            ),
            false,
        );
    }
    if available < desired {
        return progress(
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
            ),
            false,
        );
    }
    progress(format!("daemon set {name:?} successfully rolled out"), true)
}

/// The StatefulSet status viewer: every replica ready, then the partitioned rollout (a
/// RollingUpdate always carries a partition once defaulted) or the revisions agreeing.
pub fn statefulset_status(sts: &Value) -> Result<Progress> {
    let strategy = &sts["spec"]["updateStrategy"];
    if strategy["type"].as_str().unwrap_or("RollingUpdate") != "RollingUpdate" {
        bail!("rollout status is only available for RollingUpdate strategy type");
    }
    let status = &sts["status"];
    let progress = |message: String, done: bool| Ok(Progress { message, done });
    let observed = i(&status["observedGeneration"]);
    if observed == 0 || i(&sts["metadata"]["generation"]) > observed {
        return progress(
            "Waiting for statefulset spec update to be observed...".into(),
            false,
        );
    }
    let replicas = sts["spec"]["replicas"].as_i64();
    let ready = i(&status["readyReplicas"]);
    if let Some(r) = replicas
        && ready < r
    {
        return progress(
            format!("Waiting for {} pods to be ready...", r - ready),
            false,
        );
    }
    let updated = i(&status["updatedReplicas"]);
    if strategy["rollingUpdate"].is_object() {
        if let (Some(r), Some(partition)) =
            (replicas, strategy["rollingUpdate"]["partition"].as_i64())
            && updated < r - partition
        {
            return progress(
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    r - partition
                ),
                false,
            );
        }
        return progress(
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
            true,
        );
    }
    let (current, update) = (
        status["currentRevision"].as_str().unwrap_or_default(),
        status["updateRevision"].as_str().unwrap_or_default(),
    );
    if update != current {
        return progress(
            format!(
                "waiting for statefulset rolling update to complete {updated} pods at revision {update}..."
            ),
            false,
        );
    }
    progress(
        format!(
            "statefulset rolling update complete {} pods at revision {current}...",
            i(&status["currentReplicas"])
        ),
        true,
    )
}

fn viewer(res: &Res, obj: &Value, revision: i64) -> Result<Progress> {
    match (res.group.as_str(), res.kind.as_str()) {
        ("apps", "Deployment") => deployment_status(obj, revision),
        ("apps", "DaemonSet") => daemonset_status(obj),
        ("apps", "StatefulSet") => statefulset_status(obj),
        _ => bail!(
            "no status viewer has been implemented for {}.{}",
            res.kind,
            res.group
        ),
    }
}

/// Prints progress lines until done; `watch == false` prints the current state once.
pub async fn run(
    ctx: &Ctx,
    res: &Res,
    name: &str,
    revision: i64,
    watch: bool,
    timeout: Option<Duration>,
) -> Result<()> {
    if !matches!(
        res.kind.as_str(),
        "Deployment" | "DaemonSet" | "StatefulSet"
    ) || res.group != "apps"
    {
        bail!(
            "no status viewer has been implemented for {}.{}",
            res.kind,
            res.group
        );
    }
    let follow = follow(ctx, res, name, revision, watch);
    match timeout {
        Some(t) if !t.is_zero() => tokio::time::timeout(t, follow)
            .await
            .unwrap_or_else(|_| bail!("timed out waiting for the condition")),
        _ => follow.await,
    }
}

async fn follow(ctx: &Ctx, res: &Res, name: &str, revision: i64, watch: bool) -> Result<()> {
    let api = res.api(&ctx.client, Some(&ctx.namespace));
    let obj = serde_json::to_value(api.get(name).await?)?;
    let mut rv = obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let p = viewer(res, &obj, revision)?;
    println!("{}", p.message);
    if p.done || !watch {
        return Ok(());
    }
    let collection = res.collection_path(Some(&ctx.namespace));
    let wp = WatchParams::default().fields(&format!("metadata.name={name}"));
    loop {
        let req = Request::new(&collection).watch(&wp, &rv)?;
        let mut lines = ctx.client.request_stream(req).await?.lines();
        while let Some(line) = lines.try_next().await? {
            if line.trim().is_empty() {
                continue;
            }
            let event: Value = serde_json::from_str(&line).context("decoding a watch event")?;
            match event["type"].as_str().unwrap_or_default() {
                "ERROR" => {
                    // The revision is too old: read the object again and carry on.
                    let list = api
                        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
                        .await?;
                    rv = list.metadata.resource_version.unwrap_or_default();
                    break;
                }
                "DELETED" => bail!("object has been deleted"),
                "BOOKMARK" => {}
                _ => {
                    let obj = &event["object"];
                    if let Some(v) = obj["metadata"]["resourceVersion"].as_str() {
                        rv = v.to_string();
                    }
                    let p = viewer(res, obj, revision)?;
                    println!("{}", p.message);
                    if p.done {
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A Deployment as the API server returns it mid-rollout (trimmed to what matters).
    fn deployment(generation: i64, observed: i64, spec: i64, st: [i64; 3]) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "generation": generation,
                "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": spec},
            "status": {"observedGeneration": observed, "replicas": st[0],
                "updatedReplicas": st[1], "availableReplicas": st[2],
                "conditions": [{"type": "Progressing", "status": "True",
                    "reason": "ReplicaSetUpdated"}]}
        })
    }

    #[test]
    fn deployment_progress_lines_follow_kubectl() {
        let msg = |d: Value| deployment_status(&d, 0).unwrap();
        assert_eq!(
            msg(deployment(3, 2, 3, [3, 3, 3])).message,
            "Waiting for deployment spec update to be observed..."
        );
        assert_eq!(
            msg(deployment(3, 3, 3, [4, 1, 3])).message,
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."
        );
        assert_eq!(
            msg(deployment(3, 3, 3, [4, 3, 3])).message,
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
        );
        let p = msg(deployment(3, 3, 3, [3, 3, 1]));
        assert_eq!(
            p.message,
            "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available..."
        );
        assert!(!p.done);
        let p = msg(deployment(3, 4, 3, [3, 3, 3]));
        assert_eq!(p.message, "deployment \"web\" successfully rolled out");
        assert!(p.done);
    }

    #[test]
    fn deadline_and_revision_mismatch_are_errors() {
        let mut d = deployment(2, 2, 3, [3, 1, 1]);
        d["status"]["conditions"][0]["reason"] = json!("ProgressDeadlineExceeded");
        assert_eq!(
            deployment_status(&d, 0).unwrap_err().to_string(),
            "deployment \"web\" exceeded its progress deadline"
        );
        let d = deployment(2, 2, 3, [3, 3, 3]);
        assert!(deployment_status(&d, 2).unwrap().done);
        assert_eq!(
            deployment_status(&d, 5).unwrap_err().to_string(),
            "desired revision (5) is different from the running revision (2)"
        );
    }

    #[test]
    fn daemonset_progress() {
        let ds = |updated: i64, available: i64| {
            json!({"metadata": {"name": "agent", "generation": 1},
                "spec": {"updateStrategy": {"type": "RollingUpdate"}},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": updated, "numberAvailable": available}})
        };
        assert_eq!(
            daemonset_status(&ds(1, 3)).unwrap().message,
            "Waiting for daemon set \"agent\" rollout to finish: 1 out of 3 new pods have been updated..."
        );
        assert_eq!(
            daemonset_status(&ds(3, 2)).unwrap().message,
            "Waiting for daemon set \"agent\" rollout to finish: 2 of 3 updated pods are available..."
        );
        assert!(daemonset_status(&ds(3, 3)).unwrap().done);
    }

    fn sts(generation: i64, status: Value, strategy: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": 3, "updateStrategy": strategy}, "status": status})
    }

    #[test]
    fn statefulset_progress_follows_kubectl() {
        let rolling = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}});
        let line = |v: &Value| statefulset_status(v).unwrap().message;
        assert_eq!(
            line(&sts(2, json!({"observedGeneration": 1}), rolling.clone())),
            "Waiting for statefulset spec update to be observed..."
        );
        assert_eq!(
            line(&sts(
                2,
                json!({"observedGeneration": 2, "readyReplicas": 1}),
                rolling.clone()
            )),
            "Waiting for 2 pods to be ready..."
        );
        let partial = sts(
            2,
            json!({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 1}),
            rolling.clone(),
        );
        assert_eq!(
            line(&partial),
            "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated..."
        );
        let done = sts(
            2,
            json!({"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 2}),
            rolling,
        );
        let p = statefulset_status(&done).unwrap();
        assert!(p.done);
        assert_eq!(
            p.message,
            "partitioned roll out complete: 2 new pods have been updated..."
        );
        let plain = json!({"type": "RollingUpdate"});
        let moving = sts(
            1,
            json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1,
            "currentRevision": "web-a", "updateRevision": "web-b", "currentReplicas": 2}),
            plain.clone(),
        );
        assert_eq!(
            line(&moving),
            "waiting for statefulset rolling update to complete 1 pods at revision web-b..."
        );
        let finished = sts(
            1,
            json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3,
            "currentRevision": "web-b", "updateRevision": "web-b", "currentReplicas": 3}),
            plain,
        );
        assert_eq!(
            line(&finished),
            "statefulset rolling update complete 3 pods at revision web-b..."
        );
        let err = statefulset_status(&sts(1, json!({}), json!({"type": "OnDelete"}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rollout status is only available for RollingUpdate strategy type"
        );
    }
}
