//! Pod volumes on the host under `<root>/pods/<uid>/volumes/<name>`: emptyDir (disk or
//! tmpfs), hostPath, persistentVolumeClaim (the bound volume's hostPath or local
//! directory), and the projected kinds (configMap, secret, downwardAPI, projected)
//! written the way Kubernetes' atomic writer does: files in a timestamped directory,
//! `..data` a symlink swapped by rename, and each key a symlink through `..data`, so a
//! running container sees an update all at once.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod,
    Secret, Volume,
};
use kube::Api;

/// Errors preparing a volume (reported as `FailedMount`).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A referenced object is missing and not optional.
    #[error("{kind} \"{name}\" not found")]
    Missing {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The API could not be read.
    #[error("reading {kind} \"{name}\": {source}")]
    Api {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// A key listed in `items` is not in the object.
    #[error("{kind} \"{name}\" has no key \"{key}\"")]
    MissingKey {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The key.
        key: String,
    },
    /// A host operation failed.
    #[error("volume {volume}: {source}")]
    Io {
        /// The volume name.
        volume: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A `persistentVolumeClaim` volume cannot be used yet (missing, unbound, no volume).
    #[error("error processing PVC {claim}: {reason}")]
    Claim {
        /// `namespace/name`.
        claim: String,
        /// Why, as the kubelet words it.
        reason: String,
    },
    /// The volume kind is not supported.
    #[error("volume {0}: unsupported volume type")]
    Unsupported(String),
}

/// One file of a projected volume.
type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// Where each of a pod's volumes lives on the host, and what was last written.
#[derive(Debug, Default)]
pub struct PodVolumes {
    /// Volume name → host path.
    pub paths: BTreeMap<String, PathBuf>,
    written: BTreeMap<String, Files>,
}

/// The host directory of a pod's volumes.
pub fn volumes_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid).join("volumes")
}

fn io(volume: &str) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        volume: volume.into(),
        source,
    }
}

impl PodVolumes {
    /// Creates or refreshes every volume of `pod`. Idempotent; projected contents are
    /// rewritten only when they changed.
    pub async fn sync(
        &mut self,
        client: &kube::Client,
        root: &Path,
        pod: &Pod,
        mount_tmpfs: bool,
    ) -> Result<(), VolumeError> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let dir = volumes_dir(root, uid);
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        for v in &volumes {
            let path = dir.join(&v.name);
            if let Some(source) = &v.persistent_volume_claim {
                let p = claim_path(client, ns, &source.claim_name).await?;
                self.paths.insert(v.name.clone(), p);
                continue;
            }
            if let Some(hp) = &v.host_path {
                let p = PathBuf::from(&hp.path);
                match hp.type_.as_deref() {
                    Some("DirectoryOrCreate") => {
                        std::fs::create_dir_all(&p).map_err(io(&v.name))?
                    }
                    Some("FileOrCreate") if !p.exists() => {
                        std::fs::write(&p, b"").map_err(io(&v.name))?
                    }
                    _ => {}
                }
                self.paths.insert(v.name.clone(), p);
                continue;
            }
            if !self.paths.contains_key(&v.name) {
                std::fs::create_dir_all(&path).map_err(io(&v.name))?;
                let tmpfs_size = tmpfs_size(v);
                if mount_tmpfs && let Some(size) = tmpfs_size {
                    mount_tmpfs_at(&path, size).map_err(io(&v.name))?;
                }
            }
            self.paths.insert(v.name.clone(), path.clone());
            if v.empty_dir.is_some() {
                continue;
            }
            let files = project(client, ns, pod, v).await?;
            if self.written.get(&v.name) != Some(&files) {
                write_atomic(&path, &files).map_err(io(&v.name))?;
                self.written.insert(v.name.clone(), files);
            }
        }
        Ok(())
    }
}

/// The host directory of the volume bound to claim `ns/name`: its `hostPath` (made when
/// its type asks) or its `local` path, which must exist.
async fn claim_path(client: &kube::Client, ns: &str, name: &str) -> Result<PathBuf, VolumeError> {
    let claim = format!("{ns}/{name}");
    let fail = |reason: String| VolumeError::Claim {
        claim: claim.clone(),
        reason,
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let pvc = claims
        .get_opt(name)
        .await
        .map_err(|e| fail(format!("failed to fetch PVC from API server: {e}")))?;
    let Some(pvc) = pvc else {
        return Err(fail(format!(
            "failed to fetch PVC from API server: persistentvolumeclaims \"{name}\" not found"
        )));
    };
    let volume = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let (Some(volume), true) = (volume, bound) else {
        return Err(fail("PVC is not bound".into()));
    };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volumes
        .get_opt(&volume)
        .await
        .map_err(|e| fail(format!("failed to fetch PV {volume} from API server: {e}")))?
        .ok_or_else(|| fail(format!("persistentvolumes \"{volume}\" not found")))?;
    let spec = pv.spec.unwrap_or_default();
    if let Some(hp) = spec.host_path {
        let p = PathBuf::from(&hp.path);
        if hp.type_.as_deref() == Some("DirectoryOrCreate") {
            std::fs::create_dir_all(&p).map_err(io(name))?;
        }
        return Ok(p);
    }
    if let Some(local) = spec.local {
        let p = PathBuf::from(&local.path);
        if !p.exists() {
            return Err(fail(format!("path \"{}\" does not exist", local.path)));
        }
        return Ok(p);
    }
    Err(fail(format!(
        "volume {volume} has no hostPath or local source this node can mount"
    )))
}

/// The tmpfs size for volumes backed by memory: `emptyDir.medium: Memory` (its
/// sizeLimit) and secrets.
fn tmpfs_size(v: &Volume) -> Option<u64> {
    if let Some(ed) = &v.empty_dir {
        if ed.medium.as_deref() == Some("Memory") {
            return Some(
                ed.size_limit
                    .as_ref()
                    .and_then(|q| skiff_api::quantity::Quantity::parse(&q.0).ok())
                    .map_or(0, |q| q.value().max(0) as u64),
            );
        }
        return None;
    }
    v.secret.is_some().then_some(0)
}

fn mount_tmpfs_at(path: &Path, size: u64) -> std::io::Result<()> {
    use nix::mount::{MsFlags, mount};
    let data = if size > 0 {
        format!("mode=0777,size={size}")
    } else {
        "mode=0777".to_string()
    };
    mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(std::io::Error::from)
}

/// Unmounts and removes every volume directory of a pod (hostPath volumes are outside).
pub fn teardown(root: &Path, uid: &str) -> std::io::Result<()> {
    let pod_dir = root.join("pods").join(uid);
    let dir = volumes_dir(root, uid);
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            // Not mounted is fine: EINVAL.
            let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
    match std::fs::remove_dir_all(&pod_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn mode_of(item: Option<i32>, default: Option<i32>) -> u32 {
    item.or(default).unwrap_or(0o644) as u32 & 0o7777
}

fn select(
    kind: &'static str,
    name: &str,
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
    out: &mut Files,
) -> Result<(), VolumeError> {
    match items {
        None => {
            for (k, v) in data {
                out.insert(k, (v, mode_of(None, default_mode)));
            }
        }
        Some(items) => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => {
                        out.insert(it.path.clone(), (v.clone(), mode_of(it.mode, default_mode)));
                    }
                    None if optional => {}
                    None => {
                        return Err(VolumeError::MissingKey {
                            kind,
                            name: name.into(),
                            key: it.key.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

async fn config_map_data(
    client: &kube::Client,
    ns: &str,
    name: &str,
    optional: bool,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, VolumeError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = api.get_opt(name).await.map_err(|source| VolumeError::Api {
        kind: "configmap",
        name: name.into(),
        source,
    })?;
    match cm {
        None if optional => Ok(None),
        None => Err(VolumeError::Missing {
            kind: "configmap",
            name: name.into(),
        }),
        Some(cm) => {
            let mut out: BTreeMap<String, Vec<u8>> = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            for (k, v) in cm.binary_data.unwrap_or_default() {
                out.insert(k, v.0);
            }
            Ok(Some(out))
        }
    }
}

async fn secret_data(
    client: &kube::Client,
    ns: &str,
    name: &str,
    optional: bool,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, VolumeError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let s = api.get_opt(name).await.map_err(|source| VolumeError::Api {
        kind: "secret",
        name: name.into(),
        source,
    })?;
    match s {
        None if optional => Ok(None),
        None => Err(VolumeError::Missing {
            kind: "secret",
            name: name.into(),
        }),
        Some(s) => {
            let mut out: BTreeMap<String, Vec<u8>> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in s.string_data.unwrap_or_default() {
                out.insert(k, v.into_bytes());
            }
            Ok(Some(out))
        }
    }
}

/// `k="v"` lines, sorted, as Kubernetes formats labels and annotations.
fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

fn downward_file(pod: &Pod, f: &DownwardAPIVolumeFile) -> Vec<u8> {
    if let Some(fr) = &f.field_ref {
        let m = &pod.metadata;
        return match fr.field_path.as_str() {
            "metadata.labels" => format_map(m.labels.as_ref()),
            "metadata.annotations" => format_map(m.annotations.as_ref()),
            other => crate::podspec::field_value(pod, other).unwrap_or_default(),
        }
        .into_bytes();
    }
    if let Some(rf) = &f.resource_field_ref {
        return crate::podspec::resource_value(pod, rf)
            .unwrap_or_default()
            .into_bytes();
    }
    Vec::new()
}

/// The files of a configMap, secret, downwardAPI or projected volume.
async fn project(
    client: &kube::Client,
    ns: &str,
    pod: &Pod,
    v: &Volume,
) -> Result<Files, VolumeError> {
    let mut out = Files::new();
    if let Some(cm) = &v.config_map {
        let optional = cm.optional.unwrap_or(false);
        if let Some(data) = config_map_data(client, ns, &cm.name, optional).await? {
            select(
                "configmap",
                &cm.name,
                data,
                cm.items.as_ref(),
                cm.default_mode,
                optional,
                &mut out,
            )?;
        }
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let optional = s.optional.unwrap_or(false);
        if let Some(data) = secret_data(client, ns, &name, optional).await? {
            select(
                "secret",
                &name,
                data,
                s.items.as_ref(),
                s.default_mode,
                optional,
                &mut out,
            )?;
        }
    } else if let Some(d) = &v.downward_api {
        for f in d.items.iter().flatten() {
            out.insert(
                f.path.clone(),
                (downward_file(pod, f), mode_of(f.mode, d.default_mode)),
            );
        }
    } else if let Some(p) = &v.projected {
        for src in p.sources.iter().flatten() {
            if let Some(cm) = &src.config_map {
                let optional = cm.optional.unwrap_or(false);
                if let Some(data) = config_map_data(client, ns, &cm.name, optional).await? {
                    select(
                        "configmap",
                        &cm.name,
                        data,
                        cm.items.as_ref(),
                        p.default_mode,
                        optional,
                        &mut out,
                    )?;
                }
            }
            if let Some(s) = &src.secret {
                let optional = s.optional.unwrap_or(false);
                if let Some(data) = secret_data(client, ns, &s.name, optional).await? {
                    select(
                        "secret",
                        &s.name,
                        data,
                        s.items.as_ref(),
                        p.default_mode,
                        optional,
                        &mut out,
                    )?;
                }
            }
            if let Some(d) = &src.downward_api {
                for f in d.items.iter().flatten() {
                    out.insert(
                        f.path.clone(),
                        (downward_file(pod, f), mode_of(f.mode, p.default_mode)),
                    );
                }
            }
        }
    } else {
        return Err(VolumeError::Unsupported(v.name.clone()));
    }
    Ok(out)
}

/// Writes `files` under `dir` atomically: a new `..<timestamp>` directory, `..data`
/// swapped to it by rename, user-visible names as symlinks through `..data`.
pub fn write_atomic(dir: &Path, files: &Files) -> std::io::Result<()> {
    let stamp = format!("..{}", jiff::Timestamp::now().as_nanosecond());
    let ts_dir = dir.join(&stamp);
    std::fs::create_dir_all(&ts_dir)?;
    for (rel, (bytes, mode)) in files {
        let p = ts_dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, bytes)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))?;
    }
    let data = dir.join("..data");
    let old = std::fs::read_link(&data).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, &data)?;
    // Top-level names: one symlink per first path component.
    let tops: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|k| k.split('/').next().map(str::to_string))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(PathBuf::from("..data").join(top), &link)?;
        }
    }
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if let Some(old) = old
        && old != Path::new(&stamp)
    {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writer_swaps_data_and_drops_removed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Files::new();
        files.insert("a".into(), (b"one".to_vec(), 0o644));
        files.insert("sub/b".into(), (b"two".to_vec(), 0o600));
        write_atomic(dir.path(), &files).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"one");
        assert_eq!(std::fs::read(dir.path().join("sub/b")).unwrap(), b"two");
        let first = std::fs::read_link(dir.path().join("..data")).unwrap();

        files.remove("sub/b");
        files.insert("a".into(), (b"uno".to_vec(), 0o644));
        std::thread::sleep(std::time::Duration::from_millis(2));
        write_atomic(dir.path(), &files).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"uno");
        assert!(!dir.path().join("sub").exists());
        assert!(
            !dir.path().join(first).exists(),
            "old data directory removed"
        );
        assert!(
            std::fs::symlink_metadata(dir.path().join("a"))
                .unwrap()
                .is_symlink()
        );
    }

    #[test]
    fn labels_format_like_kubernetes() {
        let m = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("b".into(), "x\"y".into()),
        ]);
        assert_eq!(format_map(Some(&m)), "app=\"web\"\nb=\"x\\\"y\"");
    }
}
