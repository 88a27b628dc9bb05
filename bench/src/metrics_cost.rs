//! The metrics benchmark (issue 11): what resource metrics cost.
//!
//! The kubelet side: a real `skiff agent` with 100 running pods; its CPU time and memory
//! for one collection (the Summary API that the API server reads each resolution, and the
//! Prometheus resource metrics), measured over many collections asked for directly with a
//! client certificate from the cluster CA, beside the agent's idle CPU over the same span.
//!
//! The API server side: 1,000 hollow nodes and 10,000 pods, first with nodes that serve
//! nothing (the collection loop finds nothing to read: every connection is refused on
//! loopback), then the same nodes serving their Summary API, so the API server keeps
//! metrics for every node and pod; the server's memory and CPU in both phases, the
//! difference being the metrics pipeline. The anchor is metrics-server's published
//! footprint, about 1 m CPU and 2 MB per node.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::Value;
use skiff_e2e::{Proc, free_port};
use skiff_runtime::testkit::busybox_tarball;

use crate::control_plane::{create_pods, namespace, ready_nodes};
use crate::node::{Agent, agent_host, pod};
use crate::podwatch::{PodWatch, is_running};
use crate::procs::{cpu_seconds, load_average, rss_mib, start_server, vm_rss_kib};

/// What to measure.
pub struct MetricsCostOptions {
    /// Pods on the real node.
    pub pods: usize,
    /// Collections asked of the real node's kubelet.
    pub collections: usize,
    /// Hollow nodes.
    pub nodes: usize,
    /// Pods on the hollow nodes.
    pub hollow_pods: usize,
    /// Seconds of each CPU window.
    pub window_s: u64,
}

/// metrics-server's default resolution, the period the API server collects at.
const RESOLUTION_S: f64 = 15.0;

struct KubeletFigures {
    pods: usize,
    summary_pods: usize,
    summary_bytes: usize,
    idle_cpu_m: f64,
    summary_cpu_ms: f64,
    summary_wall_ms: f64,
    resource_cpu_ms: f64,
    resource_wall_ms: f64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    collections: usize,
}

struct ApiFigures {
    nodes: usize,
    pods: usize,
    node_metrics: usize,
    pod_metrics: usize,
    rss_without_mib: f64,
    rss_with_mib: f64,
    cpu_without_m: f64,
    cpu_with_m: f64,
    hollow_cpu_with_m: f64,
    filled_after_s: f64,
    load: (f64, f64),
}

/// Runs the benchmark and renders the markdown body of its section.
pub async fn run(opts: &MetricsCostOptions) -> Result<String> {
    if std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() != "0")
        .unwrap_or(true)
    {
        bail!("the metrics benchmark needs root (it runs a real node)");
    }
    let kubelet = kubelet_side(opts).await?;
    let api = api_side(opts).await?;
    Ok(render(opts, &kubelet, &api))
}

/// `n` GETs of `url` over one kept-alive connection (one curl process); the body of the
/// last one.
fn curl_many(
    cert: &(std::path::PathBuf, std::path::PathBuf),
    url: &str,
    n: usize,
) -> Result<Vec<u8>> {
    let out_dir = tempfile::tempdir()?;
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sSf", "-k", "--max-time", "600", "--cert"])
        .arg(&cert.0)
        .arg("--key")
        .arg(&cert.1);
    for i in 0..n {
        cmd.arg(url)
            .arg("-o")
            .arg(out_dir.path().join(format!("{i}")));
    }
    let out = cmd.output().context("run curl")?;
    if !out.status.success() {
        bail!("curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(std::fs::read(out_dir.path().join(format!("{}", n - 1)))?)
}

async fn kubelet_side(opts: &MetricsCostOptions) -> Result<KubeletFigures> {
    let tmp = tempfile::tempdir()?;
    let run = tempfile::tempdir_in("/dev/shm")?;
    let tar = busybox_tarball(tmp.path());
    let (mut server, client) = start_server(
        tmp.path(),
        &[
            "--disable-agent".into(),
            "--cluster-cidr".into(),
            "10.199.0.0/16".into(),
        ],
    )
    .await?;
    let host = agent_host(
        tmp.path().join("agent-root"),
        run.path().join("agent-state"),
    );
    host.import_rootfs(&tar, "busybox:1.36")?;
    let mut agent = Agent::spawn(&server, host, tmp.path(), opts.pods + 10)?;
    let tls = server.data_dir.join("tls");
    let result = measure_kubelet(&client, &mut agent, &tls, tmp.path(), opts).await;
    agent
        .tear_down(
            &client,
            &mut server,
            Duration::from_secs(180),
            result.is_err(),
        )
        .await;
    result
}

async fn measure_kubelet(
    client: &kube::Client,
    agent: &mut Agent,
    tls: &Path,
    tmp: &Path,
    opts: &MetricsCostOptions,
) -> Result<KubeletFigures> {
    let node = agent.host.name.clone();
    agent.wait_ready(client).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let watch = PodWatch::spawn(pods.clone(), is_running);
    eprintln!("kubelet: starting {} pods ...", opts.pods);
    let pp = PostParams::default();
    futures::stream::iter(0..opts.pods)
        .map(|i| {
            let (pods, pp, node) = (pods.clone(), pp.clone(), node.clone());
            async move {
                pods.create(&pp, &pod(&format!("mc-{i:03}"), &node)?)
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<()>>()?;
    watch
        .wait_count(opts.pods, Duration::from_secs(600), "Running")
        .await?;
    drop(watch);
    // Let the pod workers settle (first probes, status writes).
    tokio::time::sleep(Duration::from_secs(20)).await;
    let pid = agent.proc.pid();

    eprintln!("kubelet: idle for {} s ...", opts.window_s);
    let c0 = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(opts.window_s)).await;
    let idle_cpu_m = (cpu_seconds(pid) - c0) / opts.window_s as f64 * 1000.0;

    let cert = skiff_e2e::kubelet_client_cert(tls, tmp, "bench-scraper")?;
    let base = format!("https://127.0.0.1:{}", agent.host.kubelet_port);
    let rss_before_kib = vm_rss_kib(pid).context("agent VmRSS")?;
    let timed = |path: &str| -> Result<(f64, f64, Vec<u8>)> {
        let (c0, t0) = (cpu_seconds(pid), Instant::now());
        let body = curl_many(&cert, &format!("{base}{path}"), opts.collections)?;
        let n = opts.collections as f64;
        Ok((
            (cpu_seconds(pid) - c0) / n * 1000.0,
            t0.elapsed().as_secs_f64() / n * 1000.0,
            body,
        ))
    };
    eprintln!("kubelet: {} Summary API collections ...", opts.collections);
    let (summary_cpu_ms, summary_wall_ms, body) = timed("/stats/summary")?;
    let summary: Value = serde_json::from_slice(&body).context("summary JSON")?;
    let summary_pods = summary["pods"].as_array().map_or(0, Vec::len);
    if summary_pods < opts.pods {
        bail!("the summary lists {summary_pods} pods, {} run", opts.pods);
    }
    eprintln!(
        "kubelet: {} resource-metrics collections ...",
        opts.collections
    );
    let (resource_cpu_ms, resource_wall_ms, _) = timed("/metrics/resource")?;
    let rss_after_kib = vm_rss_kib(pid).context("agent VmRSS")?;
    Ok(KubeletFigures {
        pods: opts.pods,
        summary_pods,
        summary_bytes: body.len(),
        idle_cpu_m,
        summary_cpu_ms,
        summary_wall_ms,
        resource_cpu_ms,
        resource_wall_ms,
        rss_before_kib,
        rss_after_kib,
        collections: opts.collections,
    })
}

fn hollow_args(server: &crate::procs::Server, root: &Path, count: usize) -> Vec<String> {
    [
        "hollow-nodes",
        "--count",
        &count.to_string(),
        "--kubeconfig",
        &server.kubeconfig.display().to_string(),
        "--root-dir",
        &root.display().to_string(),
        "--prefix",
        "bench-mc-",
        "--log-level",
        "warn",
    ]
    .map(String::from)
    .into()
}

/// Items in a `metrics.k8s.io` list.
async fn metrics_count(client: &kube::Client, path: &str) -> Result<usize> {
    let req = http::Request::get(path).body(Vec::new())?;
    let v: Value = client.request(req).await?;
    Ok(v["items"].as_array().map_or(0, Vec::len))
}

async fn api_side(opts: &MetricsCostOptions) -> Result<ApiFigures> {
    let tmp = tempfile::tempdir()?;
    let (mut server, client) = start_server(
        tmp.path(),
        &[
            "--disable-agent".into(),
            "--cluster-cidr".into(),
            "10.128.0.0/9".into(),
        ],
    )
    .await?;
    let root = tmp.path().join("hollow");
    std::fs::create_dir_all(&root)?;
    let mut hollow = Proc::spawn_skiff(
        "skiff hollow-nodes",
        &hollow_args(&server, &root, opts.nodes),
        &tmp.path().join("hollow.log"),
    )?
    .term_on_drop(Duration::from_secs(10));
    let result = measure_api(&client, &mut server, &mut hollow, &root, tmp.path(), opts).await;
    hollow.stop(Duration::from_secs(10));
    server.proc.stop(Duration::from_secs(15));
    if result.is_err() {
        eprintln!("--- hollow-nodes log ---\n{}", hollow.log_tail(4000));
        eprintln!("--- server log ---\n{}", server.proc.log_tail(4000));
    }
    result
}

/// Stops the hollow nodes and starts the same ones again, serving their node API or not.
fn restart_hollow(
    hollow: &mut Proc,
    server: &crate::procs::Server,
    root: &Path,
    tmp: &Path,
    opts: &MetricsCostOptions,
    serving: bool,
) -> Result<()> {
    hollow.stop(Duration::from_secs(10));
    let mut args = hollow_args(server, root, opts.nodes);
    let log = if serving {
        let tls = server.data_dir.join("tls");
        args.extend([
            "--serving-ca-cert-file".into(),
            tls.join("ca.crt").display().to_string(),
            "--serving-ca-key-file".into(),
            tls.join("ca.key").display().to_string(),
            "--serving-port".into(),
            free_port().to_string(),
        ]);
        "hollow-serving.log"
    } else {
        "hollow-restarted.log"
    };
    *hollow = Proc::spawn_skiff("skiff hollow-nodes", &args, &tmp.join(log))?
        .term_on_drop(Duration::from_secs(10));
    Ok(())
}

/// The server's steady CPU rate: the quietest of eight 15 s windows (each holds one
/// collection round), so the churn a restart of the hollow nodes leaves is not counted.
async fn quietest_cpu(pid: u32) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..8 {
        let now = cpu_window(&[pid], 15).await[0];
        eprintln!("  server CPU {now:.0} m over 15 s");
        best = best.min(now);
    }
    best
}

async fn cpu_window(pids: &[u32], secs: u64) -> Vec<f64> {
    let before: Vec<f64> = pids.iter().map(|p| cpu_seconds(*p)).collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    pids.iter()
        .zip(before)
        .map(|(p, b)| (cpu_seconds(*p) - b) / secs as f64 * 1000.0)
        .collect()
}

async fn measure_api(
    client: &kube::Client,
    server: &mut crate::procs::Server,
    hollow: &mut Proc,
    root: &Path,
    tmp: &Path,
    opts: &MetricsCostOptions,
) -> Result<ApiFigures> {
    eprintln!("api: waiting for {} hollow nodes ...", opts.nodes);
    let t = Instant::now();
    while ready_nodes(client).await.unwrap_or(0) < opts.nodes {
        if hollow.exited() {
            bail!("hollow-nodes exited: {}", hollow.log_tail(2000));
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("the hollow nodes were not Ready after 10 minutes");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    namespace(client, "mc").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "mc");
    let watch = PodWatch::spawn(pods.clone(), is_running);
    eprintln!("api: {} pods ...", opts.hollow_pods);
    create_pods(&pods, opts.hollow_pods, 32, "p", None).await?;
    watch
        .wait_count(opts.hollow_pods, Duration::from_secs(1200), "Running")
        .await?;
    drop(watch);
    let load_start = load_average();
    // The baseline goes through the same restart of the hollow nodes as the measured
    // phase (every pod's containers made again, every status rewritten), still serving
    // nothing; then a few collection rounds with nothing to collect.
    restart_hollow(hollow, server, root, tmp, opts, false)?;
    let server_pid = server.proc.pid();
    eprintln!("api: without node servers ...");
    let cpu_without_m = quietest_cpu(server_pid).await;
    let rss_without_mib = rss_mib(server_pid);

    // The same nodes again, now serving their Summary API.
    restart_hollow(hollow, server, root, tmp, opts, true)?;
    eprintln!("api: waiting for metrics of every node and pod ...");
    let t = Instant::now();
    let (mut node_metrics, mut pod_metrics) = (0, 0);
    while node_metrics < opts.nodes || pod_metrics < opts.hollow_pods {
        if hollow.exited() {
            bail!("hollow-nodes exited: {}", hollow.log_tail(2000));
        }
        if t.elapsed() > Duration::from_secs(900) {
            bail!("after 15 minutes only {node_metrics} NodeMetrics and {pod_metrics} PodMetrics");
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        node_metrics = metrics_count(client, "/apis/metrics.k8s.io/v1beta1/nodes")
            .await
            .unwrap_or(0);
        pod_metrics = metrics_count(client, "/apis/metrics.k8s.io/v1beta1/pods")
            .await
            .unwrap_or(0);
    }
    let filled_after_s = t.elapsed().as_secs_f64();
    // Several rounds with every node answering.
    eprintln!("api: with node servers ...");
    let cpu_with_m = quietest_cpu(server_pid).await;
    let rss_with_mib = rss_mib(server_pid);
    let hollow_cpu = cpu_window(&[hollow.pid()], opts.window_s).await[0];
    Ok(ApiFigures {
        nodes: opts.nodes,
        pods: opts.hollow_pods,
        node_metrics,
        pod_metrics,
        rss_without_mib,
        rss_with_mib,
        cpu_without_m,
        cpu_with_m,
        hollow_cpu_with_m: hollow_cpu,
        filled_after_s,
        load: (load_start, load_average()),
    })
}

/// Met or missed against the per-node anchor; a difference at or below zero says the
/// two phases differed by more than the pipeline costs, so it decides nothing.
fn verdict(total: f64, per_node: f64, anchor: f64) -> &'static str {
    if total <= 0.0 {
        "not decided by this run (the difference is within the phases' noise)"
    } else if per_node < anchor {
        "met"
    } else {
        "missed"
    }
}

fn render(opts: &MetricsCostOptions, k: &KubeletFigures, a: &ApiFigures) -> String {
    let per_coll_m = k.summary_cpu_ms / RESOLUTION_S;
    let rss_growth = k.rss_after_kib as f64 - k.rss_before_kib as f64;
    let mem_mib = a.rss_with_mib - a.rss_without_mib;
    let mem_per_node_mb = mem_mib * 1.048_576 / a.nodes as f64;
    let cpu_m = a.cpu_with_m - a.cpu_without_m;
    let cpu_per_node_m = cpu_m / a.nodes as f64;
    format!(
        "Debug build on the 2 shared cores. `skiff-bench metrics-cost` (root).\n\n\
         **Kubelet side**: `skiff server --disable-agent` and a real `skiff agent` with {pods} \
         running busybox pods (a {summary_pods}-pod Summary API answer, {bytes} KiB). The \
         benchmark asked the node server for {n} Summary API collections and {n} resource-metrics \
         collections over one kept-alive TLS connection each, with a client certificate from the \
         cluster CA, and read the agent's CPU time from `/proc/<pid>/stat` before and after.\n\n\
         | measurement | skiff agent, {pods} pods | anchor |\n|---|---|---|\n\
         | CPU per Summary API collection | {scpu:.1} ms ({swall:.1} ms wall) | — |\n\
         | CPU per resource-metrics collection | {rcpu:.1} ms ({rwall:.1} ms wall) | — |\n\
         | collection CPU at one collection per 15 s | {per_coll_m:.2} m | — |\n\
         | agent CPU, idle, {pods} pods, API server collecting every 15 s ({w} s window) | {idle:.1} m | — |\n\
         | agent RSS before / after the {n2} collections | {rb:.1} / {ra:.1} MiB ({growth:+.1} MiB) | — |\n\n\
         **API server side**: `skiff server --disable-agent` (default `--metric-resolution` 15 s) \
         and `skiff hollow-nodes --count {nodes}` with {hpods} pods Running on them. First the \
         hollow nodes served nothing on their loopback addresses (every collection attempt was \
         refused at once); then the same nodes were restarted serving their Summary API \
         (`--serving-ca-key-file`), and after {filled:.0} s the API server held metrics of \
         {nm} nodes and {pm} pods. In each phase the server's CPU is the quietest of eight 15 s windows (each holds one \
         collection round; the quietest leaves out the churn of the restart), and RSS was read \
         after them. The 1-minute load average was {l0:.1} at the start and {l1:.1} \
         at the end.\n\n\
         | measurement | without node servers | with metrics of every node and pod | difference: the metrics pipeline | per node | metrics-server (published) |\n\
         |---|---|---|---|---|---|\n\
         | API server RSS | {r0:.0} MiB | {r1:.0} MiB | {mem:+.1} MiB | {mpn:.3} MB | about 2 MB per node |\n\
         | API server CPU | {c0:.0} m | {c1:.0} m | {cpu:+.0} m | {cpn:.3} m | about 1 m per node |\n\n\
         Both phases follow one restart of the hollow nodes (their {hpods} pods' containers made \
         again and every status rewritten), so the churn of a restart is in the baseline too. \
         The hollow nodes' own process used {hc:.0} m in the serving phase ({nodes} node servers \
         answering every 15 s, plus their kubelets). Against the goal (less per node than metrics-server, in \
         its units): {mem_verdict} on memory, {cpu_verdict} on CPU.\n",
        pods = k.pods,
        summary_pods = k.summary_pods,
        bytes = k.summary_bytes / 1024,
        n = k.collections,
        n2 = k.collections * 2,
        scpu = k.summary_cpu_ms,
        swall = k.summary_wall_ms,
        rcpu = k.resource_cpu_ms,
        rwall = k.resource_wall_ms,
        idle = k.idle_cpu_m,
        w = opts.window_s,
        rb = k.rss_before_kib as f64 / 1024.0,
        ra = k.rss_after_kib as f64 / 1024.0,
        growth = rss_growth / 1024.0,
        nodes = a.nodes,
        hpods = a.pods,
        filled = a.filled_after_s,
        nm = a.node_metrics,
        pm = a.pod_metrics,
        l0 = a.load.0,
        l1 = a.load.1,
        r0 = a.rss_without_mib,
        r1 = a.rss_with_mib,
        mem = mem_mib,
        mpn = mem_per_node_mb,
        c0 = a.cpu_without_m,
        c1 = a.cpu_with_m,
        cpu = cpu_m,
        cpn = cpu_per_node_m,
        hc = a.hollow_cpu_with_m,
        mem_verdict = verdict(mem_mib, mem_per_node_mb, 2.0),
        cpu_verdict = verdict(cpu_m, cpu_per_node_m, 1.0),
    )
}
