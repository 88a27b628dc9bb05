//! `delete`: remove a stopped container's cgroup and directory; with `force`, kill it
//! first.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::{Container, ContainerError, Result, Status};
use crate::cgroups;

impl Container {
    /// Deletes the container. A running one needs `force` (SIGKILL, then delete).
    pub fn delete(mut self, force: bool) -> Result<()> {
        self.reload()?;
        if !self.state.status.can_delete() {
            if !force {
                return Err(self.refuse("delete"));
            }
            self.kill(Signal::SIGKILL)?;
            if self.wait(Some(Duration::from_secs(10)))?.is_none() {
                return Err(ContainerError::Shim {
                    id: self.spec.id.clone(),
                    message: "did not exit after SIGKILL".into(),
                });
            }
        }
        if self.state.status == Status::Creating && self.state.shim_alive() {
            return Err(self.refuse("delete"));
        }
        if let Some(cg) = cgroups::manager(&self.spec.cgroup) {
            cg.delete()?;
        }
        if !self.spec.layers.is_empty() {
            let base = self.spec.overlay_dir(&self.dir);
            crate::rootfs::OverlayRootfs::at(&base).remove()?;
            if base != self.dir {
                match std::fs::remove_dir(&base) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(ContainerError::io(&base)(e));
                    }
                    _ => {}
                }
            }
        }
        std::fs::remove_dir_all(&self.dir).map_err(ContainerError::io(&self.dir))
    }
}
