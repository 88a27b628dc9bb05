//! Images: a content-addressed store of verified blobs and unpacked layers, filled by pulls
//! over the OCI distribution protocol and by imports of archives and root-filesystem tarballs.
//!
//! On disk, under `<root>/images`: `blobs/sha256/<hex>` (manifests and configs),
//! `layers/<diff-id hex>/` (one unpacked directory per layer, shared by every image),
//! `records/<sha256 of reference>.json` (reference → manifest → config → layers, written last
//! and atomically) and `tmp/` (partial downloads and unpacks, never trusted).

mod archive;
mod error;
pub(crate) mod layout;
mod manifest;
mod pull;
pub mod reference;
mod store;
pub(crate) mod unpack;

#[cfg(test)]
mod pull_tests;
#[cfg(any(test, feature = "testkit"))]
pub mod testutil;

use std::path::PathBuf;

pub use error::ImageError;
pub use manifest::ImageConfig;
pub use pull::PullOptions;
pub use store::{GcReport, ImageStore};

/// The default node root; images live under `<root>/images`.
pub const DEFAULT_ROOT: &str = "/var/lib/skiff/agent";

/// An image in the store, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Normalised reference (`docker.io/library/busybox:latest`), or the image id for an image
    /// imported without a name.
    pub reference: String,
    /// Image id: the config digest (`sha256:<hex>`).
    pub id: String,
    /// Manifest digest (`sha256:<hex>`), the one `name@digest` pulls by.
    pub digest: String,
    /// How to start the image's process.
    pub config: ImageConfig,
    /// Unpacked layer directories, lowest first (give them to `OverlayRootfs::mount`).
    pub layers: Vec<PathBuf>,
    /// Size in bytes (compressed layers plus config).
    pub size: u64,
}
