//! TLS of the node server: a serving certificate for the node issued by the cluster CA, and
//! client authentication that admits only the API server's kubelet-client identity.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The user name the API server presents to kubelets.
pub const APISERVER_CLIENT_CN: &str = "kube-apiserver-kubelet-client";
/// A group whose members may use the node server.
pub const MASTERS_GROUP: &str = "system:masters";

/// Errors of the node server's TLS setup.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key could not be produced or read.
    #[error("{what}: {reason}")]
    Certificate {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
}

fn cert_err(what: &'static str) -> impl FnOnce(String) -> TlsError {
    move |reason| TlsError::Certificate { what, reason }
}

/// The node server's credentials, as PEM.
#[derive(Clone)]
pub struct NodeTls {
    /// Serving certificate (chain) of the node.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
    /// The cluster CA, which must have signed every client certificate.
    pub client_ca_pem: String,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Issues a serving certificate for node `node_name` reachable at `addresses`, signed by
/// the cluster CA (for agents that can read the CA key, e.g. `skiff server`'s own agent,
/// from `<data-dir>/tls/ca.crt` and `ca.key`). Returns (certificate PEM, key PEM).
pub fn issue_serving_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    node_name: &str,
    addresses: &[IpAddr],
) -> Result<(String, String), TlsError> {
    let ca_key =
        KeyPair::from_pem(ca_key_pem).map_err(|e| cert_err("read the CA key")(e.to_string()))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)
        .map_err(|e| cert_err("read the CA certificate")(e.to_string()))?;
    let mut params = CertificateParams::new(vec![node_name.to_string()])
        .map_err(|e| cert_err("encode the node name")(e.to_string()))?;
    params
        .subject_alt_names
        .extend(addresses.iter().map(|ip| SanType::IpAddress(*ip)));
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("system:node:{node_name}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "system:nodes");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let from = today.yesterday().unwrap_or(today);
    let until = today.saturating_add(jiff::Span::new().days(365));
    params.not_before =
        rcgen::date_time_ymd(from.year().into(), from.month() as u8, from.day() as u8);
    params.not_after =
        rcgen::date_time_ymd(until.year().into(), until.month() as u8, until.day() as u8);
    let key = KeyPair::generate().map_err(|e| cert_err("generate the node key")(e.to_string()))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| cert_err("sign the node certificate")(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The node's serving certificate, replaceable while the server runs (renewal through a
/// CertificateSigningRequest): each new TLS handshake uses the latest one.
#[derive(Debug)]
pub struct RotatingCert(std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>);

fn certified_key(tls: &NodeTls) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| cert_err("read the serving certificate")(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())
        .map_err(|e| cert_err("read the serving key")(e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    let ck = rustls::sign::CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| cert_err("load the serving certificate")(e.to_string()))?;
    Ok(Arc::new(ck))
}

impl RotatingCert {
    /// Starts with the certificate and key of `tls`.
    pub fn new(tls: &NodeTls) -> Result<Arc<RotatingCert>, TlsError> {
        Ok(Arc::new(RotatingCert(std::sync::RwLock::new(
            certified_key(tls)?,
        ))))
    }

    /// Replaces the certificate; connections already open keep the old one.
    pub fn set(&self, tls: &NodeTls) -> Result<(), TlsError> {
        let ck = certified_key(tls)?;
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = ck;
        Ok(())
    }
}

impl rustls::server::ResolvesServerCert for RotatingCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// The rustls configuration: the node's certificate; a client certificate signed by the
/// cluster CA is required of every connection; HTTP/1.1 only (WebSocket upgrades).
pub fn server_config(tls: &NodeTls) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    rotating_server_config(&tls.client_ca_pem, RotatingCert::new(tls)?)
}

/// [`server_config`] serving whatever certificate `cert` holds at each handshake.
pub fn rotating_server_config(
    client_ca_pem: &str,
    cert: Arc<RotatingCert>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| cert_err("read the client CA")(e.to_string()))?;
        roots
            .add(ca)
            .map_err(|e| cert_err("trust the client CA")(e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| cert_err("build the client verifier")(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_err("choose TLS versions")(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Whether a verified client certificate belongs to the API server: common name
/// `kube-apiserver-kubelet-client` or organization `system:masters`.
pub fn client_allowed(cert: &CertificateDer<'_>) -> bool {
    let Ok((_, parsed)) = X509Certificate::from_der(cert.as_ref()) else {
        return false;
    };
    let subject = parsed.subject();
    let cn = subject
        .iter_common_name()
        .any(|a| a.as_str() == Ok(APISERVER_CLIENT_CN));
    let masters = subject
        .iter_organization()
        .any(|a| a.as_str() == Ok(MASTERS_GROUP));
    cn || masters
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn client_cert(
        ca_cert: &str,
        ca_key: &str,
        cn: &str,
        org: Option<&str>,
    ) -> CertificateDer<'static> {
        let issuer = Issuer::from_ca_cert_pem(ca_cert, KeyPair::from_pem(ca_key).unwrap()).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(o) = org {
            params.distinguished_name.push(DnType::OrganizationName, o);
        }
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &issuer).unwrap().der().clone()
    }

    pub(crate) fn test_ca() -> (String, String) {
        let mut params = CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test-ca");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn admits_only_the_apiserver_identity() {
        let (ca, key) = test_ca();
        assert!(client_allowed(&client_cert(
            &ca,
            &key,
            APISERVER_CLIENT_CN,
            None
        )));
        assert!(client_allowed(&client_cert(
            &ca,
            &key,
            "admin",
            Some(MASTERS_GROUP)
        )));
        assert!(!client_allowed(&client_cert(
            &ca,
            &key,
            "system:node:n1",
            Some("system:nodes")
        )));
    }

    #[test]
    fn issues_a_serving_cert_the_server_config_accepts() {
        let (ca, key) = test_ca();
        let (cert, node_key) =
            issue_serving_cert(&ca, &key, "node-1", &["127.0.0.1".parse().unwrap()]).unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let (_, parsed) = X509Certificate::from_der(der.as_ref()).unwrap();
        let sans = parsed
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>();
        assert!(sans.iter().any(|s| s.contains("node-1")), "{sans:?}");
        assert!(sans.iter().any(|s| s.contains("7f:00:00:01")), "{sans:?}");
        server_config(&NodeTls {
            cert_pem: cert,
            key_pem: node_key,
            client_ca_pem: ca,
        })
        .unwrap();
    }
}
