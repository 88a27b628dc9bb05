//! Imports images from files: OCI image-layout archives, `docker save` archives, and plain
//! root-filesystem tarballs (like `docker import`).

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use nix::fcntl::FlockArg;
use serde::Deserialize;
use serde_json::json;

use super::layout::{hash_file, remove_any, sha256_digest};
use super::manifest::{AnyManifest, ConfigFile, Descriptor, host_arch};
use super::store::NewImage;
use super::unpack::{unpack_into, unpack_layer};
use super::{ImageError, ImageInfo, ImageStore, reference};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// One entry of a `docker save` archive's `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerSaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl ImageStore {
    /// Imports every image of an OCI image-layout archive or a `docker save` archive (tar,
    /// optionally gzip- or zstd-compressed). Images are named by their `RepoTags` or
    /// `io.containerd.image.name` / `org.opencontainers.image.ref.name` annotations (a bare
    /// tag becomes `localhost/<archive stem>:<tag>`); unnamed images are recorded by id.
    pub fn import_archive(&self, path: &Path) -> Result<Vec<ImageInfo>, ImageError> {
        let _lock = self.lock(FlockArg::LockShared)?;
        let dir = self.layout.scratch("archive");
        fs::create_dir(&dir).map_err(|e| ImageError::io("creating", &dir, e))?;
        let result = self.import_extracted(path, &dir);
        let _ = remove_any(&dir);
        result
    }

    /// Imports a root-filesystem tarball as a one-layer image named `name` with an empty
    /// config, like `docker import`.
    pub fn import_rootfs(&self, tarball: &Path, name: &str) -> Result<ImageInfo, ImageError> {
        let name = reference::normalize(name)?;
        let _lock = self.lock(FlockArg::LockShared)?;
        let (blob_digest, blob_size) = hash_file(tarball)?;
        let file = File::open(tarball).map_err(|e| ImageError::io("opening", tarball, e))?;
        let diff_id = unpack_layer(&self.layout, file, &blob_digest, None)?;
        let config = serde_json::to_vec(&json!({
            "architecture": host_arch(),
            "os": "linux",
            "created": jiff::Timestamp::now().to_string(),
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))
        .expect("config serialises");
        let layer = Descriptor {
            media_type: layer_media_type(tarball),
            digest: blob_digest,
            size: blob_size,
            ..Default::default()
        };
        self.commit_synthesized(Some(name), config, vec![layer], vec![diff_id])
    }

    fn import_extracted(&self, path: &Path, dir: &Path) -> Result<Vec<ImageInfo>, ImageError> {
        let file = File::open(path).map_err(|e| ImageError::io("opening", path, e))?;
        let bad = |message: String| ImageError::BadArchive {
            path: path.to_path_buf(),
            message,
        };
        unpack_into(file, dir, "archive").map_err(|e| bad(e.to_string()))?;
        if dir.join("index.json").is_file() {
            self.import_oci_layout(path, dir)
        } else if dir.join("manifest.json").is_file() {
            self.import_docker_save(path, dir)
        } else {
            Err(bad(
                "neither an OCI layout (index.json) nor a docker save archive (manifest.json)"
                    .into(),
            ))
        }
    }

    fn import_oci_layout(&self, path: &Path, dir: &Path) -> Result<Vec<ImageInfo>, ImageError> {
        let label = path.display().to_string();
        let index = AnyManifest::parse(&read(&dir.join("index.json"))?, &label)?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("import");
        let stem = stem.split('.').next().unwrap_or(stem).to_ascii_lowercase();
        let mut out = Vec::new();
        for entry in index.manifests.as_deref().unwrap_or_default() {
            let name = entry
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| entry.annotations.get("org.opencontainers.image.ref.name"))
                .map(|n| {
                    if n.contains('/') || n.contains(':') || n.contains('@') {
                        reference::normalize(n)
                    } else {
                        reference::normalize(&format!("localhost/{stem}:{n}"))
                    }
                })
                .transpose()?;
            let mut bytes = read_blob(dir, &entry.digest)?;
            let mut digest = entry.digest.clone();
            let mut manifest = AnyManifest::parse(&bytes, &label)?;
            if manifest.is_index() {
                digest = manifest.choose_platform(&label)?.digest.clone();
                bytes = read_blob(dir, &digest)?;
                manifest = AnyManifest::parse(&bytes, &label)?;
            }
            let config_desc = manifest.config(&label)?.clone();
            let config = read_blob(dir, &config_desc.digest)?;
            let diff_ids = ConfigFile::parse(&config, &label)?.diff_ids();
            if diff_ids.len() != manifest.layers.len() {
                return Err(ImageError::BadManifest {
                    reference: label,
                    message: "layer count differs between manifest and config".into(),
                });
            }
            for (layer, diff_id) in manifest.layers.iter().zip(&diff_ids) {
                let blob = blob_path(dir, &layer.digest)?;
                self.unpack_verified(&blob, &layer.digest, diff_id)?;
            }
            let size = config_desc.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
            out.push(self.commit(NewImage {
                reference: name,
                manifest: bytes,
                manifest_digest: digest,
                config,
                config_digest: config_desc.digest,
                diff_ids,
                size,
            })?);
        }
        Ok(out)
    }

    fn import_docker_save(&self, path: &Path, dir: &Path) -> Result<Vec<ImageInfo>, ImageError> {
        let label = path.display().to_string();
        let entries: Vec<DockerSaveEntry> =
            serde_json::from_slice(&read(&dir.join("manifest.json"))?).map_err(|e| {
                ImageError::BadArchive {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                }
            })?;
        let mut out = Vec::new();
        for entry in entries {
            let config = read(&inside(dir, &entry.config)?)?;
            let diff_ids = ConfigFile::parse(&config, &label)?.diff_ids();
            if diff_ids.len() != entry.layers.len() {
                return Err(ImageError::BadManifest {
                    reference: label,
                    message: "layer count differs between manifest.json and config".into(),
                });
            }
            let mut layers = Vec::new();
            for (layer, diff_id) in entry.layers.iter().zip(&diff_ids) {
                let blob = inside(dir, layer)?;
                let (digest, size) = hash_file(&blob)?;
                self.unpack_verified(&blob, &digest, diff_id)?;
                layers.push(Descriptor {
                    media_type: layer_media_type(&blob),
                    digest,
                    size,
                    ..Default::default()
                });
            }
            let names = entry.repo_tags.unwrap_or_default();
            let names: Vec<Option<String>> = if names.is_empty() {
                vec![None]
            } else {
                names
                    .iter()
                    .map(|n| reference::normalize(n).map(Some))
                    .collect::<Result<_, _>>()?
            };
            for name in names {
                out.push(self.commit_synthesized(
                    name,
                    config.clone(),
                    layers.clone(),
                    diff_ids.clone(),
                )?);
            }
        }
        Ok(out)
    }

    /// Unpacks a layer file unless already present, after checking its digest.
    fn unpack_verified(&self, blob: &Path, digest: &str, diff_id: &str) -> Result<(), ImageError> {
        if self.layout.layer(diff_id)?.is_dir() {
            return Ok(());
        }
        let (actual, _) = hash_file(blob)?;
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: format!("layer {}", blob.display()),
                expected: digest.into(),
                actual,
            });
        }
        let file = File::open(blob).map_err(|e| ImageError::io("opening", blob, e))?;
        unpack_layer(&self.layout, file, digest, Some(diff_id)).map(|_| ())
    }

    /// Records an image for which we write the manifest ourselves (docker save, rootfs).
    fn commit_synthesized(
        &self,
        reference: Option<String>,
        config: Vec<u8>,
        layers: Vec<Descriptor>,
        diff_ids: Vec<String>,
    ) -> Result<ImageInfo, ImageError> {
        let config_digest = sha256_digest(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": layers,
        }))
        .expect("manifest serialises");
        let size = config.len() as u64 + layers.iter().map(|l| l.size).sum::<u64>();
        self.commit(NewImage {
            reference,
            manifest_digest: sha256_digest(&manifest),
            manifest,
            config,
            config_digest,
            diff_ids,
            size,
        })
    }
}

/// The media type of a layer file, by its magic bytes.
fn layer_media_type(path: &Path) -> String {
    let mut head = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    let kind = match &head[..n] {
        [0x1f, 0x8b, ..] => "+gzip",
        [0x28, 0xb5, 0x2f, 0xfd] => "+zstd",
        _ => "",
    };
    format!("application/vnd.oci.image.layer.v1.tar{kind}")
}

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    fs::read(path).map_err(|e| ImageError::io("reading", path, e))
}

/// The path of a blob in an OCI layout.
fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    Ok(dir
        .join("blobs")
        .join("sha256")
        .join(super::layout::digest_hex(digest)?))
}

/// Reads a blob of an OCI layout, verifying its digest.
fn read_blob(dir: &Path, digest: &str) -> Result<Vec<u8>, ImageError> {
    let bytes = read(&blob_path(dir, digest)?)?;
    let actual = sha256_digest(&bytes);
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            what: "archive blob".into(),
            expected: digest.into(),
            actual,
        });
    }
    Ok(bytes)
}

/// A path named inside an archive's `manifest.json`, refused if it leaves the archive.
fn inside(dir: &Path, rel: &str) -> Result<PathBuf, ImageError> {
    let p = Path::new(rel);
    if p.components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    }) {
        return Err(ImageError::BadArchive {
            path: dir.to_path_buf(),
            message: format!("path {rel:?} leaves the archive"),
        });
    }
    Ok(dir.join(p))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Compression, LayerBuilder, TestImage, busybox_layer};
    use super::super::{GcReport, ImageConfig};
    use super::*;

    fn image() -> TestImage {
        TestImage::new(
            vec![
                busybox_layer(Compression::None),
                LayerBuilder::default()
                    .file("hello", b"hi", 0o644)
                    .build(Compression::Gzip),
            ],
            &["/bin/echo", "hi"],
        )
    }

    fn count(dir: PathBuf) -> usize {
        fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn docker_save_and_oci_layout_archives_import_and_share_layers() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&tmp.path().join("root")).unwrap();
        let img = image();

        let docker = tmp.path().join("saved.tar");
        fs::write(&docker, img.docker_archive("busybox:saved")).unwrap();
        let infos = store.import_archive(&docker).unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].reference, "docker.io/library/busybox:saved");
        assert_eq!(infos[0].config.cmd, vec!["/bin/echo", "hi"]);
        assert_eq!(fs::read(infos[0].layers[1].join("hello")).unwrap(), b"hi");

        let oci = tmp.path().join("app.oci.tar");
        fs::write(&oci, img.oci_archive("v2")).unwrap();
        let infos = store.import_archive(&oci).unwrap();
        assert_eq!(infos[0].reference, "localhost/app:v2");
        assert_eq!(
            infos[0].digest,
            super::super::testutil::digest(&img.manifest)
        );
        let named = tmp.path().join("named.tar");
        fs::write(&named, img.oci_archive("127.0.0.1:5000/app:1")).unwrap();
        assert_eq!(
            store.import_archive(&named).unwrap()[0].reference,
            "127.0.0.1:5000/app:1"
        );

        assert_eq!(
            count(store.layout.layers()),
            2,
            "three imports, two distinct layers"
        );
        assert_eq!(count(store.layout.tmp()), 0);
        assert!(store.resolve("busybox:saved").is_some());
        assert!(
            store.resolve(&infos[0].id[7..19]).is_some(),
            "short image ids resolve"
        );
    }

    #[test]
    fn archives_that_are_not_images_or_are_corrupt_are_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&tmp.path().join("root")).unwrap();
        let junk = tmp.path().join("junk.tar");
        fs::write(
            &junk,
            LayerBuilder::default()
                .file("x", b"y", 0o644)
                .build(Compression::None),
        )
        .unwrap();
        let err = store.import_archive(&junk).unwrap_err();
        assert!(matches!(err, ImageError::BadArchive { .. }), "{err}");

        let bad = tmp.path().join("bad.tar");
        fs::write(&bad, image().oci_archive_corrupting("v1", Some(1))).unwrap();
        let err = store.import_archive(&bad).unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
        assert!(store.list().unwrap().is_empty());
        assert_eq!(count(store.layout.tmp()), 0);
    }

    #[test]
    fn rootfs_import_makes_a_one_layer_image_and_gc_collects_after_rm() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&tmp.path().join("root")).unwrap();
        let tarball = tmp.path().join("rootfs.tar.gz");
        fs::write(&tarball, busybox_layer(Compression::Gzip)).unwrap();
        let info = store.import_rootfs(&tarball, "mybox:1").unwrap();
        assert_eq!(info.reference, "docker.io/library/mybox:1");
        assert_eq!(info.config, ImageConfig::default());
        assert_eq!(info.layers.len(), 1);
        assert!(info.layers[0].join("bin/busybox").is_file());

        let docker = tmp.path().join("other.tar");
        fs::write(&docker, image().docker_archive("other:1")).unwrap();
        store.import_archive(&docker).unwrap();
        assert_eq!(
            store.gc().unwrap(),
            GcReport::default(),
            "nothing unreferenced yet"
        );

        let removed = store.remove("other:1").unwrap();
        assert_eq!(removed.reference, "docker.io/library/other:1");
        assert!(store.resolve("other:1").is_none());
        let report = store.gc().unwrap();
        // The busybox layer is shared with mybox:1; only other:1's second layer and blobs go.
        assert_eq!((report.layers, report.blobs), (1, 2));
        assert!(info.layers[0].join("bin/busybox").is_file());
        assert_eq!(store.list().unwrap().len(), 1);
        assert!(matches!(
            store.remove("other:1"),
            Err(ImageError::NotFound { .. })
        ));
    }
}
