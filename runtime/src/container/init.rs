//! The body of a container's processes after `fork` in the shim: the init process (enter
//! namespaces, build the root filesystem, report ready, wait for `start`, confine, exec)
//! and exec'd processes (join the namespaces of the running init, confine, exec).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;

use super::namespaces::{enter_namespaces, join_container, set_hostname};
use super::security::{apply_rlimits, capability_set, confine, seccomp_for};
use super::spec::{ContainerSpec, ProcessSpec};
use crate::syscall::{Syscall, SyscallError};

/// Exit code when the command is not found (as shells and Docker use).
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit code when the command cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;

/// Pipes between the shim and a forked child: `go` (shim → child) releases each phase,
/// `status` (child → shim, close-on-exec) reports `R` (ready) or `E<message>`.
pub struct InitPipes {
    /// Read end of the release pipe.
    pub go: OwnedFd,
    /// Write end of the status pipe.
    pub status: OwnedFd,
    /// With `tty`: the socket on which the init sends the shim the master of the terminal
    /// it opens in the container's own `/dev/pts`.
    pub console: Option<OwnedFd>,
}

fn wait_go(fd: &OwnedFd) -> bool {
    let mut b = [0u8; 1];
    matches!(
        std::fs::File::from(fd.try_clone().expect("dup")).read(&mut b),
        Ok(1)
    )
}

fn report(fd: &OwnedFd, msg: &str) {
    if let Ok(dup) = fd.try_clone() {
        let _ = std::fs::File::from(dup).write_all(msg.as_bytes());
    }
}

/// Everything fallible before `start`, so errors surface at create.
fn prepare(
    sys: &dyn Syscall,
    spec: &ContainerSpec,
    console: Option<&OwnedFd>,
) -> Result<(), SyscallError> {
    let created = enter_namespaces(sys, &spec.namespaces)?;
    set_hostname(sys, created, spec.hostname.as_deref())?;
    super::mounts::setup_rootfs(sys, spec)?;
    apply_rlimits(sys, &spec.process)?;
    let cwd = Path::new(&spec.process.cwd);
    if !sys.exists(cwd) {
        sys.mkdir_all(cwd, 0o755)?;
    }
    // In the container's devpts (so `tty` and `ttyname` find it), with the host's
    // privileges (before any user namespace).
    if let Some(sock) = console {
        open_console(sock)
            .map_err(|e| SyscallError::errno("open the container's terminal", "/dev/ptmx", e))?;
    }
    // Last, once every mount is made with the host's privileges: the other namespaces stay
    // owned by the host's user namespace, so root inside cannot remount or reconfigure
    // them. The shim writes the ID maps when it reads the ready byte.
    if spec.user_namespace.is_some() {
        sys.unshare(CloneFlags::CLONE_NEWUSER)?;
    }
    Ok(())
}

/// The container's init: never returns.
pub fn run_init(sys: &dyn Syscall, spec: &ContainerSpec, pipes: InitPipes) -> ! {
    if !wait_go(&pipes.go) {
        std::process::exit(1);
    }
    if let Err(e) = prepare(sys, spec, pipes.console.as_ref()) {
        report(&pipes.status, &format!("E{e}"));
        std::process::exit(1);
    }
    report(&pipes.status, "R");
    // EOF instead of the start byte: the shim went away or the container was deleted.
    if !wait_go(&pipes.go) {
        std::process::exit(1);
    }
    drop(pipes);
    exec_confined(sys, spec, &spec.process)
}

/// An exec'd process inside the running container `pid`: never returns.
pub fn run_exec(
    sys: &dyn Syscall,
    spec: &ContainerSpec,
    process: &ProcessSpec,
    pid: i32,
    tty: bool,
    go: OwnedFd,
) -> ! {
    if !wait_go(&go) {
        std::process::exit(1);
    }
    drop(go);
    // The user namespace is joined last, when the host's /proc is gone: hold it open.
    let user_ns = match spec.user_namespace {
        Some(_) => match std::fs::File::open(format!("/proc/{pid}/ns/user")) {
            Ok(f) => Some(f),
            Err(e) => fail(1, &format!("join container: user namespace: {e}")),
        },
        None => None,
    };
    let user_path = user_ns
        .as_ref()
        .map(|f| PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())));
    if let Err(e) = join_container(sys, pid, user_path.as_deref()) {
        fail(1, &format!("join container: {e}"));
    }
    drop(user_ns);
    if tty {
        take_terminal();
    }
    exec_confined(sys, spec, process)
}

/// Opens a terminal in the (already mounted) container `/dev/pts`, makes its slave our
/// stdio and controlling terminal, and sends the master to the shim over `sock`.
fn open_console(sock: &OwnedFd) -> nix::Result<()> {
    use nix::fcntl::OFlag;
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let name = nix::pty::ptsname_r(&master)?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    for fd in 0..3 {
        // SAFETY: dup2 of a valid fd onto stdio in this single-threaded child.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(nix::errno::Errno::last());
        }
    }
    drop(slave);
    take_terminal();
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[std::io::IoSlice::new(b"t")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// Makes the terminal on fd 0 this process's controlling terminal, in a session of its
/// own, so the shell gets job control and `^C` reaches it.
fn take_terminal() {
    let _ = nix::unistd::setsid();
    // SAFETY: TIOCSCTTY on fd 0 (a pty slave) takes an int argument.
    unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
}

fn fail(code: i32, msg: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "skiff: {msg}");
    std::process::exit(code)
}

fn exec_confined(sys: &dyn Syscall, spec: &ContainerSpec, process: &ProcessSpec) -> ! {
    let caps = match capability_set(spec) {
        Ok(c) => c,
        Err(e) => fail(1, &e.to_string()),
    };
    let programs = seccomp_for(spec);
    if let Err(e) = confine(sys, process, &caps, &programs) {
        fail(1, &e.to_string());
    }
    let Some(arg0) = process.args.first() else {
        fail(EXIT_NOT_FOUND, "exec: no command given");
    };
    let path = match resolve(arg0, process.path_var()) {
        Some(p) => p,
        None => fail(
            EXIT_NOT_FOUND,
            &format!("exec: \"{arg0}\": executable file not found in $PATH"),
        ),
    };
    let err = crate::syscall::execve(&path, &process.args, &process.env);
    let code = match err.raw_os_error() {
        Some(libc::EACCES) | Some(libc::ENOEXEC) => EXIT_NOT_EXECUTABLE,
        _ => EXIT_NOT_FOUND,
    };
    fail(code, &format!("exec: \"{}\": {err}", path.display()))
}

/// Looks `cmd` up in `path_var` the way `execvp` does, but with the container's `PATH`.
pub fn resolve(cmd: &str, path_var: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Some(PathBuf::from(cmd));
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(cmd))
        .find(|p| {
            p.metadata().is_ok_and(|m| m.is_file())
                && nix::unistd::access(p.as_path(), nix::unistd::AccessFlags::X_OK).is_ok()
        })
}

/// Writes the release byte to a child waiting in [`run_init`] or [`run_exec`].
pub fn release(go_write: &impl AsFd) -> std::io::Result<()> {
    nix::unistd::write(go_write, b"g")
        .map(drop)
        .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_uses_the_container_path() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("tool");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pv = format!("/nonexistent:{}", dir.path().display());
        assert_eq!(resolve("tool", &pv), Some(bin));
        assert_eq!(resolve("missing", &pv), None);
        assert_eq!(resolve("./x", &pv), Some(PathBuf::from("./x")));
        std::fs::write(dir.path().join("noexec"), "").unwrap();
        assert_eq!(resolve("noexec", &pv), None);
    }
}
