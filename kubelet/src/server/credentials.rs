//! Where an agent's node server gets its TLS credentials: a serving certificate given as
//! files, or one issued at start from the cluster CA when the agent can read the CA key
//! (the agent inside `skiff server`, which has `<data-dir>/tls/ca.crt` and `ca.key`).
//!
//! A remote agent without the CA key and without a CA-signed certificate gets none here:
//! the API server only trusts kubelet certificates signed by the cluster CA, so such an
//! agent asks the cluster for one through a CertificateSigningRequest (`serving_csr`),
//! given the CA certificate to authenticate the API server's client certificate with.
//! Nothing self-signed or unauthenticated is ever made up in its place.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;

use super::tls::{NodeTls, TlsError, issue_serving_cert};

/// Files the node server's credentials may come from.
#[derive(Debug, Clone, Default)]
pub struct CredentialSources {
    /// A directory holding the cluster's `ca.crt` and `ca.key`.
    pub tls_dir: Option<PathBuf>,
    /// The cluster CA certificate.
    pub ca_cert: Option<PathBuf>,
    /// The cluster CA key (to issue the serving certificate).
    pub ca_key: Option<PathBuf>,
    /// A kubeconfig whose current cluster carries the CA certificate.
    pub kubeconfig: Option<PathBuf>,
    /// A serving certificate already signed by the cluster CA.
    pub cert: Option<PathBuf>,
    /// Its key.
    pub key: Option<PathBuf>,
}

/// Errors finding or making the node server's credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A certificate was given without the cluster CA to check clients against.
    #[error(
        "the node server needs the cluster CA certificate (--ca-file or a kubeconfig with one)"
    )]
    NoClientCa,
    /// Only one of certificate and key was given.
    #[error("the kubelet serving certificate and key must be given together")]
    HalfPair,
    /// The kubeconfig could not be read.
    #[error("reading the CA from kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The kubeconfig.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Issuing or parsing failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

fn read(path: &Path) -> Result<String, CredentialError> {
    std::fs::read_to_string(path).map_err(|source| CredentialError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The CA certificate (PEM) of the current cluster of a kubeconfig, if it names one.
fn kubeconfig_ca(path: &Path) -> Result<Option<String>, CredentialError> {
    let err = |reason: String| CredentialError::Kubeconfig {
        path: path.to_path_buf(),
        reason,
    };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let context = kc
        .current_context
        .as_deref()
        .and_then(|name| kc.contexts.iter().find(|c| c.name == name))
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone());
    let cluster = kc
        .clusters
        .iter()
        .find(|c| context.as_deref().is_none_or(|name| c.name == name))
        .and_then(|c| c.cluster.as_ref());
    let Some(cluster) = cluster else {
        return Ok(None);
    };
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| err(format!("certificate-authority-data: {e}")))?;
        return Ok(Some(String::from_utf8_lossy(&pem).into_owned()));
    }
    match &cluster.certificate_authority {
        Some(file) => read(Path::new(file)).map(Some),
        None => Ok(None),
    }
}

impl CredentialSources {
    /// The cluster CA certificate (PEM) from the TLS directory, `--ca-file` or the
    /// kubeconfig, if any of them has it.
    pub fn ca_cert_pem(&self) -> Result<Option<String>, CredentialError> {
        if let Some(dir) = &self.tls_dir {
            return read(&dir.join("ca.crt")).map(Some);
        }
        if let Some(f) = &self.ca_cert {
            return read(f).map(Some);
        }
        match &self.kubeconfig {
            Some(kc) => kubeconfig_ca(kc),
            None => Ok(None),
        }
    }

    /// The node server's credentials for node `node_name` at `addresses`, or `None` when
    /// no CA-signed certificate is available or can be issued.
    pub fn load(
        &self,
        node_name: &str,
        addresses: &[IpAddr],
    ) -> Result<Option<NodeTls>, CredentialError> {
        let ca_key = self
            .tls_dir
            .as_ref()
            .map(|d| d.join("ca.key"))
            .or_else(|| self.ca_key.clone());
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let client_ca_pem = self.ca_cert_pem()?.ok_or(CredentialError::NoClientCa)?;
                Ok(Some(NodeTls {
                    cert_pem: read(cert)?,
                    key_pem: read(key)?,
                    client_ca_pem,
                }))
            }
            (Some(_), None) | (None, Some(_)) => Err(CredentialError::HalfPair),
            (None, None) => {
                let Some(ca_key) = ca_key else {
                    return Ok(None);
                };
                let ca_cert = self.ca_cert_pem()?.ok_or(CredentialError::NoClientCa)?;
                let (cert_pem, key_pem) =
                    issue_serving_cert(&ca_cert, &read(&ca_key)?, node_name, addresses)?;
                Ok(Some(NodeTls {
                    cert_pem,
                    key_pem,
                    client_ca_pem: ca_cert,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_from_a_tls_dir_and_gives_nothing_without_a_ca_key() {
        let (ca, key) = super::super::tls::tests::test_ca();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), &ca).unwrap();
        std::fs::write(dir.path().join("ca.key"), &key).unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let sources = CredentialSources {
            tls_dir: Some(dir.path().into()),
            ..Default::default()
        };
        let tls = sources.load("n1", &[ip]).unwrap().expect("issued");
        assert_eq!(tls.client_ca_pem, ca);
        assert!(tls.cert_pem.contains("BEGIN CERTIFICATE"));
        super::super::tls::server_config(&tls).unwrap();

        let only_ca = CredentialSources {
            ca_cert: Some(dir.path().join("ca.crt")),
            ..Default::default()
        };
        assert!(only_ca.load("n1", &[ip]).unwrap().is_none());

        let half = CredentialSources {
            cert: Some(dir.path().join("ca.crt")),
            ..Default::default()
        };
        assert!(matches!(
            half.load("n1", &[ip]),
            Err(CredentialError::HalfPair)
        ));
    }

    #[test]
    fn reads_the_ca_from_a_kubeconfig() {
        let (ca, key) = super::super::tls::tests::test_ca();
        let dir = tempfile::tempdir().unwrap();
        let data = base64::engine::general_purpose::STANDARD.encode(&ca);
        let kc = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n    certificate-authority-data: {data}\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n"
        );
        std::fs::write(dir.path().join("kc"), kc).unwrap();
        std::fs::write(dir.path().join("ca.key"), &key).unwrap();
        let sources = CredentialSources {
            kubeconfig: Some(dir.path().join("kc")),
            ca_key: Some(dir.path().join("ca.key")),
            ..Default::default()
        };
        let tls = sources
            .load("n1", &["10.0.0.1".parse().unwrap()])
            .unwrap()
            .expect("issued");
        assert_eq!(tls.client_ca_pem, ca);
    }
}
