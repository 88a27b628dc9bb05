//! Errors of the image store, each with a short reason the kubelet can surface.

use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong while pulling, importing, unpacking or looking up images.
///
/// Cloneable (causes are shared) so that concurrent pulls of one image can all receive the
/// single pull's outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageError {
    /// The reference does not parse as an image reference.
    #[error("invalid image reference {reference:?}: {message}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it was rejected.
        message: String,
    },
    /// The registry has no such repository, tag or digest, or the store has no such image.
    #[error("image {reference} not found: {message}")]
    NotFound {
        /// The normalised reference.
        reference: String,
        /// What the registry or store said.
        message: String,
    },
    /// The registry refused the credentials (or their absence).
    #[error("pulling {reference}: unauthorized: {message}")]
    Unauthorized {
        /// The normalised reference.
        reference: String,
        /// What the registry said.
        message: String,
    },
    /// The registry could not be reached or answered with a server error.
    #[error("registry {registry} unreachable: {message}")]
    RegistryUnreachable {
        /// The registry host (and port).
        registry: String,
        /// The transport error.
        message: String,
    },
    /// The registry answered something that is not a valid image.
    #[error("registry error for {reference}: {message}")]
    Registry {
        /// The normalised reference.
        reference: String,
        /// What went wrong.
        message: String,
    },
    /// Content did not hash to the digest that names it.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was verified (a blob, a layer's diff id).
        what: String,
        /// The digest that names the content.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// A layer ended early or its compression stream is corrupt.
    #[error("layer {digest} is truncated or corrupt: {message}")]
    TruncatedLayer {
        /// The layer's digest.
        digest: String,
        /// The decoder's complaint.
        message: String,
    },
    /// A layer tries to write outside its own directory.
    #[error("layer {digest} rejected: {message}")]
    UnsafeLayer {
        /// The layer's digest.
        digest: String,
        /// Which entry and why.
        message: String,
    },
    /// A manifest, index or config that cannot be used.
    #[error("bad manifest for {reference}: {message}")]
    BadManifest {
        /// The reference or blob concerned.
        reference: String,
        /// What is wrong with it.
        message: String,
    },
    /// An archive given to import is not an OCI layout or `docker save` archive.
    #[error("bad archive {path}: {message}")]
    BadArchive {
        /// The archive file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A local filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Arc<std::io::Error>,
    },
}

impl ImageError {
    /// Wraps an I/O error with what was done and on which path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// A short CamelCase reason the kubelet puts into a container's waiting state
    /// (`ErrImagePull` family) or an event.
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::InvalidReference { .. } => "InvalidImageName",
            ImageError::NotFound { .. } => "ImageNotFound",
            ImageError::Unauthorized { .. } => "Unauthorized",
            ImageError::RegistryUnreachable { .. } => "RegistryUnavailable",
            ImageError::Registry { .. } => "RegistryError",
            ImageError::DigestMismatch { .. } => "DigestMismatch",
            ImageError::TruncatedLayer { .. } => "TruncatedLayer",
            ImageError::UnsafeLayer { .. } => "UnsafeLayer",
            ImageError::BadManifest { .. } => "BadManifest",
            ImageError::BadArchive { .. } => "BadArchive",
            ImageError::Io { .. } => "StoreError",
        }
    }

    /// The kubelet's waiting reason for a failed pull of this kind: `InvalidImageName` for
    /// a reference that cannot parse, `ErrImagePull` for everything else.
    pub fn kubelet_reason(&self) -> &'static str {
        match self {
            ImageError::InvalidReference { .. } => "InvalidImageName",
            _ => "ErrImagePull",
        }
    }
}
