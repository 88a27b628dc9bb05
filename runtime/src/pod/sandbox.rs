//! A pod sandbox on disk: `sandbox.json` under `<root>/sandboxes/<id>/` with its config,
//! network and pod cgroup, written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{PodSandboxConfig, Result, RuntimeError, SandboxStatus};
use crate::cgroups::CgroupConfig;
use crate::network::SandboxNetwork;

/// Sandbox lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    /// Network up, containers may be created.
    Ready,
    /// Stopped: containers gone or stopped, network released.
    NotReady,
}

/// The persisted sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// Sandbox id.
    pub id: String,
    /// Its config.
    pub config: PodSandboxConfig,
    /// Its state.
    pub state: SandboxState,
    /// Namespaces, address, etc files.
    pub network: SandboxNetwork,
    /// The pod cgroup.
    pub cgroup: CgroupConfig,
    /// Created.
    pub created_at: jiff::Timestamp,
}

impl SandboxRecord {
    fn file(dir: &Path) -> PathBuf {
        dir.join("sandbox.json")
    }

    /// Reads the record in `dir`.
    pub fn load(dir: &Path, id: &str) -> Result<Self> {
        let path = Self::file(dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound {
                    kind: "sandbox",
                    id: id.into(),
                });
            }
            Err(source) => return Err(RuntimeError::Io { path, source }),
        };
        serde_json::from_slice(&bytes).map_err(|e| RuntimeError::Io {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    /// Writes the record atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("sandbox serializes");
        crate::container::state::write_atomic(&Self::file(dir), &bytes).map_err(RuntimeError::from)
    }

    /// The kubelet's view.
    pub fn status(&self) -> SandboxStatus {
        SandboxStatus {
            id: self.id.clone(),
            config: self.config.clone(),
            state: self.state,
            ip: self.network.ip,
            created_at: self.created_at,
        }
    }
}
