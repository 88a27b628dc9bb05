//! Tests of overlay root filesystems: option building through a recording mounter, and real
//! mounts (as root) of unpacked layers.

use std::os::unix::fs::FileTypeExt;
use std::sync::Mutex;

use super::*;
use crate::image::testutil::{Compression, LayerBuilder, busybox_layer};
use crate::image::unpack::unpack_into;

/// Records mounts instead of making them.
#[derive(Default)]
struct RecordingMounter {
    calls: Mutex<Vec<String>>,
}

impl OverlayMounter for RecordingMounter {
    fn mount_overlay(&self, cwd: &Path, options: &str, target: &Path) -> io::Result<()> {
        self.calls.lock().unwrap().push(format!(
            "mount {} {options} {}",
            cwd.display(),
            target.display()
        ));
        Ok(())
    }
    fn unmount(&self, target: &Path) -> io::Result<()> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("umount {}", target.display()));
        Ok(())
    }
}

fn fake_layers(base: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            // Long paths, as real store paths are: 64 hex digits per layer.
            let p = base.join(format!("{i:064x}"));
            fs::create_dir_all(&p).unwrap();
            p
        })
        .collect()
}

#[test]
fn options_list_short_links_top_layer_first() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = fake_layers(&tmp.path().join("layers"), 3);
    let dir = tmp.path().join("c1");
    let mounter = Arc::new(RecordingMounter::default());
    let rootfs = OverlayRootfs::mount_with(mounter.clone(), &layers, &dir, false).unwrap();
    let calls = mounter.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![format!(
            "mount {} lowerdir=l/2:l/1:l/0,upperdir=upper,workdir=work {}",
            dir.display(),
            dir.join("rootfs").display()
        )]
    );
    assert_eq!(fs::read_link(dir.join("l/2")).unwrap(), layers[2]);
    assert!(dir.join("upper").is_dir() && dir.join("work").is_dir());
    rootfs.remove().unwrap();
    assert_eq!(
        mounter.calls.lock().unwrap().last().unwrap(),
        &format!("umount {}", dir.join("rootfs").display())
    );
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn read_only_mounts_have_no_upper_and_two_lowers() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = fake_layers(tmp.path(), 1);
    let dir = tmp.path().join("c");
    let mounter = Arc::new(RecordingMounter::default());
    OverlayRootfs::mount_with(mounter.clone(), &layers, &dir, true).unwrap();
    let call = mounter.calls.lock().unwrap()[0].clone();
    assert!(call.contains(" lowerdir=l/0:empty "), "{call}");
    assert!(!call.contains("upperdir") && !dir.join("upper").exists());
}

#[test]
fn deep_images_fit_in_one_page_and_too_deep_ones_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = fake_layers(&tmp.path().join("layers"), 500);
    let dir = tmp.path().join("deep");
    let mounter = Arc::new(RecordingMounter::default());
    OverlayRootfs::mount_with(mounter.clone(), &layers, &dir, false).unwrap();
    let long: usize = layers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(
        long > MAX_MOUNT_DATA,
        "absolute paths would not fit ({long} bytes)"
    );

    let layers = fake_layers(&tmp.path().join("more"), 1000);
    let err =
        OverlayRootfs::mount_with(mounter, &layers, &tmp.path().join("x"), false).unwrap_err();
    assert!(
        matches!(err, RootfsError::TooManyLayers { count: 1000, .. }),
        "{err}"
    );
    assert!(
        !tmp.path().join("x/l").exists(),
        "a failed mount leaves its links behind"
    );
}

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
