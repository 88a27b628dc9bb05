//! Where the image store keeps things on disk, and the crash-safe write helpers it uses.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ImageError;

/// Paths of the store under `<root>/images`.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `<root>/images`.
    pub base: PathBuf,
}

impl Layout {
    /// The layout of the store rooted at `<root>/images`, creating its directories.
    pub fn create(root: &Path) -> Result<Layout, ImageError> {
        let layout = Layout {
            base: root.join("images"),
        };
        for dir in [
            layout.blobs(),
            layout.layers(),
            layout.records(),
            layout.tmp(),
        ] {
            fs::create_dir_all(&dir).map_err(|e| ImageError::io("creating", &dir, e))?;
        }
        Ok(layout)
    }

    /// Directory of verified blobs (manifests and configs), `blobs/sha256/<hex>`.
    pub fn blobs(&self) -> PathBuf {
        self.base.join("blobs").join("sha256")
    }

    /// Directory of unpacked layers, one directory per diff id hex.
    pub fn layers(&self) -> PathBuf {
        self.base.join("layers")
    }

    /// Directory of image records, one JSON file per reference.
    pub fn records(&self) -> PathBuf {
        self.base.join("records")
    }

    /// Scratch area for partial downloads and unpacks; nothing here is ever trusted.
    pub fn tmp(&self) -> PathBuf {
        self.base.join("tmp")
    }

    /// The lock file serialising garbage collection against pulls and imports.
    pub fn lock_file(&self) -> PathBuf {
        self.base.join("lock")
    }

    /// The path of the blob named by `digest` (`sha256:<hex>`).
    pub fn blob(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.blobs().join(digest_hex(digest)?))
    }

    /// The directory of the layer whose uncompressed digest is `diff_id`.
    pub fn layer(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self.layers().join(digest_hex(diff_id)?))
    }

    /// The record file of a normalised reference.
    pub fn record(&self, reference: &str) -> PathBuf {
        self.records()
            .join(format!("{}.json", hex::encode(Sha256::digest(reference))))
    }

    /// A fresh, unique path in the scratch area.
    pub fn scratch(&self, prefix: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = jiff::Timestamp::now().as_nanosecond();
        self.tmp()
            .join(format!("{prefix}-{}-{nanos}-{n}", std::process::id()))
    }
}

/// The hex part of a `sha256:<hex>` digest, rejecting anything else (digests become file
/// names, so nothing but 64 hex digits may pass).
pub fn digest_hex(digest: &str) -> Result<&str, ImageError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(hex)
    } else {
        Err(ImageError::BadManifest {
            reference: digest.to_string(),
            message: "unsupported digest (only sha256 is accepted)".to_string(),
        })
    }
}

/// The `sha256:<hex>` digest of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The `sha256:<hex>` digest and size of a file's contents.
pub fn hash_file(path: &Path) -> Result<(String, u64), ImageError> {
    let mut file = File::open(path).map_err(|e| ImageError::io("opening", path, e))?;
    let mut hasher = Sha256::new();
    let n =
        std::io::copy(&mut file, &mut hasher).map_err(|e| ImageError::io("reading", path, e))?;
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), n))
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one:
/// write a temporary sibling, fsync it, rename it over, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().expect("store paths have a parent");
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = File::create(&tmp).map_err(|e| ImageError::io("creating", &tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| ImageError::io("writing", &tmp, e))?;
    f.sync_all()
        .map_err(|e| ImageError::io("syncing", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| ImageError::io("renaming into place", path, e))?;
    sync_dir(dir)
}

/// Fsyncs a directory so that renames into it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ImageError::io("syncing", dir, e))
}

/// Stores verified bytes as the blob named by `digest`; a mismatch stores nothing.
pub fn put_blob(layout: &Layout, digest: &str, bytes: &[u8]) -> Result<PathBuf, ImageError> {
    let actual = sha256_digest(bytes);
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            what: "blob".to_string(),
            expected: digest.to_string(),
            actual,
        });
    }
    let path = layout.blob(digest)?;
    if !path.exists() {
        write_atomic(&path, bytes)?;
    }
    Ok(path)
}

/// Removes a path whatever it is, ignoring a missing one.
pub fn remove_any(path: &Path) -> Result<(), ImageError> {
    let res = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    res.map_err(|e| ImageError::io("removing", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_with_the_wrong_digest_are_rejected_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let good = sha256_digest(b"hello");
        put_blob(&layout, &good, b"hello").unwrap();
        assert_eq!(fs::read(layout.blob(&good).unwrap()).unwrap(), b"hello");

        let err = put_blob(&layout, &good.replace('2', "3"), b"hello").unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
        assert_eq!(fs::read_dir(layout.blobs()).unwrap().count(), 1);
    }

    #[test]
    fn digests_must_be_sha256_hex() {
        assert!(digest_hex("sha256:../../etc").is_err());
        assert!(digest_hex(&format!("sha512:{}", "a".repeat(64))).is_err());
        assert!(digest_hex(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(digest_hex(&format!("sha256:{}", "0f".repeat(32))).is_ok());
    }
}
