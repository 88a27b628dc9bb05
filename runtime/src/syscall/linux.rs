//! The real [`Syscall`] implementation on Linux.

use std::ffi::CString;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};

use super::{DeviceKind, Result, Rlimit, Syscall, SyscallError};

/// Calls the kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

fn disp(p: &Path) -> std::path::Display<'_> {
    p.display()
}

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
            .map_err(|e| SyscallError::errno("mount", disp(target), e))
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()> {
        nix::mount::umount2(target, flags)
            .map_err(|e| SyscallError::errno("umount", disp(target), e))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
            .map_err(|e| SyscallError::errno("pivot_root", disp(new_root), e))
    }

    fn unshare(&self, flags: CloneFlags) -> Result<()> {
        nix::sched::unshare(flags)
            .map_err(|e| SyscallError::errno("unshare", format!("{flags:?}"), e))
    }

    fn setns(&self, path: &Path, nstype: CloneFlags) -> Result<()> {
        let file =
            std::fs::File::open(path).map_err(|e| SyscallError::io("open", disp(path), e))?;
        nix::sched::setns(&file, nstype).map_err(|e| SyscallError::errno("setns", disp(path), e))
    }

    fn sethostname(&self, name: &str) -> Result<()> {
        nix::unistd::sethostname(name).map_err(|e| SyscallError::errno("sethostname", name, e))
    }

    fn chdir(&self, path: &Path) -> Result<()> {
        nix::unistd::chdir(path).map_err(|e| SyscallError::errno("chdir", disp(path), e))
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(|e| SyscallError::io("mkdir", disp(path), e))
    }

    fn touch(&self, path: &Path) -> Result<()> {
        if path.symlink_metadata().is_ok() {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            self.mkdir_all(parent, 0o755)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map(drop)
            .map_err(|e| SyscallError::io("create", disp(path), e))
    }

    fn mknod(
        &self,
        path: &Path,
        kind: DeviceKind,
        mode: u32,
        major: u64,
        minor: u64,
    ) -> Result<()> {
        let kind = match kind {
            DeviceKind::Char => SFlag::S_IFCHR,
            DeviceKind::Block => SFlag::S_IFBLK,
        };
        nix::sys::stat::mknod(
            path,
            kind,
            Mode::from_bits_truncate(mode),
            nix::sys::stat::makedev(major, minor),
        )
        .map_err(|e| SyscallError::errno("mknod", disp(path), e))?;
        // mknod honours the umask; devices need their exact mode.
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            path,
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| SyscallError::errno("chmod", disp(path), e))
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        std::os::unix::fs::symlink(target, link)
            .map_err(|e| SyscallError::io("symlink", disp(link), e))
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(|e| SyscallError::io("chown", disp(path), e))
    }

    fn set_rlimit(&self, limit: Rlimit) -> Result<()> {
        let rl = libc::rlimit {
            rlim_cur: limit.soft,
            rlim_max: limit.hard,
        };
        // SAFETY: `rl` is a valid rlimit struct that outlives the call.
        let rc = unsafe { libc::setrlimit(limit.resource as _, &rl) };
        if rc != 0 {
            return Err(SyscallError::io(
                "setrlimit",
                limit.resource,
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    fn set_groups(&self, gids: &[u32]) -> Result<()> {
        let gids: Vec<nix::unistd::Gid> = gids
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&gids)
            .map_err(|e| SyscallError::errno("setgroups", format!("{gids:?}"), e))
    }

    fn set_ids(&self, uid: u32, gid: u32) -> Result<()> {
        let g = nix::unistd::Gid::from_raw(gid);
        nix::unistd::setresgid(g, g, g).map_err(|e| SyscallError::errno("setgid", gid, e))?;
        let u = nix::unistd::Uid::from_raw(uid);
        nix::unistd::setresuid(u, u, u).map_err(|e| SyscallError::errno("setuid", uid, e))
    }

    fn limit_bounding_caps(&self, keep: &[caps::Capability]) -> Result<()> {
        for cap in caps::all() {
            if keep.contains(&cap)
                || !caps::has_cap(None, caps::CapSet::Bounding, cap).unwrap_or(false)
            {
                continue;
            }
            caps::drop(None, caps::CapSet::Bounding, cap).map_err(|e| {
                SyscallError::io("capbset_drop", cap, std::io::Error::other(e.to_string()))
            })?;
        }
        Ok(())
    }

    fn set_caps(&self, set: &[caps::Capability]) -> Result<()> {
        let set: caps::CapsHashSet = set.iter().copied().collect();
        for cset in [
            caps::CapSet::Inheritable,
            caps::CapSet::Effective,
            caps::CapSet::Permitted,
        ] {
            // Permitted shrinks last: inheritable and effective must stay within it.
            caps::set(None, cset, &set).map_err(|e| {
                SyscallError::io(
                    "capset",
                    format!("{cset:?}"),
                    std::io::Error::other(e.to_string()),
                )
            })?;
        }
        Ok(())
    }

    fn set_no_new_privs(&self) -> Result<()> {
        // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(SyscallError::io(
                "prctl",
                "no_new_privs",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    fn apply_seccomp(&self, program: &[seccompiler::sock_filter]) -> Result<()> {
        seccompiler::apply_filter(program).map_err(|e| {
            SyscallError::io("seccomp", "filter", std::io::Error::other(e.to_string()))
        })
    }

    fn write_file(&self, path: &Path, contents: &str) -> Result<()> {
        std::fs::write(path, contents).map_err(|e| SyscallError::io("write", disp(path), e))
    }

    fn exists(&self, path: &Path) -> bool {
        path.symlink_metadata().is_ok()
    }
}

/// Raw `execve` of `path` with `args` and `env`; returns only on failure.
pub fn execve(path: &Path, args: &[String], env: &[String]) -> std::io::Error {
    use std::os::unix::ffi::OsStrExt;
    let to_c = |s: &[u8]| CString::new(s).unwrap_or_default();
    let p = to_c(path.as_os_str().as_bytes());
    let a: Vec<CString> = args.iter().map(|s| to_c(s.as_bytes())).collect();
    let e: Vec<CString> = env.iter().map(|s| to_c(s.as_bytes())).collect();
    match nix::unistd::execve(&p, &a, &e) {
        Err(errno) => std::io::Error::from_raw_os_error(errno as i32),
        Ok(never) => match never {},
    }
}
