//! `GET /stats/summary`: CPU and memory of the node (from `/proc`) and of every pod and
//! container (from the runtime's cgroup stats), in the kubelet's Summary shape.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use skiff_runtime::container::Status;

use super::{HttpError, NodeState};

/// The previous CPU reading per key, so `usageNanoCores` is a rate between requests.
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
}

/// Total busy CPU time of the machine in nanoseconds, from the `cpu` line of `/proc/stat`.
pub fn parse_proc_stat(stat: &str, ticks_per_second: u64) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let busy: u64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| !matches!(i, 3 | 4) && *i < 8)
        .map(|(_, v)| v)
        .sum();
    Some(busy * (1_000_000_000 / ticks_per_second.max(1)))
}

/// (total, available) bytes from `/proc/meminfo`.
pub fn parse_meminfo(meminfo: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

fn cpu_json(time: &str, usage_ns: u64, rate: Option<u64>) -> Value {
    let mut v = json!({"time": time, "usageCoreNanoSeconds": usage_ns});
    if let Some(r) = rate {
        v["usageNanoCores"] = json!(r);
    }
    v
}

fn node_stats(state: &NodeState, time: &str, now: Instant) -> Value {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    let mut node = json!({"nodeName": &*state.node_name});
    if let Some(cpu) = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| parse_proc_stat(&s, ticks))
    {
        node["cpu"] = cpu_json(time, cpu, state.cpu_samples.rate("", now, cpu));
    }
    if let Some((total, available)) = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| parse_meminfo(&s))
    {
        let used = total.saturating_sub(available);
        node["memory"] = json!({"time": time, "availableBytes": available, "usageBytes": used, "workingSetBytes": used});
    }
    node
}

/// The summary handler.
pub async fn summary(State(state): State<NodeState>) -> Result<Json<Value>, HttpError> {
    let runtime = state.lookup.runtime();
    let now = Instant::now();
    let time = jiff::Timestamp::now().to_string();
    let sandboxes = runtime
        .list_pod_sandboxes()
        .await
        .map_err(|e| HttpError::internal(format!("list pod sandboxes: {e}")))?;
    let containers = runtime
        .list_containers()
        .await
        .map_err(|e| HttpError::internal(format!("list containers: {e}")))?;
    let mut pods = Vec::new();
    for sb in &sandboxes {
        let (mut cpu_total, mut mem_total, mut ws_total) = (0u64, 0u64, 0u64);
        let mut entries = Vec::new();
        for c in containers
            .iter()
            .filter(|c| c.sandbox_id == sb.id && c.status == Status::Running)
        {
            let Ok(s) = runtime.container_stats(&c.id).await else {
                continue;
            };
            cpu_total += s.cpu_usage_ns;
            mem_total += s.memory_usage;
            ws_total += s.memory_working_set;
            entries.push(json!({
                "name": c.name,
                "startTime": c.started_at.map(|t| t.to_string()),
                "cpu": cpu_json(&time, s.cpu_usage_ns, state.cpu_samples.rate(&c.id, now, s.cpu_usage_ns)),
                "memory": {"time": time, "usageBytes": s.memory_usage, "workingSetBytes": s.memory_working_set},
            }));
        }
        pods.push(json!({
            "podRef": {"name": sb.config.name, "namespace": sb.config.namespace, "uid": sb.config.uid},
            "startTime": sb.created_at.to_string(),
            "containers": entries,
            "cpu": cpu_json(&time, cpu_total, state.cpu_samples.rate(&sb.id, now, cpu_total)),
            "memory": {"time": time, "usageBytes": mem_total, "workingSetBytes": ws_total},
        }));
    }
    Ok(Json(
        json!({"node": node_stats(&state, &time, now), "pods": pods}),
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reads_proc_files() {
        let stat = "cpu  100 20 30 1000 50 5 5 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n";
        assert_eq!(parse_proc_stat(stat, 100), Some(160 * 10_000_000));
        let mem = "MemTotal:       16000 kB\nMemFree:  100 kB\nMemAvailable:   4000 kB\n";
        assert_eq!(parse_meminfo(mem), Some((16000 * 1024, 4000 * 1024)));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }

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
    }
}
