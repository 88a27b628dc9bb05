//! Resource statistics of the node, its pods and their containers: collected from the
//! runtime's cgroup readings (per container) and the host (`/proc`) into one [`Summary`],
//! which the node server renders as the Summary API (`/stats/summary`, [`summary`]) and
//! as Prometheus resource metrics (`/metrics/resource`, [`resource`]).

pub mod host;
pub mod resource;
pub mod summary;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use jiff::Timestamp;
use skiff_runtime::cgroups::CgroupStats;
use skiff_runtime::container::Status;
use skiff_runtime::pod::PodRuntime;

/// The previous CPU reading per key, so `usageNanoCores` is a rate between readings.
#[derive(Default)]
pub struct CpuSamples {
    last: Mutex<HashMap<String, (Instant, u64)>>,
}

impl CpuSamples {
    /// Records `usage_ns` for `key` at `now`; the rate in nanocores since the last reading.
    pub fn rate(&self, key: &str, now: Instant, usage_ns: u64) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let prev = last.insert(key.to_string(), (now, usage_ns));
        let (then, before) = prev?;
        let elapsed = now.duration_since(then).as_nanos();
        if elapsed == 0 || usage_ns < before {
            return None;
        }
        Some(((usage_ns - before) as u128 * 1_000_000_000 / elapsed) as u64)
    }

    /// Forgets every key `keep` refuses (containers and pods that are gone).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.retain(|k, _| keep(k));
    }
}

/// CPU and memory of one node, pod or container at `time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Figures {
    /// CPU time used, cumulative, in nanoseconds.
    pub cpu_ns: u64,
    /// CPU rate since the previous collection, in nanocores.
    pub nano_cores: Option<u64>,
    /// Memory usage in bytes.
    pub memory_usage: u64,
    /// Memory working set in bytes (usage minus inactive file cache).
    pub working_set: u64,
    /// Anonymous memory in bytes.
    pub rss: u64,
    /// Page faults.
    pub page_faults: u64,
    /// Major page faults.
    pub major_page_faults: u64,
}

impl Figures {
    fn from_cgroup(s: &CgroupStats) -> Self {
        Self {
            cpu_ns: s.cpu_usage_ns,
            nano_cores: None,
            memory_usage: s.memory_usage,
            working_set: s.memory_working_set,
            rss: s.memory_rss,
            page_faults: s.page_faults,
            major_page_faults: s.major_page_faults,
        }
    }

    fn add(&mut self, o: &Figures) {
        self.cpu_ns += o.cpu_ns;
        self.memory_usage += o.memory_usage;
        self.working_set += o.working_set;
        self.rss += o.rss;
        self.page_faults += o.page_faults;
        self.major_page_faults += o.major_page_faults;
    }
}

/// One running container's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStats {
    /// Container name.
    pub name: String,
    /// When it started.
    pub start_time: Option<Timestamp>,
    /// Its figures.
    pub figures: Figures,
}

/// One pod's figures: the sum of its running containers'.
#[derive(Debug, Clone, PartialEq)]
pub struct PodStats {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// When its sandbox was made.
    pub start_time: Timestamp,
    /// Running containers.
    pub containers: Vec<ContainerStats>,
    /// Totals.
    pub figures: Figures,
}

/// The node's memory capacity and availability besides its [`Figures`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStats {
    /// CPU and memory.
    pub figures: Figures,
    /// Bytes available (capacity minus working set).
    pub available: u64,
}

/// One collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// When it was taken.
    pub time: Timestamp,
    /// The node's own figures, when the host could be read.
    pub node: Option<NodeStats>,
    /// Every pod sandbox's.
    pub pods: Vec<PodStats>,
}

/// The host's figures (from `/proc`), with a CPU rate from `samples`.
pub fn host_stats(samples: &CpuSamples, now: Instant) -> Option<NodeStats> {
    let cpu = host::parse_proc_stat(
        &std::fs::read_to_string("/proc/stat").ok()?,
        host::ticks_per_second(),
    )?;
    let mem = host::parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)?;
    Some(NodeStats {
        figures: Figures {
            cpu_ns: cpu,
            nano_cores: samples.rate("", now, cpu),
            memory_usage: mem.usage,
            working_set: mem.working_set,
            ..Figures::default()
        },
        available: mem.available,
    })
}

/// Collects every running container's cgroup figures through the runtime; `node` is the
/// node's own (the host's, or a hollow node's made-up ones).
pub async fn collect(
    runtime: &dyn PodRuntime,
    samples: &CpuSamples,
    node: Option<NodeStats>,
    now: Instant,
) -> skiff_runtime::pod::Result<Summary> {
    let time = Timestamp::now();
    let sandboxes = runtime.list_pod_sandboxes().await?;
    let containers = runtime.list_containers().await?;
    let mut pods = Vec::new();
    for sb in &sandboxes {
        let mut total = Figures::default();
        let mut entries = Vec::new();
        for c in containers
            .iter()
            .filter(|c| c.sandbox_id == sb.id && c.status == Status::Running)
        {
            let Ok(s) = runtime.container_stats(&c.id).await else {
                continue;
            };
            let mut figures = Figures::from_cgroup(&s);
            figures.nano_cores = samples.rate(&c.id, now, figures.cpu_ns);
            total.add(&figures);
            entries.push(ContainerStats {
                name: c.name.clone(),
                start_time: c.started_at,
                figures,
            });
        }
        total.nano_cores = samples.rate(&sb.id, now, total.cpu_ns);
        pods.push(PodStats {
            namespace: sb.config.namespace.clone(),
            name: sb.config.name.clone(),
            uid: sb.config.uid.clone(),
            start_time: sb.created_at,
            containers: entries,
            figures: total,
        });
    }
    samples.retain(|k| {
        k.is_empty() || sandboxes.iter().any(|s| s.id == k) || containers.iter().any(|c| c.id == k)
    });
    Ok(Summary { time, node, pods })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn cpu_rate_needs_two_samples() {
        let s = CpuSamples::default();
        let t0 = Instant::now();
        assert_eq!(s.rate("c", t0, 1_000), None);
        // Half a core for two seconds.
        assert_eq!(
            s.rate("c", t0 + Duration::from_secs(2), 1_000 + 1_000_000_000),
            Some(500_000_000)
        );
        s.retain(|k| k != "c");
        assert_eq!(s.rate("c", t0 + Duration::from_secs(3), 5), None);
    }
}
