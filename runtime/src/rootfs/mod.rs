//! Container root filesystems: overlayfs with the image layers as lower directories and a
//! per-container upper and work directory, mounted at `<container_dir>/rootfs`.
//!
//! Layers are named in the mount data through short links (`<container_dir>/l/<n>`, relative
//! to the container directory) so that images of well over a hundred layers fit within the
//! one page of mount data the kernel accepts.

mod mount;

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use mount::{KernelMounter, OverlayMounter};

/// The kernel copies at most one page of mount data, including the final NUL.
const MAX_MOUNT_DATA: usize = 4095;

/// Errors of root filesystem setup and teardown.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A file operation in the container directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Even with short links, the layer list does not fit in the mount data.
    #[error(
        "overlay mount options for {count} layers are {len} bytes, over the {MAX_MOUNT_DATA}-byte limit"
    )]
    TooManyLayers {
        /// Number of layers.
        count: usize,
        /// Length of the options.
        len: usize,
    },
    /// mount(2) refused.
    #[error("mounting overlay at {target}: {source}")]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// umount(2) refused.
    #[error("unmounting {target}: {source}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RootfsError + 'a {
    move |source| RootfsError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A mounted overlay root filesystem of one container.
///
/// Dropping it leaves the mount in place (containers outlive the agent); call
/// [`OverlayRootfs::remove`] to unmount and delete it, or [`OverlayRootfs::at`] to get a handle
/// on one mounted by an earlier process.
pub struct OverlayRootfs {
    dir: PathBuf,
    mounter: Arc<dyn OverlayMounter>,
}

impl std::fmt::Debug for OverlayRootfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlayRootfs")
            .field("dir", &self.dir)
            .finish()
    }
}

impl OverlayRootfs {
    /// Mounts `layers` (lowest first, as `ImageInfo::layers` lists them) at
    /// `<container_dir>/rootfs`, with `upper/` and `work/` beside it unless `read_only`.
    pub fn mount(
        layers: &[PathBuf],
        container_dir: &Path,
        read_only: bool,
    ) -> Result<OverlayRootfs, RootfsError> {
        Self::mount_with(Arc::new(KernelMounter), layers, container_dir, read_only)
    }

    /// [`OverlayRootfs::mount`] through a given mounter.
    pub fn mount_with(
        mounter: Arc<dyn OverlayMounter>,
        layers: &[PathBuf],
        container_dir: &Path,
        read_only: bool,
    ) -> Result<OverlayRootfs, RootfsError> {
        let rootfs = OverlayRootfs {
            dir: container_dir.to_path_buf(),
            mounter,
        };
        let result = rootfs.prepare(layers, read_only).and_then(|options| {
            rootfs
                .mounter
                .mount_overlay(&rootfs.dir, &options, &rootfs.path())
                .map_err(|source| RootfsError::Mount {
                    target: rootfs.path(),
                    source,
                })
        });
        match result {
            Ok(()) => Ok(rootfs),
            Err(e) => {
                let _ = rootfs.remove_dirs();
                Err(e)
            }
        }
    }

    /// A handle on the root filesystem of `container_dir`, mounted or not (for removal after
    /// a restart).
    pub fn at(container_dir: &Path) -> OverlayRootfs {
        OverlayRootfs {
            dir: container_dir.to_path_buf(),
            mounter: Arc::new(KernelMounter),
        }
    }

    /// The mount point: the container's root.
    pub fn path(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The upper directory, where the container's writes land.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// Unmounts the root filesystem, keeping its upper directory. Unmounting twice is fine.
    pub fn unmount(&self) -> Result<(), RootfsError> {
        self.mounter
            .unmount(&self.path())
            .map_err(|source| RootfsError::Unmount {
                target: self.path(),
                source,
            })
    }

    /// Unmounts and deletes the mount point, upper, work and link directories.
    pub fn remove(self) -> Result<(), RootfsError> {
        self.unmount()?;
        self.remove_dirs()
    }

    /// Creates the directories and short links, and returns the mount options.
    fn prepare(&self, layers: &[PathBuf], read_only: bool) -> Result<String, RootfsError> {
        let links = self.dir.join("l");
        let _ = fs::remove_dir_all(&links);
        fs::create_dir_all(&links).map_err(io_err("creating", &links))?;
        for sub in ["rootfs", "empty"] {
            let p = self.dir.join(sub);
            fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
        }
        let mut lower: Vec<String> = Vec::with_capacity(layers.len() + 1);
        for (i, layer) in layers.iter().enumerate().rev() {
            let name = format!("{i:x}");
            let link = links.join(&name);
            symlink(layer, &link).map_err(io_err("linking", &link))?;
            lower.push(format!("l/{name}"));
        }
        // Overlay needs a lower directory, and two when there is no upper one.
        let needed = if read_only { 2 } else { 1 };
        while lower.len() < needed {
            lower.push("empty".to_string());
        }
        let mut options = format!("lowerdir={}", lower.join(":"));
        if !read_only {
            for sub in ["upper", "work"] {
                let p = self.dir.join(sub);
                fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
            }
            options.push_str(",upperdir=upper,workdir=work");
        }
        if options.len() > MAX_MOUNT_DATA {
            return Err(RootfsError::TooManyLayers {
                count: layers.len(),
                len: options.len(),
            });
        }
        Ok(options)
    }

    fn remove_dirs(&self) -> Result<(), RootfsError> {
        for sub in ["l", "upper", "work", "empty", "rootfs"] {
            let p = self.dir.join(sub);
            // The mount point is removed non-recursively: should it somehow still be
            // mounted, a recursive delete would reach into the image's shared layers.
            let removed = if sub == "rootfs" {
                fs::remove_dir(&p)
            } else {
                fs::remove_dir_all(&p)
            };
            match removed {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("removing", &p)(e));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod root_tests;
#[cfg(test)]
mod tests;
