//! A node serving certificate obtained through a CertificateSigningRequest
//! (`kubernetes.io/kubelet-serving`), for agents that cannot issue one themselves: generate
//! a key, submit `node-serving-<node>-<hash>` with `CN=system:node:<node>, O=system:nodes`
//! and the node's addresses as SANs, wait for the certificate, and keep key and certificate
//! under the agent's root so a restart reuses them while they are valid. Renewal happens at
//! 80% of the lifetime.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::tls::NodeTls;

/// The signer of kubelet serving certificates.
pub const SIGNER: &str = "kubernetes.io/kubelet-serving";
const CERT_FILE: &str = "kubelet-serving.crt";
const KEY_FILE: &str = "kubelet-serving.key";
/// How often the request is looked at while waiting for the certificate.
const POLL: Duration = Duration::from_secs(1);

/// Why no certificate came back.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    /// The request was denied.
    #[error("certificate signing request {name} was denied: {message}")]
    Denied {
        /// The CSR's name.
        name: String,
        /// The reason given.
        message: String,
    },
    /// The signer refused it.
    #[error("certificate signing request {name} failed: {message}")]
    Failed {
        /// The CSR's name.
        name: String,
        /// The reason given.
        message: String,
    },
    /// The API call failed.
    #[error("certificate signing request {name}: {source}")]
    Api {
        /// The CSR's name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The key, request or certificate could not be made or read.
    #[error("{0}")]
    Certificate(String),
    /// The key or certificate could not be stored.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What the node asks for and where it keeps the result.
#[derive(Debug, Clone)]
pub struct ServingRequest {
    /// The node's name.
    pub node_name: String,
    /// DNS names for the certificate (node name, hostname).
    pub dns_names: Vec<String>,
    /// The node's addresses.
    pub ips: Vec<IpAddr>,
    /// Directory the key and certificate are kept in (`<root>/pki`).
    pub dir: PathBuf,
}

/// A certificate's validity window, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start.
    pub not_before: i64,
    /// End.
    pub not_after: i64,
}

impl Validity {
    /// Of the first certificate in a PEM chain.
    pub fn of_pem(pem: &str) -> Option<Validity> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
        let (_, cert) = X509Certificate::from_der(&block.contents).ok()?;
        Some(Validity {
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// When renewal is due: 80% of the way through the lifetime.
    pub fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) * 8 / 10
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl ServingRequest {
    /// The key and certificate kept from an earlier run, if still before their renewal time.
    pub fn load_kept(&self) -> Option<(String, String, Validity)> {
        let cert = std::fs::read_to_string(self.dir.join(CERT_FILE)).ok()?;
        let key = std::fs::read_to_string(self.dir.join(KEY_FILE)).ok()?;
        let v = Validity::of_pem(&cert)?;
        KeyPair::from_pem(&key).ok()?;
        (unix_now() < v.renew_at()).then_some((cert, key, v))
    }

    /// A new key and the PEM request for it.
    pub fn make_request(&self) -> Result<(KeyPair, String), CsrError> {
        let err = |what: &str, e: rcgen::Error| CsrError::Certificate(format!("{what}: {e}"));
        let key = KeyPair::generate().map_err(|e| err("generating the node key", e))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!("system:node:{}", self.node_name),
        );
        dn.push(DnType::OrganizationName, "system:nodes");
        params.distinguished_name = dn;
        for d in &self.dns_names {
            let name = d
                .clone()
                .try_into()
                .map_err(|e| err("encoding a DNS name", e))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in &self.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        let csr = params
            .serialize_request(&key)
            .map_err(|e| err("encoding the certificate request", e))?;
        let pem = csr
            .pem()
            .map_err(|e| err("encoding the certificate request", e))?;
        Ok((key, pem))
    }

    /// The CSR name for a request: the node and a short hash of the request.
    pub fn csr_name(&self, request_pem: &str) -> String {
        let mut h = DefaultHasher::new();
        request_pem.hash(&mut h);
        format!("node-serving-{}-{:08x}", self.node_name, h.finish() as u32)
    }

    /// Submits a new request and waits until it is issued, denied or failed. Writes the key
    /// and certificate to `dir` on success.
    pub async fn obtain(&self, client: &kube::Client) -> Result<NodeServing, CsrError> {
        let (key, pem) = self.make_request()?;
        let name = self.csr_name(&pem);
        let api: Api<CertificateSigningRequest> = Api::all(client.clone());
        let csr = CertificateSigningRequest {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: SIGNER.into(),
                usages: Some(vec![
                    "digital signature".into(),
                    "key encipherment".into(),
                    "server auth".into(),
                ]),
                ..Default::default()
            },
            status: None,
        };
        let api_err = |source| CsrError::Api {
            name: name.clone(),
            source,
        };
        api.create(&PostParams::default(), &csr)
            .await
            .map_err(api_err)?;
        tracing::info!(node = %self.node_name, csr = %name, "submitted serving certificate request; waiting for approval");
        let mut waited = Duration::ZERO;
        loop {
            let cur = api.get(&name).await.map_err(api_err)?;
            let status = cur.status.unwrap_or_default();
            for c in status.conditions.iter().flatten() {
                let message = c.message.clone().or(c.reason.clone()).unwrap_or_default();
                match c.type_.as_str() {
                    "Denied" => return Err(CsrError::Denied { name, message }),
                    "Failed" => return Err(CsrError::Failed { name, message }),
                    _ => {}
                }
            }
            if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
                let cert_pem = String::from_utf8(cert.0)
                    .map_err(|_| CsrError::Certificate("the certificate is not PEM".into()))?;
                let validity = Validity::of_pem(&cert_pem).ok_or_else(|| {
                    CsrError::Certificate("the issued certificate does not parse".into())
                })?;
                let key_pem = key.serialize_pem();
                self.keep(&cert_pem, &key_pem)?;
                tracing::info!(node = %self.node_name, csr = %name, "serving certificate issued");
                return Ok(NodeServing {
                    cert_pem,
                    key_pem,
                    validity,
                });
            }
            if waited.as_secs() > 0 && waited.as_secs() % 30 == 0 {
                tracing::warn!(node = %self.node_name, csr = %name,
                    "serving certificate request is still not approved (kubectl certificate approve {name})");
            }
            tokio::time::sleep(POLL).await;
            waited += POLL;
        }
    }

    /// Writes the key (0600) and certificate, each atomically.
    fn keep(&self, cert_pem: &str, key_pem: &str) -> Result<(), CsrError> {
        write_atomic(&self.dir, KEY_FILE, key_pem, 0o600)?;
        write_atomic(&self.dir, CERT_FILE, cert_pem, 0o644)
    }
}

fn write_atomic(dir: &Path, name: &str, data: &str, mode: u32) -> Result<(), CsrError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let werr = |source| CsrError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(werr)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(werr)?;
    f.write_all(data.as_bytes()).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    std::fs::rename(&tmp, &path).map_err(werr)
}

/// An issued serving certificate and its key.
#[derive(Clone)]
pub struct NodeServing {
    /// The certificate.
    pub cert_pem: String,
    /// Its key.
    pub key_pem: String,
    /// Its validity.
    pub validity: Validity,
}

impl NodeServing {
    /// As node server credentials trusting `client_ca_pem`.
    pub fn tls(&self, client_ca_pem: &str) -> NodeTls {
        NodeTls {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
            client_ca_pem: client_ca_pem.to_string(),
        }
    }
}

/// Obtains a certificate, retrying (with a clear log line) after denials and errors until
/// one is issued. A kept, still-valid certificate is returned at once.
pub async fn obtain_until_issued(req: &ServingRequest, client: &kube::Client) -> NodeServing {
    if let Some((cert_pem, key_pem, validity)) = req.load_kept() {
        tracing::info!(node = %req.node_name, "reusing the kept serving certificate");
        return NodeServing {
            cert_pem,
            key_pem,
            validity,
        };
    }
    let mut backoff = Duration::from_secs(2);
    loop {
        match req.obtain(client).await {
            Ok(s) => return s,
            Err(e) => {
                tracing::error!(node = %req.node_name, error = %e,
                    "no serving certificate: logs, exec and attach for this node are unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(dir: &Path) -> ServingRequest {
        ServingRequest {
            node_name: "n1".into(),
            dns_names: vec!["n1".into()],
            ips: vec!["10.0.0.5".parse().unwrap()],
            dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn request_names_the_node_and_its_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let r = req(dir.path());
        let (_, pem) = r.make_request().unwrap();
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&pem).unwrap();
        let p = parsed.params;
        assert_eq!(
            p.distinguished_name.get(&DnType::CommonName),
            Some(&rcgen::DnValue::Utf8String("system:node:n1".into()))
        );
        assert!(
            p.subject_alt_names
                .contains(&SanType::IpAddress("10.0.0.5".parse().unwrap()))
        );
        let name = r.csr_name(&pem);
        assert!(name.starts_with("node-serving-n1-"), "{name}");
        assert_eq!(name, r.csr_name(&pem));
        let (_, other) = r.make_request().unwrap();
        assert_ne!(name, r.csr_name(&other));
    }

    #[test]
    fn kept_certificates_are_reused_until_renewal_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let r = req(dir.path());
        assert!(r.load_kept().is_none());
        let (ca, ca_key) = super::super::tls::tests::test_ca();
        let (cert, key) =
            super::super::tls::issue_serving_cert(&ca, &ca_key, "n1", &r.ips).unwrap();
        r.keep(&cert, &key).unwrap();
        let (c, _, v) = r.load_kept().expect("a year-long certificate is reused");
        assert_eq!(c, cert);
        assert!(v.renew_at() > unix_now());
        let v = Validity {
            not_before: 100,
            not_after: 1100,
        };
        assert_eq!(v.renew_at(), 900);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
