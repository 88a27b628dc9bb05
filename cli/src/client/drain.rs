//! `drain NODE`: cordon, then evict (or, where the server has no eviction subresource,
//! delete) every pod on the node that kubectl's filters allow, and wait until they are gone.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use kube::api::ListParams;
use serde_json::{Value, json};

use super::cordon::{select_nodes, set_unschedulable};
use super::rollout::parse_duration;
use super::{Ctx, errors};

/// Flags of `drain`.
#[derive(clap::Args, Debug)]
pub struct DrainArgs {
    /// Node names.
    pub nodes: Vec<String>,
    /// Select nodes by label.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Skip DaemonSet-managed pods.
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Delete pods using emptyDir volumes (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Also delete pods no controller manages.
    #[arg(long)]
    pub force: bool,
    /// Seconds each pod gets to terminate; negative uses the pod's own.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// How long to wait before giving up (e.g. 5m); 0 waits forever.
    #[arg(long, default_value = "0s")]
    pub timeout: String,
}

/// What the filters decided for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Evict or delete it.
    Delete,
    /// Evict or delete it, with a warning.
    DeleteWarn(&'static str),
    /// Leave it, with a warning (DaemonSet pods under --ignore-daemonsets).
    SkipWarn(&'static str),
    /// Leave it silently (mirror pods).
    Skip,
    /// Refuse to drain.
    Error(String),
}

/// Flags the filters read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filters {
    /// `--force`.
    pub force: bool,
    /// `--ignore-daemonsets`.
    pub ignore_daemonsets: bool,
    /// `--delete-emptydir-data`.
    pub delete_emptydir_data: bool,
}

fn finished(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

fn controller(pod: &Value) -> Option<&Value> {
    pod["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)
}

/// kubectl's filter chain for one pod: DaemonSet, mirror, local storage, unmanaged.
/// `daemonset_exists` answers whether the pod's DaemonSet exists (`Err` carries the
/// lookup error's message).
pub fn classify(
    pod: &Value,
    f: Filters,
    daemonset_exists: impl Fn(&str) -> Result<(), (bool, String)>,
) -> Verdict {
    // DaemonSet pods.
    if let Some(c) = controller(pod)
        && c["kind"] == "DaemonSet"
        && !finished(pod)
    {
        match daemonset_exists(c["name"].as_str().unwrap_or_default()) {
            Err((true, msg)) if f.force => return Verdict::DeleteWarn(leak(msg)),
            Err((_, msg)) => return Verdict::Error(msg),
            Ok(()) if !f.ignore_daemonsets => {
                return Verdict::Error(
                    "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)".into(),
                );
            }
            Ok(()) => return Verdict::SkipWarn("ignoring DaemonSet-managed Pods"),
        }
    }
    if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string() {
        return Verdict::Skip;
    }
    let local_storage = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| v.get("emptyDir").is_some());
    if local_storage && !finished(pod) && !f.delete_emptydir_data {
        return Verdict::Error(
            "Pods with local storage (use --delete-emptydir-data to override)".into(),
        );
    }
    if finished(pod) || controller(pod).is_some() {
        return Verdict::Delete;
    }
    if f.force {
        return Verdict::DeleteWarn("deleting Pods that declare no controller");
    }
    Verdict::Error("cannot delete Pods that declare no controller (use --force to override)".into())
}

/// Warnings are few and live for the whole command; keeping them `'static` keeps the
/// verdict type simple.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn pod_ref(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or_default(),
        pod["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Groups pods by message in first-seen order: `msg: ns/a, ns/b`.
pub fn grouped(items: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (msg, pod) in items {
        match out.iter_mut().find(|(m, _)| m == msg) {
            Some((_, pods)) => pods.push(pod.clone()),
            None => out.push((msg.clone(), vec![pod.clone()])),
        }
    }
    out.into_iter().map(|(m, p)| (m, p.join(", "))).collect()
}

/// The pods to remove from a node, or the refusals.
async fn pods_for_deletion(
    ctx: &Ctx,
    node: &str,
    f: Filters,
) -> Result<(Vec<Value>, Vec<String>, Vec<String>)> {
    let pods = node_pods(ctx, node).await?;
    let mut delete = Vec::new();
    let mut warnings = Vec::new();
    let mut errs = Vec::new();
    for pod in pods {
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut lookups = Vec::new();
        if let Some(c) = controller(&pod).filter(|c| c["kind"] == "DaemonSet") {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            let url = format!("/apis/apps/v1/namespaces/{ns}/daemonsets/{name}");
            let req = http::Request::get(url).body(Vec::new())?;
            lookups.push(match ctx.client.request_text(req).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) => Err((s.code == 404, s.message.clone())),
                Err(e) => Err((false, e.to_string())),
            });
        }
        let verdict = classify(&pod, f, |_| lookups.first().cloned().unwrap_or(Ok(())));
        match verdict {
            Verdict::Delete => delete.push(pod),
            Verdict::DeleteWarn(w) => {
                warnings.push((w.to_string(), pod_ref(&pod)));
                delete.push(pod);
            }
            Verdict::SkipWarn(w) => warnings.push((w.to_string(), pod_ref(&pod))),
            Verdict::Skip => {}
            Verdict::Error(e) => errs.push((e, pod_ref(&pod))),
        }
    }
    let warnings = grouped(&warnings)
        .into_iter()
        .map(|(m, p)| format!("{m}: {p}"))
        .collect();
    let errs = grouped(&errs)
        .into_iter()
        .map(|(m, p)| format!("cannot delete {m}: {p}"))
        .collect();
    Ok((delete, warnings, errs))
}

/// The pods bound to a node, across namespaces.
async fn node_pods(ctx: &Ctx, node: &str) -> Result<Vec<Value>> {
    let res = super::resource::resolve_local("pods").expect("pods are built in");
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let list = res.api(&ctx.client, None).list(&lp).await?;
    Ok(list
        .items
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?)
}

/// Whether discovery lists `pods/eviction`, as kubectl checks before evicting.
async fn eviction_supported(ctx: &Ctx) -> bool {
    ctx.client
        .list_core_api_resources("v1")
        .await
        .is_ok_and(|l| l.resources.iter().any(|r| r.name == "pods/eviction"))
}

/// The body kubectl POSTs to `pods/{name}/eviction`.
pub fn eviction_body(pod: &Value, grace: i64) -> Value {
    let mut body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {
        "name": pod["metadata"]["name"], "namespace": pod["metadata"]["namespace"]}});
    if grace >= 0 {
        body["deleteOptions"] = json!({"gracePeriodSeconds": grace});
    }
    body
}

fn pod_url(pod: &Value) -> String {
    format!(
        "/api/v1/namespaces/{}/pods/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or_default(),
        pod["metadata"]["name"].as_str().unwrap_or_default()
    )
}

async fn delete_pod(ctx: &Ctx, pod: &Value, grace: i64) -> Result<(), kube::Error> {
    let body = if grace >= 0 {
        json!({"gracePeriodSeconds": grace})
    } else {
        json!({})
    };
    let req = http::Request::delete(pod_url(pod))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .map_err(kube::Error::HttpError)?;
    ctx.client.request_text(req).await.map(|_| ())
}

async fn evict_pod(ctx: &Ctx, pod: &Value, grace: i64) -> Result<(), kube::Error> {
    let req = http::Request::post(format!("{}/eviction", pod_url(pod)))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&eviction_body(pod, grace)).unwrap_or_default())
        .map_err(kube::Error::HttpError)?;
    ctx.client.request_text(req).await.map(|_| ())
}

/// Evicts or deletes `pods` and waits for each to be gone (or replaced by a new UID).
async fn remove_pods(
    ctx: &Ctx,
    pods: Vec<Value>,
    args: &DrainArgs,
    deadline: Option<Instant>,
) -> Result<()> {
    let mut evict = eviction_supported(ctx).await;
    for pod in &pods {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        if evict {
            eprintln!("evicting pod {}", pod_ref(pod));
            loop {
                match evict_pod(ctx, pod, args.grace_period).await {
                    Ok(()) => break,
                    // A 404 for a pod that still exists means no eviction subresource
                    // after all: delete, as kubectl does for old servers.
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        let req = http::Request::get(pod_url(pod)).body(Vec::new())?;
                        evict = ctx.client.request_text(req).await.is_err();
                        break;
                    }
                    Err(kube::Error::Api(s)) if s.code == 429 => {
                        eprintln!(
                            "error when evicting pods/{name:?} -n {:?} (will retry after 5s): {}",
                            pod["metadata"]["namespace"].as_str().unwrap_or_default(),
                            errors::format_status(&s)
                        );
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Err(e) => bail!(
                        "error when evicting pods/{name:?} -n {:?}: {e}",
                        pod["metadata"]["namespace"].as_str().unwrap_or_default()
                    ),
                }
            }
        }
        if !evict {
            match delete_pod(ctx, pod, args.grace_period).await {
                Ok(()) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            println!("pod/{name} deletion started");
        }
    }
    let verb = if evict { "evicted" } else { "deleted" };
    let mut pending = pods;
    loop {
        let mut still = Vec::new();
        for pod in pending {
            let req = http::Request::get(pod_url(&pod)).body(Vec::new())?;
            match ctx.client.request_text(req).await {
                Ok(text) => {
                    let now: Value = serde_json::from_str(&text)?;
                    if now["metadata"]["uid"] == pod["metadata"]["uid"] {
                        still.push(pod);
                        continue;
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            println!(
                "pod/{} {verb}",
                pod["metadata"]["name"].as_str().unwrap_or_default()
            );
        }
        pending = still;
        if pending.is_empty() {
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            bail!("context deadline exceeded");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Why one node could not be drained: the filters' refusals, or an error while removing.
#[derive(Debug)]
enum Failure {
    Refused(Vec<String>),
    Failed(anyhow::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(lines) if lines.len() == 1 => f.write_str(&lines[0]),
            Failure::Refused(lines) => write!(f, "[{}]", lines.join(", ")),
            Failure::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Failed(e)
    }
}

async fn drain_node(
    ctx: &Ctx,
    node: &str,
    args: &DrainArgs,
    deadline: Option<Instant>,
) -> Result<(), Failure> {
    let f = Filters {
        force: args.force,
        ignore_daemonsets: args.ignore_daemonsets,
        delete_emptydir_data: args.delete_emptydir_data,
    };
    let (pods, warnings, errs) = pods_for_deletion(ctx, node, f).await?;
    if !errs.is_empty() {
        return Err(Failure::Refused(errs));
    }
    if !warnings.is_empty() {
        eprintln!("Warning: {}", warnings.join("; "));
    }
    if let Err(e) = remove_pods(ctx, pods, args, deadline).await {
        let (pending, _, _) = pods_for_deletion(ctx, node, f).await.unwrap_or_default();
        if !pending.is_empty() {
            eprintln!("There are pending pods in node {node:?} when an error occurred: {e}");
            for p in &pending {
                eprintln!("pod/{}", p["metadata"]["name"].as_str().unwrap_or_default());
            }
        }
        return Err(e.into());
    }
    Ok(())
}

/// Runs `drain`.
pub async fn run(ctx: &Ctx, args: DrainArgs) -> Result<ExitCode> {
    let timeout = parse_duration(&args.timeout)?;
    let deadline = (!timeout.is_zero()).then(|| Instant::now() + timeout);
    let nodes = select_nodes(ctx, &args.nodes, args.selector.as_deref()).await?;
    let mut remaining = Vec::new();
    let mut fatal: Vec<Failure> = Vec::new();
    for node in &nodes {
        set_unschedulable(ctx, node, true).await?;
    }
    for node in &nodes {
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        match drain_node(ctx, name, &args, deadline).await {
            Ok(()) => println!("node/{name} drained"),
            Err(e) => {
                eprintln!(
                    "error: unable to drain node {name:?} due to error: {e}, continuing command..."
                );
                remaining.push(name.to_string());
                fatal.push(e);
            }
        }
    }
    if remaining.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("There are pending nodes to be drained:");
    for n in &remaining {
        eprintln!(" {n}");
    }
    // kubectl prints every refusal on a line of its own, anything else after `error: `.
    let lines: Vec<String> = fatal
        .iter()
        .flat_map(|f| match f {
            Failure::Refused(lines) => lines.clone(),
            Failure::Failed(e) => vec![e.to_string()],
        })
        .collect();
    if lines.len() > 1 || matches!(fatal.as_slice(), [Failure::Refused(_)]) {
        for l in &lines {
            eprintln!("{l}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Err(anyhow!("{}", lines.join("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(owner: Option<&str>, empty_dir: bool) -> Value {
        let mut p = json!({"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"volumes": []}, "status": {"phase": "Running"}});
        if let Some(kind) = owner {
            p["metadata"]["ownerReferences"] =
                json!([{"kind": kind, "name": "o", "controller": true}]);
        }
        if empty_dir {
            p["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
        }
        p
    }

    #[test]
    fn filters_follow_kubectl() {
        let none = Filters::default();
        let exists = |_: &str| Ok(());
        assert_eq!(
            classify(&pod(Some("ReplicaSet"), false), none, exists),
            Verdict::Delete
        );
        assert_eq!(
            classify(&pod(None, false), none, exists),
            Verdict::Error(
                "cannot delete Pods that declare no controller (use --force to override)".into()
            )
        );
        let force = Filters {
            force: true,
            ..none
        };
        assert_eq!(
            classify(&pod(None, false), force, exists),
            Verdict::DeleteWarn("deleting Pods that declare no controller")
        );
        assert_eq!(
            classify(&pod(Some("ReplicaSet"), true), none, exists),
            Verdict::Error(
                "Pods with local storage (use --delete-emptydir-data to override)".into()
            )
        );
        assert_eq!(
            classify(&pod(Some("DaemonSet"), false), none, exists),
            Verdict::Error("DaemonSet-managed Pods (use --ignore-daemonsets to ignore)".into())
        );
        let ignore = Filters {
            ignore_daemonsets: true,
            ..none
        };
        assert_eq!(
            classify(&pod(Some("DaemonSet"), false), ignore, exists),
            Verdict::SkipWarn("ignoring DaemonSet-managed Pods")
        );
        let gone = |_: &str| Err((true, "daemonsets.apps \"o\" not found".to_string()));
        assert_eq!(
            classify(&pod(Some("DaemonSet"), false), ignore, gone),
            Verdict::Error("daemonsets.apps \"o\" not found".into())
        );
        let mut done = pod(None, true);
        done["status"]["phase"] = json!("Succeeded");
        assert_eq!(classify(&done, none, exists), Verdict::Delete);
    }

    #[test]
    fn messages_group_pods_in_first_seen_order() {
        let items = vec![
            ("b".to_string(), "ns/1".to_string()),
            ("a".to_string(), "ns/2".to_string()),
            ("b".to_string(), "ns/3".to_string()),
        ];
        assert_eq!(
            grouped(&items),
            vec![
                ("b".into(), "ns/1, ns/3".into()),
                ("a".into(), "ns/2".into())
            ]
        );
        let body = eviction_body(&pod(None, false), 5);
        assert_eq!(body["deleteOptions"]["gracePeriodSeconds"], 5);
        assert!(
            eviction_body(&pod(None, false), -1)
                .get("deleteOptions")
                .is_none()
        );
    }
}
