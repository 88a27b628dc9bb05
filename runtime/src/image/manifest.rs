//! OCI and Docker v2 schema 2 manifests, indexes (manifest lists) and image configs: just the
//! fields the runtime uses, parsed leniently so both families read the same way.

use serde::{Deserialize, Serialize};

use super::ImageError;

/// Media types of image indexes (OCI) and manifest lists (Docker).
pub const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// Media types of single-platform manifests (OCI, Docker v2 schema 2).
pub const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A content descriptor: what a manifest or index points at.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Platform, for index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations (image names in OCI layouts).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`).
    #[serde(default)]
    pub os: String,
}

/// An image manifest or an index, told apart by their fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnyManifest {
    /// Media type, if the document states it.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The config blob (manifests).
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// Layers, lowest first (manifests).
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Platform manifests (indexes).
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

impl AnyManifest {
    /// Parses a manifest or index document.
    pub fn parse(bytes: &[u8], reference: &str) -> Result<AnyManifest, ImageError> {
        serde_json::from_slice(bytes).map_err(|e| ImageError::BadManifest {
            reference: reference.to_string(),
            message: e.to_string(),
        })
    }

    /// Whether this document is an index / manifest list.
    pub fn is_index(&self) -> bool {
        self.manifests.is_some()
            || self
                .media_type
                .as_deref()
                .is_some_and(|t| INDEX_TYPES.contains(&t))
    }

    /// For an index, the entry for the host platform (linux/amd64 here); for an index with
    /// no platforms listed, its only entry.
    pub fn choose_platform(&self, reference: &str) -> Result<&Descriptor, ImageError> {
        let entries = self.manifests.as_deref().unwrap_or_default();
        let arch = host_arch();
        entries
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            })
            .or_else(|| (entries.len() == 1 && entries[0].platform.is_none()).then(|| &entries[0]))
            .ok_or_else(|| ImageError::NotFound {
                reference: reference.to_string(),
                message: format!("no manifest for linux/{arch} in the index"),
            })
    }

    /// For a manifest, its config descriptor.
    pub fn config(&self, reference: &str) -> Result<&Descriptor, ImageError> {
        self.config.as_ref().ok_or_else(|| ImageError::BadManifest {
            reference: reference.to_string(),
            message: "manifest has no config".to_string(),
        })
    }
}

/// The GOARCH-style name of the host's architecture.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// What a container needs from the image config: how to start its process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `Entrypoint`, empty when unset.
    pub entrypoint: Vec<String>,
    /// `Cmd`, empty when unset.
    pub cmd: Vec<String>,
    /// `Env` as `KEY=value` lines.
    pub env: Vec<String>,
    /// `WorkingDir`, if set.
    pub working_dir: Option<String>,
    /// `User` (`name`, `uid`, `uid:gid`), if set.
    pub user: Option<String>,
}

/// The image config file (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigFile {
    /// The runtime part.
    #[serde(default)]
    pub config: Option<RuntimeConfig>,
    /// The layer diff ids.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

/// The `config` object of an image config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    /// Entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Cmd.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Env.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// WorkingDir.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// User.
    #[serde(default)]
    pub user: Option<String>,
}

/// The `rootfs` object of an image config file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    /// Uncompressed digests of the layers, lowest first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl ConfigFile {
    /// Parses a config blob.
    pub fn parse(bytes: &[u8], reference: &str) -> Result<ConfigFile, ImageError> {
        serde_json::from_slice(bytes).map_err(|e| ImageError::BadManifest {
            reference: reference.to_string(),
            message: format!("image config: {e}"),
        })
    }

    /// The fields a container start needs.
    pub fn image_config(&self) -> ImageConfig {
        let c = self.config.clone().unwrap_or_default();
        ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.filter(|w| !w.is_empty()),
            user: c.user.filter(|u| !u.is_empty()),
        }
    }

    /// The layer diff ids, lowest first.
    pub fn diff_ids(&self) -> Vec<String> {
        self.rootfs
            .as_ref()
            .map(|r| r.diff_ids.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_manifest_lists_choose_linux_amd64() {
        let list = br#"{"schemaVersion":2,
          "mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
          "manifests":[
            {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:arm","size":1,
             "platform":{"architecture":"arm64","os":"linux"}},
            {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:amd","size":1,
             "platform":{"architecture":"amd64","os":"linux"}}]}"#;
        let m = AnyManifest::parse(list, "x").unwrap();
        assert!(m.is_index());
        assert_eq!(m.choose_platform("x").unwrap().digest, "sha256:amd");

        let only_arm = br#"{"manifests":[{"digest":"sha256:arm","platform":{"architecture":"arm64","os":"linux"}}]}"#;
        let err = AnyManifest::parse(only_arm, "x")
            .unwrap()
            .choose_platform("x")
            .unwrap_err();
        assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    }

    #[test]
    fn config_gives_the_process_fields() {
        let cfg = br#"{"architecture":"amd64","os":"linux",
          "config":{"Entrypoint":["/bin/sh"],"Cmd":["-c","true"],"Env":["PATH=/bin"],"WorkingDir":"/srv","User":"1000:1000"},
          "rootfs":{"type":"layers","diff_ids":["sha256:a","sha256:b"]}}"#;
        let c = ConfigFile::parse(cfg, "x").unwrap();
        assert_eq!(
            c.image_config(),
            ImageConfig {
                entrypoint: vec!["/bin/sh".into()],
                cmd: vec!["-c".into(), "true".into()],
                env: vec!["PATH=/bin".into()],
                working_dir: Some("/srv".into()),
                user: Some("1000:1000".into()),
            }
        );
        assert_eq!(c.diff_ids(), vec!["sha256:a", "sha256:b"]);
        assert_eq!(
            ConfigFile::parse(b"{}", "x").unwrap().image_config(),
            ImageConfig::default()
        );
    }
}
