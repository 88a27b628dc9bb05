//! `logs POD|job/JOB [-c C]`: `GET pods/{name}/log` through the API server (which proxies to the
//! node), streamed to stdout as it arrives; the container defaults as kubectl defaults it.

use std::process::ExitCode;

use anyhow::{Result, bail};
use futures::{AsyncReadExt, io::AllowStdIo};
use serde_json::Value;

use super::Ctx;
use super::rollout::parse_duration;

/// Flags of `logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// `POD`, `pod/POD`, or `job/JOB` (one of the Job's pods).
    pub pod: String,
    /// The container; defaults to the annotated default container, else the first.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Stream new output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines of recent output to show; -1 shows all.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Show the previous instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Prefix each line with its RFC 3339 timestamp.
    #[arg(long)]
    pub timestamps: bool,
    /// Only output newer than this duration (5s, 2m, 3h).
    #[arg(long)]
    pub since: Option<String>,
    /// Only output after this RFC 3339 time.
    #[arg(long)]
    pub since_time: Option<String>,
    /// Stop after this many bytes.
    #[arg(long)]
    pub limit_bytes: Option<i64>,
}

/// The annotation naming a pod's default container.
pub const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// Every container name as kubectl lists them: `a, b, e (ephem), i (init)`.
pub fn all_container_names(pod: &Value) -> String {
    let names = |key: &str, suffix: &str| -> Vec<String> {
        pod["spec"][key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{}{suffix}", c["name"].as_str().unwrap_or_default()))
            .collect()
    };
    let mut all = names("containers", "");
    all.extend(names("ephemeralContainers", " (ephem)"));
    all.extend(names("initContainers", " (init)"));
    all.join(", ")
}

/// The container `logs` reads: the requested one, else the annotated default, else the
/// first. Returns the name and a notice for stderr.
pub fn default_container(pod: &Value) -> Result<(String, Option<String>)> {
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has = |n: &str| {
        let in_list = |k: &str| {
            pod["spec"][k]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"] == n)
        };
        in_list("containers") || in_list("initContainers") || in_list("ephemeralContainers")
    };
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let mut notice = None;
    if let Some(d) = pod["metadata"]["annotations"][DEFAULT_CONTAINER]
        .as_str()
        .filter(|d| !d.is_empty())
    {
        if has(d) {
            return Ok((d.to_string(), None));
        }
        notice = Some(format!(
            "Default container name {d:?} not found in pod {pod_name}"
        ));
    }
    let Some(first) = containers.first() else {
        bail!("pod {pod_name} does not have any containers");
    };
    let name = first["name"].as_str().unwrap_or_default().to_string();
    let several = containers.len() > 1
        || ["initContainers", "ephemeralContainers"]
            .iter()
            .any(|k| pod["spec"][*k].as_array().is_some_and(|a| !a.is_empty()));
    if notice.is_none() && several {
        notice = Some(format!(
            "Defaulted container {name:?} out of: {}",
            all_container_names(pod)
        ));
    }
    Ok((name, notice))
}

/// The query string of the log request.
pub fn query(args: &LogsArgs, container: &str) -> Result<String> {
    let mut q = url_pairs();
    q.append_pair("container", container);
    if args.follow {
        q.append_pair("follow", "true");
    }
    if args.previous {
        q.append_pair("previous", "true");
    }
    if args.timestamps {
        q.append_pair("timestamps", "true");
    }
    if args.tail >= 0 {
        q.append_pair("tailLines", &args.tail.to_string());
    }
    if let Some(s) = &args.since {
        let d = parse_duration(s)?;
        // kubectl rounds up to whole seconds.
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        q.append_pair("sinceSeconds", &secs.to_string());
    }
    if let Some(t) = &args.since_time {
        q.append_pair("sinceTime", t);
    }
    if let Some(b) = args.limit_bytes {
        q.append_pair("limitBytes", &b.to_string());
    }
    Ok(q.finish())
}

fn url_pairs() -> form_urlencoded::Serializer<'static, String> {
    form_urlencoded::Serializer::new(String::new())
}

/// Runs `logs`.
pub async fn run(ctx: &Ctx, args: LogsArgs) -> Result<ExitCode> {
    if args.since.is_some() && args.since_time.is_some() {
        bail!("at most one of `sinceTime` or `sinceSeconds` may be specified");
    }
    let job = args
        .pod
        .strip_prefix("job/")
        .or(args.pod.strip_prefix("jobs/"))
        .or(args.pod.strip_prefix("job.batch/"));
    let picked;
    let name = match job {
        Some(job) => {
            picked = pod_for_job(ctx, job).await?;
            picked.as_str()
        }
        None => args
            .pod
            .strip_prefix("pod/")
            .or(args.pod.strip_prefix("pods/"))
            .unwrap_or(&args.pod),
    };
    let base = format!("/api/v1/namespaces/{}/pods/{name}", ctx.namespace);
    let req = http::Request::get(&base).body(Vec::new())?;
    let pod: Value = match ctx.client.request_text(req).await {
        Ok(text) => serde_json::from_str(&text)?,
        // kubectl words a missing pod its own way here.
        Err(kube::Error::Api(s)) if s.code == 404 => bail!(
            "error from server (NotFound): pods {name:?} not found in namespace {:?}",
            ctx.namespace
        ),
        Err(e) => return Err(e.into()),
    };
    let container = match &args.container {
        Some(c) => {
            let known = ["containers", "initContainers", "ephemeralContainers"]
                .iter()
                .any(|k| {
                    pod["spec"][*k]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|x| x["name"] == *c)
                });
            if !known {
                bail!("container {c} is not valid for pod {name}");
            }
            c.clone()
        }
        None => {
            let (c, notice) = default_container(&pod)?;
            if let Some(n) = notice {
                eprintln!("{n}");
            }
            c
        }
    };
    let url = format!("{base}/log?{}", query(&args, &container)?);
    let req = http::Request::get(url).body(Vec::new())?;
    let mut body = ctx.client.request_stream(req).await?;
    // Copy chunk by chunk so followed output appears as soon as the node writes it.
    let mut out = AllowStdIo::new(std::io::stdout());
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = body.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        use std::io::Write;
        out.get_mut().write_all(&buf[..n])?;
        out.get_mut().flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The pod kubectl shows for `logs job/NAME`: the first of the pods the Job's selector picks
/// in kubectl's `ByLogging` order (see [`logging_rank`]).
async fn pod_for_job(ctx: &Ctx, job: &str) -> Result<String> {
    let path = format!("/apis/batch/v1/namespaces/{}/jobs/{job}", ctx.namespace);
    let req = http::Request::get(&path).body(Vec::new())?;
    let obj: Value = match ctx.client.request_text(req).await {
        Ok(text) => serde_json::from_str(&text)?,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            bail!("error from server (NotFound): jobs.batch {job:?} not found")
        }
        Err(e) => return Err(e.into()),
    };
    let selector: Vec<String> = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    if selector.is_empty() {
        bail!("job {job} has no selector to find its pods");
    }
    let query = url_pairs()
        .append_pair("labelSelector", &selector.join(","))
        .finish();
    let url = format!("/api/v1/namespaces/{}/pods?{query}", ctx.namespace);
    let req = http::Request::get(url).body(Vec::new())?;
    let list: Value = serde_json::from_str(&ctx.client.request_text(req).await?)?;
    let mut pods: Vec<&Value> = list["items"].as_array().into_iter().flatten().collect();
    pods.sort_by_key(|p| logging_rank(p));
    let Some(first) = pods.first() else {
        bail!("no pods found for job/{job}");
    };
    let name = first["metadata"]["name"].as_str().unwrap_or("").to_string();
    if pods.len() > 1 {
        eprintln!("Found {} pods, using pod/{name}", pods.len());
    }
    Ok(name)
}

/// kubectl's `ByLogging` order as a sort key: bound before unbound; Running (and finished)
/// before Unknown before Pending; ready before not, ready longer first; more container
/// restarts first; the oldest first.
fn logging_rank(p: &Value) -> (bool, u8, bool, String, std::cmp::Reverse<i64>, String) {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let phase = match p["status"]["phase"].as_str() {
        Some("Pending") => 2,
        Some("Unknown") => 1,
        _ => 0,
    };
    let ready = p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready" && c["status"] == "True");
    let restarts = p["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["restartCount"].as_i64())
        .max()
        .unwrap_or(0);
    (
        p["spec"]["nodeName"].as_str().unwrap_or("").is_empty(),
        phase,
        ready.is_none(),
        ready
            .map(|c| text(&c["lastTransitionTime"]))
            .unwrap_or_default(),
        std::cmp::Reverse(restarts),
        text(&p["metadata"]["creationTimestamp"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        logs: LogsArgs,
    }

    fn pod(annotation: Option<&str>) -> Value {
        let mut p = json!({"metadata": {"name": "p", "annotations": {}},
            "spec": {"containers": [{"name": "app"}, {"name": "side"}],
                "initContainers": [{"name": "setup"}]}});
        if let Some(a) = annotation {
            p["metadata"]["annotations"][DEFAULT_CONTAINER] = json!(a);
        }
        p
    }

    #[test]
    fn container_defaults_like_kubectl() {
        assert_eq!(
            default_container(&pod(None)).unwrap(),
            (
                "app".into(),
                Some("Defaulted container \"app\" out of: app, side, setup (init)".into())
            )
        );
        assert_eq!(
            default_container(&pod(Some("side"))).unwrap(),
            ("side".into(), None)
        );
        assert_eq!(
            default_container(&pod(Some("gone"))).unwrap(),
            (
                "app".into(),
                Some("Default container name \"gone\" not found in pod p".into())
            )
        );
    }

    #[test]
    fn a_jobs_pod_is_picked_in_kubectls_logging_order() {
        let pod = |name: &str, node: &str, phase: &str, created: &str, restarts: i64| {
            json!({"metadata": {"name": name, "creationTimestamp": created},
                "spec": {"nodeName": node},
                "status": {"phase": phase, "containerStatuses": [{"restartCount": restarts}]}})
        };
        let pick = |ps: Vec<Value>| {
            let mut ps: Vec<&Value> = ps.iter().collect();
            ps.sort_by_key(|p| logging_rank(p));
            ps[0]["metadata"]["name"].as_str().unwrap().to_string()
        };
        // Finished pods rank with running ones: the oldest wins, failed or not.
        let t = |s: u8| format!("2026-01-01T00:00:{s:02}Z");
        assert_eq!(
            pick(vec![
                pod("ok", "n", "Succeeded", &t(5), 0),
                pod("failed", "n", "Failed", &t(1), 0),
                pod("pending", "n", "Pending", &t(0), 0),
                pod("unbound", "", "Pending", &t(0), 0),
            ]),
            "failed"
        );
        // More restarts first, then a ready pod before one that is not.
        assert_eq!(
            pick(vec![
                pod("a", "n", "Running", &t(1), 0),
                pod("b", "n", "Running", &t(2), 3)
            ]),
            "b"
        );
        let mut ready = pod("r", "n", "Running", &t(9), 0);
        ready["status"]["conditions"] = json!([{"type": "Ready", "status": "True",
            "lastTransitionTime": t(9)}]);
        assert_eq!(pick(vec![pod("b", "n", "Running", &t(2), 3), ready]), "r");
    }

    #[test]
    fn flags_become_query_parameters() {
        let cli = Cli::parse_from([
            "x",
            "p",
            "-f",
            "--tail",
            "5",
            "--previous",
            "--timestamps",
            "--since",
            "90s",
        ]);
        assert_eq!(
            query(&cli.logs, "app").unwrap(),
            "container=app&follow=true&previous=true&timestamps=true&tailLines=5&sinceSeconds=90"
        );
        let cli = Cli::parse_from(["x", "p", "--since", "1.5s"]);
        assert_eq!(query(&cli.logs, "c").unwrap(), "container=c&sinceSeconds=2");
    }
}
