//! The node's own figures from the host: busy CPU time from `/proc/stat` and the memory
//! working set from `/proc/meminfo`, computed as the kubelet does for the root cgroup
//! (usage minus inactive file cache, usage being everything not free).

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

/// The node's memory figures, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostMemory {
    /// `MemTotal`.
    pub capacity: u64,
    /// Everything not free (`MemTotal - MemFree`), as the root cgroup counts usage.
    pub usage: u64,
    /// Usage minus `Inactive(file)`, floored at 0.
    pub working_set: u64,
    /// Capacity minus the working set, as the kubelet reports `availableBytes`.
    pub available: u64,
}

/// Reads `/proc/meminfo`.
pub fn parse_meminfo(meminfo: &str) -> Option<HostMemory> {
    let field = |name: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    let capacity = field("MemTotal:")?;
    let usage = capacity.saturating_sub(field("MemFree:")?);
    let working_set = skiff_runtime::cgroups::working_set(usage, field("Inactive(file):")?);
    Some(HostMemory {
        capacity,
        usage,
        working_set,
        available: capacity.saturating_sub(working_set),
    })
}

/// The machine's clock ticks per second (`USER_HZ`).
pub fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_files() {
        let stat = "cpu  100 20 30 1000 50 5 5 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n";
        assert_eq!(parse_proc_stat(stat, 100), Some(160 * 10_000_000));
        let mem = "MemTotal:       16000 kB\nMemFree:  6000 kB\nMemAvailable:   4000 kB\nInactive(file):  3000 kB\n";
        assert_eq!(
            parse_meminfo(mem),
            Some(HostMemory {
                capacity: 16000 * 1024,
                usage: 10000 * 1024,
                working_set: 7000 * 1024,
                available: 9000 * 1024,
            })
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }
}
