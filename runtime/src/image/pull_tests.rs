//! Pull tests against Debian's `docker-registry` on loopback.

use std::fs;

use super::testutil::{Compression, LayerBuilder, TestImage, TestRegistry, busybox_layer};
use super::*;

fn two_layer_image(tag: &str) -> TestImage {
    TestImage::new(
        vec![
            busybox_layer(Compression::Gzip),
            LayerBuilder::default()
                .dir("srv", 0o755)
                .file("srv/tag", tag.as_bytes(), 0o644)
                .build(Compression::Zstd),
        ],
        &["/bin/sh", "-c", "cat /srv/tag"],
    )
}

fn count(dir: std::path::PathBuf) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn pull_futures_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let options = PullOptions::default();
    assert_send(&store.pull("busybox", &options));
}

#[tokio::test]
async fn pulls_by_tag_and_by_digest_over_plain_http_to_loopback() {
    let registry = TestRegistry::start();
    let digest = registry.push("app:1", &two_layer_image("one")).await;
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();

    let reference = format!("{}/app:1", registry.host);
    let info = store
        .pull(&reference, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(info.reference, reference);
    assert_eq!(info.digest, digest);
    assert_eq!(info.config.cmd, vec!["/bin/sh", "-c", "cat /srv/tag"]);
    assert_eq!(info.layers.len(), 2);
    assert!(info.layers[0].join("bin/busybox").is_file());
    assert_eq!(fs::read(info.layers[1].join("srv/tag")).unwrap(), b"one");
    assert_eq!(store.resolve(&reference), Some(info.clone()));

    let by_digest = format!("{}/app@{digest}", registry.host);
    let again = store
        .pull(&by_digest, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.layers.clone()),
        (info.id.as_str(), info.layers.clone())
    );
    assert_eq!(store.list().unwrap().len(), 2);
    assert_eq!(
        count(store.layout.layers()),
        2,
        "layers are shared, not unpacked twice"
    );
    assert_eq!(count(store.layout.tmp()), 0);
}

#[tokio::test]
async fn missing_images_and_dead_registries_are_clear_errors() {
    let registry = TestRegistry::start();
    registry.push("app:1", &two_layer_image("x")).await;
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    for missing in [
        format!("{}/app:nope", registry.host),
        format!("{}/nothing:1", registry.host),
    ] {
        let err = store
            .pull(&missing, &PullOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ImageError::NotFound { .. }),
            "{missing}: {err:?}"
        );
        assert_eq!(err.kubelet_reason(), "ErrImagePull");
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = store
        .pull(
            &format!("127.0.0.1:{closed}/app:1"),
            &PullOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImageError::RegistryUnreachable { .. }),
        "{err:?}"
    );
    assert!(store.list().unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_pulls_of_one_image_collapse_into_one() {
    let registry = TestRegistry::start();
    registry.push("app:1", &two_layer_image("c")).await;
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let reference = format!("{}/app:1", registry.host);
    let options = PullOptions::default();
    let (a, b, c) = tokio::join!(
        store.pull(&reference, &options),
        store.pull(&reference, &options),
        store.pull("127.0.0.1:1/unrelated:1", &options),
    );
    assert_eq!(a.unwrap(), b.unwrap());
    assert!(c.is_err());
    assert_eq!(
        store.registry_pulls(),
        2,
        "the two pulls of app:1 are one registry pull"
    );
    // A later pull is a new pull (the tag may have moved).
    store
        .pull(&reference, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(store.registry_pulls(), 3);
}

#[tokio::test]
async fn a_corrupted_blob_is_rejected_and_leaves_nothing() {
    let registry = TestRegistry::start();
    let image = two_layer_image("bad");
    registry.push("app:1", &image).await;
    let file = registry.blob_file(&super::testutil::digest(&image.layers[1]));
    let mut bytes = fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&file, bytes).unwrap();

    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let err = store
        .pull(&format!("{}/app:1", registry.host), &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err:?}");
    assert_eq!(err.reason(), "DigestMismatch");
    assert!(store.list().unwrap().is_empty());
    // The corrupted blob leaves no partial download. (The other layer's download may have
    // been cut short by the failure; its partial file is kept so a retry resumes it.)
    let bad_hex = super::testutil::digest(&image.layers[1])
        .trim_start_matches("sha256:")
        .to_string();
    let leftovers: Vec<String> = fs::read_dir(store.layout.tmp())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !leftovers.iter().any(|n| n.contains(&bad_hex)),
        "partial of the bad blob kept: {leftovers:?}"
    );
    // The intact busybox layer may stay unpacked (it was verified); the bad one may not.
    let bad_layer = store
        .layout
        .layer(&super::testutil::diff_id(&image.layers[1]))
        .unwrap();
    assert!(!bad_layer.exists());
    store.gc().unwrap();
    assert_eq!(
        count(store.layout.layers()),
        0,
        "gc drops the layer no image references"
    );
}

#[tokio::test]
async fn an_interrupted_download_resumes_from_its_partial_file() {
    let registry = TestRegistry::start();
    let image = two_layer_image("resume");
    registry.push("app:1", &image).await;
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    // Simulate a download cut halfway: the first half of the busybox layer in the scratch area.
    let layer = &image.layers[0];
    let hex = &super::testutil::digest(layer)["sha256:".len()..];
    fs::write(
        store.layout.tmp().join(format!("{hex}.partial")),
        &layer[..layer.len() / 2],
    )
    .unwrap();
    let info = store
        .pull(&format!("{}/app:1", registry.host), &PullOptions::default())
        .await
        .unwrap();
    assert!(info.layers[0].join("bin/busybox").is_file());
    assert_eq!(count(store.layout.tmp()), 0);
}

/// Cold pull + unpack of a 5-layer busybox image from the local registry (for BENCHMARKS.md):
/// `cargo test -p skiff-runtime --lib bench_cold_pull -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn bench_cold_pull_of_a_five_layer_image() {
    let registry = TestRegistry::start();
    let image = super::testutil::five_layer_image();
    registry.push("bench:5", &image).await;
    let mut times = Vec::new();
    for _ in 0..5 {
        let root = tempfile::tempdir().unwrap();
        let store = ImageStore::open(root.path()).unwrap();
        let start = std::time::Instant::now();
        store
            .pull(
                &format!("{}/bench:5", registry.host),
                &PullOptions::default(),
            )
            .await
            .unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    let size: usize = image.layers.iter().map(Vec::len).sum();
    println!(
        "cold pull + unpack, 5 layers, {size} bytes compressed: median {:?}, min {:?}, max {:?}",
        times[2], times[0], times[4]
    );
}
