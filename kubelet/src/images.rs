//! Images as the kubelet needs them: look up and pull per `imagePullPolicy`, yielding the
//! image's config and unpacked layers, which the runtime overlays into each container's
//! root. [`StoreImages`] uses the node's image store; [`FakeImages`] serves hollow nodes
//! (every image present, no layers).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use skiff_runtime::image::{ImageConfig, ImageStore, PullOptions};

/// An image ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    /// Normalised reference.
    pub reference: String,
    /// Image id (`sha256:...`), reported as `imageID`.
    pub id: String,
    /// Entrypoint, cmd, env, working dir, user.
    pub config: ImageConfig,
    /// Unpacked layers, lowest first.
    pub layers: Vec<PathBuf>,
}

/// Why an image is not available.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PullError {
    /// `ErrImagePull` or `InvalidImageName`.
    pub reason: &'static str,
    /// What went wrong.
    pub message: String,
}

/// The node's images.
#[async_trait::async_trait]
pub trait ImageService: Send + Sync {
    /// The image if it is present.
    fn resolve(&self, image: &str) -> Option<ResolvedImage>;
    /// Pulls the image.
    async fn pull(&self, image: &str) -> Result<ResolvedImage, PullError>;
}

/// The node's image store.
pub struct StoreImages {
    store: Arc<ImageStore>,
    options: PullOptions,
}

impl StoreImages {
    /// Wraps a store.
    pub fn new(store: Arc<ImageStore>) -> Self {
        Self {
            store,
            options: PullOptions::default(),
        }
    }
}

fn from_info(info: skiff_runtime::image::ImageInfo) -> ResolvedImage {
    ResolvedImage {
        reference: info.reference,
        id: info.id,
        config: info.config,
        layers: info.layers,
    }
}

#[async_trait::async_trait]
impl ImageService for StoreImages {
    fn resolve(&self, image: &str) -> Option<ResolvedImage> {
        self.store.resolve(image).map(from_info)
    }

    async fn pull(&self, image: &str) -> Result<ResolvedImage, PullError> {
        self.store
            .pull(image, &self.options)
            .await
            .map(from_info)
            .map_err(|e| PullError {
                reason: e.kubelet_reason(),
                message: format!("failed to pull image {image:?}: {e}"),
            })
    }
}

/// Images for hollow nodes and tests: everything is present except the names marked
/// missing; images have no layers.
#[derive(Default)]
pub struct FakeImages {
    missing: Mutex<BTreeSet<String>>,
}

impl FakeImages {
    /// Makes pulls of `image` fail (until [`FakeImages::make_available`]).
    pub fn make_missing(&self, image: &str) {
        self.lock().insert(image.to_string());
    }

    /// Makes `image` available.
    pub fn make_available(&self, image: &str) {
        self.lock().remove(image);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.missing.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn image(image: &str) -> ResolvedImage {
        ResolvedImage {
            reference: image.to_string(),
            id: format!("sha256:{:0>64}", image.len()),
            config: ImageConfig {
                cmd: vec!["/bin/sh".into()],
                ..ImageConfig::default()
            },
            layers: Vec::new(),
        }
    }
}

#[async_trait::async_trait]
impl ImageService for FakeImages {
    fn resolve(&self, image: &str) -> Option<ResolvedImage> {
        (!self.lock().contains(image)).then(|| Self::image(image))
    }

    async fn pull(&self, image: &str) -> Result<ResolvedImage, PullError> {
        if image.contains(' ') || image.is_empty() {
            return Err(PullError {
                reason: "InvalidImageName",
                message: format!("invalid image name {image:?}"),
            });
        }
        self.resolve(image).ok_or_else(|| PullError {
            reason: "ErrImagePull",
            message: format!("failed to pull image {image:?}: not found"),
        })
    }
}
