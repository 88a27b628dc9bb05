//! The image store: image records (reference → manifest → config → layers) over the blob and
//! layer directories, and the operations that read or prune them.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::layout::{Layout, digest_hex, put_blob, remove_any, sync_dir, write_atomic};
use super::manifest::{ConfigFile, ImageConfig};
use super::{ImageError, ImageInfo, reference};

/// The on-disk record of one image reference. Written last, atomically, after every blob and
/// layer it names is in place, so a record on disk always describes a complete image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    /// Normalised reference, or the config digest for an image that came without a name.
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    /// Config digest (the image id).
    pub id: String,
    /// Layer diff ids, lowest first.
    pub layers: Vec<String>,
    /// Size in bytes (compressed layers plus config, as registries count it).
    pub size: u64,
    /// When the record was written (RFC 3339).
    pub created: String,
}

/// What a finished pull or import hands to the store to record.
pub(crate) struct NewImage {
    pub reference: Option<String>,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub diff_ids: Vec<String>,
    pub size: u64,
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs (manifests, configs) removed.
    pub blobs: usize,
    /// Unpacked layer directories removed.
    pub layers: usize,
    /// Scratch entries (partial downloads, interrupted unpacks) removed.
    pub scratch: usize,
}

/// The shared outcome of one in-flight pull.
pub(crate) type PullSlot = tokio::sync::OnceCell<Result<ImageInfo, ImageError>>;

/// A content-addressed image store rooted at `<root>/images`. Share it with `Arc`; every
/// method takes `&self`.
pub struct ImageStore {
    pub(crate) layout: Layout,
    /// In-flight pulls by normalised reference, so concurrent pulls of one image collapse.
    pub(crate) inflight: Mutex<HashMap<String, Arc<PullSlot>>>,
    /// In-flight layer fetches by blob digest, so two images sharing a layer fetch it once.
    pub(crate) layer_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Registry pulls actually performed (after collapsing), for metrics.
    pub(crate) registry_pulls: AtomicU64,
}

impl ImageStore {
    /// Opens (creating if needed) the store under `<root>/images`.
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        Ok(ImageStore {
            layout: Layout::create(root)?,
            inflight: Mutex::default(),
            layer_locks: Mutex::default(),
            registry_pulls: AtomicU64::new(0),
        })
    }

    /// The store's directory (`<root>/images`).
    pub fn path(&self) -> &Path {
        &self.layout.base
    }

    /// How many registry pulls this store has performed (concurrent pulls of one image count
    /// once).
    pub fn registry_pulls(&self) -> u64 {
        self.registry_pulls.load(Ordering::Relaxed)
    }

    /// Every image in the store, sorted by reference.
    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        let mut out: Vec<ImageInfo> = self
            .records()?
            .into_iter()
            .map(|r| self.info(r))
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// Finds an image by reference (normalised first), by `repo@digest` matching any record of
    /// that repository with that manifest, or by image id (`sha256:<hex>` or a hex prefix of at
    /// least 12 digits).
    pub fn resolve(&self, reference: &str) -> Option<ImageInfo> {
        self.find_record(reference).and_then(|r| self.info(r).ok())
    }

    /// Removes the record of `reference`; its blobs and layers stay until [`ImageStore::gc`].
    pub fn remove(&self, reference: &str) -> Result<ImageInfo, ImageError> {
        let record = self
            .find_record(reference)
            .ok_or_else(|| ImageError::NotFound {
                reference: reference.to_string(),
                message: "no such image in the store".to_string(),
            })?;
        let info = self.info(record.clone())?;
        let path = self.layout.record(&record.reference);
        fs::remove_file(&path).map_err(|e| ImageError::io("removing", &path, e))?;
        sync_dir(&self.layout.records())?;
        Ok(info)
    }

    /// Removes blobs and layers no image record references, and everything in the scratch
    /// area. Waits for running pulls and imports (a shared lock) to finish first.
    ///
    /// Callers must not collect layers that running containers still use as lower
    /// directories: remove only images no container uses.
    pub fn gc(&self) -> Result<GcReport, ImageError> {
        let _lock = self.lock(FlockArg::LockExclusive)?;
        let mut keep_blobs = HashSet::new();
        let mut keep_layers = HashSet::new();
        for r in self.records()? {
            keep_blobs.insert(digest_hex(&r.digest)?.to_string());
            keep_blobs.insert(digest_hex(&r.id)?.to_string());
            for l in &r.layers {
                keep_layers.insert(digest_hex(l)?.to_string());
            }
        }
        Ok(GcReport {
            blobs: prune(&self.layout.blobs(), &keep_blobs)?,
            layers: prune(&self.layout.layers(), &keep_layers)?,
            scratch: prune(&self.layout.tmp(), &HashSet::new())?,
        })
    }

    /// Takes the store lock: shared for pulls and imports, exclusive for garbage collection.
    pub(crate) fn lock(&self, arg: FlockArg) -> Result<Flock<File>, ImageError> {
        let path = self.layout.lock_file();
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ImageError::io("opening", &path, e))?;
        Flock::lock(file, arg).map_err(|(_, e)| ImageError::io("locking", &path, e.into()))
    }

    /// Records a complete image: stores its manifest and config blobs (verified) and then
    /// writes its record atomically. Every layer must already be unpacked.
    pub(crate) fn commit(&self, image: NewImage) -> Result<ImageInfo, ImageError> {
        put_blob(&self.layout, &image.manifest_digest, &image.manifest)?;
        put_blob(&self.layout, &image.config_digest, &image.config)?;
        for l in &image.diff_ids {
            let dir = self.layout.layer(l)?;
            if !dir.is_dir() {
                return Err(ImageError::io(
                    "recording image",
                    dir,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "layer not unpacked"),
                ));
            }
        }
        let record = ImageRecord {
            reference: image
                .reference
                .unwrap_or_else(|| image.config_digest.clone()),
            digest: image.manifest_digest,
            id: image.config_digest,
            layers: image.diff_ids,
            size: image.size,
            created: jiff::Timestamp::now().to_string(),
        };
        let bytes = serde_json::to_vec_pretty(&record).expect("records serialise");
        write_atomic(&self.layout.record(&record.reference), &bytes)?;
        tracing::info!(image = %record.reference, digest = %record.digest, "image recorded");
        self.info(record)
    }

    fn records(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let dir = self.layout.records();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| ImageError::io("reading", &dir, e))? {
            let path = entry
                .map_err(|e| ImageError::io("reading", &dir, e))?
                .path();
            if path.extension().is_none_or(|e| e != "json") {
                continue; // a temporary file of an interrupted write
            }
            match fs::read(&path).map(|b| serde_json::from_slice::<ImageRecord>(&b)) {
                Ok(Ok(record)) => out.push(record),
                other => {
                    tracing::warn!(path = %path.display(), ?other, "skipping unreadable image record")
                }
            }
        }
        Ok(out)
    }

    fn find_record(&self, reference: &str) -> Option<ImageRecord> {
        let read = |key: &str| -> Option<ImageRecord> {
            let bytes = fs::read(self.layout.record(key)).ok()?;
            serde_json::from_slice(&bytes).ok()
        };
        if let Some(r) = read(reference) {
            return Some(r);
        }
        if let Ok(parsed) = reference::parse(reference) {
            let whole = reference::whole(&parsed);
            if let Some(r) = read(&whole) {
                return Some(r);
            }
            if let Some(digest) = parsed.digest() {
                let repo = format!("{}/{}", parsed.registry(), parsed.repository());
                let found = self.records().ok()?.into_iter().find(|r| {
                    r.digest == digest && reference::repo_and_tag(&r.reference).0 == repo
                });
                if found.is_some() {
                    return found;
                }
            }
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self
                .records()
                .ok()?
                .into_iter()
                .find(|r| r.id["sha256:".len()..].starts_with(hex));
        }
        None
    }

    fn info(&self, record: ImageRecord) -> Result<ImageInfo, ImageError> {
        let config_path = self.layout.blob(&record.id)?;
        let bytes =
            fs::read(&config_path).map_err(|e| ImageError::io("reading", &config_path, e))?;
        let config: ImageConfig = ConfigFile::parse(&bytes, &record.reference)?.image_config();
        let layers: Vec<PathBuf> = record
            .layers
            .iter()
            .map(|l| self.layout.layer(l))
            .collect::<Result<_, _>>()?;
        Ok(ImageInfo {
            reference: record.reference,
            id: record.id,
            digest: record.digest,
            config,
            layers,
            size: record.size,
        })
    }
}

/// Removes every entry of `dir` whose name is not in `keep`; returns how many went.
fn prune(dir: &Path, keep: &HashSet<String>) -> Result<usize, ImageError> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(|e| ImageError::io("reading", dir, e))? {
        let entry = entry.map_err(|e| ImageError::io("reading", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Interrupted atomic writes (dot files) are never in `keep`, so they go too.
        if keep.contains(&name) {
            continue;
        }
        remove_any(&entry.path())?;
        removed += 1;
    }
    Ok(removed)
}
