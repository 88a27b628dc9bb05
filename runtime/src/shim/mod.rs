//! The per-container monitor: the `skiff` binary re-executed as `skiff shim --root R --id
//! ID`. It daemonizes, parents the container's init, writes its output to the CRI log,
//! holds the container's stdin or terminal, serves `shim.sock` (start, exec, wait, attach)
//! and records the exit in `state.json`.
//!
//! Launch contract: the runtime starts the shim with a pipe on stdout; the shim forks
//! away (the first process exits at once), then writes `ok` or `error: <message>` as one
//! line when the container is created, and closes the pipe. Its own diagnostics go to
//! `shim.log` in the container directory.

pub mod client;
pub mod frame;
pub mod log;
pub mod protocol;
mod server;
mod stdio;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Runs the shim for container `id` under state root `root`; returns the exit code of
/// the calling process (the daemonized shim never returns).
pub fn main(root: &Path, id: &str) -> i32 {
    let dir = root.join(id);
    if let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("shim.log"))
    {
        let _ = nix::unistd::dup2_stderr(&f);
    }
    if nix::unistd::setsid().is_err() {
        // Already a session leader (started that way): fine.
    }
    // SAFETY: the shim is single-threaded at this point (nothing has spawned threads),
    // so the child may run arbitrary code.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => {
            let _ = writeln!(std::io::stdout(), "error: fork shim: {e}");
            return 1;
        }
    }
    let code = match server::run(&dir) {
        Ok(()) => 0,
        Err(msg) => {
            // stdout is still the runtime's pipe when creation fails.
            let _ = writeln!(std::io::stdout(), "error: {msg}");
            let _ = writeln!(std::io::stderr(), "shim {id}: {msg}");
            1
        }
    };
    std::process::exit(code)
}

/// Points stdout at `/dev/null` once the runtime has its answer.
pub(crate) fn detach_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = std::io::stdout().flush();
        // SAFETY: dup2 onto fd 1 with a valid open fd; replaces our stdout atomically.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}
