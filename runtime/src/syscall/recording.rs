//! A [`Syscall`] that records every call instead of making it, for tests of the mount and
//! namespace plans. It can be told to fail one operation to test error paths.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use super::{DeviceKind, Result, Rlimit, Syscall, SyscallError};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `mount`.
    Mount {
        /// Source.
        source: Option<PathBuf>,
        /// Target.
        target: PathBuf,
        /// Filesystem type.
        fstype: Option<String>,
        /// Flags.
        flags: MsFlags,
        /// Data string.
        data: Option<String>,
    },
    /// `umount2`.
    Umount(PathBuf, MntFlags),
    /// `pivot_root`.
    PivotRoot(PathBuf, PathBuf),
    /// `unshare`.
    Unshare(CloneFlags),
    /// `setns`.
    Setns(PathBuf, CloneFlags),
    /// `sethostname`.
    Hostname(String),
    /// `chdir`.
    Chdir(PathBuf),
    /// `mkdir -p`.
    Mkdir(PathBuf, u32),
    /// create empty file.
    Touch(PathBuf),
    /// `mknod`.
    Mknod(PathBuf, DeviceKind, u32, u64, u64),
    /// `symlink(target, link)`.
    Symlink(PathBuf, PathBuf),
    /// `chown`.
    Chown(PathBuf, u32, u32),
    /// `setrlimit`.
    Rlimit(Rlimit),
    /// `setgroups`.
    Groups(Vec<u32>),
    /// `setresuid`/`setresgid`.
    Ids(u32, u32),
    /// bounding set limited to these.
    BoundingCaps(Vec<caps::Capability>),
    /// capabilities set.
    Caps(Vec<caps::Capability>),
    /// `PR_SET_NO_NEW_PRIVS`.
    NoNewPrivs,
    /// seccomp program of this many instructions.
    Seccomp(usize),
    /// file write.
    Write(PathBuf, String),
}

/// Records calls; paths listed in `existing` answer `exists`; `fail` makes one op fail.
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    calls: RefCell<Vec<Call>>,
    /// Paths that `exists` reports as present.
    pub existing: HashSet<PathBuf>,
    /// An operation name (as in [`SyscallError::op`]) that fails with EPERM.
    pub fail: Option<&'static str>,
}

impl RecordingSyscall {
    /// A fresh recorder.
    pub fn new() -> Self {
        Self::default()
    }
    /// Everything recorded so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }
    /// Only the mounts, as (target, fstype, flags).
    pub fn mounts(&self) -> Vec<(PathBuf, Option<String>, MsFlags)> {
        self.calls
            .borrow()
            .iter()
            .filter_map(|c| match c {
                Call::Mount {
                    target,
                    fstype,
                    flags,
                    ..
                } => Some((target.clone(), fstype.clone(), *flags)),
                _ => None,
            })
            .collect()
    }
    fn record(&self, op: &'static str, call: Call) -> Result<()> {
        if self.fail == Some(op) {
            return Err(SyscallError::errno("fake", op, nix::errno::Errno::EPERM));
        }
        self.calls.borrow_mut().push(call);
        Ok(())
    }
}

impl Syscall for RecordingSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        self.record(
            "mount",
            Call::Mount {
                source: source.map(Path::to_path_buf),
                target: target.to_path_buf(),
                fstype: fstype.map(str::to_string),
                flags,
                data: data.map(str::to_string),
            },
        )
    }
    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()> {
        self.record("umount", Call::Umount(target.into(), flags))
    }
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()> {
        self.record(
            "pivot_root",
            Call::PivotRoot(new_root.into(), put_old.into()),
        )
    }
    fn unshare(&self, flags: CloneFlags) -> Result<()> {
        self.record("unshare", Call::Unshare(flags))
    }
    fn setns(&self, path: &Path, nstype: CloneFlags) -> Result<()> {
        self.record("setns", Call::Setns(path.into(), nstype))
    }
    fn sethostname(&self, name: &str) -> Result<()> {
        self.record("sethostname", Call::Hostname(name.into()))
    }
    fn chdir(&self, path: &Path) -> Result<()> {
        self.record("chdir", Call::Chdir(path.into()))
    }
    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()> {
        self.record("mkdir", Call::Mkdir(path.into(), mode))
    }
    fn touch(&self, path: &Path) -> Result<()> {
        self.record("touch", Call::Touch(path.into()))
    }
    fn mknod(
        &self,
        path: &Path,
        kind: DeviceKind,
        mode: u32,
        major: u64,
        minor: u64,
    ) -> Result<()> {
        self.record("mknod", Call::Mknod(path.into(), kind, mode, major, minor))
    }
    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        self.record("symlink", Call::Symlink(target.into(), link.into()))
    }
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
        self.record("chown", Call::Chown(path.into(), uid, gid))
    }
    fn set_rlimit(&self, limit: Rlimit) -> Result<()> {
        self.record("setrlimit", Call::Rlimit(limit))
    }
    fn set_groups(&self, gids: &[u32]) -> Result<()> {
        self.record("setgroups", Call::Groups(gids.to_vec()))
    }
    fn set_ids(&self, uid: u32, gid: u32) -> Result<()> {
        self.record("setid", Call::Ids(uid, gid))
    }
    fn limit_bounding_caps(&self, keep: &[caps::Capability]) -> Result<()> {
        self.record("capbset_drop", Call::BoundingCaps(keep.to_vec()))
    }
    fn set_caps(&self, caps: &[caps::Capability]) -> Result<()> {
        self.record("capset", Call::Caps(caps.to_vec()))
    }
    fn set_no_new_privs(&self) -> Result<()> {
        self.record("prctl", Call::NoNewPrivs)
    }
    fn apply_seccomp(&self, program: &[seccompiler::sock_filter]) -> Result<()> {
        self.record("seccomp", Call::Seccomp(program.len()))
    }
    fn write_file(&self, path: &Path, contents: &str) -> Result<()> {
        self.record("write", Call::Write(path.into(), contents.into()))
    }
    fn exists(&self, path: &Path) -> bool {
        self.existing.contains(path)
    }
}
