//! The seam between container setup logic and the kernel: every syscall the runtime makes
//! while building a container goes through [`Syscall`], so plans are testable without root.

mod linux;
mod recording;

pub use linux::{LinuxSyscall, execve};
pub use recording::{Call, RecordingSyscall};

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// A failed syscall, with the operation and the object it acted on.
#[derive(Debug, thiserror::Error)]
#[error("{op} {target}: {source}")]
pub struct SyscallError {
    /// The operation, e.g. `mount`.
    pub op: &'static str,
    /// What it acted on (a path, a namespace, a value).
    pub target: String,
    /// The kernel's answer.
    #[source]
    pub source: std::io::Error,
}

impl SyscallError {
    /// Builds an error from an errno.
    pub fn errno(
        op: &'static str,
        target: impl std::fmt::Display,
        errno: nix::errno::Errno,
    ) -> Self {
        Self {
            op,
            target: target.to_string(),
            source: std::io::Error::from_raw_os_error(errno as i32),
        }
    }
    /// Builds an error from an io error.
    pub fn io(op: &'static str, target: impl std::fmt::Display, source: std::io::Error) -> Self {
        Self {
            op,
            target: target.to_string(),
            source,
        }
    }
}

/// Result of a syscall through the seam.
pub type Result<T> = std::result::Result<T, SyscallError>;

/// A resource limit (`setrlimit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rlimit {
    /// `RLIMIT_*` number.
    pub resource: u32,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Kind of a device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A character device.
    Char,
    /// A block device.
    Block,
}

/// The syscalls container setup needs. [`LinuxSyscall`] is the real one,
/// [`RecordingSyscall`] records calls for tests.
pub trait Syscall {
    /// `mount(2)`.
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()>;
    /// `umount2(2)`.
    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()>;
    /// `pivot_root(2)`.
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()>;
    /// `unshare(2)`.
    fn unshare(&self, flags: CloneFlags) -> Result<()>;
    /// `setns(2)` on the namespace file at `path`.
    fn setns(&self, path: &Path, nstype: CloneFlags) -> Result<()>;
    /// `sethostname(2)`.
    fn sethostname(&self, name: &str) -> Result<()>;
    /// `chdir(2)`.
    fn chdir(&self, path: &Path) -> Result<()>;
    /// `mkdir -p` with the given mode for new directories.
    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()>;
    /// Creates an empty file if missing (bind-mount target for a file).
    fn touch(&self, path: &Path) -> Result<()>;
    /// `mknod(2)`.
    fn mknod(&self, path: &Path, kind: DeviceKind, mode: u32, major: u64, minor: u64)
    -> Result<()>;
    /// `symlink(2)`.
    fn symlink(&self, target: &Path, link: &Path) -> Result<()>;
    /// `chown(2)` (no-follow).
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()>;
    /// `setrlimit(2)`.
    fn set_rlimit(&self, limit: Rlimit) -> Result<()>;
    /// `setgroups(2)`.
    fn set_groups(&self, gids: &[u32]) -> Result<()>;
    /// `setresgid` then `setresuid`.
    fn set_ids(&self, uid: u32, gid: u32) -> Result<()>;
    /// Drops every capability not in `keep` from the bounding set.
    fn limit_bounding_caps(&self, keep: &[caps::Capability]) -> Result<()>;
    /// Sets effective, permitted and inheritable capabilities to exactly `caps`.
    fn set_caps(&self, caps: &[caps::Capability]) -> Result<()>;
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    fn set_no_new_privs(&self) -> Result<()>;
    /// Installs a seccomp BPF program on the calling thread.
    fn apply_seccomp(&self, program: &[seccompiler::sock_filter]) -> Result<()>;
    /// Writes `contents` to an existing file (`/proc/<pid>/uid_map`, cgroup files).
    fn write_file(&self, path: &Path, contents: &str) -> Result<()>;
    /// Whether a path exists (no-follow).
    fn exists(&self, path: &Path) -> bool;
}

/// Joins `rel` (absolute inside the container) onto `root` without letting `..` escape.
pub fn join_in_root(root: &Path, rel: &Path) -> PathBuf {
    let mut out = root.to_path_buf();
    for comp in rel.components() {
        match comp {
            std::path::Component::Normal(c) => out.push(c),
            std::path::Component::ParentDir if out != root => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}
