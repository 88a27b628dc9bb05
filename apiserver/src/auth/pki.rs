//! The cluster's PKI: a CA created at first start, the API server's serving certificate, and
//! client certificates issued by the CA. Files live under `<data_dir>/tls/`.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::AuthError;
use super::files::{PRIVATE, PUBLIC, read_optional, write_atomic};

/// Common name of the cluster CA.
pub const CA_COMMON_NAME: &str = "skiff-ca";
/// Common name of the API server's serving certificate.
pub const SERVER_COMMON_NAME: &str = "skiff-apiserver";
/// The serving certificate is renewed at start when it expires within this window.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The cluster CA and the API server's serving certificate, as PEM.
pub struct Pki {
    /// The CA certificate clients trust.
    pub ca_cert_pem: String,
    /// The API server's certificate, signed by the CA.
    pub server_cert_pem: String,
    /// The API server's private key (PKCS#8).
    pub server_key_pem: String,
    ca_key_pem: String,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("server_cert_pem", &self.server_cert_pem)
            .field("server_key_pem", &"<redacted>")
            .field("ca_key_pem", &"<redacted>")
            .finish()
    }
}

struct Paths {
    ca_cert: PathBuf,
    ca_key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl Paths {
    fn new(data_dir: &Path) -> Paths {
        let tls = data_dir.join("tls");
        Paths {
            ca_cert: tls.join("ca.crt"),
            ca_key: tls.join("ca.key"),
            server_cert: tls.join("server.crt"),
            server_key: tls.join("server.key"),
        }
    }
}

/// Sets validity from yesterday (tolerating clock skew) for `days` days.
fn set_validity(params: &mut CertificateParams, days: u64) {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let midnight = rcgen::date_time_ymd(
        i32::from(today.year()),
        today.month().unsigned_abs(),
        today.day().unsigned_abs(),
    );
    params.not_before = midnight - DAY;
    params.not_after = midnight + DAY * u32::try_from(days).unwrap_or(u32::MAX);
}

fn generate_key(what: &str) -> Result<KeyPair, AuthError> {
    KeyPair::generate().map_err(|e| AuthError::cert(format!("generate the {what} key"), e))
}

fn parse_der(pem: &str, path: &Path) -> Result<CertificateDer<'static>, AuthError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| AuthError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("not a PEM certificate: {e}"),
    })
}

/// What the loader needs to know about a stored serving certificate.
struct CertFacts {
    dns_names: BTreeSet<String>,
    ips: BTreeSet<IpAddr>,
    not_after: i64,
    issuer_raw: Vec<u8>,
    subject_raw: Vec<u8>,
    authority_key_id: Option<Vec<u8>>,
    subject_key_id: Option<Vec<u8>>,
    public_key: Vec<u8>,
}

fn cert_facts(der: &[u8], path: &Path) -> Result<CertFacts, AuthError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| AuthError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("not an X.509 certificate: {e}"),
    })?;
    let mut facts = CertFacts {
        dns_names: BTreeSet::new(),
        ips: BTreeSet::new(),
        not_after: cert.validity().not_after.timestamp(),
        issuer_raw: cert.issuer().as_raw().to_vec(),
        subject_raw: cert.subject().as_raw().to_vec(),
        authority_key_id: None,
        subject_key_id: None,
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    };
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => {
                            facts.dns_names.insert(d.to_string());
                        }
                        GeneralName::IPAddress(bytes) => {
                            if let Some(ip) = ip_from_bytes(bytes) {
                                facts.ips.insert(ip);
                            }
                        }
                        _ => {}
                    }
                }
            }
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                facts.authority_key_id = aki.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            ParsedExtension::SubjectKeyIdentifier(ski) => {
                facts.subject_key_id = Some(ski.0.to_vec());
            }
            _ => {}
        }
    }
    Ok(facts)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// The distinct, non-empty SANs in a stable order.
fn normalize_sans(sans: &[String]) -> Vec<String> {
    let set: BTreeSet<String> = sans
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    set.into_iter().collect()
}

impl Pki {
    /// Loads the PKI from `<data_dir>/tls/`, creating the CA and serving certificate at
    /// first start, and re-issuing the serving certificate when a SAN in `sans` is missing,
    /// it was not issued by the stored CA, or it is about to expire.
    pub fn load_or_create(data_dir: &Path, sans: &[String]) -> Result<Pki, AuthError> {
        let paths = Paths::new(data_dir);
        let sans = normalize_sans(sans);
        let (ca_cert_pem, ca_key_pem, ca_is_new) = match (
            read_optional(&paths.ca_cert)?,
            read_optional(&paths.ca_key)?,
        ) {
            (Some(cert), Some(key)) => {
                KeyPair::from_pem(&key).map_err(|e| AuthError::Corrupt {
                    path: paths.ca_key.clone(),
                    reason: format!("not a private key: {e}"),
                })?;
                parse_der(&cert, &paths.ca_cert)?;
                (cert, key, false)
            }
            _ => {
                let (cert, key) = create_ca()?;
                // Key first: a crash between the writes leaves a key without a
                // certificate, which the next start replaces as a whole.
                write_atomic(&paths.ca_key, key.as_bytes(), PRIVATE)?;
                write_atomic(&paths.ca_cert, cert.as_bytes(), PUBLIC)?;
                (cert, key, true)
            }
        };
        let mut pki = Pki {
            ca_cert_pem,
            server_cert_pem: String::new(),
            server_key_pem: String::new(),
            ca_key_pem,
        };
        let stored = match (
            read_optional(&paths.server_cert)?,
            read_optional(&paths.server_key)?,
        ) {
            (Some(cert), Some(key)) if !ca_is_new => Some((cert, key)),
            _ => None,
        };
        if let Some((cert, key)) = stored
            && pki.server_cert_usable(&cert, &key, &paths.server_cert, &sans)?
        {
            pki.server_cert_pem = cert;
            pki.server_key_pem = key;
            return Ok(pki);
        }
        let (cert, key) = pki.issue_server_cert(&sans)?;
        write_atomic(&paths.server_key, key.as_bytes(), PRIVATE)?;
        write_atomic(&paths.server_cert, cert.as_bytes(), PUBLIC)?;
        pki.server_cert_pem = cert;
        pki.server_key_pem = key;
        Ok(pki)
    }

    fn server_cert_usable(
        &self,
        cert_pem: &str,
        key_pem: &str,
        path: &Path,
        sans: &[String],
    ) -> Result<bool, AuthError> {
        // A crash between writing the key and the certificate leaves a pair that does not
        // match; treat it like a missing certificate.
        let Ok(key) = KeyPair::from_pem(key_pem) else {
            return Ok(false);
        };
        let Ok(der) = parse_der(cert_pem, path) else {
            return Ok(false);
        };
        let Ok(facts) = cert_facts(&der, path) else {
            return Ok(false);
        };
        let ca_der = parse_der(&self.ca_cert_pem, path)?;
        let ca = cert_facts(&ca_der, path)?;
        let issued_by_ca = facts.issuer_raw == ca.subject_raw
            && (facts.authority_key_id.is_none() || facts.authority_key_id == ca.subject_key_id);
        let now = jiff::Timestamp::now().as_second();
        let fresh = facts.not_after - now > RENEW_BEFORE.as_secs() as i64;
        let has_all_sans = sans.iter().all(|s| match s.parse::<IpAddr>() {
            Ok(ip) => facts.ips.contains(&ip),
            Err(_) => facts.dns_names.contains(s),
        });
        let key_matches = facts.public_key == key.public_key_raw();
        Ok(issued_by_ca && fresh && has_all_sans && key_matches)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, AuthError> {
        let key = KeyPair::from_pem(&self.ca_key_pem)
            .map_err(|e| AuthError::cert("load the CA key", e))?;
        Issuer::from_ca_cert_pem(&self.ca_cert_pem, key)
            .map_err(|e| AuthError::cert("load the CA certificate", e))
    }

    fn issue_server_cert(&self, sans: &[String]) -> Result<(String, String), AuthError> {
        let mut params = CertificateParams::new(sans.to_vec())
            .map_err(|e| AuthError::cert("encode the server certificate's names", e))?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, SERVER_COMMON_NAME);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, 365);
        let key = generate_key("server")?;
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(|e| AuthError::cert("sign the server certificate", e))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Issues a client certificate for user `common_name` in groups `organizations`,
    /// valid for a year. Returns (certificate PEM, private key PEM). At most two groups
    /// can be carried (the certificate library keeps one value per attribute type).
    pub fn issue_client_cert(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<(String, String), AuthError> {
        if common_name.is_empty() {
            return Err(AuthError::InvalidRequest(
                "the user name (CN) is empty".into(),
            ));
        }
        if organizations.len() > 2 {
            return Err(AuthError::InvalidRequest(format!(
                "at most two groups fit a client certificate, got {}",
                organizations.len()
            )));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        // The second group uses the same OID (2.5.4.10) under a distinct key.
        let org_types = [
            DnType::OrganizationName,
            DnType::CustomDnType(vec![2, 5, 4, 10]),
        ];
        for (ty, org) in org_types.into_iter().zip(organizations) {
            params.distinguished_name.push(ty, *org);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, 365);
        let key = generate_key("client")?;
        let cert = params.signed_by(&key, &self.issuer()?).map_err(|e| {
            AuthError::cert(format!("sign a client certificate for {common_name}"), e)
        })?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// The CA certificate in DER form, for trust stores.
    pub fn ca_cert_der(&self) -> Result<CertificateDer<'static>, AuthError> {
        parse_der(&self.ca_cert_pem, Path::new("ca.crt"))
    }
}

fn create_ca() -> Result<(String, String), AuthError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, 3650);
    let key = generate_key("CA")?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| AuthError::cert("self-sign the CA certificate", e))?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn sans() -> Vec<String> {
        [
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default.svc",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn creates_then_reloads_the_same_ca_and_server_cert() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::load_or_create(dir.path(), &sans()).unwrap();
        let second = Pki::load_or_create(dir.path(), &sans()).unwrap();
        assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
        assert_eq!(first.server_cert_pem, second.server_cert_pem);
        assert_eq!(first.server_key_pem, second.server_key_pem);
        for key in ["ca.key", "server.key"] {
            let mode = std::fs::metadata(dir.path().join("tls").join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        let der = parse_der(&first.server_cert_pem, Path::new("x")).unwrap();
        let facts = cert_facts(&der, Path::new("x")).unwrap();
        assert!(facts.ips.contains(&"127.0.0.1".parse::<IpAddr>().unwrap()));
        assert!(facts.dns_names.contains("kubernetes.default.svc"));
        let ca = cert_facts(&first.ca_cert_der().unwrap(), Path::new("x")).unwrap();
        assert_eq!(facts.issuer_raw, ca.subject_raw);
        assert_eq!(facts.authority_key_id, ca.subject_key_id);
    }

    #[test]
    fn reissues_the_server_cert_for_a_new_san_keeping_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::load_or_create(dir.path(), &sans()).unwrap();
        let mut more = sans();
        more.push("10.1.2.3".into());
        let second = Pki::load_or_create(dir.path(), &more).unwrap();
        assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
        assert_ne!(first.server_cert_pem, second.server_cert_pem);
        let der = parse_der(&second.server_cert_pem, Path::new("x")).unwrap();
        let facts = cert_facts(&der, Path::new("x")).unwrap();
        assert!(facts.ips.contains(&"10.1.2.3".parse::<IpAddr>().unwrap()));
        // A subset of the SANs is satisfied by the stored certificate.
        let third = Pki::load_or_create(dir.path(), &sans()).unwrap();
        assert_eq!(second.server_cert_pem, third.server_cert_pem);
    }

    #[test]
    fn a_lost_ca_replaces_the_server_cert() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::load_or_create(dir.path(), &sans()).unwrap();
        std::fs::remove_file(dir.path().join("tls/ca.crt")).unwrap();
        let second = Pki::load_or_create(dir.path(), &sans()).unwrap();
        assert_ne!(first.ca_cert_pem, second.ca_cert_pem);
        assert_ne!(first.server_cert_pem, second.server_cert_pem);
    }

    #[test]
    fn a_mismatched_server_key_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::load_or_create(dir.path(), &sans()).unwrap();
        let other = KeyPair::generate().unwrap().serialize_pem();
        std::fs::write(dir.path().join("tls/server.key"), &other).unwrap();
        let second = Pki::load_or_create(dir.path(), &sans()).unwrap();
        assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
        assert_ne!(first.server_cert_pem, second.server_cert_pem);
        assert_ne!(second.server_key_pem, other);
        server_key_matches(&second);
    }

    fn server_key_matches(pki: &Pki) {
        let der = parse_der(&pki.server_cert_pem, Path::new("x")).unwrap();
        let facts = cert_facts(&der, Path::new("x")).unwrap();
        let key = KeyPair::from_pem(&pki.server_key_pem).unwrap();
        assert_eq!(facts.public_key, key.public_key_raw());
    }

    #[test]
    fn corrupt_ca_key_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        Pki::load_or_create(dir.path(), &sans()).unwrap();
        std::fs::write(dir.path().join("tls/ca.key"), "garbage").unwrap();
        let err = Pki::load_or_create(dir.path(), &sans()).unwrap_err();
        assert!(err.to_string().contains("ca.key"), "{err}");
    }

    #[test]
    fn client_cert_limits() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &sans()).unwrap();
        assert!(pki.issue_client_cert("", &[]).is_err());
        assert!(pki.issue_client_cert("u", &["a", "b", "c"]).is_err());
        let (cert, key) = pki.issue_client_cert("u", &["a", "b"]).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
    }
}
