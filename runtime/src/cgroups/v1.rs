//! cgroup v1: one directory per controller hierarchy (`cpu`, `cpuacct`, `memory`, `pids`,
//! `devices`), each written through its own small `apply`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    CgroupManager, CgroupStats, DEFAULT_DEVICE_RULES, Resources, Result, apply_pids, io_err,
    kill_and_rmdir, parse_procs, read, read_keyed, write,
};

/// A v1 cgroup: controller name → directory.
#[derive(Debug, Clone)]
pub struct V1Cgroup {
    dirs: BTreeMap<String, PathBuf>,
}

impl V1Cgroup {
    /// A cgroup at these per-controller directories.
    pub fn new(dirs: BTreeMap<String, PathBuf>) -> Self {
        Self { dirs }
    }
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs.get(controller).map(PathBuf::as_path)
    }
}

fn apply_cpu(dir: &Path, r: &Resources) -> Result<()> {
    if let Some(shares) = r.cpu_shares {
        write(&dir.join("cpu.shares"), &shares.to_string())?;
    }
    if let Some(quota) = r.cpu_quota_us {
        write(
            &dir.join("cpu.cfs_period_us"),
            &r.cpu_period_us.unwrap_or(super::CPU_PERIOD_US).to_string(),
        )?;
        write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
    }
    Ok(())
}

fn apply_memory(dir: &Path, r: &Resources) -> Result<()> {
    if let Some(limit) = r.memory_limit {
        write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
        // Without this the limit only moves pages to swap instead of OOM-killing.
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            write(&memsw, &limit.to_string())?;
        }
    }
    Ok(())
}

fn apply_devices(dir: &Path, r: &Resources) -> Result<()> {
    if r.restrict_devices {
        write(&dir.join("devices.deny"), "a")?;
        for rule in DEFAULT_DEVICE_RULES {
            write(&dir.join("devices.allow"), rule)?;
        }
    }
    Ok(())
}

impl CgroupManager for V1Cgroup {
    fn create(&self) -> Result<()> {
        for dir in self.dirs.values() {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        Ok(())
    }

    fn apply(&self, r: &Resources) -> Result<()> {
        if let Some(d) = self.dir("cpu") {
            apply_cpu(d, r)?;
        }
        if let Some(d) = self.dir("memory") {
            apply_memory(d, r)?;
        }
        if let Some(d) = self.dir("pids") {
            apply_pids(d, r)?;
        }
        if let Some(d) = self.dir("devices") {
            apply_devices(d, r)?;
        }
        Ok(())
    }

    fn add_process(&self, pid: i32) -> Result<()> {
        for dir in self.dirs.values() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn processes(&self) -> Result<Vec<i32>> {
        let mut all = Vec::new();
        for dir in self.dirs.values() {
            all.extend(parse_procs(&dir.join("cgroup.procs"))?);
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    fn oom_kills(&self) -> Result<u64> {
        match self.dir("memory") {
            Some(d) => read_keyed(&d.join("memory.oom_control"), "oom_kill"),
            None => Ok(0),
        }
    }

    fn stats(&self) -> Result<CgroupStats> {
        let mut s = CgroupStats::default();
        if let Some(d) = self.dir("cpuacct") {
            s.cpu_usage_ns = read(&d.join("cpuacct.usage"))?.trim().parse().unwrap_or(0);
        }
        if let Some(d) = self.dir("memory") {
            s.memory_usage = read(&d.join("memory.usage_in_bytes"))?
                .trim()
                .parse()
                .unwrap_or(0);
            let stat = d.join("memory.stat");
            let inactive = read_keyed(&stat, "total_inactive_file").unwrap_or(0);
            s.memory_working_set = super::working_set(s.memory_usage, inactive);
            s.memory_rss = read_keyed(&stat, "total_rss").unwrap_or(0);
            s.page_faults = read_keyed(&stat, "total_pgfault").unwrap_or(0);
            s.major_page_faults = read_keyed(&stat, "total_pgmajfault").unwrap_or(0);
        }
        if let Some(d) = self.dir("pids") {
            s.pids = read(&d.join("pids.current"))?.trim().parse().unwrap_or(0);
        }
        Ok(s)
    }

    fn delete(&self) -> Result<()> {
        for dir in self.dirs.values() {
            kill_and_rmdir(dir, &|| self.processes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (tempfile::TempDir, V1Cgroup) {
        let tmp = tempfile::tempdir().unwrap();
        let mut dirs = BTreeMap::new();
        for c in ["cpu", "cpuacct", "memory", "pids", "devices"] {
            let d = tmp.path().join(c).join("pod").join("ctr");
            std::fs::create_dir_all(&d).unwrap();
            dirs.insert(c.to_string(), d);
        }
        (tmp, V1Cgroup::new(dirs))
    }

    #[test]
    fn writes_limits_into_each_controller() {
        let (tmp, cg) = fixture();
        let r = Resources {
            cpu_shares: Some(512),
            cpu_quota_us: Some(50_000),
            cpu_period_us: Some(100_000),
            memory_limit: Some(1 << 20),
            pids_limit: Some(10),
            restrict_devices: true,
        };
        cg.apply(&r).unwrap();
        let f = |p: &str| std::fs::read_to_string(tmp.path().join(p)).unwrap();
        assert_eq!(f("cpu/pod/ctr/cpu.shares"), "512");
        assert_eq!(f("cpu/pod/ctr/cpu.cfs_quota_us"), "50000");
        assert_eq!(f("memory/pod/ctr/memory.limit_in_bytes"), "1048576");
        assert_eq!(f("pids/pod/ctr/pids.max"), "10");
        // Files are plain here, so only the last allow rule remains.
        assert_eq!(f("devices/pod/ctr/devices.deny"), "a");
    }

    #[test]
    fn reads_stats_and_oom_count() {
        let (tmp, cg) = fixture();
        let w = |p: &str, v: &str| std::fs::write(tmp.path().join(p), v).unwrap();
        w("cpuacct/pod/ctr/cpuacct.usage", "123456\n");
        w("memory/pod/ctr/memory.usage_in_bytes", "1000\n");
        w(
            "memory/pod/ctr/memory.stat",
            "cache 5\ntotal_inactive_file 300\n",
        );
        w(
            "memory/pod/ctr/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        w("pids/pod/ctr/pids.current", "3\n");
        let s = cg.stats().unwrap();
        assert_eq!(s.cpu_usage_ns, 123456);
        assert_eq!(s.memory_working_set, 700);
        assert_eq!(s.pids, 3);
        assert_eq!(cg.oom_kills().unwrap(), 2);
    }

    #[test]
    fn stats_from_fixture_files_with_the_working_set_rule() {
        let (tmp, cg) = fixture();
        let ctr = |c: &str| tmp.path().join(c).join("pod/ctr");
        std::fs::write(ctr("cpuacct").join("cpuacct.usage"), "123456789\n").unwrap();
        std::fs::write(ctr("memory").join("memory.usage_in_bytes"), "10000\n").unwrap();
        std::fs::write(
            ctr("memory").join("memory.stat"),
            "cache 9\nrss 8\ninactive_file 7\ntotal_rss 6000\ntotal_inactive_file 4000\ntotal_pgfault 55\ntotal_pgmajfault 2\n",
        )
        .unwrap();
        std::fs::write(ctr("pids").join("pids.current"), "3\n").unwrap();
        let s = cg.stats().unwrap();
        assert_eq!(s.cpu_usage_ns, 123_456_789);
        assert_eq!((s.memory_usage, s.memory_working_set), (10_000, 6_000));
        assert_eq!(
            (s.memory_rss, s.page_faults, s.major_page_faults),
            (6000, 55, 2)
        );
        assert_eq!(s.pids, 3);
        // More inactive cache than usage (the kernel counts them apart): floored at 0.
        std::fs::write(
            ctr("memory").join("memory.stat"),
            "total_inactive_file 20000\n",
        )
        .unwrap();
        assert_eq!(cg.stats().unwrap().memory_working_set, 0);
    }
}
