//! Namespaces kept alive by a bind mount of their nsfs file (no pause process): a helper
//! thread unshares, optionally sets the hostname, and binds `/proc/thread-self/ns/<kind>`
//! onto the target file.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use super::NetworkError;

/// Namespace kinds a sandbox pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsKind {
    /// Network.
    Net,
    /// Hostname.
    Uts,
    /// SysV IPC and POSIX message queues.
    Ipc,
}

impl NsKind {
    fn flag(self) -> CloneFlags {
        match self {
            Self::Net => CloneFlags::CLONE_NEWNET,
            Self::Uts => CloneFlags::CLONE_NEWUTS,
            Self::Ipc => CloneFlags::CLONE_NEWIPC,
        }
    }
    /// The `/proc/*/ns/` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Net => "net",
            Self::Uts => "uts",
            Self::Ipc => "ipc",
        }
    }
}

/// Creates a namespace of `kind` pinned at `target` (a new empty file).
pub fn create(target: &Path, kind: NsKind, hostname: Option<&str>) -> Result<(), NetworkError> {
    let err = |op: &str, e: String| NetworkError::Namespace {
        path: target.to_path_buf(),
        message: format!("{op}: {e}"),
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| err("mkdir", e.to_string()))?;
    }
    std::fs::File::create(target).map_err(|e| err("create", e.to_string()))?;
    let target_owned: PathBuf = target.to_path_buf();
    let hostname = hostname.map(str::to_string);
    // unshare affects only this thread, which ends right after: the agent keeps its own
    // namespaces.
    let made = std::thread::spawn(move || -> Result<(), String> {
        nix::sched::unshare(kind.flag()).map_err(|e| format!("unshare: {e}"))?;
        if let Some(h) = hostname {
            nix::unistd::sethostname(h).map_err(|e| format!("sethostname: {e}"))?;
        }
        let src = PathBuf::from(format!("/proc/thread-self/ns/{}", kind.name()));
        nix::mount::mount(
            Some(&src),
            &target_owned,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind mount: {e}"))
    })
    .join()
    .unwrap_or_else(|_| Err("namespace thread panicked".into()));
    if let Err(e) = made {
        let _ = std::fs::remove_file(target);
        return Err(err("pin", e));
    }
    Ok(())
}

/// Unpins and removes a namespace file; missing is fine.
pub fn remove(target: &Path) -> Result<(), NetworkError> {
    match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(NetworkError::Namespace {
                path: target.to_path_buf(),
                message: format!("umount: {e}"),
            });
        }
    }
    match std::fs::remove_file(target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetworkError::Namespace {
            path: target.to_path_buf(),
            message: format!("remove: {e}"),
        }),
    }
}

/// Whether `path` is a mounted namespace file (nsfs), i.e. still pinned.
pub fn is_pinned(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}
