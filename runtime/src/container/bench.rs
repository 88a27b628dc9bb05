//! Benchmark (ignored by default; run with `cargo test -p skiff-runtime --lib bench --
//! --ignored --nocapture`): one create + start + wait + delete cycle of busybox `true`,
//! sequentially, against Debian's `crun` and `runc` running the same root filesystem as an
//! OCI bundle, plus the resident memory of an idle shim. `SKIFF_BENCH_CYCLES` (default
//! 100) sets the count; state roots live on tmpfs (`/dev/shm`); `SKIFF_BIN` makes the shim the real `skiff` binary instead of the
//! test executable. The release figures in BENCHMARKS.md come from `skiff-bench runtime`
//! (bench/src/runtime.rs), which measures the same cycle with the real `skiff` shim.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::testing::{TestCgroups, busybox_rootfs, spec, test_root, unique};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn oci_bundle(dir: &Path, rootfs: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ok = Command::new("crun")
        .arg("spec")
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(ok.success());
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    cfg["root"]["path"] = rootfs.to_string_lossy().into();
    cfg["root"]["readonly"] = false.into();
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = serde_json::json!(["true"]);
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
}

fn time_oci(runtime: &str, bundle: &Path, state: &Path, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|i| {
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
                .unwrap();
            assert!(st.success(), "{runtime} run failed");
            t.elapsed()
        })
        .collect()
}

fn summary(name: &str, mut v: Vec<Duration>) -> (String, Duration) {
    v.sort();
    let med = percentile(&v, 0.5);
    let line = format!(
        "| {name} | {:.1} | {:.1} |",
        med.as_secs_f64() * 1e3,
        percentile(&v, 0.99).as_secs_f64() * 1e3
    );
    (line, med)
}

fn vm_rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
#[ignore]
fn cycle_benchmark_vs_crun_and_runc() {
    let n: usize = std::env::var("SKIFF_BENCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(&tmp.path().join("rootfs"));
    // State roots on tmpfs, as /run is on most hosts, for every runtime alike.
    let run = tempfile::tempdir_in("/dev/shm").unwrap();
    let mut root = test_root(run.path());
    if let Some(bin) = std::env::var_os("SKIFF_BIN") {
        root.shim = ShimCommand {
            program: bin.into(),
            env: vec![],
        };
    }
    let cgs = TestCgroups::new();
    let mut ours = Vec::with_capacity(n);
    let mut phases: Vec<[Duration; 4]> = Vec::with_capacity(n);
    for _ in 0..n {
        let id = unique("b");
        let mut s = spec(&id, &rootfs, &tmp.path().join("bench.log"), &["true"]);
        s.cgroup = cgs.config(&id);
        let t = Instant::now();
        let mut c = Container::create(&root, s).unwrap();
        let t1 = t.elapsed();
        c.start().unwrap();
        let t2 = t.elapsed();
        assert_eq!(c.wait(None).unwrap(), Some(0));
        let t3 = t.elapsed();
        c.delete(false).unwrap();
        ours.push(t.elapsed());
        phases.push([t1, t2 - t1, t3 - t2, t.elapsed() - t3]);
    }
    let phase_medians: Vec<String> = (0..4)
        .map(|i| {
            let mut v: Vec<Duration> = phases.iter().map(|p| p[i]).collect();
            v.sort();
            format!("{:.1}", percentile(&v, 0.5).as_secs_f64() * 1e3)
        })
        .collect();
    let bundle = tmp.path().join("bundle");
    oci_bundle(&bundle, &rootfs);
    // crun 1.8 refuses the hybrid layout when a cgroup2 mount exists beside the v1
    // controllers; hide that mount from it in a private mount namespace of one thread.
    let crun_state = run.path().join("crun-state");
    let b2 = bundle.clone();
    let crun = std::thread::spawn(move || {
        use nix::mount::{MntFlags, MsFlags};
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .unwrap();
        let _ = nix::mount::umount2("/sys/fs/cgroup/unified", MntFlags::MNT_DETACH);
        time_oci("crun", &b2, &crun_state, n)
    })
    .join()
    .unwrap();
    let runc = time_oci("runc", &bundle, &run.path().join("runc-state"), n);
    // Idle shim memory.
    let s = spec(
        &unique("idle"),
        &rootfs,
        &tmp.path().join("idle.log"),
        &["sleep", "30"],
    );
    let mut c = Container::create(&root, s).unwrap();
    c.start().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let rss = vm_rss_kib(c.state.shim_pid.unwrap());
    c.delete(true).unwrap();
    let (l1, m1) = summary("skiff", ours);
    let (l2, m2) = summary("crun", crun);
    let (l3, m3) = summary("runc", runc);
    let report = format!(
        "cycles: {n} (create+start+wait+delete of busybox `true`, sequential)\n\n| runtime | median ms | p99 ms |\n|---|---|---|\n{l1}\n{l2}\n{l3}\n\nskiff phases (median ms: create, start, wait, delete): {}\nskiff/crun median ratio: {:.2}; skiff/runc: {:.2}\nidle shim RSS: {rss} KiB (shim binary: {})\n",
        phase_medians.join(", "),
        m1.as_secs_f64() / m2.as_secs_f64(),
        m1.as_secs_f64() / m3.as_secs_f64(),
        root.shim.program.display()
    );
    println!("{report}");
    if let Some(out) = std::env::var_os("SKIFF_BENCH_OUT") {
        std::fs::write(out, &report).unwrap();
    }
}
