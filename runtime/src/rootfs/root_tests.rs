//! Root-only tests of overlay root filesystems: real mounts of unpacked layers (whiteouts,
//! opaque directories, read-only overlays, deep images). Each skips, saying so, when not
//! run as root; each unmounts what it mounted.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::OverlayRootfs;
use crate::image::testutil::{Compression, LayerBuilder, busybox_layer};
use crate::image::unpack::unpack_into;
use crate::testing::skip_unless_root;

/// Whether anything is mounted at `path` according to the kernel.
fn is_mounted(path: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_str().unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

fn unpack(base: &Path, name: &str, layer: &[u8]) -> PathBuf {
    let dir = base.join(name);
    fs::create_dir_all(&dir).unwrap();
    unpack_into(layer, &dir, name).unwrap();
    dir
}

#[test]
fn overlay_of_three_layers_honours_whiteouts_and_opaque_dirs() {
    if skip_unless_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("layers");
    let l0 = unpack(&base, "l0", &busybox_layer(Compression::Gzip));
    let l1 = unpack(
        &base,
        "l1",
        &LayerBuilder::default()
            .dir("data", 0o755)
            .file("data/a", b"a", 0o644)
            .file("data/b", b"b", 0o644)
            .file("doomed", b"x", 0o644)
            .build(Compression::Zstd),
    );
    let l2 = unpack(
        &base,
        "l2",
        &LayerBuilder::default()
            .file(".wh.doomed", b"", 0o644)
            .dir("data", 0o755)
            .file("data/.wh..wh..opq", b"", 0o644)
            .file("data/c", b"c", 0o644)
            .build(Compression::None),
    );
    let dir = tmp.path().join("ctr");
    let rootfs = OverlayRootfs::mount(&[l0.clone(), l1, l2], &dir, false).unwrap();
    let root = rootfs.path();
    assert!(is_mounted(&root));
    assert!(root.join("bin/busybox").is_file());
    assert!(
        !root.join("doomed").exists(),
        "whiteout must hide the lower file"
    );
    let mut names: Vec<String> = fs::read_dir(root.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["c"], "opaque dir must hide lower contents");

    fs::write(root.join("new"), b"hi").unwrap();
    fs::remove_file(root.join("etc/passwd")).unwrap();
    assert_eq!(fs::read(rootfs.upper().join("new")).unwrap(), b"hi");
    assert!(
        fs::symlink_metadata(rootfs.upper().join("etc/passwd"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(
        l0.join("etc/passwd").exists(),
        "the shared layer is untouched"
    );

    rootfs.remove().unwrap();
    assert!(!is_mounted(&root));
    assert!(!dir.join("upper").exists() && !root.exists());
}

#[test]
fn read_only_overlay_refuses_writes() {
    if skip_unless_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let l0 = unpack(
        tmp.path(),
        "l0",
        &LayerBuilder::default()
            .file("f", b"1", 0o644)
            .build(Compression::None),
    );
    let rootfs = OverlayRootfs::mount(&[l0], &tmp.path().join("ro"), true).unwrap();
    assert_eq!(fs::read(rootfs.path().join("f")).unwrap(), b"1");
    let err = fs::write(rootfs.path().join("g"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let root = rootfs.path();
    rootfs.remove().unwrap();
    assert!(!is_mounted(&root));
}

#[test]
fn a_120_layer_image_mounts() {
    if skip_unless_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Store-like long paths, so that only short links make the options fit.
    let base = tmp.path().join("var/lib/skiff/agent/images/layers");
    let layers: Vec<PathBuf> = (0..120)
        .map(|i| {
            let layer =
                LayerBuilder::default().file(&format!("f{i}"), format!("{i}").as_bytes(), 0o644);
            unpack(&base, &format!("{i:064x}"), &layer.build(Compression::None))
        })
        .collect();
    let rootfs = OverlayRootfs::mount(&layers, &tmp.path().join("deep"), false).unwrap();
    assert_eq!(fs::read_to_string(rootfs.path().join("f0")).unwrap(), "0");
    assert_eq!(
        fs::read_to_string(rootfs.path().join("f119")).unwrap(),
        "119"
    );
    let root = rootfs.path();
    rootfs.remove().unwrap();
    assert!(!is_mounted(&root));
}
