//! cgroups v1 and v2 behind one [`CgroupManager`]: one cgroup per pod and one per container
//! under it, rooted in a subtree of the agent's own cgroup ([`CgroupLayout`]).

mod layout;
mod v1;
mod v2;

pub use layout::CgroupLayout;
pub use v1::V1Cgroup;
pub use v2::V2Cgroup;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A cgroup operation that failed, with the file it touched.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Reading or writing a control file failed.
    #[error("cgroup {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A control file had unexpected contents.
    #[error("cgroup {path}: cannot parse {what}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
    },
    /// No usable cgroup hierarchy was found.
    #[error("no cgroup hierarchy found: {0}")]
    NoHierarchy(String),
}

/// Result of a cgroup operation.
pub type Result<T> = std::result::Result<T, CgroupError>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(io_err(path))
}

/// `pids.max`, written the same way on v1 and v2 (`max` for no limit).
pub(crate) fn apply_pids(dir: &Path, r: &Resources) -> Result<()> {
    if let Some(max) = r.pids_limit {
        let v = if max <= 0 {
            "max".to_string()
        } else {
            max.to_string()
        };
        write(&dir.join("pids.max"), &v)?;
    }
    Ok(())
}

pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(io_err(path))
}

/// Reads `key value` lines (`memory.stat`, `cpu.stat`, `memory.events`).
pub(crate) fn read_keyed(path: &Path, key: &str) -> Result<u64> {
    let text = read(path)?;
    text.lines()
        .find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(key)).then(|| it.next().and_then(|v| v.parse().ok()))?
        })
        .ok_or(CgroupError::Parse {
            path: path.into(),
            what: "keyed value",
        })
}

/// Where one cgroup lives: resolved directories, so any process (the shim) can act on it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CgroupConfig {
    /// No cgroup (tests of the process path alone).
    #[default]
    None,
    /// cgroup v1: one directory per controller name.
    V1 {
        /// controller → directory.
        dirs: BTreeMap<String, PathBuf>,
    },
    /// cgroup v2: one directory; `base` is the delegated root above which nothing is touched.
    V2 {
        /// The cgroup directory.
        dir: PathBuf,
        /// Where controller delegation starts.
        base: PathBuf,
    },
}

/// Limits of a cgroup, in kernel units.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Resources {
    /// v1 `cpu.shares` (v2 weight is derived from it).
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period.
    pub cpu_quota_us: Option<i64>,
    /// CFS period in microseconds (default 100000).
    pub cpu_period_us: Option<u64>,
    /// Memory limit in bytes.
    pub memory_limit: Option<u64>,
    /// Maximum number of tasks.
    pub pids_limit: Option<i64>,
    /// Restrict devices to the default allow list.
    #[serde(default)]
    pub restrict_devices: bool,
}

/// Default CFS period.
pub const CPU_PERIOD_US: u64 = 100_000;

impl Resources {
    /// Kubernetes-style resources: CPU request/limit in millicores, memory limit in bytes.
    pub fn from_kubernetes(
        cpu_request_milli: Option<u64>,
        cpu_limit_milli: Option<u64>,
        memory_limit: Option<u64>,
    ) -> Self {
        // Kubernetes gives a container with a limit and no request the limit as request.
        let request = cpu_request_milli.or(cpu_limit_milli);
        Self {
            cpu_shares: request.map(milli_to_shares),
            cpu_quota_us: cpu_limit_milli.map(|m| (m * CPU_PERIOD_US / 1000).max(1000) as i64),
            cpu_period_us: cpu_limit_milli.map(|_| CPU_PERIOD_US),
            memory_limit,
            pids_limit: None,
            restrict_devices: true,
        }
    }
}

/// Kubernetes' `MilliCPUToShares`.
pub fn milli_to_shares(milli: u64) -> u64 {
    (milli * 1024 / 1000).max(2)
}

/// cgroup v2 `cpu.weight` from v1 shares (the formula runc and the kubelet use).
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// Usage figures for metrics.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct CgroupStats {
    /// Total CPU time in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory usage minus inactive file cache (what the kubelet evicts on).
    pub memory_working_set: u64,
    /// Raw memory usage.
    pub memory_usage: u64,
    /// Number of tasks.
    pub pids: u64,
    /// Anonymous memory (v1 `total_rss`, v2 `anon`).
    #[serde(default)]
    pub memory_rss: u64,
    /// Page faults (`pgfault`).
    #[serde(default)]
    pub page_faults: u64,
    /// Major page faults (`pgmajfault`).
    #[serde(default)]
    pub major_page_faults: u64,
}

/// Kubernetes' working set: usage minus inactive file cache, never below zero.
pub fn working_set(usage: u64, inactive_file: u64) -> u64 {
    usage.saturating_sub(inactive_file)
}

/// Device cgroup entries Docker allows by default (type major:minor access).
pub const DEFAULT_DEVICE_RULES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

/// One cgroup, on either hierarchy version.
pub trait CgroupManager: Send + Sync {
    /// Creates the cgroup (and missing parents); idempotent.
    fn create(&self) -> Result<()>;
    /// Writes the limits.
    fn apply(&self, resources: &Resources) -> Result<()>;
    /// Moves a process in.
    fn add_process(&self, pid: i32) -> Result<()>;
    /// Processes inside.
    fn processes(&self) -> Result<Vec<i32>>;
    /// How many times the kernel OOM-killed a process in it.
    fn oom_kills(&self) -> Result<u64>;
    /// Usage statistics.
    fn stats(&self) -> Result<CgroupStats>;
    /// Kills everything inside, then removes the cgroup; missing is fine.
    fn delete(&self) -> Result<()>;
}

/// The manager for a resolved cgroup config; `None` for [`CgroupConfig::None`].
pub fn manager(config: &CgroupConfig) -> Option<Box<dyn CgroupManager>> {
    match config {
        CgroupConfig::None => None,
        CgroupConfig::V1 { dirs } => Some(Box::new(V1Cgroup::new(dirs.clone()))),
        CgroupConfig::V2 { dir, base } => Some(Box::new(V2Cgroup::new(dir.clone(), base.clone()))),
    }
}

/// Kills every process listed, then retries `rmdir` until the kernel lets go.
pub(crate) fn kill_and_rmdir(dir: &Path, procs: &dyn Fn() -> Result<Vec<i32>>) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for attempt in 0..200 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt == 199 => return Err(io_err(dir)(e)),
            Err(_) => {
                for pid in procs().unwrap_or_default() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
    Ok(())
}

pub(crate) fn parse_procs(path: &Path) -> Result<Vec<i32>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_cpu_conversions() {
        assert_eq!(milli_to_shares(1000), 1024);
        assert_eq!(milli_to_shares(1), 2);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        let r = Resources::from_kubernetes(Some(250), Some(500), Some(64 << 20));
        assert_eq!(r.cpu_shares, Some(256));
        assert_eq!(r.cpu_quota_us, Some(50_000));
        assert_eq!(r.memory_limit, Some(64 << 20));
        let r = Resources::from_kubernetes(None, Some(2000), None);
        assert_eq!(r.cpu_shares, Some(2048));
    }
}
