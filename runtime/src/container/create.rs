//! `create`: write the container directory, make its cgroup, launch the shim, and wait
//! until the init process sits ready in its namespaces (or report why it could not).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::state::{ContainerState, write_atomic};
use super::{Container, ContainerError, ContainerRoot, ContainerSpec, Result, validate_id};
use crate::cgroups;
use crate::rootfs::OverlayRootfs;

impl Container {
    /// Creates container `spec.id`: on success its init waits for [`Container::start`].
    /// On failure nothing is left behind (directory, cgroup, processes).
    pub fn create(root: &ContainerRoot, mut spec: ContainerSpec) -> Result<Container> {
        validate_id(&spec.id)?;
        std::fs::create_dir_all(&root.dir).map_err(ContainerError::io(&root.dir))?;
        let dir = root.container_dir(&spec.id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(ContainerError::Exists(spec.id.clone()));
            }
            Err(e) => return Err(ContainerError::io(&dir)(e)),
        }
        let id = spec.id.clone();
        let cgroup = cgroups::manager(&spec.cgroup);
        let made = (|| {
            if !spec.layers.is_empty() {
                // Always writable: mount points for /proc, /dev and volumes may have to be
                // made in it; a read-only root is remounted read-only after the mounts.
                let base = spec.overlay_dir(&dir);
                std::fs::create_dir_all(&base).map_err(ContainerError::io(&base))?;
                let rootfs = OverlayRootfs::mount(&spec.layers, &base, false)?;
                spec.rootfs = rootfs.path();
            }
            let cfg = serde_json::to_vec_pretty(&spec).expect("spec serializes");
            write_atomic(&dir.join("config.json"), &cfg)?;
            ContainerState::new(&id).save(&dir)?;
            if let Some(cg) = &cgroup {
                cg.create()?;
                cg.apply(&spec.resources)?;
            }
            spawn_shim(root, &id)?;
            Container::load(root, &id)
        })();
        if made.is_err() {
            if let Some(cg) = &cgroup {
                let _ = cg.delete();
            }
            if !spec.layers.is_empty() {
                let base = spec.overlay_dir(&dir);
                if OverlayRootfs::at(&base).remove().is_ok() && base != dir {
                    let _ = std::fs::remove_dir(&base);
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        made
    }
}

/// Starts `skiff shim` and reads its one-line verdict.
fn spawn_shim(root: &ContainerRoot, id: &str) -> Result<()> {
    let shim_err = |message: String| ContainerError::Shim {
        id: id.to_string(),
        message,
    };
    let (reader, writer) = std::io::pipe().map_err(|e| shim_err(format!("pipe: {e}")))?;
    let mut cmd = Command::new(&root.shim.program);
    cmd.arg("shim")
        .arg("--root")
        .arg(&root.dir)
        .arg("--id")
        .arg(id)
        .envs(root.shim.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| shim_err(format!("start shim {}: {e}", root.shim.program.display())))?;
    // Drop our copy of the write end so EOF arrives when the shim closes its own.
    drop(cmd);
    // The first shim process exits at once after forking the daemon.
    let _ = child.wait();
    let mut line = String::new();
    BufReader::new(reader)
        .read_line(&mut line)
        .map_err(|e| shim_err(format!("read shim verdict: {e}")))?;
    let line = line.trim_end();
    match line {
        "ok" => Ok(()),
        "" => Err(shim_err(
            "shim exited without reporting (see shim.log)".into(),
        )),
        other => Err(shim_err(
            other.strip_prefix("error: ").unwrap_or(other).to_string(),
        )),
    }
}
