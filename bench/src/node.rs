//! The node benchmark (issue 4): pod startup latency through a real `skiff server` and a
//! separate `skiff agent` with a warm busybox image (20 pods at once, 20 one after
//! another, create call to phase Running as a watch sees it), against the runtime's bare
//! create + start in the same run; then the agent's and its shims' memory with 20 pods
//! running. Every process, container, mount, link, table and cgroup it makes is removed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;
use skiff_e2e::{AgentCredentials, AgentHost, Proc, free_port, node_ready, skiff_bin};
use skiff_runtime::container::{ContainerRoot, ShimCommand};
use skiff_runtime::testkit::{TestCgroups, busybox_rootfs, busybox_tarball};

use crate::podwatch::{PodWatch, is_running};
use crate::procs::{Server, cpu_seconds, load_average, mib, smaps, start_server, vm_rss_kib};
use crate::runtime::{Memory, RuntimeBenchOptions, skiff_cycles};
use crate::stats::{Summary, summarize};

/// What to measure.
pub struct NodeBenchOptions {
    /// Pods per series (burst and sequential).
    pub pods: usize,
    /// Rounds of both series (samples pooled; each round's p99 shown too).
    pub rounds: usize,
    /// Bare runtime create + start cycles for the reference.
    pub cycles: usize,
}

/// The host this run's agent uses, named apart from the e2e tests' (`skn*`, `skiff_n*`,
/// `skiff-e2e-*`).
pub(crate) fn agent_host(root_dir: PathBuf, state_dir: PathBuf) -> AgentHost {
    let tag = format!("{:x}", std::process::id() % 0xfffff);
    AgentHost {
        name: format!("bench-node-{tag}"),
        root_dir,
        state_dir,
        kubelet_port: free_port(),
        bridge: format!("skb{tag}"),
        nft_table: format!("skiff_bench_{tag}"),
        cgroup_subtree: format!("skiff-bench-{tag}"),
    }
}

/// The agent and everything it leaves on the host; removed by [`Agent::cleanup`].
pub(crate) struct Agent {
    pub(crate) proc: Proc,
    pub(crate) host: AgentHost,
    pub(crate) cidr: Option<String>,
}

impl Agent {
    /// Starts `skiff agent` for `host` against `server` with room for `max_pods`, its log
    /// in `<dir>/agent.log`.
    pub(crate) fn spawn(
        server: &Server,
        host: AgentHost,
        dir: &Path,
        max_pods: usize,
    ) -> Result<Agent> {
        let args = agent_args(server, &host, max_pods);
        Ok(Agent {
            proc: Proc::spawn_skiff("skiff agent", &args, &dir.join("agent.log"))?
                .term_on_drop(Duration::from_secs(10)),
            host,
            cidr: None,
        })
    }

    /// Waits (a minute at most) until the node is Ready with a pod CIDR, which it records.
    pub(crate) async fn wait_ready(&mut self, client: &kube::Client) -> Result<()> {
        let node = self.host.name.clone();
        let nodes: Api<Node> = Api::all(client.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(n) = nodes.get(&node).await {
                let cidr = n.spec.as_ref().and_then(|s| s.pod_cidr.clone());
                if cidr.is_some() {
                    self.cidr = cidr;
                }
                if node_ready(&n) && self.cidr.is_some() {
                    return Ok(());
                }
            }
            if self.proc.exited() || Instant::now() > deadline {
                bail!("node {node} did not become Ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Removes the benchmark's pods through the agent (as a user would, waiting up to
    /// `grace`), then stops the agent and `server` and removes what the agent left; shows
    /// both logs when `failed`.
    pub(crate) async fn tear_down(
        &mut self,
        client: &kube::Client,
        server: &mut Server,
        grace: Duration,
        failed: bool,
    ) {
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let _ = pods
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels("app=bench-node"),
            )
            .await;
        let _ = wait_empty(&pods, grace).await;
        self.cleanup().await;
        server.proc.stop(Duration::from_secs(10));
        if failed {
            eprintln!("--- agent log ---\n{}", self.proc.log_tail(4000));
            eprintln!("--- server log ---\n{}", server.proc.log_tail(4000));
        }
    }

    /// As the e2e harness's `Node` drop: stop the agent, then remove what it left.
    pub(crate) async fn cleanup(&mut self) {
        self.proc.stop(Duration::from_secs(10));
        self.host.tear_down(self.cidr.as_deref()).await;
    }
}

/// Everything measured.
struct NodeFigures {
    reference: Summary,
    burst: Summary,
    sequential: Summary,
    /// p99 of each round's burst and sequential series.
    burst_p99s: Vec<f64>,
    seq_p99s: Vec<f64>,
    burst_delete_ms: f64,
    agent_idle: Memory,
    agent_rss_status: u64,
    agent: Memory,
    shims: Vec<Memory>,
    containers: usize,
    watch_lists: usize,
    /// Agent CPU seconds over the burst (create to all Running) and the sequential series.
    agent_cpu: (f64, f64),
    /// Wall seconds of the burst and the sequential series.
    wall: (f64, f64),
    /// 1-minute load average before the burst and after the sequential series.
    load: (f64, f64),
}

/// Runs the benchmark and renders the markdown body of its section.
pub async fn run(opts: &NodeBenchOptions) -> Result<String> {
    if std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() != "0")
        .unwrap_or(true)
    {
        bail!("the node benchmark needs root");
    }
    let tmp = tempfile::tempdir()?;
    // Runtime state on tmpfs, as /run is on most hosts (and as the reference's).
    let run = tempfile::tempdir_in("/dev/shm")?;
    let rootfs = busybox_rootfs(&tmp.path().join("rootfs"));

    // The reference first, on an idle machine: the runtime's own create + start of the
    // same root filesystem as an overlay lower layer, as the agent runs images.
    eprintln!("reference: {} bare runtime cycles ...", opts.cycles);
    let ref_opts = RuntimeBenchOptions {
        cycles: opts.cycles,
        warmup: 3,
        skiff_bin: skiff_bin(),
        pulls: 0,
        idle_shims: 0,
    };
    let ref_root = ContainerRoot {
        dir: run.path().join("reference"),
        shim: ShimCommand {
            program: skiff_bin(),
            env: vec![],
        },
    };
    let cycles = {
        let cgroups = TestCgroups::new();
        skiff_cycles(&ref_root, &cgroups, &rootfs, tmp.path(), &ref_opts, true)?
    };
    let reference = summarize(&cycles.iter().map(|p| p[0] + p[1]).collect::<Vec<_>>());

    let tar = busybox_tarball(tmp.path());

    let (mut server, client) = start_server(
        tmp.path(),
        &[
            "--disable-agent".into(),
            "--cluster-cidr".into(),
            "10.197.0.0/16".into(),
        ],
    )
    .await?;
    let host = agent_host(
        tmp.path().join("agent-root"),
        run.path().join("agent-state"),
    );
    host.import_rootfs(&tar, "busybox:1.36")?;
    // Room for both series side by side (the default on 2 cores is 20).
    let mut agent = Agent::spawn(&server, host, tmp.path(), 64)?;
    let result = measure(&client, &mut agent, opts, reference).await;
    agent
        .tear_down(
            &client,
            &mut server,
            Duration::from_secs(60),
            result.is_err(),
        )
        .await;
    Ok(render(opts, &result?))
}

fn agent_args(server: &Server, host: &AgentHost, max_pods: usize) -> Vec<std::ffi::OsString> {
    let mut args = host.agent_args(&AgentCredentials::Admin {
        kubeconfig: server.kubeconfig.clone(),
        tls_dir: server.data_dir.join("tls"),
    });
    let max_pods = max_pods.to_string();
    args.extend(["--max-pods", &max_pods, "--log-level", "warn"].map(Into::into));
    args
}

pub(crate) fn pod(name: &str, node: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "bench-node"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c",
                "image": "busybox:1.36",
                "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
            }],
        },
    }))?)
}

async fn measure(
    client: &kube::Client,
    agent: &mut Agent,
    opts: &NodeBenchOptions,
    reference: Summary,
) -> Result<NodeFigures> {
    let node = agent.host.name.clone();
    agent.wait_ready(client).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let agent_pid = agent.proc.pid();
    let agent_idle = smaps(agent_pid)?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let watch = PodWatch::spawn(pods.clone(), is_running);
    let pp = PostParams::default();

    let load_before = load_average();
    let mut burst_all = Vec::new();
    let mut seq_all = Vec::new();
    let mut burst_p99s = Vec::new();
    let mut seq_p99s = Vec::new();
    let (mut burst_cpu, mut burst_wall, mut seq_cpu, mut seq_wall) = (0.0, 0.0, 0.0, 0.0);
    let mut memory = None;
    let mut burst_delete_ms = 0.0;
    for round in 0..opts.rounds {
        // 20 at once.
        eprintln!("round {round}: {} pods at once ...", opts.pods);
        let (cpu0, t0) = (cpu_seconds(agent_pid), Instant::now());
        let creates = (0..opts.pods).map(|i| {
            let (pods, pp, node) = (pods.clone(), pp.clone(), node.clone());
            async move {
                let name = format!("burst-{round}-{i:02}");
                let p = pod(&name, &node)?;
                let t = Instant::now();
                pods.create(&pp, &p).await?;
                anyhow::Ok((name, t))
            }
        });
        let started: Vec<(String, Instant)> = futures::future::try_join_all(creates).await?;
        for (name, _) in &started {
            wait_running(&watch, name).await?;
        }
        let burst = latencies(&watch, &started)?;
        burst_cpu += cpu_seconds(agent_pid) - cpu0;
        burst_wall += t0.elapsed().as_secs_f64();
        burst_p99s.push(summarize(&burst).p99);
        burst_all.extend(burst);

        // Memory with these pods running, once the node has settled (first round).
        if memory.is_none() {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let rss = vm_rss_kib(agent_pid).context("agent VmRSS")?;
            let agent_mem = smaps(agent_pid)?;
            let shim_mem = shims(&agent.host.state_dir.join("containers"))?
                .iter()
                .map(|p| smaps(*p))
                .collect::<Result<Vec<_>>>()?;
            let containers = ContainerRoot::new(agent.host.state_dir.join("containers"))
                .list_ids()
                .map(|v| v.len())
                .unwrap_or(0);
            memory = Some((rss, agent_mem, shim_mem, containers));
        }

        // Delete them and wait until the API has let them go.
        let t = Instant::now();
        delete_all(&pods).await?;
        if round == 0 {
            burst_delete_ms = t.elapsed().as_secs_f64() * 1000.0;
        }

        // 20 one after another, each once the previous is Running.
        eprintln!("round {round}: {} pods one after another ...", opts.pods);
        let mut seq = Vec::new();
        let (cpu0, t0) = (cpu_seconds(agent_pid), Instant::now());
        for i in 0..opts.pods {
            let name = format!("seq-{round}-{i:02}");
            let p = pod(&name, &node)?;
            let t = Instant::now();
            pods.create(&pp, &p).await?;
            wait_running(&watch, &name).await?;
            seq.push((name, t));
        }
        let sequential = latencies(&watch, &seq)?;
        seq_cpu += cpu_seconds(agent_pid) - cpu0;
        seq_wall += t0.elapsed().as_secs_f64();
        seq_p99s.push(summarize(&sequential).p99);
        seq_all.extend(sequential);
        delete_all(&pods).await?;
    }
    let (agent_rss_status, agent_mem, shim_mem, containers) = memory.context("no round was run")?;
    let (watch_lists, _) = watch.restarts();
    Ok(NodeFigures {
        reference,
        burst: summarize(&burst_all),
        sequential: summarize(&seq_all),
        burst_p99s,
        seq_p99s,
        burst_delete_ms,
        agent_idle,
        agent_rss_status,
        agent: agent_mem,
        shims: shim_mem,
        containers,
        watch_lists,
        agent_cpu: (burst_cpu, seq_cpu),
        wall: (burst_wall, seq_wall),
        load: (load_before, load_average()),
    })
}

async fn wait_running(watch: &PodWatch, name: &str) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(60);
    while watch.at(name).is_none() {
        if Instant::now() > end {
            bail!("pod {name} not Running after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

async fn delete_all(pods: &Api<Pod>) -> Result<()> {
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=bench-node"),
    )
    .await?;
    wait_empty(pods, Duration::from_secs(120)).await
}

fn latencies(watch: &PodWatch, started: &[(String, Instant)]) -> Result<Vec<Duration>> {
    let mut v = Vec::new();
    for (name, t) in started {
        let at = watch
            .at(name)
            .with_context(|| format!("{name} never Running"))?;
        v.push(at.saturating_duration_since(*t));
    }
    Ok(v)
}

async fn wait_empty(pods: &Api<Pod>, timeout: Duration) -> Result<()> {
    let end = Instant::now() + timeout;
    loop {
        let n = pods
            .list(&ListParams::default().labels("app=bench-node"))
            .await?
            .items
            .len();
        if n == 0 {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("{n} pods still present after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The shims serving containers under `containers_dir`: the daemonized `skiff shim --root
/// <containers_dir>` processes (their parent is not the agent: they outlive it), without
/// their forked container inits that have not exec'd yet.
fn shims(containers_dir: &Path) -> Result<Vec<u32>> {
    let want = containers_dir.display().to_string();
    let cmdline = |pid: u32| -> Option<Vec<String>> {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        Some(
            raw.split(|b| *b == 0)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        )
    };
    let is_shim = |pid: u32| {
        cmdline(pid).is_some_and(|a| {
            a.get(1).map(String::as_str) == Some("shim")
                && a.windows(2).any(|w| w[0] == "--root" && w[1] == want)
        })
    };
    let ppid = |pid: u32| -> Option<u32> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        s.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if is_shim(pid) && !ppid(pid).is_some_and(is_shim) {
            out.push(pid);
        }
    }
    Ok(out)
}

fn rounds(p99s: &[f64]) -> String {
    p99s.iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn render(opts: &NodeBenchOptions, f: &NodeFigures) -> String {
    let n = f.shims.len().max(1) as u64;
    let sum = |g: fn(&Memory) -> u64| f.shims.iter().map(g).sum::<u64>();
    let goal = |ok: bool| if ok { "met" } else { "missed" };
    let worst_p99 = f.burst.p99.max(f.sequential.p99);
    format!(
        "Release build; one `skiff server --disable-agent` and a separate `skiff agent` (real \
runtime, its own bridge, nftables table and cgroup subtree, state on tmpfs) on the same \
2-core machine, busybox imported beforehand (`imagePullPolicy: Never`). Latency is from the \
create call to the pod's phase Running as a watch on the API sees it. Pods have \
`spec.nodeName` set and run `sleep 3600`. The reference is the runtime's own create + start \
of the same root filesystem (as an overlay lower layer, as images are run), {cycles} cycles \
in the same run, without the API, the agent, pod networking or cgroups per pod.\n\n\
| series | p50 ms | p99 ms | p99 ÷ runtime create+start p99 | p99 of each round, ms |\n|---|---|---|---|---|\n\
| runtime create + start (reference) | {r50:.1} | {r99:.1} | 1.00 | — |\n\
| {n_pods} pods created at once, {rounds} rounds | {b50:.1} | {b99:.1} | {bx:.1}× | {brs} |\n\
| {n_pods} pods one after another, {rounds} rounds | {s50:.1} | {s99:.1} | {sx:.1}× | {srs} |\n\n\
Each round deletes its pods (and waits until they are gone) before the next series. The \
bursts took {bw:.2} s of wall time in all and {bc:.2} CPU-seconds of the agent process (shims, \
container inits and the kernel's work come on top); the sequential series {sw:.2} s and \
{sc:.2} CPU-seconds. The 1-minute load average was {l0:.1} before the first round and {l1:.1} \
after the last (the 2 cores are shared with other work). Deleting the first burst's {n_pods} pods until the API had let them go took {del:.0} ms (grace period \
1 s). The watch listed {lists} time(s) (1 = never dropped). Goal p99 < 1 s: {g1} (p99 over \
all rounds {worst:.0} ms for the worse series; the Kubernetes SLO is 5 s).\n\n\
Memory with {n_pods} pods running ({containers} containers in the runtime state, {nshims} \
shims), MiB from `/proc/<pid>/smaps_rollup`:\n\n\
| process | Rss | Pss | anonymous |\n|---|---|---|---|\n\
| agent, idle node | {ai_rss} | {ai_pss} | {ai_anon} |\n\
| agent, {n_pods} pods running (VmRSS {a_vm}) | {a_rss} | {a_pss} | {a_anon} |\n\
| shims, sum | {sr} | {sp} | {sa} |\n\
| shims, mean per shim | {mr} | {mp} | {ma} |\n\n\
Shims are found as the `skiff shim --root <agent state>/containers` processes (they are \
daemonized, so their parent is not the agent, and they keep containers running when the \
agent stops); the agent's figure excludes them. Goal agent < 50 MiB: {g2} (Rss {a_rss} MiB). \
For comparison, the k3s agent is published at about 275 MiB (not measured here).\n",
        cycles = opts.cycles,
        n_pods = opts.pods,
        r50 = f.reference.p50,
        r99 = f.reference.p99,
        b50 = f.burst.p50,
        b99 = f.burst.p99,
        bx = f.burst.p99 / f.reference.p99,
        s50 = f.sequential.p50,
        s99 = f.sequential.p99,
        sx = f.sequential.p99 / f.reference.p99,
        del = f.burst_delete_ms,
        rounds = opts.rounds,
        brs = rounds(&f.burst_p99s),
        srs = rounds(&f.seq_p99s),
        bw = f.wall.0,
        bc = f.agent_cpu.0,
        sw = f.wall.1,
        sc = f.agent_cpu.1,
        l0 = f.load.0,
        l1 = f.load.1,
        lists = f.watch_lists,
        g1 = goal(worst_p99 < 1000.0),
        worst = worst_p99,
        containers = f.containers,
        nshims = f.shims.len(),
        ai_rss = mib(f.agent_idle.rss),
        ai_pss = mib(f.agent_idle.pss),
        ai_anon = mib(f.agent_idle.anonymous),
        a_vm = mib(f.agent_rss_status),
        a_rss = mib(f.agent.rss),
        a_pss = mib(f.agent.pss),
        a_anon = mib(f.agent.anonymous),
        sr = mib(sum(|m| m.rss)),
        sp = mib(sum(|m| m.pss)),
        sa = mib(sum(|m| m.anonymous)),
        mr = mib(sum(|m| m.rss) / n),
        mp = mib(sum(|m| m.pss) / n),
        ma = mib(sum(|m| m.anonymous) / n),
        g2 = goal(f.agent.rss < 50 * 1024),
    )
}
