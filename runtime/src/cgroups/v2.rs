//! cgroup v2: one unified directory; controllers are delegated down from `base` through
//! `cgroup.subtree_control`.

use std::path::{Path, PathBuf};

use super::{
    CgroupManager, CgroupStats, Resources, Result, apply_pids, io_err, kill_and_rmdir, parse_procs,
    read, read_keyed, shares_to_weight, write,
};

/// A v2 cgroup directory under a delegated base.
#[derive(Debug, Clone)]
pub struct V2Cgroup {
    dir: PathBuf,
    base: PathBuf,
}

/// Controllers the runtime uses.
const CONTROLLERS: &[&str] = &["cpu", "memory", "pids"];

impl V2Cgroup {
    /// A cgroup at `dir`; controllers are enabled from `base` downwards.
    pub fn new(dir: PathBuf, base: PathBuf) -> Self {
        Self { dir, base }
    }

    /// Enables our controllers in every ancestor from `base` to the parent of `dir`.
    fn delegate(&self) -> Result<()> {
        let Ok(rel) = self.dir.strip_prefix(&self.base) else {
            return Ok(());
        };
        let mut cur = self.base.clone();
        let parts: Vec<_> = rel.components().collect();
        for part in parts
            .iter()
            .take(parts.len().saturating_sub(1))
            .map(Some)
            .chain([None])
        {
            enable_controllers(&cur)?;
            match part {
                Some(p) => cur.push(p),
                None => break,
            }
        }
        Ok(())
    }
}

fn enable_controllers(dir: &Path) -> Result<()> {
    let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<String> = CONTROLLERS
        .iter()
        .filter(|c| available.split_whitespace().any(|a| a == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    write(&dir.join("cgroup.subtree_control"), &wanted.join(" "))
}

fn apply_cpu(dir: &Path, r: &Resources) -> Result<()> {
    if let Some(shares) = r.cpu_shares {
        write(
            &dir.join("cpu.weight"),
            &shares_to_weight(shares).to_string(),
        )?;
    }
    if let Some(quota) = r.cpu_quota_us {
        let period = r.cpu_period_us.unwrap_or(super::CPU_PERIOD_US);
        let q = if quota <= 0 {
            "max".to_string()
        } else {
            quota.to_string()
        };
        write(&dir.join("cpu.max"), &format!("{q} {period}"))?;
    }
    Ok(())
}

fn apply_memory(dir: &Path, r: &Resources) -> Result<()> {
    if let Some(limit) = r.memory_limit {
        write(&dir.join("memory.max"), &limit.to_string())?;
        let swap = dir.join("memory.swap.max");
        if swap.exists() {
            write(&swap, "0")?;
        }
    }
    Ok(())
}

impl CgroupManager for V2Cgroup {
    fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        self.delegate()
    }

    fn apply(&self, r: &Resources) -> Result<()> {
        // Device rules on v2 need an eBPF program; the bounded capability set and the
        // minimal /dev (no CAP_MKNOD use outside it) are the confinement there.
        apply_cpu(&self.dir, r)?;
        apply_memory(&self.dir, r)?;
        apply_pids(&self.dir, r)
    }

    fn add_process(&self, pid: i32) -> Result<()> {
        write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    fn processes(&self) -> Result<Vec<i32>> {
        parse_procs(&self.dir.join("cgroup.procs"))
    }

    fn oom_kills(&self) -> Result<u64> {
        let events = self.dir.join("memory.events");
        if !events.exists() {
            return Ok(0);
        }
        read_keyed(&events, "oom_kill")
    }

    fn stats(&self) -> Result<CgroupStats> {
        let mut s = CgroupStats::default();
        let cpu = self.dir.join("cpu.stat");
        if cpu.exists() {
            s.cpu_usage_ns = read_keyed(&cpu, "usage_usec")? * 1000;
        }
        let current = self.dir.join("memory.current");
        if current.exists() {
            s.memory_usage = read(&current)?.trim().parse().unwrap_or(0);
            let stat = self.dir.join("memory.stat");
            let inactive = read_keyed(&stat, "inactive_file").unwrap_or(0);
            s.memory_working_set = super::working_set(s.memory_usage, inactive);
            s.memory_rss = read_keyed(&stat, "anon").unwrap_or(0);
            s.page_faults = read_keyed(&stat, "pgfault").unwrap_or(0);
            s.major_page_faults = read_keyed(&stat, "pgmajfault").unwrap_or(0);
        }
        let pids = self.dir.join("pids.current");
        if pids.exists() {
            s.pids = read(&pids)?.trim().parse().unwrap_or(0);
        }
        Ok(s)
    }

    fn delete(&self) -> Result<()> {
        // cgroup.kill (5.14+) kills the whole subtree at once.
        let kill = self.dir.join("cgroup.kill");
        if kill.exists() {
            let _ = write(&kill, "1");
        }
        kill_and_rmdir(&self.dir, &|| self.processes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake unified tree: base offers cpu, memory, pids and io.
    fn fixture() -> (tempfile::TempDir, V2Cgroup) {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("agent");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(
            base.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let dir = base.join("pod1").join("ctr1");
        (tmp, V2Cgroup::new(dir, base))
    }

    #[test]
    fn create_delegates_controllers_down_to_the_parent() {
        let (tmp, cg) = fixture();
        // The kernel fills cgroup.controllers of new children; the fixture does it by hand.
        std::fs::create_dir_all(tmp.path().join("agent/pod1")).unwrap();
        std::fs::write(
            tmp.path().join("agent/pod1/cgroup.controllers"),
            "cpu memory pids\n",
        )
        .unwrap();
        cg.create().unwrap();
        let f = |p: &str| std::fs::read_to_string(tmp.path().join(p)).unwrap();
        assert_eq!(f("agent/cgroup.subtree_control"), "+cpu +memory +pids");
        assert_eq!(f("agent/pod1/cgroup.subtree_control"), "+cpu +memory +pids");
        assert!(
            !tmp.path()
                .join("agent/pod1/ctr1/cgroup.subtree_control")
                .exists()
        );
    }

    #[test]
    fn writes_v2_limits() {
        let (tmp, cg) = fixture();
        cg.create().unwrap();
        cg.apply(&Resources {
            cpu_shares: Some(1024),
            cpu_quota_us: Some(25_000),
            cpu_period_us: None,
            memory_limit: Some(8 << 20),
            pids_limit: Some(0),
            restrict_devices: true,
        })
        .unwrap();
        let f =
            |p: &str| std::fs::read_to_string(tmp.path().join("agent/pod1/ctr1").join(p)).unwrap();
        assert_eq!(f("cpu.weight"), "39");
        assert_eq!(f("cpu.max"), "25000 100000");
        assert_eq!(f("memory.max"), "8388608");
        assert_eq!(f("pids.max"), "max");
    }

    #[test]
    fn stats_and_oom_from_fixture_files() {
        let (tmp, cg) = fixture();
        cg.create().unwrap();
        let d = tmp.path().join("agent/pod1/ctr1");
        std::fs::write(d.join("cpu.stat"), "usage_usec 250\nuser_usec 200\n").unwrap();
        std::fs::write(d.join("memory.current"), "4096\n").unwrap();
        std::fs::write(d.join("memory.stat"), "anon 1\ninactive_file 1024\n").unwrap();
        std::fs::write(d.join("memory.events"), "low 0\noom 1\noom_kill 1\n").unwrap();
        let s = cg.stats().unwrap();
        assert_eq!(s.cpu_usage_ns, 250_000);
        assert_eq!(s.memory_working_set, 3072);
        assert_eq!(s.memory_rss, 1);
        assert_eq!(cg.oom_kills().unwrap(), 1);
        // delete on a fixture: files inside keep rmdir failing, so clear them first.
        for f in ["cpu.stat", "memory.current", "memory.stat", "memory.events"] {
            std::fs::remove_file(d.join(f)).unwrap();
        }
        cg.delete().unwrap();
        assert!(!d.exists());
    }
}
