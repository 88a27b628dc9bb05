//! Tests of overlay root filesystems without root: option building through a recording
//! mounter. Real mounts are in `root_tests`.

use std::sync::Mutex;

use super::*;

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
