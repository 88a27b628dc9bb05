//! The processes a test or benchmark starts: where the `skiff` binary is, free loopback
//! ports, and [`Proc`], a child that is stopped by its own PID (never by name) when dropped.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The `skiff` binary of the same build: beside the running executable (a benchmark in
/// `target/<profile>/`) or one level up (a test in `target/<profile>/deps/`).
pub fn skiff_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let dir = exe.parent().expect("executable directory");
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join("skiff"))
        .find(|b| b.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no skiff binary beside {}: build it first (cargo build -p skiff-cli, same profile)",
                exe.display()
            )
        })
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A free TCP port on loopback (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process that is stopped by its PID and reaped when dropped: at once with
/// SIGKILL, or with SIGTERM first when it was given a grace period
/// ([`Proc::term_on_drop`]).
pub struct Proc {
    child: Option<Child>,
    name: String,
    log: Option<PathBuf>,
    drop_grace: Option<Duration>,
}

impl Proc {
    /// Wraps a started child.
    pub fn new(name: &str, child: Child) -> Self {
        Self {
            child: Some(child),
            name: name.into(),
            log: None,
            drop_grace: None,
        }
    }

    /// Starts `skiff <args>` with stdin and stdout closed and stderr appended to `log`.
    pub fn spawn_skiff<I, S>(name: &str, args: I, log: &Path) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("log {}", log.display()))?;
        let child = Command::new(skiff_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut p = Self::new(name, child);
        p.log = Some(log.to_path_buf());
        Ok(p)
    }

    /// On drop, SIGTERM and up to `grace` to exit before SIGKILL (as a benchmark stops a
    /// server it measured), instead of SIGKILL at once.
    pub fn term_on_drop(mut self, grace: Duration) -> Self {
        self.drop_grace = Some(grace);
        self
    }

    /// The PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM, waits up to `grace`, then SIGKILL; reaps it.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SIGTERM to our own child, by its PID.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} (pid {}) ignored SIGTERM; killing it", self.name, c.id());
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// The last `n` bytes of the log given to [`Proc::spawn_skiff`] (empty without one).
    pub fn log_tail(&self, n: usize) -> String {
        let s = self
            .log
            .as_ref()
            .and_then(|l| std::fs::read_to_string(l).ok())
            .unwrap_or_default();
        let start = s.len().saturating_sub(n);
        let start = (start..s.len())
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(s.len());
        s[start..].to_string()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        match self.drop_grace {
            Some(grace) => self.stop(grace),
            None => {
                if self.child.is_some() {
                    eprintln!("stopping {} (pid {})", self.name, self.pid());
                }
                self.kill9();
            }
        }
    }
}

/// Runs `cmd` to completion with `stdin` (or nothing) as input; returns what it printed.
pub(crate) fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    use std::io::Write;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn command");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("command output")
}
