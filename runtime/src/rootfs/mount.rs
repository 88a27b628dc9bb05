//! The two syscalls an overlay root filesystem needs, behind a trait so that the option
//! building is tested without root.

use std::io;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

/// Mounts and unmounts overlay filesystems.
pub trait OverlayMounter: Send + Sync {
    /// Mounts overlayfs at `target` with mount data `options`, whose relative paths are
    /// resolved from `cwd`.
    fn mount_overlay(&self, cwd: &Path, options: &str, target: &Path) -> io::Result<()>;
    /// Unmounts `target`; a target that is not mounted is not an error.
    fn unmount(&self, target: &Path) -> io::Result<()>;
}

/// The kernel's mount(2) and umount2(2).
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelMounter;

impl OverlayMounter for KernelMounter {
    fn mount_overlay(&self, cwd: &Path, options: &str, target: &Path) -> io::Result<()> {
        let (cwd, options, target) = (cwd.to_path_buf(), options.to_string(), target.to_path_buf());
        // Relative lowerdir paths keep deep images within one page of mount data, but they
        // need a working directory. The process's is shared by every thread, so the mount
        // runs on a thread that first takes a private copy of its filesystem context
        // (unshare(CLONE_FS)) and changes only that.
        std::thread::spawn(move || -> io::Result<()> {
            unshare(CloneFlags::CLONE_FS)?;
            nix::unistd::chdir(&cwd)?;
            mount(
                Some("overlay"),
                &target,
                Some("overlay"),
                MsFlags::empty(),
                Some(options.as_str()),
            )?;
            Ok(())
        })
        .join()
        .map_err(|_| io::Error::other("mount thread panicked"))?
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => Ok(()),
            // Not a mount point, or already gone.
            Err(nix::Error::EINVAL | nix::Error::ENOENT) => Ok(()),
            // Something still has it open: detach it now, the kernel frees it when released.
            Err(nix::Error::EBUSY) => Ok(umount2(target, MntFlags::MNT_DETACH)?),
            Err(e) => Err(e.into()),
        }
    }
}
