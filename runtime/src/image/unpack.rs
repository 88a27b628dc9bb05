//! Unpacks one layer (tar, tar+gzip or tar+zstd) into its own directory, turning Docker/OCI
//! whiteouts into overlayfs whiteouts and refusing entries that would land outside the layer.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use sha2::{Digest, Sha256};
use tar::EntryType;

use super::ImageError;
use super::layout::{Layout, remove_any, sync_dir};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Unpacks the layer read from `blob` (named `digest` in errors) into the store's layer
/// directory keyed by its diff id, and returns that diff id.
///
/// The layer is unpacked into the scratch area and renamed into place only when complete
/// and, if `expected_diff_id` is given, verified; any failure leaves nothing behind. When
/// another unpack of the same layer won the race, its directory is kept and ours dropped.
pub fn unpack_layer(
    layout: &Layout,
    blob: impl Read,
    digest: &str,
    expected_diff_id: Option<&str>,
) -> Result<String, ImageError> {
    let scratch = layout.scratch("unpack");
    fs::create_dir(&scratch).map_err(|e| ImageError::io("creating", &scratch, e))?;
    let result = unpack_into(blob, &scratch, digest).and_then(|diff_id| {
        if let Some(expected) = expected_diff_id
            && expected != diff_id
        {
            return Err(ImageError::DigestMismatch {
                what: format!("uncompressed layer {digest}"),
                expected: expected.to_string(),
                actual: diff_id,
            });
        }
        let target = layout.layer(&diff_id)?;
        if target.exists() {
            remove_any(&scratch)?;
        } else {
            fs::rename(&scratch, &target).map_err(|e| ImageError::io("renaming", &target, e))?;
            sync_dir(&layout.layers())?;
        }
        Ok(diff_id)
    });
    if result.is_err() {
        let _ = remove_any(&scratch);
    }
    result
}

/// Unpacks a possibly compressed tar stream into `dest` and returns the sha256 digest of the
/// uncompressed stream (the layer's diff id).
pub fn unpack_into(blob: impl Read, dest: &Path, digest: &str) -> Result<String, ImageError> {
    let mut input = BufReader::with_capacity(256 * 1024, blob);
    let head = input
        .fill_buf()
        .map_err(|e| truncated(digest, &e))?
        .to_vec();
    let decoded: Box<dyn Read> = if head.starts_with(GZIP_MAGIC) {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else if head.starts_with(ZSTD_MAGIC) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(input).map_err(|e| truncated(digest, &e))?,
        )
    } else {
        Box::new(input)
    };
    let mut archive = tar::Archive::new(HashingReader {
        inner: decoded,
        hasher: Sha256::new(),
    });
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);

    let root = fs::canonicalize(dest).map_err(|e| ImageError::io("resolving", dest, e))?;
    for entry in archive.entries().map_err(|e| truncated(digest, &e))? {
        let mut entry = entry.map_err(|e| truncated(digest, &e))?;
        unpack_entry(&mut entry, &root, digest)?;
    }
    // The diff id covers the whole stream, including the end-of-archive padding.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| truncated(digest, &e))?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
        .map_err(|e| ImageError::io("chmod", &root, e))?;
    Ok(format!("sha256:{}", hex::encode(rest.hasher.finalize())))
}

fn unpack_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    root: &Path,
    digest: &str,
) -> Result<(), ImageError> {
    let kind = entry.header().entry_type();
    if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
        return Ok(());
    }
    let raw = entry
        .path()
        .map_err(|e| truncated(digest, &e))?
        .into_owned();
    let rel = clean_path(&raw).map_err(|m| unsafe_layer(digest, &raw, m))?;
    let Some(name) = rel.file_name().map(OsStr::to_owned) else {
        return Ok(()); // the layer root itself
    };
    let parent = ensure_parent(root, rel.parent().unwrap_or(Path::new("")), digest)?;
    let name_str = name.to_string_lossy();

    if name_str == OPAQUE_MARKER {
        return xattr::set(&parent, "trusted.overlay.opaque", b"y")
            .map_err(|e| ImageError::io("marking opaque", &parent, e));
    }
    if let Some(hidden) = name_str.strip_prefix(WHITEOUT_PREFIX) {
        let target = parent.join(hidden);
        remove_any(&target)?;
        return mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
            .map_err(|e| ImageError::io("creating whiteout", &target, e.into()));
    }

    let target = parent.join(&name);
    if let Ok(existing) = fs::symlink_metadata(&target)
        && !(existing.is_dir() && kind == EntryType::Directory)
    {
        remove_any(&target)?;
    }
    let io_err = |op, e: io::Error| -> ImageError {
        match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => truncated(digest, &e),
            _ => ImageError::io(op, &target, e),
        }
    };
    match kind {
        EntryType::Link => {
            let link = entry
                .link_name()
                .map_err(|e| truncated(digest, &e))?
                .ok_or_else(|| unsafe_layer(digest, &raw, "hard link without a target"))?;
            let link_rel = clean_path(&link).map_err(|m| unsafe_layer(digest, &link, m))?;
            let link_parent =
                ensure_parent(root, link_rel.parent().unwrap_or(Path::new("")), digest)?;
            let source = link_parent.join(link_rel.file_name().unwrap_or_default());
            fs::hard_link(&source, &target).map_err(|e| io_err("hard-linking", e))
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            let header = entry.header();
            let flag = match kind {
                EntryType::Char => SFlag::S_IFCHR,
                EntryType::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            let mode = header.mode().map_err(|e| truncated(digest, &e))? & 0o7777;
            mknod(
                &target,
                flag,
                Mode::from_bits_truncate(mode),
                makedev(major.into(), minor.into()),
            )
            .map_err(|e| io_err("creating device", e.into()))?;
            let uid = header.uid().map_err(|e| truncated(digest, &e))?;
            let gid = header.gid().map_err(|e| truncated(digest, &e))?;
            std::os::unix::fs::lchown(&target, Some(uid as u32), Some(gid as u32))
                .map_err(|e| io_err("chown", e))?;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(|e| io_err("chmod", e))
        }
        _ => entry
            .unpack(&target)
            .map(|_| ())
            .map_err(|e| io_err("unpacking", e)),
    }
}

/// Turns an entry path into a relative path of plain components; `..` and absolute paths
/// are refused rather than silently rewritten.
fn clean_path(path: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains '..'"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    Ok(out)
}

/// Makes sure the directory `rel` exists inside `root`, creating missing directories, and
/// returns its real path; a symlink on the way that resolves outside `root` is refused.
fn ensure_parent(root: &Path, rel: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    let mut current = root.to_path_buf();
    for component in rel.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let resolved = fs::canonicalize(&current).unwrap_or_default();
                if !resolved.starts_with(root) || !resolved.is_dir() {
                    return Err(unsafe_layer(
                        digest,
                        rel,
                        "a symlink on the path escapes the layer root",
                    ));
                }
                current = resolved;
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                remove_any(&current)?;
                fs::create_dir(&current).map_err(|e| ImageError::io("creating", &current, e))?;
            }
            Err(_) => {
                fs::create_dir(&current).map_err(|e| ImageError::io("creating", &current, e))?;
            }
        }
    }
    Ok(current)
}

fn truncated(digest: &str, e: &io::Error) -> ImageError {
    ImageError::TruncatedLayer {
        digest: digest.to_string(),
        message: e.to_string(),
    }
}

fn unsafe_layer(digest: &str, path: &Path, why: &str) -> ImageError {
    ImageError::UnsafeLayer {
        digest: digest.to_string(),
        message: format!("entry {:?}: {why}", path.display().to_string()),
    }
}

/// Hashes everything read through it (the uncompressed layer, for its diff id).
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::super::testutil::{Compression, LayerBuilder, busybox_layer, diff_id};
    use super::*;

    fn store() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        (dir, layout)
    }

    fn layer_count(layout: &Layout) -> usize {
        fs::read_dir(layout.layers()).unwrap().count() + fs::read_dir(layout.tmp()).unwrap().count()
    }

    #[test]
    fn busybox_layers_unpack_in_every_compression() {
        let (_d, layout) = store();
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let layer = busybox_layer(compression);
            let id =
                unpack_layer(&layout, &layer[..], "sha256:test", Some(&diff_id(&layer))).unwrap();
            let dir = layout.layer(&id).unwrap();
            let bb = fs::metadata(dir.join("bin/busybox")).unwrap();
            assert_eq!(bb.mode() & 0o7777, 0o755, "{compression:?}");
            assert_eq!(
                fs::read_link(dir.join("bin/sh")).unwrap(),
                Path::new("busybox")
            );
            assert_eq!(
                fs::read_to_string(dir.join("etc/passwd"))
                    .unwrap()
                    .lines()
                    .count(),
                1
            );
        }
        // Same uncompressed content in three compressions: one shared directory.
        assert_eq!(fs::read_dir(layout.layers()).unwrap().count(), 1);
        assert_eq!(fs::read_dir(layout.tmp()).unwrap().count(), 0);
    }

    #[test]
    fn path_traversal_is_rejected_and_leaves_nothing() {
        let (d, layout) = store();
        let outside = tempfile::tempdir().unwrap();
        let cases = vec![
            (
                "dotdot",
                LayerBuilder::default()
                    .file("ok", b"", 0o644)
                    .raw_file("../../evil", b"x"),
            ),
            (
                "absolute",
                LayerBuilder::default().raw_file("/etc/evil", b"x"),
            ),
            (
                "absolute symlink parent",
                LayerBuilder::default()
                    .symlink("esc", outside.path().to_str().unwrap())
                    .file("esc/evil", b"x", 0o644),
            ),
            (
                "relative symlink parent",
                LayerBuilder::default()
                    .symlink("up", "../../../../../../..")
                    .file("up/tmp/evil", b"x", 0o644),
            ),
            (
                "hard link out",
                LayerBuilder::default().hardlink("pw", "../../../etc/passwd"),
            ),
        ];
        for (name, builder) in cases {
            let err = unpack_layer(
                &layout,
                &builder.build(Compression::None)[..],
                "sha256:bad",
                None,
            )
            .unwrap_err();
            assert!(
                matches!(err, ImageError::UnsafeLayer { .. }),
                "{name}: {err}"
            );
            assert_eq!(layer_count(&layout), 0, "{name}");
        }
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(!d.path().join("evil").exists() && !Path::new("/tmp/evil").exists());
    }

    #[test]
    fn truncated_or_mismatched_layers_fail_cleanly() {
        let (_d, layout) = store();
        let layer = busybox_layer(Compression::Gzip);
        let cut = &layer[..layer.len() / 2];
        let err = unpack_layer(&layout, cut, "sha256:cut", None).unwrap_err();
        assert!(matches!(err, ImageError::TruncatedLayer { .. }), "{err}");
        assert_eq!(err.reason(), "TruncatedLayer");

        let wrong = format!("sha256:{}", "0".repeat(64));
        let err = unpack_layer(&layout, &layer[..], "sha256:l", Some(&wrong)).unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
        assert_eq!(layer_count(&layout), 0);
    }
}
