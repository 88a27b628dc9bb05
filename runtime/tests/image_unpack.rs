//! Layer contents that only root can create on disk; needs root (each test says it is
//! skipped otherwise): whiteouts as overlay character devices and opaque directories as
//! `trusted.` xattrs, and ownership, set-uid modes, device nodes, hard links and xattrs kept.
//! Layers go in through `ImageStore::import_rootfs`, the same unpack every image takes.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::makedev;
use skiff_runtime::image::ImageStore;
use skiff_runtime::image::testutil::{Compression, LayerBuilder};
use skiff_runtime::testkit::skip_unless_root;

/// Imports `layer` into a fresh store; returns the store's directory and the unpacked
/// layer's directory.
fn unpack(layer: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = tmp.path().join("layer.tar");
    fs::write(&tarball, layer).unwrap();
    let store = ImageStore::open(&tmp.path().join("root")).unwrap();
    let info = store.import_rootfs(&tarball, "layer:1").unwrap();
    let [dir] = <[PathBuf; 1]>::try_from(info.layers).expect("one layer");
    (tmp, dir)
}

#[test]
fn whiteouts_and_opaque_dirs_become_overlay_markers() {
    if skip_unless_root() {
        return;
    }
    let layer = LayerBuilder::default()
        .file(".wh.gone", b"", 0o644)
        .dir("etc", 0o755)
        .file("etc/.wh..wh..opq", b"", 0o644)
        .file("etc/kept", b"new", 0o644)
        .build(Compression::Gzip);
    let (_tmp, dir) = unpack(&layer);
    let gone = fs::symlink_metadata(dir.join("gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(!dir.join(".wh.gone").exists());
    assert_eq!(
        xattr::get(dir.join("etc"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert!(!dir.join("etc/.wh..wh..opq").exists());
    assert_eq!(fs::read(dir.join("etc/kept")).unwrap(), b"new");
}

#[test]
fn links_devices_ownership_and_xattrs_are_preserved() {
    if skip_unless_root() {
        return;
    }
    let layer = LayerBuilder::default()
        .file_owned("data", b"payload", 0o4750, 1000, 1001)
        .hardlink("data-link", "data")
        .symlink("abs", "/bin/busybox")
        .dir("dev", 0o755)
        .char_device("dev/null", 1, 3)
        .file_with_xattr("tagged", "user.skiff", "yes")
        .build(Compression::None);
    let (_tmp, dir) = unpack(&layer);
    let data = fs::metadata(dir.join("data")).unwrap();
    assert_eq!(
        (data.uid(), data.gid(), data.mode() & 0o7777),
        (1000, 1001, 0o4750)
    );
    assert_eq!(
        fs::metadata(dir.join("data-link")).unwrap().ino(),
        data.ino()
    );
    assert_eq!(
        fs::read_link(dir.join("abs")).unwrap(),
        Path::new("/bin/busybox")
    );
    let null = fs::symlink_metadata(dir.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), makedev(1, 3));
    assert_eq!(
        xattr::get(dir.join("tagged"), "user.skiff").unwrap(),
        Some(b"yes".to_vec())
    );
}
