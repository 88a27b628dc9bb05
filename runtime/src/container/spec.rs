//! What a container is made of: the on-disk `config.json` the runtime writes at create and
//! the shim and the container's init process read.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroups::{CgroupConfig, Resources};
use crate::syscall::Rlimit;

/// A container's full configuration, fixed at create.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerSpec {
    /// Unique container id (a directory name).
    pub id: String,
    /// The prepared root filesystem directory (plain directory or overlay mount point).
    pub rootfs: PathBuf,
    /// Image layers, lowest first. When set, the root filesystem is an overlay of them at
    /// `<container dir>/rootfs` (made at create, removed at delete) and `rootfs` is that.
    #[serde(default)]
    pub layers: Vec<PathBuf>,
    /// Where the overlay of `layers` (its mount point, upper and work directories) is
    /// made: a directory on disk, so that container writes do not fill the state root's
    /// tmpfs. `None` puts it in the container directory.
    #[serde(default)]
    pub rootfs_dir: Option<PathBuf>,
    /// Mount the root filesystem read-only (`readOnlyRootFilesystem`).
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// The process to run.
    pub process: ProcessSpec,
    /// Hostname, set only when the container has its own UTS namespace.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Bind and tmpfs mounts, applied in order after the standard ones.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// Namespaces to join (from the pod sandbox) instead of creating.
    #[serde(default)]
    pub namespaces: NamespaceSpec,
    /// Where the cgroup lives and what it limits.
    pub cgroup: CgroupConfig,
    /// Limits applied to the container cgroup.
    #[serde(default)]
    pub resources: Resources,
    /// The CRI-format log file.
    pub log_path: PathBuf,
    /// Install the default seccomp filter.
    #[serde(default = "yes")]
    pub seccomp: bool,
    /// Extra capabilities beyond the default set (names like `CAP_NET_ADMIN`).
    #[serde(default)]
    pub add_capabilities: Vec<String>,
    /// Capabilities removed from the default set.
    #[serde(default)]
    pub drop_capabilities: Vec<String>,
    /// Free-form metadata (the pod runtime records sandbox id and container name here).
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// Run in a user namespace of its own with these ID mappings (uid 0 inside is then an
    /// unprivileged host uid). `None`: the host's user namespace.
    #[serde(default)]
    pub user_namespace: Option<IdMapping>,
    /// Whether the shim keeps stdin open and whether the process gets a terminal.
    #[serde(default)]
    pub stdio: StdioSpec,
}

impl ContainerSpec {
    /// The directory holding the overlay of `layers` for a container whose state lives in
    /// `container_dir`.
    pub fn overlay_dir(&self, container_dir: &Path) -> PathBuf {
        self.rootfs_dir
            .clone()
            .unwrap_or_else(|| container_dir.to_path_buf())
    }
}

/// The container's standard input and terminal, as the pod spec's `stdin`, `stdinOnce` and
/// `tty` ask. Without `stdin` the process reads `/dev/null`; with it the shim holds the
/// writing end (a pipe, or the terminal's master) and lets attach sessions write to it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct StdioSpec {
    /// Keep stdin open for attach.
    #[serde(default)]
    pub stdin: bool,
    /// Close stdin (the process reads EOF) when the first attach session that wrote it ends.
    #[serde(default)]
    pub stdin_once: bool,
    /// Run the process on a pseudo-terminal whose master the shim owns (stdout and stderr
    /// are then that terminal, logged as stdout).
    #[serde(default)]
    pub tty: bool,
}

/// One contiguous range of a user-namespace ID mapping: a line of `uid_map`/`gid_map`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdRange {
    /// First ID inside the container.
    pub container_id: u32,
    /// The host ID it maps to.
    pub host_id: u32,
    /// How many consecutive IDs.
    pub size: u32,
}

/// The uid and gid mappings of a container's user namespace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdMapping {
    /// uid ranges.
    pub uids: Vec<IdRange>,
    /// gid ranges.
    pub gids: Vec<IdRange>,
}

impl IdMapping {
    /// The same `size` IDs from `host_base` up as 0.. for both uids and gids (the usual
    /// per-pod range, e.g. 65536 IDs).
    pub fn shifted(host_base: u32, size: u32) -> Self {
        let r = vec![IdRange {
            container_id: 0,
            host_id: host_base,
            size,
        }];
        Self {
            uids: r.clone(),
            gids: r,
        }
    }

    /// The contents of a `uid_map`/`gid_map` file for `ranges` (the kernel wants it in
    /// one write).
    pub fn map_file(ranges: &[IdRange]) -> String {
        ranges
            .iter()
            .map(|r| format!("{} {} {}\n", r.container_id, r.host_id, r.size))
            .collect()
    }

    /// The host uid that container uid `uid` runs as, if mapped.
    pub fn host_uid(&self, uid: u32) -> Option<u32> {
        self.uids
            .iter()
            .find(|r| uid >= r.container_id && uid - r.container_id < r.size)
            .map(|r| r.host_id + (uid - r.container_id))
    }
}

fn yes() -> bool {
    true
}

/// The process started in the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ProcessSpec {
    /// argv; `args[0]` is looked up in `PATH` from `env` when it has no `/`.
    pub args: Vec<String>,
    /// `KEY=value` pairs.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory inside the container (created if missing).
    #[serde(default = "root_dir")]
    pub cwd: String,
    /// User and groups.
    #[serde(default)]
    pub user: User,
    /// Resource limits.
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
}

fn root_dir() -> String {
    "/".into()
}

/// Numeric user identity of a process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct User {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups.
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

/// A mount into the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountSpec {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    /// What to mount.
    pub kind: MountKind,
}

/// Kinds of container mounts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    /// Bind a host file or directory.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Read-only.
        #[serde(default)]
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Size limit in bytes (0 = kernel default).
        #[serde(default)]
        size: u64,
        /// Permission bits of the root.
        #[serde(default = "tmpfs_mode")]
        mode: u32,
    },
}

fn tmpfs_mode() -> u32 {
    0o1777
}

/// Namespace files (`/proc/<pid>/ns/*` or bind-mounted nsfs files) to join. A `None`
/// namespace is created fresh. Mount and PID namespaces are always new.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct NamespaceSpec {
    /// Network namespace.
    pub net: Option<PathBuf>,
    /// UTS namespace.
    pub uts: Option<PathBuf>,
    /// IPC namespace.
    pub ipc: Option<PathBuf>,
}

/// Default `PATH` when the image sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ProcessSpec {
    /// The `PATH` the process sees.
    pub fn path_var(&self) -> &str {
        self.env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps_render_and_translate() {
        let m = IdMapping {
            uids: vec![
                IdRange {
                    container_id: 0,
                    host_id: 100_000,
                    size: 1000,
                },
                IdRange {
                    container_id: 5000,
                    host_id: 7,
                    size: 2,
                },
            ],
            gids: vec![],
        };
        assert_eq!(IdMapping::map_file(&m.uids), "0 100000 1000\n5000 7 2\n");
        assert_eq!(m.host_uid(0), Some(100_000));
        assert_eq!(m.host_uid(999), Some(100_999));
        assert_eq!(m.host_uid(1000), None);
        assert_eq!(m.host_uid(5001), Some(8));
        assert_eq!(IdMapping::shifted(200_000, 65536).gids[0].host_id, 200_000);
    }
}
