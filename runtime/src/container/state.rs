//! A container's lifecycle on disk: the status enum, which verbs each status allows, and
//! `state.json` written atomically (temp file + rename) by the runtime and the shim.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ContainerError;

/// Lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The directory exists; the shim has not reported yet.
    Creating,
    /// The init process waits, namespaces and mounts ready, for `start`.
    Created,
    /// The user's process runs.
    Running,
    /// The process exited; `exit_code` says how.
    Stopped,
}

impl Status {
    /// `start` is allowed.
    pub fn can_start(self) -> bool {
        self == Self::Created
    }
    /// Signals may be delivered.
    pub fn can_kill(self) -> bool {
        matches!(self, Self::Created | Self::Running)
    }
    /// A new process may be exec'd.
    pub fn can_exec(self) -> bool {
        self == Self::Running
    }
    /// The container may be removed without force.
    pub fn can_delete(self) -> bool {
        matches!(self, Self::Stopped | Self::Creating)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::Creating => "creating",
            Self::Created => "created",
            Self::Running => "running",
            Self::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// Everything the runtime knows about a container's process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerState {
    /// Container id.
    pub id: String,
    /// Lifecycle status.
    pub status: Status,
    /// Host pid of the init process.
    pub pid: Option<i32>,
    /// Kernel start time of `pid` (guards against pid reuse).
    pub pid_start: Option<u64>,
    /// Host pid of the shim.
    pub shim_pid: Option<i32>,
    /// Kernel start time of the shim.
    pub shim_start: Option<u64>,
    /// When created.
    pub created_at: Timestamp,
    /// When started.
    pub started_at: Option<Timestamp>,
    /// When it exited.
    pub finished_at: Option<Timestamp>,
    /// Exit code (128 + signal when killed by a signal).
    pub exit_code: Option<i32>,
    /// The kernel's OOM killer ended it.
    #[serde(default)]
    pub oom_killed: bool,
    /// Why it stopped or failed, for humans (`OOMKilled`, `Error`, ...).
    #[serde(default)]
    pub reason: Option<String>,
}

impl ContainerState {
    /// A fresh state in `Creating`.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.into(),
            status: Status::Creating,
            pid: None,
            pid_start: None,
            shim_pid: None,
            shim_start: None,
            created_at: Timestamp::now(),
            started_at: None,
            finished_at: None,
            exit_code: None,
            oom_killed: false,
            reason: None,
        }
    }

    /// Path of the state file in a container directory.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// Reads the state file.
    pub fn load(dir: &Path) -> Result<Self, ContainerError> {
        let path = Self::path(dir);
        let bytes = std::fs::read(&path).map_err(ContainerError::io(&path))?;
        serde_json::from_slice(&bytes).map_err(|e| ContainerError::Corrupt {
            path,
            message: e.to_string(),
        })
    }

    /// Writes the state file atomically.
    pub fn save(&self, dir: &Path) -> Result<(), ContainerError> {
        let bytes = serde_json::to_vec_pretty(self).expect("state serializes");
        write_atomic(&Self::path(dir), &bytes)
    }

    /// Whether the init process recorded here is still the same live process.
    pub fn process_alive(&self) -> bool {
        matches!((self.pid, self.pid_start), (Some(p), Some(s)) if proc_start_time(p) == Some(s))
    }

    /// Whether the shim recorded here is still alive.
    pub fn shim_alive(&self) -> bool {
        matches!((self.shim_pid, self.shim_start), (Some(p), Some(s)) if proc_start_time(p) == Some(s))
    }

    /// Reconciles a state read from disk with the live system: a container whose shim and
    /// process are both gone (machine reboot, shim killed) is stopped with an unknown exit.
    pub fn refresh(&mut self) -> bool {
        let live = matches!(
            self.status,
            Status::Created | Status::Running | Status::Creating
        );
        if live && !self.shim_alive() && !self.process_alive() && self.shim_pid.is_some() {
            self.status = Status::Stopped;
            self.exit_code.get_or_insert(255);
            self.finished_at.get_or_insert(Timestamp::now());
            self.reason.get_or_insert_with(|| "Unknown".into());
            return true;
        }
        false
    }
}

/// Writes `bytes` to `path` so that readers see the old or the new contents, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ContainerError> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(ContainerError::io(&tmp))?;
    f.write_all(bytes).map_err(ContainerError::io(&tmp))?;
    f.sync_data().map_err(ContainerError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(ContainerError::io(path))
}

/// Field 22 of `/proc/<pid>/stat`: the process start time in clock ticks since boot.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); a zombie has exited already.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_gates_verbs() {
        assert!(Status::Created.can_start());
        assert!(!Status::Running.can_start());
        assert!(Status::Running.can_kill() && !Status::Stopped.can_kill());
        assert!(Status::Stopped.can_delete() && !Status::Running.can_delete());
        assert!(Status::Running.can_exec() && !Status::Created.can_exec());
    }

    #[test]
    fn state_round_trips_atomically_and_detects_dead_processes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ContainerState::new("c1");
        s.status = Status::Running;
        s.pid = Some(std::process::id() as i32);
        s.pid_start = proc_start_time(s.pid.unwrap());
        s.shim_pid = s.pid;
        s.shim_start = s.pid_start;
        s.save(dir.path()).unwrap();
        let mut back = ContainerState::load(dir.path()).unwrap();
        assert_eq!(back, s);
        assert!(back.process_alive());
        assert!(!back.refresh());
        // A recorded start time that does not match means the pid was reused.
        back.pid_start = Some(1);
        back.shim_start = Some(1);
        assert!(back.refresh());
        assert_eq!(back.status, Status::Stopped);
        assert_eq!(back.exit_code, Some(255));
        assert!(
            !dir.path().read_dir().unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("tmp"))
        );
    }
}
