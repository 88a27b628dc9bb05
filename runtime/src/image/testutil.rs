//! Test helpers: build layer tarballs (from Debian's busybox-static and by hand), compress
//! them, wrap them into images, and serve them from a loopback registry. Public under the
//! `testkit` feature for the benchmarks.

use std::io::Write;
use std::process::Command;

use tar::{EntryType, Header};

/// How a test layer is compressed.
#[derive(Debug, Clone, Copy)]
pub enum Compression {
    /// Plain tar.
    None,
    /// tar+gzip.
    Gzip,
    /// tar+zstd.
    Zstd,
}

/// Builds a tar stream entry by entry.
pub struct LayerBuilder {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        LayerBuilder {
            builder: tar::Builder::new(Vec::new()),
        }
    }
}

impl LayerBuilder {
    fn header(kind: EntryType, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    /// Adds a directory.
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(EntryType::Directory, mode, 0);
        self.builder
            .append_data(&mut h, path, std::io::empty())
            .unwrap();
        self
    }

    /// Adds a regular file owned by `uid:gid`.
    pub fn file_owned(mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.builder.append_data(&mut h, path, data).unwrap();
        self
    }

    /// Adds a regular root-owned file.
    pub fn file(self, path: &str, data: &[u8], mode: u32) -> Self {
        self.file_owned(path, data, mode, 0, 0)
    }

    /// Adds a symlink.
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(EntryType::Symlink, 0o777, 0);
        self.builder.append_link(&mut h, path, target).unwrap();
        self
    }

    /// Adds a hard link to an earlier entry.
    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(EntryType::Link, 0o644, 0);
        self.builder.append_link(&mut h, path, target).unwrap();
        self
    }

    /// Adds a character device.
    pub fn char_device(mut self, path: &str, major: u32, minor: u32) -> Self {
        let mut h = Self::header(EntryType::Char, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.builder
            .append_data(&mut h, path, std::io::empty())
            .unwrap();
        self
    }

    /// Adds a file whose name is written raw into the header, bypassing the tar crate's
    /// own refusal of `..` (to build malicious layers).
    pub fn raw_file(mut self, raw_path: &str, data: &[u8]) -> Self {
        let mut h = Self::header(EntryType::Regular, 0o644, data.len() as u64);
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..raw_path.len()].copy_from_slice(raw_path.as_bytes());
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self
    }

    /// Adds an empty regular file with extended attributes (as PAX `SCHILY.xattr.*`).
    pub fn file_with_xattr(mut self, path: &str, key: &str, value: &str) -> Self {
        let pax_key = format!("SCHILY.xattr.{key}");
        self.builder
            .append_pax_extensions([(pax_key.as_str(), value.as_bytes())])
            .unwrap();
        let mut h = Self::header(EntryType::Regular, 0o644, 0);
        self.builder
            .append_data(&mut h, path, std::io::empty())
            .unwrap();
        self
    }

    /// Finishes the tar stream and compresses it.
    pub fn build(self, compression: Compression) -> Vec<u8> {
        compress(&self.builder.into_inner().unwrap(), compression)
    }
}

/// Compresses a tar stream.
pub fn compress(tar: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(tar, 3).unwrap(),
    }
}

/// A layer holding Debian's static busybox at `/bin/busybox` with every applet as a symlink
/// in `/bin` (needs `busybox-static` installed).
pub fn busybox_layer(compression: Compression) -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static is installed");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    let mut b = LayerBuilder::default()
        .dir("bin", 0o755)
        .file("bin/busybox", &busybox, 0o755);
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" && !applet.is_empty() {
            b = b.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    b.dir("etc", 0o755)
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .build(compression)
}

/// The sha256 digest of some bytes.
pub fn digest(bytes: &[u8]) -> String {
    super::layout::sha256_digest(bytes)
}

/// The diff id (uncompressed digest) of a possibly compressed layer.
pub fn diff_id(layer: &[u8]) -> String {
    let mut out = Vec::new();
    if layer.starts_with(&[0x1f, 0x8b]) {
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(layer), &mut out).unwrap();
    } else if layer.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        out = zstd::decode_all(layer).unwrap();
    } else {
        out = layer.to_vec();
    }
    digest(&out)
}

/// The benchmark image: busybox plus four layers of 2 MB of poorly compressible data each,
/// all tar+gzip.
pub fn five_layer_image() -> TestImage {
    let mut layers = vec![busybox_layer(Compression::Gzip)];
    for i in 1..5 {
        let data: Vec<u8> = (0..2_000_000u32)
            .map(|x| (x.wrapping_mul(2654435761) >> (i + 8)) as u8)
            .collect();
        layers.push(
            LayerBuilder::default()
                .file(&format!("data{i}"), &data, 0o644)
                .build(Compression::Gzip),
        );
    }
    TestImage::new(layers, &["/bin/true"])
}

/// A complete image as bytes: config, manifest and layers.
pub struct TestImage {
    /// The image config blob.
    pub config: Vec<u8>,
    /// The OCI manifest blob.
    pub manifest: Vec<u8>,
    /// Layer blobs, compressed.
    pub layers: Vec<Vec<u8>>,
}

impl TestImage {
    /// An OCI image of the given layers whose config runs `cmd`.
    pub fn new(layers: Vec<Vec<u8>>, cmd: &[&str]) -> TestImage {
        let diff_ids: Vec<String> = layers.iter().map(|l| diff_id(l)).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let layer_descs: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| {
                let kind = if l.starts_with(&[0x1f, 0x8b]) {
                    "+gzip"
                } else if l.starts_with(&[0x28, 0xb5]) {
                    "+zstd"
                } else {
                    ""
                };
                serde_json::json!({
                    "mediaType": format!("application/vnd.oci.image.layer.v1.tar{kind}"),
                    "digest": digest(l), "size": l.len(),
                })
            })
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digest(&config), "size": config.len()},
            "layers": layer_descs,
        }))
        .unwrap();
        TestImage {
            config,
            manifest,
            layers,
        }
    }

    /// Writes the image as an OCI layout archive (tar) with `ref_name` as its name annotation.
    pub fn oci_archive(&self, ref_name: &str) -> Vec<u8> {
        self.oci_archive_corrupting(ref_name, None)
    }

    /// Like [`TestImage::oci_archive`], with one byte of layer `corrupt` flipped while the
    /// file keeps the layer's digest as its name.
    pub fn oci_archive_corrupting(&self, ref_name: &str, corrupt: Option<usize>) -> Vec<u8> {
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest(&self.manifest), "size": self.manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": ref_name}}],
        }))
        .unwrap();
        let mut b = LayerBuilder::default()
            .file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644)
            .file("index.json", &index, 0o644);
        let layers = self.layers.iter().enumerate().map(|(i, l)| (Some(i), l));
        for (index, blob) in [(None, &self.manifest), (None, &self.config)]
            .into_iter()
            .chain(layers)
        {
            let name = format!("blobs/sha256/{}", &digest(blob)["sha256:".len()..]);
            let mut data = blob.clone();
            if index.is_some() && index == corrupt {
                data[0] ^= 0xff;
            }
            b = b.file(&name, &data, 0o644);
        }
        b.build(Compression::None)
    }

    /// Writes the image as a `docker save` archive tagged `repo_tag`.
    pub fn docker_archive(&self, repo_tag: &str) -> Vec<u8> {
        let config_name = format!("{}.json", &digest(&self.config)["sha256:".len()..]);
        let layer_names: Vec<String> = (0..self.layers.len())
            .map(|i| format!("l{i}/layer.tar"))
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!([
            {"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}
        ]))
        .unwrap();
        let mut b = LayerBuilder::default()
            .file("manifest.json", &manifest, 0o644)
            .file(&config_name, &self.config, 0o644);
        for (name, layer) in layer_names.iter().zip(&self.layers) {
            b = b.file(name, layer, 0o644);
        }
        b.build(Compression::None)
    }
}

/// Debian's `docker-registry` serving on a free loopback port from a temporary directory;
/// stopped (by PID) when dropped.
pub struct TestRegistry {
    child: std::process::Child,
    /// `127.0.0.1:<port>`.
    pub host: String,
    /// Where the registry keeps its data.
    pub storage: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts the registry and waits until it answers.
    pub fn start() -> TestRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let storage = tempfile::tempdir().unwrap();
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry is installed");
        let host = format!("127.0.0.1:{port}");
        let registry = TestRegistry {
            child,
            host,
            storage,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(&registry.host).is_ok() {
                return registry;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("docker-registry did not start on {}", registry.host);
    }

    /// Pushes `image` as `<host>/<name>` and returns its manifest digest.
    pub async fn push(&self, name: &str, image: &TestImage) -> String {
        use oci_client::client::{ClientConfig, ClientProtocol};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        });
        let r: oci_client::Reference = format!("{}/{name}", self.host).parse().unwrap();
        client
            .auth(
                &r,
                &oci_client::secrets::RegistryAuth::Anonymous,
                oci_client::RegistryOperation::Push,
            )
            .await
            .unwrap();
        for blob in std::iter::once(&image.config).chain(&image.layers) {
            client
                .push_blob(&r, blob.clone(), &digest(blob))
                .await
                .unwrap();
        }
        client
            .push_manifest_raw(
                &r,
                image.manifest.clone(),
                http::HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json"),
            )
            .await
            .unwrap();
        digest(&image.manifest)
    }

    /// The registry's data file of a blob (to corrupt it behind the registry's back).
    pub fn blob_file(&self, digest: &str) -> std::path::PathBuf {
        let hex = &digest["sha256:".len()..];
        self.storage.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
