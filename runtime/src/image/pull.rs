//! Pulls images over the OCI distribution protocol (via `oci-client`): manifests and indexes,
//! config, then each missing layer downloaded to the scratch area (resuming a partial
//! download), verified, and unpacked once.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::{StreamExt, TryStreamExt};
use nix::fcntl::FlockArg;
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::layout::{digest_hex, remove_any, sha256_digest};
use super::manifest::{AnyManifest, ConfigFile, Descriptor, INDEX_TYPES, MANIFEST_TYPES};
use super::store::NewImage;
use super::unpack::unpack_layer;
use super::{ImageError, ImageInfo, ImageStore, reference};

/// How many layers of one image download at once.
const PARALLEL_LAYERS: usize = 4;

/// Options of a pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Registries (`host:port`) reached over plain HTTP. Loopback registries always are.
    pub insecure_registries: Vec<String>,
    /// Username and password. The registry decides whether they go as HTTP basic auth or
    /// are exchanged for a bearer token; `None` pulls anonymously (still through a token
    /// when the registry asks for one).
    pub auth: Option<(String, String)>,
}

impl ImageStore {
    /// Pulls `reference` from its registry into the store and returns the recorded image.
    ///
    /// Concurrent pulls of the same reference in this process share one pull and its result.
    /// A pull interrupted at any point leaves the store consistent; the next pull reuses what
    /// was verified (unpacked layers) and resumes partial downloads.
    pub async fn pull(
        &self,
        reference: &str,
        options: &PullOptions,
    ) -> Result<ImageInfo, ImageError> {
        let parsed = reference::parse(reference)?;
        let key = reference::whole(&parsed);
        let cell = {
            let mut inflight = self.inflight.lock().expect("inflight map lock");
            inflight.entry(key.clone()).or_default().clone()
        };
        let result = cell
            .get_or_init(|| self.pull_once(parsed, key.clone(), options))
            .await
            .clone();
        let mut inflight = self.inflight.lock().expect("inflight map lock");
        if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&key);
        }
        result
    }

    async fn pull_once(
        &self,
        image: Reference,
        key: String,
        options: &PullOptions,
    ) -> Result<ImageInfo, ImageError> {
        self.registry_pulls.fetch_add(1, Ordering::Relaxed);
        let lock_store = {
            let path = self.layout.lock_file();
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path);
            tokio::task::spawn_blocking(move || {
                let file = file.map_err(|e| ImageError::io("opening", &path, e))?;
                nix::fcntl::Flock::lock(file, FlockArg::LockShared)
                    .map_err(|(_, e)| ImageError::io("locking", &path, e.into()))
            })
        };
        let _lock = lock_store.await.expect("lock task does not panic")?;
        tracing::info!(image = %key, "pulling image");

        let client = client_for(&image, options);
        let auth = match &options.auth {
            Some((user, pass)) => RegistryAuth::Basic(user.clone(), pass.clone()),
            None => RegistryAuth::Anonymous,
        };
        let accepted: Vec<&str> = INDEX_TYPES.iter().chain(MANIFEST_TYPES).copied().collect();
        let (bytes, _) = client
            .pull_manifest_raw(&image, &auth, &accepted)
            .await
            .map_err(|e| map_error(&image, &key, e))?;
        let mut manifest_bytes = bytes.to_vec();
        let mut manifest_digest = sha256_digest(&manifest_bytes);
        if let Some(wanted) = image.digest()
            && wanted != manifest_digest
        {
            return Err(ImageError::DigestMismatch {
                what: format!("manifest of {key}"),
                expected: wanted.to_string(),
                actual: manifest_digest,
            });
        }
        let mut manifest = AnyManifest::parse(&manifest_bytes, &key)?;
        if manifest.is_index() {
            let chosen = manifest.choose_platform(&key)?.digest.clone();
            let by_digest = Reference::with_digest(
                image.registry().to_string(),
                image.repository().to_string(),
                chosen.clone(),
            );
            let (bytes, _) = client
                .pull_manifest_raw(&by_digest, &auth, MANIFEST_TYPES)
                .await
                .map_err(|e| map_error(&image, &key, e))?;
            manifest_bytes = bytes.to_vec();
            manifest_digest = sha256_digest(&manifest_bytes);
            if manifest_digest != chosen {
                return Err(ImageError::DigestMismatch {
                    what: format!("platform manifest of {key}"),
                    expected: chosen,
                    actual: manifest_digest,
                });
            }
            manifest = AnyManifest::parse(&manifest_bytes, &key)?;
        }

        let config_desc = manifest.config(&key)?.clone();
        let mut config = Vec::new();
        client
            .pull_blob(&image, &oci_descriptor(&config_desc), &mut config)
            .await
            .map_err(|e| map_error(&image, &key, e))?;
        let config_file = ConfigFile::parse(&config, &key)?;
        let diff_ids = config_file.diff_ids();
        if diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::BadManifest {
                reference: key,
                message: format!(
                    "{} layers in the manifest but {} diff ids in the config",
                    manifest.layers.len(),
                    diff_ids.len()
                ),
            });
        }

        // Owned items keep the stream's closure free of higher-ranked lifetimes, so the pull
        // future stays `Send`.
        let wanted: Vec<(Descriptor, String)> = manifest
            .layers
            .iter()
            .cloned()
            .zip(diff_ids.iter().cloned())
            .collect();
        let (client, image, key) = (&client, &image, key.as_str());
        futures::stream::iter(wanted)
            .map(|(layer, diff_id)| async move {
                self.fetch_layer(client, image, key, &layer, &diff_id).await
            })
            .buffer_unordered(PARALLEL_LAYERS)
            .try_collect::<Vec<()>>()
            .await?;

        let size = config_desc.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        self.commit(NewImage {
            reference: Some(key.to_string()),
            manifest: manifest_bytes,
            manifest_digest,
            config,
            config_digest: config_desc.digest,
            diff_ids,
            size,
        })
    }

    /// Makes sure the layer `diff_id` is unpacked, downloading and verifying its blob if not.
    async fn fetch_layer(
        &self,
        client: &Client,
        image: &Reference,
        key: &str,
        layer: &Descriptor,
        diff_id: &str,
    ) -> Result<(), ImageError> {
        let target = self.layout.layer(diff_id)?;
        let guard = {
            let mut locks = self.layer_locks.lock().expect("layer lock map");
            locks.entry(diff_id.to_string()).or_default().clone()
        };
        let _held = guard.lock().await;
        if target.is_dir() {
            return Ok(());
        }
        let partial = self
            .layout
            .tmp()
            .join(format!("{}.partial", digest_hex(&layer.digest)?));
        download(client, image, key, layer, &partial).await?;
        let layout = self.layout.clone();
        let (digest, diff) = (layer.digest.clone(), diff_id.to_string());
        let part = partial.clone();
        let result = tokio::task::spawn_blocking(move || {
            let file = File::open(&part).map_err(|e| ImageError::io("opening", &part, e))?;
            unpack_layer(&layout, file, &digest, Some(&diff))
        })
        .await
        .expect("unpack task does not panic");
        let _ = remove_any(&partial);
        result.map(|_| ())
    }
}

/// Downloads a blob to `partial`, resuming from what is already there, and verifies it; a
/// blob that does not match its digest is deleted.
async fn download(
    client: &Client,
    image: &Reference,
    key: &str,
    layer: &Descriptor,
    partial: &Path,
) -> Result<(), ImageError> {
    let have = fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    let resumable = have > 0 && have < layer.size;
    if !(have == layer.size && verify_file(partial, &layer.digest).await.is_ok()) {
        let desc = oci_descriptor(layer);
        let offset = if resumable { have } else { 0 };
        let response = client
            .pull_blob_stream_partial(image, &desc, offset, None)
            .await
            .map_err(|e| map_error(image, key, e))?;
        let (mut stream, append) = match response {
            BlobResponse::Partial(s) => (s, true),
            BlobResponse::Full(s) => (s, false),
        };
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(!append)
            .append(append)
            .open(partial)
            .await
            .map_err(|e| ImageError::io("opening", partial, e))?;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    // The client verifies full downloads itself; its verdict ends in our
                    // own check below, so only transport errors stop here.
                    if e.get_ref().is_some_and(|i| i.is::<DigestError>()) {
                        break;
                    }
                    return Err(ImageError::RegistryUnreachable {
                        registry: image.registry().to_string(),
                        message: format!("downloading {}: {e}", layer.digest),
                    });
                }
            };
            file.write_all(&chunk)
                .await
                .map_err(|e| ImageError::io("writing", partial, e))?;
        }
        file.flush()
            .await
            .map_err(|e| ImageError::io("writing", partial, e))?;
    }
    if let Err(e) = verify_file(partial, &layer.digest).await {
        let _ = remove_any(partial);
        return Err(e);
    }
    Ok(())
}

/// Checks that a file hashes to `digest`.
async fn verify_file(path: &Path, digest: &str) -> Result<(), ImageError> {
    let path: PathBuf = path.to_path_buf();
    let expected = digest.to_string();
    tokio::task::spawn_blocking(move || {
        let mut file = File::open(&path).map_err(|e| ImageError::io("opening", &path, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| ImageError::io("reading", &path, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| ImageError::io("reading", &path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual == expected {
            Ok(())
        } else {
            Err(ImageError::DigestMismatch {
                what: "blob".to_string(),
                expected,
                actual,
            })
        }
    })
    .await
    .expect("hash task does not panic")
}

/// A client speaking HTTPS except to `--insecure-registry` hosts and loopback registries.
fn client_for(image: &Reference, options: &PullOptions) -> Client {
    // reqwest needs a process-wide rustls provider; ring is the workspace's. Installing it
    // twice is harmless (the second call just reports the first).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut plain_http = options.insecure_registries.clone();
    if reference::is_loopback_registry(image.registry()) {
        plain_http.push(image.registry().to_string());
    }
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(plain_http),
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        read_timeout: Some(std::time::Duration::from_secs(60)),
        ..Default::default()
    })
}

fn oci_descriptor(d: &Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size as i64,
        ..Default::default()
    }
}

/// Sorts `oci-client` errors into the kinds the kubelet tells apart.
fn map_error(image: &Reference, key: &str, e: OciDistributionError) -> ImageError {
    let reference = key.to_string();
    let message = e.to_string();
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => {
            ImageError::NotFound { reference, message }
        }
        OciDistributionError::RegistryError { ref envelope, .. }
            if envelope.errors.iter().any(|x| {
                matches!(
                    x.code,
                    OciErrorCode::BlobUnknown
                        | OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) =>
        {
            ImageError::NotFound { reference, message }
        }
        OciDistributionError::RegistryError { ref envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|x| matches!(x.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            ImageError::Unauthorized { reference, message }
        }
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => {
            ImageError::Unauthorized { reference, message }
        }
        OciDistributionError::ServerError { code: 404, .. } => {
            ImageError::NotFound { reference, message }
        }
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => ImageError::Unauthorized { reference, message },
        OciDistributionError::RequestError(_) | OciDistributionError::ServerError { .. } => {
            ImageError::RegistryUnreachable {
                registry: image.registry().to_string(),
                message,
            }
        }
        OciDistributionError::DigestError(_) => ImageError::DigestMismatch {
            what: format!("blob of {key}"),
            expected: String::new(),
            actual: message,
        },
        _ => ImageError::Registry { reference, message },
    }
}
