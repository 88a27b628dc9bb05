//! `exec`: run a new process inside a running container (its namespaces and cgroup), with
//! the caller's file descriptors as stdio or a TTY, and return its exit code.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

use super::{Container, ContainerError, ProcessSpec, Result};
use crate::shim::{client::ShimCall, protocol::Request};

/// The stdio of an exec'd process.
#[derive(Debug)]
pub enum ExecStdio {
    /// Separate descriptors; stdin `None` reads `/dev/null`.
    Fds {
        /// Standard input.
        stdin: Option<OwnedFd>,
        /// Standard output.
        stdout: OwnedFd,
        /// Standard error.
        stderr: OwnedFd,
    },
    /// A TTY slave used for all three (the caller keeps the master and resizes it).
    Tty(OwnedFd),
}

/// What to run and with which stdio.
#[derive(Debug)]
pub struct ExecRequest {
    /// The process.
    pub process: ProcessSpec,
    /// Its stdio.
    pub stdio: ExecStdio,
}

/// A running exec'd process.
pub struct ExecHandle {
    call: ShimCall,
    /// Host pid of the process.
    pub pid: i32,
    id: String,
}

impl ExecHandle {
    /// Waits for the process and returns its exit code (128 + signal when killed).
    pub fn wait(mut self) -> Result<i32> {
        let reply = self.call.reply().map_err(|e| ContainerError::Shim {
            id: self.id.clone(),
            message: format!("exec wait: {e}"),
        })?;
        reply.exit_code.ok_or(ContainerError::Shim {
            id: self.id,
            message: reply.error.unwrap_or_else(|| "exec: no exit code".into()),
        })
    }
}

/// Output of [`Container::exec_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code.
    pub exit_code: i32,
    /// Captured standard output.
    pub stdout: Vec<u8>,
    /// Captured standard error.
    pub stderr: Vec<u8>,
}

impl Container {
    /// The container's own process settings with a different command.
    pub fn exec_process(&self, args: Vec<String>) -> ProcessSpec {
        ProcessSpec {
            args,
            rlimits: Vec::new(),
            ..self.spec.process.clone()
        }
    }

    /// Starts `req.process` inside the running container.
    pub fn exec(&mut self, req: ExecRequest) -> Result<ExecHandle> {
        self.reload()?;
        if !self.state.status.can_exec() {
            return Err(self.refuse("exec"));
        }
        let (tty, fds): (bool, Vec<i32>) = match &req.stdio {
            ExecStdio::Tty(fd) => (true, vec![fd.as_raw_fd()]),
            ExecStdio::Fds {
                stdin: Some(i),
                stdout,
                stderr,
            } => (
                false,
                vec![i.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()],
            ),
            ExecStdio::Fds {
                stdin: None,
                stdout,
                stderr,
            } => (false, vec![stdout.as_raw_fd(), stderr.as_raw_fd()]),
        };
        let shim_err = |message: String| ContainerError::Shim {
            id: self.spec.id.clone(),
            message,
        };
        let mut call = ShimCall::send(
            &self.dir,
            &Request::Exec {
                process: req.process,
                tty,
            },
            &fds,
        )
        .map_err(|e| shim_err(format!("exec: {e}")))?;
        // Our copies must close so the caller sees EOF when the process exits.
        drop(req.stdio);
        let reply = call.reply().map_err(|e| shim_err(format!("exec: {e}")))?;
        match (reply.pid, reply.error) {
            (Some(pid), _) => Ok(ExecHandle {
                call,
                pid,
                id: self.spec.id.clone(),
            }),
            (None, err) => Err(shim_err(err.unwrap_or_else(|| "exec failed".into()))),
        }
    }

    /// Runs `args` inside the container with stdin from `/dev/null` and captures output.
    pub fn exec_output(&mut self, args: Vec<String>) -> Result<ExecOutput> {
        let io = |e: std::io::Error| ContainerError::Shim {
            id: self.spec.id.clone(),
            message: format!("exec pipes: {e}"),
        };
        let (mut out_r, out_w) = std::io::pipe().map_err(io)?;
        let (mut err_r, err_w) = std::io::pipe().map_err(io)?;
        let process = self.exec_process(args);
        let handle = self.exec(ExecRequest {
            process,
            stdio: ExecStdio::Fds {
                stdin: None,
                stdout: out_w.into(),
                stderr: err_w.into(),
            },
        })?;
        let err_thread = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err_r.read_to_end(&mut v);
            v
        });
        let mut stdout = Vec::new();
        let _ = out_r.read_to_end(&mut stdout);
        let stderr = err_thread.join().unwrap_or_default();
        let exit_code = handle.wait()?;
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
        })
    }
}

/// Sets the window size of a TTY master (exec with a TTY: the caller owns the master).
pub fn resize_tty(master: &impl AsRawFd, rows: u16, cols: u16) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives across the call.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The window size of the terminal on `fd`, if it is one.
pub fn tty_size(fd: &impl AsRawFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize struct into `ws`, which outlives the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (rc == 0).then_some((ws.ws_row, ws.ws_col))
}
