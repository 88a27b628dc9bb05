//! The `skiff server` a benchmark measures (started with the e2e harness's [`Proc`], so it
//! is stopped by its own PID), an admin client for it, and process memory and CPU time
//! read from `/proc`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::Api;
use skiff_e2e::{Proc, free_port, kube_config};

use crate::runtime::{Memory, parse_smaps_rollup};

/// A `skiff server` child process and its admin kubeconfig.
pub struct Server {
    /// The process.
    pub proc: Proc,
    /// `<data-dir>/admin.kubeconfig`.
    pub kubeconfig: PathBuf,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// Starts `skiff server` on loopback with its data in `<dir>/server`, its log in
/// `<dir>/server.log` and `extra` flags, and waits until it serves.
pub async fn start_server(dir: &Path, extra: &[String]) -> Result<(Server, kube::Client)> {
    let data = dir.join("server");
    let mut args: Vec<String> = [
        "server",
        "--bind-address",
        "127.0.0.1",
        "--log-level",
        "warn",
        "--data-dir",
    ]
    .map(String::from)
    .into();
    args.push(data.display().to_string());
    args.extend(["--secure-port".into(), free_port().to_string()]);
    args.extend(extra.iter().cloned());
    let mut server = Server {
        proc: Proc::spawn_skiff("skiff server", &args, &dir.join("server.log"))?
            .term_on_drop(Duration::from_secs(10)),
        kubeconfig: data.join("admin.kubeconfig"),
        data_dir: data,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if server.kubeconfig.exists()
            && let Ok(cfg) = kube_config(&server.kubeconfig).await
            && let Ok(client) = kube::Client::try_from(cfg)
        {
            let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
            if ns.get("default").await.is_ok() {
                return Ok((server, client));
            }
        }
        if server.proc.exited() {
            bail!("skiff server exited: {}", server.proc.log_tail(2000));
        }
        if Instant::now() > deadline {
            bail!("skiff server did not start: {}", server.proc.log_tail(2000));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `VmRSS` of a process in KiB.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The 1-minute load average (the machine is shared; figures taken under load say so).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command (which may contain spaces): state is field 3, utime 14,
    // stime 15; in clock ticks, which Linux reports at 100 per second to user space.
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, r)| r.split_whitespace().collect());
    let tick = |i: usize| rest.get(i).and_then(|v| v.parse::<f64>().ok());
    match (tick(11), tick(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// `VmRSS` of a process in MiB (NaN when it cannot be read).
pub fn rss_mib(pid: u32) -> f64 {
    vm_rss_kib(pid).map_or(f64::NAN, |kb| kb as f64 / 1024.0)
}

/// A process's `smaps_rollup`.
pub fn smaps(pid: u32) -> Result<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .with_context(|| format!("smaps_rollup of {pid}"))?;
    Ok(parse_smaps_rollup(&text))
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_memory() {
        let rss = vm_rss_kib(std::process::id()).expect("VmRSS");
        let m = smaps(std::process::id()).expect("smaps_rollup");
        assert!(rss > 0 && m.rss > 0 && m.pss <= m.rss, "{rss} {m:?}");
        let before = cpu_seconds(std::process::id());
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let used = cpu_seconds(std::process::id()) - before;
        assert!(
            used > 0.1 && used < 5.0,
            "{used} s for 300 ms of spinning ({x})"
        );
    }
}
