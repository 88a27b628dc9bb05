//! Finds the cgroup hierarchies of this machine and the agent's own place in them, and
//! turns a relative cgroup name (`skiff/pod-1/ctr-2`) into resolved directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{CgroupConfig, CgroupError, Result};

/// v1 controllers the runtime uses.
pub const V1_CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids", "devices"];

/// The hierarchy in use and the base directory (the agent's cgroup plus a subtree name)
/// below which every pod and container cgroup is created.
#[derive(Debug, Clone, PartialEq)]
pub enum CgroupLayout {
    /// cgroup v1 (or the hybrid layout): base directory per controller.
    V1 {
        /// controller → base directory.
        bases: BTreeMap<String, PathBuf>,
    },
    /// Pure cgroup v2.
    V2 {
        /// Base directory.
        base: PathBuf,
        /// The agent's own cgroup directory (where delegation starts).
        own: PathBuf,
    },
}

impl CgroupLayout {
    /// Detects the layout of this machine, rooted at `subtree` under our own cgroup.
    pub fn detect(subtree: &str) -> Result<Self> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| CgroupError::NoHierarchy(e.to_string()))?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| CgroupError::NoHierarchy(e.to_string()))?;
        Self::from_tables(&mountinfo, &own, Path::new("/"), subtree)
    }

    /// Builds the layout from `/proc/self/mountinfo` and `/proc/self/cgroup` text; paths
    /// are re-rooted under `fs_root` (a fixture directory in tests).
    pub fn from_tables(mountinfo: &str, own: &str, fs_root: &Path, subtree: &str) -> Result<Self> {
        let mut v1_mounts: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
        let mut v2_mount = None;
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let l: Vec<&str> = left.split_whitespace().collect();
            let r: Vec<&str> = right.split_whitespace().collect();
            if l.len() < 5 || r.len() < 3 {
                continue;
            }
            let (root, point) = (l[3].to_string(), PathBuf::from(l[4]));
            match r[0] {
                "cgroup2" => v2_mount = Some((point, root)),
                "cgroup" => {
                    for opt in r[2].split(',') {
                        if V1_CONTROLLERS.contains(&opt) {
                            v1_mounts.insert(opt.to_string(), (point.clone(), root.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
        let mut own_v1: BTreeMap<String, String> = BTreeMap::new();
        let mut own_v2 = None;
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, ctrls, path) = match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), Some(c)) => (a, b, c),
                _ => continue,
            };
            if ctrls.is_empty() {
                own_v2 = Some(path.to_string());
            }
            for c in ctrls.split(',') {
                own_v1.insert(c.to_string(), path.to_string());
            }
        }
        let reroot = |p: &Path| fs_root.join(p.strip_prefix("/").unwrap_or(p));
        // Our path as seen inside a mount whose root may itself be a sub-cgroup.
        let place = |point: &Path, mount_root: &str, path: &str| {
            let rel = path.strip_prefix(mount_root).unwrap_or(path);
            reroot(point)
                .join(rel.trim_start_matches('/'))
                .join(subtree)
        };
        if v1_mounts.contains_key("memory") {
            let bases = v1_mounts
                .iter()
                .map(|(c, (point, root))| {
                    let own = own_v1.get(c).map(String::as_str).unwrap_or("/");
                    (c.clone(), place(point, root, own))
                })
                .collect();
            return Ok(Self::V1 { bases });
        }
        match (v2_mount, own_v2) {
            (Some((point, root)), Some(own)) => {
                let own_dir = place(&point, &root, &own);
                let own_dir = own_dir.parent().map(Path::to_path_buf).unwrap_or(own_dir);
                Ok(Self::V2 {
                    base: own_dir.join(subtree),
                    own: own_dir,
                })
            }
            _ => Err(CgroupError::NoHierarchy(
                "no memory controller mounted".into(),
            )),
        }
    }

    /// The cgroup at `rel` below the base (e.g. `pod-1` or `pod-1/ctr-2`).
    pub fn config_for(&self, rel: &str) -> CgroupConfig {
        match self {
            Self::V1 { bases } => CgroupConfig::V1 {
                dirs: bases
                    .iter()
                    .map(|(c, b)| (c.clone(), b.join(rel)))
                    .collect(),
            },
            // Processes may not live in the agent's own cgroup once controllers are
            // delegated below it on v2 ("no internal processes"), so delegation starts
            // at the subtree base, which holds no processes.
            Self::V2 { base, .. } => CgroupConfig::V2 {
                dir: base.join(rel),
                base: base.clone(),
            },
        }
    }

    /// Enables controllers on the v2 base (needs the agent cgroup to delegate them).
    pub fn prepare(&self) -> Result<()> {
        match self {
            Self::V1 { .. } => Ok(()),
            Self::V2 { base, .. } => {
                std::fs::create_dir_all(base).map_err(super::io_err(base))?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_OWN: &str = "8:pids:/\n4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    #[test]
    fn hybrid_machine_uses_v1_under_our_own_cgroups() {
        let l = CgroupLayout::from_tables(HYBRID, HYBRID_OWN, Path::new("/"), "skiff").unwrap();
        let CgroupLayout::V1 { bases } = &l else {
            panic!("{l:?}")
        };
        assert_eq!(
            bases["memory"],
            Path::new("/sys/fs/cgroup/memory/process_api/abc/skiff")
        );
        assert_eq!(bases["cpu"], Path::new("/sys/fs/cgroup/cpu/skiff"));
        assert!(!bases.contains_key("devices"));
        let CgroupConfig::V1 { dirs } = l.config_for("pod/c") else {
            panic!()
        };
        assert_eq!(dirs["pids"], Path::new("/sys/fs/cgroup/pids/skiff/pod/c"));
    }

    #[test]
    fn pure_v2_roots_below_the_agent_cgroup() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let own = "0::/system.slice/skiff.service\n";
        let l = CgroupLayout::from_tables(mi, own, Path::new("/fixture"), "pods").unwrap();
        assert_eq!(
            l,
            CgroupLayout::V2 {
                base: "/fixture/sys/fs/cgroup/system.slice/skiff.service/pods".into(),
                own: "/fixture/sys/fs/cgroup/system.slice/skiff.service".into(),
            }
        );
        let CgroupConfig::V2 { dir, .. } = l.config_for("p1") else {
            panic!()
        };
        assert!(dir.ends_with("skiff.service/pods/p1"));
    }

    #[test]
    fn no_hierarchy_is_an_error() {
        assert!(CgroupLayout::from_tables("", "", Path::new("/"), "x").is_err());
    }
}
