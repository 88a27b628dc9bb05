//! `jobs`: a Job of N completions at parallelism P on hollow nodes whose containers exit 0
//! as soon as they start, against N bare pods (restartPolicy Never) created directly in the
//! same run: the time until all have succeeded, and the CPU time of the controller-manager,
//! which runs in this process on a thread of its own (the server runs without controllers)
//! so its CPU is read from that thread alone.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use skiff_kubelet::{FakeImages, FakeRuntime, Kubelet, KubeletConfig};
use skiff_runtime::pod::PodRuntime;

use crate::podwatch::PodWatch;
use crate::procs::{cpu_seconds, start_server};

/// What the benchmark runs.
pub struct JobsOptions {
    /// Completions of the Job, and bare pods in the reference.
    pub completions: usize,
    /// The Job's parallelism.
    pub parallelism: usize,
    /// Hollow nodes.
    pub nodes: usize,
}

/// One series: wall time and CPU seconds of the controller-manager and the server.
struct Series {
    seconds: f64,
    controller_cpu: f64,
    server_cpu: f64,
}

/// CPU seconds of one thread of this process.
fn thread_cpu(tid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime and stime are fields 14 and 15, the 12th and 13th after the comm field.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// Runs the controller-manager on a thread with a single-threaded runtime; returns its tid.
fn controller_thread(
    cfg: kube::Config,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let tid = std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let _ = tx.send(tid);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let client = kube::Client::try_from(cfg).expect("client");
            let options = skiff_controller::ControllerOptions {
                leader_elect: false,
                ..Default::default()
            };
            if let Err(e) = skiff_controller::run(client, options, async move {
                let _ = stop.await;
            })
            .await
            {
                eprintln!("controller-manager: {e:#}");
            }
        });
    });
    rx.recv().context("controller thread")
}

/// Starts hollow kubelets whose containers a sweeper ends with exit code 0.
fn hollow_nodes(client: &kube::Client, count: usize, root: &std::path::Path) {
    let mut runtimes = Vec::new();
    for i in 0..count {
        let name = format!("bench-job-node-{i}");
        let rt = Arc::new(FakeRuntime::default());
        runtimes.push(rt.clone());
        let mut cfg = KubeletConfig::new(
            name.clone(),
            client.clone(),
            rt,
            Arc::new(FakeImages::default()),
            root.join(&name),
        );
        cfg.require_pod_cidr = false;
        cfg.node_ip = Some(Ipv4Addr::new(10, 254, 0, i as u8 + 1));
        cfg.max_pods = Some(110);
        tokio::spawn(async move { Kubelet::new(cfg).run(std::future::pending()).await });
    }
    tokio::spawn(async move {
        loop {
            for rt in &runtimes {
                for c in rt.list_containers().await.unwrap_or_default() {
                    rt.exit_container(&c.id, 0, "Completed");
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

fn succeeded(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
}

fn pod_spec() -> serde_json::Value {
    json!({"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"]}]})
}

async fn namespace(client: &kube::Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// Runs both series and renders the section.
pub async fn run(opts: &JobsOptions) -> Result<String> {
    let tmp = tempfile::tempdir()?;
    let extra = ["--disable-agent", "--disable-controllers"].map(String::from);
    let (server, client) = start_server(tmp.path(), &extra).await?;
    let cfg = skiff_e2e::kube_config(&server.kubeconfig).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let tid = controller_thread(cfg, stopped)?;
    hollow_nodes(&client, opts.nodes, &tmp.path().join("hollow"));
    let nodes: Api<Node> = Api::all(client.clone());
    let t = Instant::now();
    while nodes.list(&ListParams::default()).await?.items.len() < opts.nodes {
        if t.elapsed() > Duration::from_secs(60) {
            bail!("hollow nodes did not register");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = opts.completions;
    let measure = |controller0: f64, server0: f64, t: Instant| Series {
        seconds: t.elapsed().as_secs_f64(),
        controller_cpu: thread_cpu(&tid) - controller0,
        server_cpu: cpu_seconds(server.proc.pid()) - server0,
    };

    // Bare pods, created 50 at a time.
    namespace(&client, "bare").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "bare");
    let watch = PodWatch::spawn(pods.clone(), succeeded);
    let (c0, s0, t) = (
        thread_cpu(&tid),
        cpu_seconds(server.proc.pid()),
        Instant::now(),
    );
    let bodies: Vec<Pod> = (0..n)
        .map(|i| {
            serde_json::from_value(
                json!({"metadata": {"name": format!("bare-{i}")}, "spec": pod_spec()}),
            )
        })
        .collect::<Result<_, _>>()?;
    let pp = PostParams::default();
    let results: Vec<_> = futures::stream::iter(bodies.iter().map(|p| pods.create(&pp, p)))
        .buffer_unordered(50)
        .collect()
        .await;
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        bail!("creating bare pods: {e}");
    }
    watch
        .wait_count(n, Duration::from_secs(900), "bare pods succeeded")
        .await?;
    let bare = measure(c0, s0, t);
    eprintln!("  bare pods: {:.1} s", bare.seconds);

    // The Job.
    namespace(&client, "job").await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "job");
    let job: Job = serde_json::from_value(json!({"metadata": {"name": "many"},
        "spec": {"completions": n, "parallelism": opts.parallelism,
            "template": {"spec": pod_spec()}}}))?;
    let (c0, s0, t) = (
        thread_cpu(&tid),
        cpu_seconds(server.proc.pid()),
        Instant::now(),
    );
    jobs.create(&pp, &job).await?;
    let status = loop {
        let st = jobs.get("many").await?.status.unwrap_or_default();
        let done = st
            .conditions
            .iter()
            .flatten()
            .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True");
        if done {
            break st;
        }
        if t.elapsed() > Duration::from_secs(1800) {
            bail!("the Job did not finish: {st:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let job_series = measure(c0, s0, t);
    eprintln!("  job: {:.1} s", job_series.seconds);
    let _ = stop.send(());
    if status.succeeded != Some(n as i32) || status.failed.unwrap_or(0) != 0 {
        bail!("the Job finished with {status:?}");
    }
    Ok(render(opts, &bare, &job_series))
}

fn render(opts: &JobsOptions, bare: &Series, job: &Series) -> String {
    let row = |what: &str, s: &Series| {
        format!(
            "| {what} | {:.1} s | {:.0} pods/s | {:.2} s | {:.2} s |\n",
            s.seconds,
            opts.completions as f64 / s.seconds,
            s.controller_cpu,
            s.server_cpu
        )
    };
    let mut out = format!(
        "{} completions, parallelism {}, on {} hollow nodes whose containers exit 0 as soon \
         as they start; the same number of bare pods (restartPolicy Never) created directly, \
         50 requests in flight, in the same run. Time from the first create to the last pod \
         Succeeded (for the Job: to its Complete condition, with status.succeeded checked to \
         be exactly {}). Controller CPU is the controller-manager's thread alone (every \
         controller runs there: the Job controller's work and, for both series, the garbage \
         collector's and the others' watches); server CPU is the API server and scheduler \
         process.\n\n",
        opts.completions, opts.parallelism, opts.nodes, opts.completions
    );
    out.push_str(
        "| series | time | throughput | controller CPU | server CPU |\n|---|---|---|---|---|\n",
    );
    out.push_str(&row(&format!("{} bare pods", opts.completions), bare));
    out.push_str(&row(
        &format!(
            "Job, {} completions, parallelism {}",
            opts.completions, opts.parallelism
        ),
        job,
    ));
    out
}
