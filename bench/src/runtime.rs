//! The container runtime benchmark (issue 3): create + start + wait + delete cycles of a
//! busybox `true` container for skiff, crun and runc on the same root filesystem, cold
//! pull + unpack of a 5-layer image from a loopback `docker-registry`, and the memory of
//! idle shims.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use skiff_runtime::container::{Container, ContainerRoot, ShimCommand};
use skiff_runtime::image::testutil::{TestRegistry, five_layer_image};
use skiff_runtime::image::{ImageStore, PullOptions};
use skiff_runtime::testkit::{TestCgroups, busybox_rootfs, hide_cgroup2_unified, spec, unique};

use crate::stats::{Summary, summarize};

/// What to measure.
pub struct RuntimeBenchOptions {
    /// Cycles per runtime.
    pub cycles: usize,
    /// Unmeasured cycles before each runtime's series.
    pub warmup: usize,
    /// The `skiff` executable the shim is re-executed from.
    pub skiff_bin: PathBuf,
    /// Cold pulls (each into an empty store).
    pub pulls: usize,
    /// Idle shims started side by side for the memory figure.
    pub idle_shims: usize,
}

/// Runs every measurement and renders the markdown body of the section.
pub async fn run(opts: &RuntimeBenchOptions) -> anyhow::Result<String> {
    if !opts.skiff_bin.is_file() {
        bail!("skiff binary {} not found", opts.skiff_bin.display());
    }
    let tmp = tempfile::tempdir()?;
    let rootfs = busybox_rootfs(&tmp.path().join("rootfs"));
    // Every runtime keeps its state on tmpfs, as /run is on most hosts.
    let run = tempfile::tempdir_in("/dev/shm")?;
    let root = ContainerRoot {
        dir: run.path().join("skiff"),
        shim: ShimCommand {
            program: opts.skiff_bin.clone(),
            env: vec![],
        },
    };
    let cgroups = TestCgroups::new();
    eprintln!("skiff: {} cycles ...", opts.cycles);
    let skiff = skiff_cycles(&root, &cgroups, &rootfs, tmp.path(), opts, false)?;
    eprintln!("skiff with an overlay root: {} cycles ...", opts.cycles);
    let overlay = skiff_cycles(&root, &cgroups, &rootfs, tmp.path(), opts, true)?;
    let bundle = tmp.path().join("bundle");
    oci_bundle(&bundle, &rootfs)?;
    eprintln!("crun: {} cycles ...", opts.cycles);
    let crun_state = run.path().join("crun");
    let (b, n) = (bundle.clone(), opts.warmup + opts.cycles);
    let crun = std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
        hide_cgroup2_unified().context("private mount namespace for crun")?;
        oci_cycles("crun", &b, &crun_state, n)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("crun thread panicked"))??;
    eprintln!("runc: {} cycles ...", opts.cycles);
    let runc = oci_cycles("runc", &bundle, &run.path().join("runc"), n)?;
    eprintln!("cold pulls ...");
    let (pull, pull_bytes) = cold_pulls(opts.pulls).await?;
    eprintln!("idle shims ...");
    // A freshly linked binary's page cache is dirty until written back, which would show
    // as private dirty in every shim; write it back first.
    std::fs::File::open(&opts.skiff_bin)?.sync_all()?;
    let memory = idle_shims(&root, &cgroups, &rootfs, tmp.path(), opts.idle_shims)?;
    Ok(render(
        opts,
        &skiff,
        &overlay,
        &crun[opts.warmup..],
        &runc[opts.warmup..],
        (summarize(&pull), pull_bytes),
        &memory,
    ))
}

/// skiff's cycles, timed per phase: create, start, wait, delete. With `overlay` the root
/// filesystem directory is the one lower layer of a per-container overlay, as an image's
/// layers are for the kubelet.
pub(crate) fn skiff_cycles(
    root: &ContainerRoot,
    cgroups: &TestCgroups,
    rootfs: &Path,
    tmp: &Path,
    opts: &RuntimeBenchOptions,
    overlay: bool,
) -> anyhow::Result<Vec<[Duration; 4]>> {
    let log = tmp.join("cycle.log");
    let mut out = Vec::with_capacity(opts.cycles);
    for i in 0..opts.warmup + opts.cycles {
        let id = unique("bench");
        let mut s = spec(&id, rootfs, &log, &["true"]);
        s.cgroup = cgroups.config(&id);
        if overlay {
            s.layers = vec![rootfs.to_path_buf()];
        }
        let t0 = Instant::now();
        let mut c = Container::create(root, s)?;
        let t1 = Instant::now();
        c.start()?;
        let t2 = Instant::now();
        let code = c.wait(None)?;
        let t3 = Instant::now();
        c.delete(false)?;
        let t4 = Instant::now();
        if code != Some(0) {
            bail!("skiff container exited with {code:?}");
        }
        if i >= opts.warmup {
            out.push([t1 - t0, t2 - t1, t3 - t2, t4 - t3]);
        }
    }
    Ok(out)
}

/// An OCI bundle (crun's default spec) running `true` in `rootfs`.
fn oci_bundle(dir: &Path, rootfs: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let st = Command::new("crun").arg("spec").current_dir(dir).status()?;
    if !st.success() {
        bail!("crun spec failed");
    }
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    cfg["root"]["path"] = rootfs.to_string_lossy().into();
    cfg["root"]["readonly"] = false.into();
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = serde_json::json!(["true"]);
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg)?)?;
    Ok(())
}

/// `<runtime> run` (create + start + wait + delete in one command) `n` times.
fn oci_cycles(
    runtime: &str,
    bundle: &Path,
    state: &Path,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let st = Command::new(runtime)
            .arg("--root")
            .arg(state)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(format!("bench{i}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("run {runtime}"))?;
        out.push(t.elapsed());
        if !st.success() {
            bail!("{runtime} run failed: {st}");
        }
    }
    Ok(out)
}

/// Pulls the 5-layer image into an empty store `n` times; returns the times and the
/// compressed size.
async fn cold_pulls(n: usize) -> anyhow::Result<(Vec<Duration>, usize)> {
    let registry = TestRegistry::start();
    let image = five_layer_image();
    registry.push("bench:5", &image).await;
    let reference = format!("{}/bench:5", registry.host);
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let dir = tempfile::tempdir()?;
        let store = ImageStore::open(dir.path())?;
        let t = Instant::now();
        let info = store.pull(&reference, &PullOptions::default()).await?;
        times.push(t.elapsed());
        if info.layers.len() != 5 {
            bail!("pulled {} layers, expected 5", info.layers.len());
        }
    }
    Ok((times, image.layers.iter().map(Vec::len).sum()))
}

/// Memory of one process from `/proc/<pid>/smaps_rollup`, in KiB.
#[derive(Debug, Default, Clone, Copy)]
pub struct Memory {
    /// Resident set.
    pub rss: u64,
    /// Proportional set (shared pages divided among their sharers).
    pub pss: u64,
    /// Pages only this process has written.
    pub private_dirty: u64,
    /// File pages shared with other processes (mostly the binary's text).
    pub shared_clean: u64,
    /// Anonymous memory (heap, stacks).
    pub anonymous: u64,
}

/// Parses `smaps_rollup`.
pub fn parse_smaps_rollup(text: &str) -> Memory {
    let mut m = Memory::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(key), Some(v)) = (it.next(), it.next().and_then(|v| v.parse().ok())) else {
            continue;
        };
        match key {
            "Rss:" => m.rss = v,
            "Pss:" => m.pss = v,
            "Private_Dirty:" => m.private_dirty = v,
            "Shared_Clean:" => m.shared_clean = v,
            "Anonymous:" => m.anonymous = v,
            _ => {}
        }
    }
    m
}

/// Idle-shim memory: the first shim alone, and the mean over `n` shims side by side.
struct ShimMemory {
    alone: Memory,
    many: Memory,
    n: usize,
}

fn idle_shims(
    root: &ContainerRoot,
    cgroups: &TestCgroups,
    rootfs: &Path,
    tmp: &Path,
    n: usize,
) -> anyhow::Result<ShimMemory> {
    let mut containers = Vec::new();
    let result = (|| {
        let mut alone = Memory::default();
        for i in 0..n.max(1) {
            let id = unique("idle");
            let mut s = spec(&id, rootfs, &tmp.join("idle.log"), &["sleep", "3600"]);
            s.cgroup = cgroups.config(&id);
            let mut c = Container::create(root, s)?;
            c.start()?;
            containers.push(c);
            if i == 0 {
                alone = settled_memory(&containers[0])?;
            }
        }
        let mut sum = Memory::default();
        for c in &containers {
            let m = settled_memory(c)?;
            sum.rss += m.rss;
            sum.pss += m.pss;
            sum.private_dirty += m.private_dirty;
            sum.shared_clean += m.shared_clean;
            sum.anonymous += m.anonymous;
        }
        let k = containers.len() as u64;
        let many = Memory {
            rss: sum.rss / k,
            pss: sum.pss / k,
            private_dirty: sum.private_dirty / k,
            shared_clean: sum.shared_clean / k,
            anonymous: sum.anonymous / k,
        };
        Ok(ShimMemory {
            alone,
            many,
            n: containers.len(),
        })
    })();
    for c in containers {
        let _ = c.delete(true);
    }
    result
}

fn settled_memory(c: &Container) -> anyhow::Result<Memory> {
    std::thread::sleep(Duration::from_millis(300));
    let pid = c.state.shim_pid.context("shim pid")?;
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .with_context(|| format!("smaps_rollup of shim {pid}"))?;
    Ok(parse_smaps_rollup(&text))
}

fn mib(kib: u64) -> String {
    format!("{:.2}", kib as f64 / 1024.0)
}

fn render(
    opts: &RuntimeBenchOptions,
    skiff: &[[Duration; 4]],
    overlay: &[[Duration; 4]],
    crun: &[Duration],
    runc: &[Duration],
    pull: (Summary, usize),
    mem: &ShimMemory,
) -> String {
    let total =
        |v: &[[Duration; 4]]| -> Vec<Duration> { v.iter().map(|p| p.iter().sum()).collect() };
    let (s, o) = (summarize(&total(skiff)), summarize(&total(overlay)));
    let (c, r) = (summarize(crun), summarize(runc));
    let phase = |i: usize| summarize(&skiff.iter().map(|p| p[i]).collect::<Vec<_>>()).p50;
    let row = |name: &str, x: &Summary| {
        format!(
            "| {name} | {:.1} | {:.1} | {:.2} | {:.2} |",
            x.p50,
            x.p99,
            x.p50 / c.p50,
            x.p99 / c.p99
        )
    };
    let m = |name: &str, x: &Memory| {
        format!(
            "| {name} | {} | {} | {} | {} | {} |",
            mib(x.rss),
            mib(x.pss),
            mib(x.private_dirty),
            mib(x.anonymous),
            mib(x.shared_clean)
        )
    };
    format!(
        "Release build; {cycles} sequential create + start + wait + delete cycles of busybox \
`true` per runtime (after {warmup} unmeasured), same root filesystem directory (used \
directly; the overlay row mounts it as the lower layer of a per-container overlay, as images \
are run), fresh mount/PID/net/UTS/IPC namespaces and a cgroup each, state on tmpfs. skiff \
through its library API with the `skiff` binary as shim; crun {crunv} and runc {runcv} by \
`run --bundle` (crun in a private mount namespace without the cgroup2 `unified` mount, which \
1.8 refuses on this hybrid layout).\n\n\
| runtime | median ms | p99 ms | median / crun | p99 / crun |\n|---|---|---|---|---|\n\
{rs}\n{ro}\n{rc}\n{rr}\n\n\
skiff / runc median: {sr:.2}. skiff phases (median ms): create {p0:.1}, start {p1:.1}, \
wait {p2:.1}, delete {p3:.1}.\n\n\
Cold pull + unpack of a 5-layer tar+gzip image ({size:.1} MB compressed) from Debian's \
`docker-registry` on loopback into an empty store, {pulls} times: median {pm:.0} ms, p99 \
{pp:.0} ms.\n\n\
Idle shim memory (MiB, from `/proc/<pid>/smaps_rollup`; Pss divides shared pages among \
the processes mapping them, private dirty is what each shim costs on its own):\n\n\
| shims | Rss | Pss | private dirty | anonymous | shared clean |\n|---|---|---|---|---|---|\n\
{m1}\n{m2}\n",
        cycles = opts.cycles,
        warmup = opts.warmup,
        crunv = version("crun"),
        runcv = version("runc"),
        rs = row("skiff", &s),
        ro = row("skiff, overlay root (as for images)", &o),
        rc = row("crun", &c),
        rr = row("runc", &r),
        sr = s.p50 / r.p50,
        p0 = phase(0),
        p1 = phase(1),
        p2 = phase(2),
        p3 = phase(3),
        size = pull.1 as f64 / 1e6,
        pulls = opts.pulls,
        pm = pull.0.p50,
        pp = pull.0.p99,
        m1 = m("1 (alone)", &mem.alone),
        m2 = m(&format!("{} side by side (mean)", mem.n), &mem.many),
    )
}

/// `<program> --version`'s number (third word of its first line).
pub(crate) fn version(runtime: &str) -> String {
    Command::new(runtime)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rollup_fields() {
        let m = parse_smaps_rollup(
            "55d3-7fff ---p 00000000 00:00 0 [rollup]\nRss:   1688 kB\nPss:  243 kB\n\
             Pss_Dirty: 116 kB\nShared_Clean: 1524 kB\nPrivate_Dirty:  116 kB\nAnonymous: 99 kB\n",
        );
        assert_eq!(
            (m.rss, m.pss, m.private_dirty, m.shared_clean, m.anonymous),
            (1688, 243, 116, 1524, 99)
        );
    }
}
