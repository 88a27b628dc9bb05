//! Containers as a state machine on disk, one verb per file (`create`, `start`, `kill`,
//! `delete`, `exec`, `attach`, `wait`), plus the plans the init process follows inside the new
//! namespaces (`namespaces`, `mounts`, `security`, `seccomp`, `init`).

mod attach;
mod create;
mod delete;
mod exec;
pub mod init;
mod kill;
pub mod mounts;
pub mod namespaces;
pub mod seccomp;
pub mod security;
pub mod spec;
mod start;
pub mod state;
mod wait;

pub use attach::AttachSession;
pub use exec::{ExecHandle, ExecOutput, ExecRequest, ExecStdio, resize_tty, tty_size};
pub use spec::{
    ContainerSpec, IdMapping, IdRange, MountKind, MountSpec, NamespaceSpec, ProcessSpec, StdioSpec,
    User,
};
pub use state::{ContainerState, Status};

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Errors of container verbs; each names the container or file involved.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No such container.
    #[error("container {0} not found")]
    NotFound(String),
    /// The id is taken.
    #[error("container {0} already exists")]
    Exists(String),
    /// The id is not a safe directory name.
    #[error("invalid container id {0:?}")]
    InvalidId(String),
    /// The verb is not allowed in the current status.
    #[error("cannot {op} container {id}: it is {status}")]
    InvalidState {
        /// Container id.
        id: String,
        /// The verb.
        op: &'static str,
        /// Current status.
        status: Status,
    },
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A state or config file could not be parsed.
    #[error("{path}: corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    /// The overlay root filesystem could not be mounted or removed.
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    /// The shim failed to set the container up or to answer.
    #[error("container {id}: {message}")]
    Shim {
        /// Container id.
        id: String,
        /// What the shim (or the init process) reported.
        message: String,
    },
    /// A signal could not be delivered.
    #[error("signal container {id}: {source}")]
    Signal {
        /// Container id.
        id: String,
        /// The cause.
        #[source]
        source: nix::errno::Errno,
    },
}

impl ContainerError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result of a container verb.
pub type Result<T> = std::result::Result<T, ContainerError>;

/// How to start the shim: the `skiff` binary re-executed as `skiff shim --root R --id ID`.
#[derive(Debug, Clone)]
pub struct ShimCommand {
    /// The executable (`/proc/self/exe` of the agent by default).
    pub program: PathBuf,
    /// Extra environment for the shim.
    pub env: Vec<(OsString, OsString)>,
}

impl ShimCommand {
    /// Re-executes the current binary. The env var `SKIFF_BIN` overrides the path.
    pub fn current_exe() -> Self {
        let program = std::env::var_os("SKIFF_BIN")
            .map(PathBuf::from)
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
        Self {
            program,
            env: Vec::new(),
        }
    }
}

/// Where containers live and how their shims start.
#[derive(Debug, Clone)]
pub struct ContainerRoot {
    /// State root: one directory per container.
    pub dir: PathBuf,
    /// The shim launcher.
    pub shim: ShimCommand,
}

impl ContainerRoot {
    /// A root at `dir` using the current executable as shim.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            shim: ShimCommand::current_exe(),
        }
    }

    /// The directory of container `id`.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Ids of every container with a directory under the root.
    pub fn list_ids(&self) -> Result<Vec<String>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ContainerError::io(&self.dir)(e)),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("config.json").exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Loads every container under the root, reconciling each with the live system.
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        for id in self.list_ids()? {
            match Container::load(self, &id) {
                Ok(c) => out.push(c),
                Err(ContainerError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// Checks an id is usable as a single path component.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(ContainerError::InvalidId(id.into()))
    }
}

/// A container: its directory, fixed spec and current state.
#[derive(Debug, Clone)]
pub struct Container {
    /// The container directory.
    pub dir: PathBuf,
    /// The spec it was created with.
    pub spec: ContainerSpec,
    /// Its state as last read.
    pub state: ContainerState,
}

impl Container {
    /// Loads container `id`, reconciling its state with the live system.
    pub fn load(root: &ContainerRoot, id: &str) -> Result<Self> {
        validate_id(id)?;
        let dir = root.container_dir(id);
        let cfg = dir.join("config.json");
        let bytes = match std::fs::read(&cfg) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ContainerError::NotFound(id.into()));
            }
            Err(e) => return Err(ContainerError::io(&cfg)(e)),
        };
        let spec: ContainerSpec =
            serde_json::from_slice(&bytes).map_err(|e| ContainerError::Corrupt {
                path: cfg.clone(),
                message: e.to_string(),
            })?;
        let mut state = ContainerState::load(&dir)?;
        if state.refresh() {
            state.save(&dir)?;
        }
        Ok(Self { dir, spec, state })
    }

    /// Re-reads the state from disk.
    pub fn reload(&mut self) -> Result<()> {
        let mut state = ContainerState::load(&self.dir)?;
        if state.refresh() {
            state.save(&self.dir)?;
        }
        self.state = state;
        Ok(())
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// The shim's control socket.
    pub fn socket_path(&self) -> PathBuf {
        socket_path(&self.dir)
    }

    fn refuse(&self, op: &'static str) -> ContainerError {
        ContainerError::InvalidState {
            id: self.spec.id.clone(),
            op,
            status: self.state.status,
        }
    }
}

/// The shim's control socket inside a container directory.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("shim.sock")
}
