//! CSR signer for `kubernetes.io/kubelet-serving`, `kubernetes.io/kube-apiserver-client`
//! (users: the subject's CN is the user name, its O entries the groups) and
//! `kubernetes.io/kube-apiserver-client-kubelet`: issues approved requests with the cluster
//! CA, keeping the request's subject and names, for `spec.expirationSeconds` (at least 10
//! minutes, at most the signer's maximum, a year by default), and writes
//! `status.certificate`. A request its signer's rules refuse gets a `Failed` condition
//! instead, as Kubernetes' signer does; so does an approved request for any other
//! `kubernetes.io/` signer, which nothing here would ever issue (Kubernetes leaves those
//! pending forever). Requests for signers outside `kubernetes.io/` are left to them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rcgen::{
    CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::Shutdown;
use crate::csr_request::{
    API_CLIENT_KUBELET_SIGNER, API_CLIENT_SIGNER, KUBELET_SERVING_SIGNER, api_client_usages,
    has_condition, kubelet_client, kubelet_serving_node,
};
use crate::error::{Error, Result};
use crate::metrics::timed;
use skiff_client::controller::drive;

/// The shortest lifetime a request may ask for.
pub const MIN_DURATION: Duration = Duration::from_secs(600);
/// The default (and largest) lifetime of an issued certificate.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// How far back `notBefore` is set, tolerating clock skew between machines.
const BACKDATE: Duration = Duration::from_secs(300);

/// Where the signer's CA lives and how long its certificates may last.
#[derive(Debug, Clone)]
pub struct SignerConfig {
    /// PEM CA certificate (`<data-dir>/tls/ca.crt`).
    pub ca_cert: PathBuf,
    /// PEM CA private key (`<data-dir>/tls/ca.key`).
    pub ca_key: PathBuf,
    /// The longest lifetime issued (`--cluster-signing-duration`).
    pub max_duration: Duration,
}

/// Why a certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The CA files could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The CA or the request could not be parsed, or signing failed.
    #[error("{what}: {source}")]
    Certificate {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
}

/// The cluster CA, loaded once.
pub struct CaSigner {
    issuer: Issuer<'static, KeyPair>,
    max_duration: Duration,
}

fn read(path: &Path) -> std::result::Result<String, SignError> {
    std::fs::read_to_string(path).map_err(|source| SignError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn cert_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> SignError {
    move |source| SignError::Certificate { what, source }
}

/// The lifetime of a certificate for a request asking for `requested` seconds.
pub fn lifetime(requested: Option<i32>, max: Duration) -> Duration {
    match requested {
        Some(s) => Duration::from_secs(u64::try_from(s).unwrap_or(0)).clamp(MIN_DURATION, max),
        None => max,
    }
}

impl CaSigner {
    /// Loads the CA certificate and key.
    pub fn load(config: &SignerConfig) -> std::result::Result<CaSigner, SignError> {
        let key =
            KeyPair::from_pem(&read(&config.ca_key)?).map_err(cert_err("loading the CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(&read(&config.ca_cert)?, key)
            .map_err(cert_err("loading the CA certificate"))?;
        Ok(CaSigner {
            issuer,
            max_duration: config.max_duration,
        })
    }

    /// Issues a serving certificate for a PEM request, valid from `now` (Unix seconds,
    /// backdated a little) for `lifetime`. Returns the certificate PEM.
    pub fn sign_serving(
        &self,
        request_pem: &str,
        now_unix: u64,
        lifetime: Duration,
    ) -> std::result::Result<String, SignError> {
        self.sign(request_pem, now_unix, lifetime, Purpose::Server)
    }

    /// Issues a certificate of `purpose` for a PEM request, as [`CaSigner::sign_serving`].
    pub fn sign(
        &self,
        request_pem: &str,
        now_unix: u64,
        lifetime: Duration,
        purpose: Purpose,
    ) -> std::result::Result<String, SignError> {
        let mut req = CertificateSigningRequestParams::from_pem(request_pem)
            .map_err(cert_err("parsing the certificate request"))?;
        let p = &mut req.params;
        // Only the subject and names come from the request; usages are the signer's.
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![match purpose {
            Purpose::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Purpose::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        p.use_authority_key_identifier_extension = true;
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        p.not_before = epoch + Duration::from_secs(now_unix.saturating_sub(BACKDATE.as_secs()));
        p.not_after = epoch + Duration::from_secs(now_unix) + lifetime;
        let cert = req
            .signed_by(&self.issuer)
            .map_err(cert_err("signing the certificate"))?;
        Ok(cert.pem())
    }
}

/// What an issued certificate is for (its extended key usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// TLS server (kubelet serving).
    Server,
    /// TLS client (users and kubelets calling the API server).
    Client,
}

/// What this signer makes of a request: `None` when it is for a signer outside
/// `kubernetes.io/` (someone else's to issue), else the purpose or why it is refused.
pub fn judge(csr: &CertificateSigningRequest) -> Option<std::result::Result<Purpose, String>> {
    let signer = csr.spec.signer_name.as_str();
    Some(match signer {
        KUBELET_SERVING_SIGNER => kubelet_serving_node(csr)
            .map(|_| Purpose::Server)
            .map_err(|r| r.to_string()),
        API_CLIENT_SIGNER => api_client_usages(csr).map(|_| Purpose::Client),
        API_CLIENT_KUBELET_SIGNER => kubelet_client(csr).map(|_| Purpose::Client),
        s if s.starts_with("kubernetes.io/") => Err(format!(
            "unsupported signer {s:?}: this cluster signs {API_CLIENT_SIGNER}, {API_CLIENT_KUBELET_SIGNER} and {KUBELET_SERVING_SIGNER}"
        )),
        _ => return None,
    })
}

struct SignerContext {
    csrs: Api<CertificateSigningRequest>,
    ca: CaSigner,
}

fn condition(type_: &str, reason: &str, message: String) -> CertificateSigningRequestCondition {
    let now = Time(jiff::Timestamp::now());
    CertificateSigningRequestCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<SignerContext>) -> Result<Action> {
    let name = csr.name_any();
    let issued = csr
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    if !has_condition(&csr, "Approved")
        || has_condition(&csr, "Denied")
        || has_condition(&csr, "Failed")
        || issued
    {
        return Ok(Action::await_change());
    }
    let Some(judged) = judge(&csr) else {
        return Ok(Action::await_change());
    };
    let mut updated = (*csr).clone();
    let status = updated
        .status
        .get_or_insert_with(CertificateSigningRequestStatus::default);
    let signed = judged.and_then(|purpose| {
        let pem = String::from_utf8(csr.spec.request.0.clone())
            .map_err(|_| "the request is not UTF-8 PEM".to_string())?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let life = lifetime(csr.spec.expiration_seconds, ctx.ca.max_duration);
        ctx.ca
            .sign(&pem, now, life, purpose)
            .map_err(|e| e.to_string())
    });
    match &signed {
        Ok(cert) => status.certificate = Some(ByteString(cert.clone().into_bytes())),
        Err(why) => {
            tracing::warn!(csr = %name, reason = %why, "refusing to sign");
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(condition("Failed", "SignerValidationFailure", why.clone()));
        }
    }
    match ctx
        .csrs
        .replace_status(&name, &PostParams::default(), &updated)
        .await
    {
        Ok(_) => {
            if signed.is_ok() {
                tracing::info!(csr = %name, signer = %csr.spec.signer_name, "issued certificate");
            }
            Ok(Action::await_change())
        }
        Err(e) if crate::error::conflict(&e) || crate::error::not_found(&e) => {
            Ok(Action::await_change())
        }
        Err(e) => Err(Error::api(name)(e)),
    }
}

fn error_policy(csr: Arc<CertificateSigningRequest>, err: &Error, _: Arc<SignerContext>) -> Action {
    tracing::warn!(csr = %csr.name_any(), error = %err, "csr signing failed");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the signer until `shutdown`.
pub async fn run(client: Client, config: SignerConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let ca = CaSigner::load(&config)?;
    let csrs: Api<CertificateSigningRequest> = Api::all(client);
    let ctx = Arc::new(SignerContext {
        csrs: csrs.clone(),
        ca,
    });
    let controller = Controller::new(csrs, watcher::Config::default());
    let timed_reconcile = |obj, ctx| timed("csrsigning", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType};
    use x509_parser::extensions::GeneralName;

    use super::*;
    use crate::csr_request::testing::request;

    /// A throwaway CA written to a temporary directory.
    fn ca(dir: &Path) -> (SignerConfig, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "test-ca");
        params.distinguished_name = dn;
        let cert = params.self_signed(&key).unwrap();
        let cfg = SignerConfig {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            max_duration: DEFAULT_MAX_DURATION,
        };
        std::fs::write(&cfg.ca_cert, cert.pem()).unwrap();
        std::fs::write(&cfg.ca_key, key.serialize_pem()).unwrap();
        (cfg, key)
    }

    #[test]
    fn lifetime_is_clamped() {
        let max = DEFAULT_MAX_DURATION;
        assert_eq!(lifetime(None, max), max);
        assert_eq!(lifetime(Some(60), max), MIN_DURATION);
        assert_eq!(lifetime(Some(3600), max), Duration::from_secs(3600));
        assert_eq!(lifetime(Some(i32::MAX), max), max);
    }

    #[test]
    fn issued_certificate_chains_to_the_ca_with_the_requested_names() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, ca_key) = ca(dir.path());
        let signer = CaSigner::load(&cfg).unwrap();
        let (pem, key) = request("system:node:n1", &["system:nodes"], &["n1", "ip:10.0.0.5"]);
        let now = 1_700_000_000;
        let out = signer
            .sign_serving(&pem, now, Duration::from_secs(3600))
            .unwrap();

        let (_, block) = x509_parser::pem::parse_x509_pem(out.as_bytes()).unwrap();
        let cert = block.parse_x509().unwrap();
        let ca_pem = std::fs::read(&cfg.ca_cert).unwrap();
        let (_, ca_block) = x509_parser::pem::parse_x509_pem(&ca_pem).unwrap();
        let ca_cert = ca_block.parse_x509().unwrap();
        assert_eq!(cert.issuer(), ca_cert.subject());
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        assert_ne!(ca_key.public_key_raw(), key.public_key_raw());
        verify_as_server(&out, &ca_pem, "10.0.0.5", now);
        verify_as_server(&out, &ca_pem, "n1", now);

        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["system:node:n1"]);
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert!(san.general_names.contains(&GeneralName::DNSName("n1")));
        assert!(
            san.general_names
                .contains(&GeneralName::IPAddress(&[10, 0, 0, 5]))
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        assert!(!cert.is_ca());
        assert_eq!(
            cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp(),
            3600 + 300
        );
        assert_eq!(cert.validity().not_before.timestamp(), (now - 300) as i64);
    }

    /// Verifies the chain, name and serverAuth usage as a TLS client of the node would.
    fn verify_as_server(cert_pem: &str, ca_pem: &[u8], name: &str, now: u64) {
        use rustls::client::WebPkiServerVerifier;
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        let leaf = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::since_unix_epoch(Duration::from_secs(now + 60)),
            )
            .unwrap();
    }

    #[test]
    fn a_garbled_request_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, _) = ca(dir.path());
        let signer = CaSigner::load(&cfg).unwrap();
        assert!(signer.sign_serving("garbage", 0, MIN_DURATION).is_err());
        let missing = SignerConfig {
            ca_key: dir.path().join("nope"),
            ..cfg
        };
        assert!(matches!(
            CaSigner::load(&missing),
            Err(SignError::Io { .. })
        ));
    }

    fn for_signer(
        signer: &str,
        cn: &str,
        orgs: &[&str],
        sans: &[&str],
        usages: &[&str],
    ) -> CertificateSigningRequest {
        let (pem, _) = request(cn, orgs, sans);
        let mut c = crate::csr_request::testing::csr(&pem, usages);
        c.spec.signer_name = signer.into();
        c
    }

    #[test]
    fn each_signer_judges_its_requests_in_kubernetes_words() {
        let client = |usages: &[&str]| {
            judge(&for_signer(
                API_CLIENT_SIGNER,
                "alice",
                &["dev"],
                &[],
                usages,
            ))
            .unwrap()
        };
        assert_eq!(client(&["client auth"]), Ok(Purpose::Client));
        assert_eq!(
            client(&["digital signature", "key encipherment", "client auth"]),
            Ok(Purpose::Client)
        );
        assert_eq!(
            client(&["server auth", "client auth"]),
            Err("invalid usage for client certificate: server auth".into())
        );
        assert_eq!(
            client(&["digital signature"]),
            Err("missing required usage for client certificate: client auth".into())
        );
        // A second group would be lost by the certificate library: refused. (rcgen cannot
        // write such a request either; openssl can.)
        let dir = tempfile::tempdir().unwrap();
        let (key, req) = (dir.path().join("k.pem"), dir.path().join("r.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-subj", "/CN=alice/O=dev/O=ops", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&req)
            .output()
            .expect("openssl runs");
        assert!(made.status.success(), "{made:?}");
        let mut two = crate::csr_request::testing::csr(
            &std::fs::read_to_string(&req).unwrap(),
            &["client auth"],
        );
        two.spec.signer_name = API_CLIENT_SIGNER.into();
        assert_eq!(
            judge(&two).unwrap(),
            Err("this signer issues one common name and at most one organization (group); the subject has 1 and 2".into())
        );
        let kubelet = |cn: &str, orgs: &[&str], sans: &[&str], usages: &[&str]| {
            judge(&for_signer(
                API_CLIENT_KUBELET_SIGNER,
                cn,
                orgs,
                sans,
                usages,
            ))
            .unwrap()
        };
        let ok = ["digital signature", "key encipherment", "client auth"];
        assert_eq!(
            kubelet("system:node:n1", &["system:nodes"], &[], &ok),
            Ok(Purpose::Client)
        );
        assert_eq!(
            kubelet(
                "system:node:n1",
                &["system:nodes"],
                &[],
                &["digital signature", "client auth"]
            ),
            Ok(Purpose::Client)
        );
        assert_eq!(
            kubelet("system:node:n1", &["dev"], &[], &ok),
            Err("subject organization is not system:nodes".into())
        );
        assert_eq!(
            kubelet("system:node:n1", &["system:nodes"], &["n1"], &ok),
            Err("DNS subjectAltNames are not allowed".into())
        );
        assert_eq!(
            kubelet("system:node:n1", &["system:nodes"], &["email:a@b.c"], &ok),
            Err("Email subjectAltNames are not allowed".into())
        );
        assert_eq!(
            kubelet("alice", &["system:nodes"], &[], &ok),
            Err("subject common name does not begin with 'system:node:'".into())
        );
        assert_eq!(
            kubelet("system:node:n1", &["system:nodes"], &[], &["client auth"]),
            Err("usages did not match [client auth digital signature key encipherment]".into())
        );
        let serving = for_signer(
            KUBELET_SERVING_SIGNER,
            "system:node:n1",
            &["system:nodes"],
            &["n1"],
            crate::csr_request::testing::USAGES,
        );
        assert_eq!(judge(&serving).unwrap(), Ok(Purpose::Server));
        let legacy = for_signer(
            "kubernetes.io/legacy-unknown",
            "x",
            &[],
            &[],
            &["client auth"],
        );
        assert!(
            judge(&legacy)
                .unwrap()
                .unwrap_err()
                .starts_with("unsupported signer \"kubernetes.io/legacy-unknown\"")
        );
        let external = for_signer("example.com/issuer", "x", &[], &[], &["client auth"]);
        assert_eq!(judge(&external), None);
    }

    #[test]
    fn a_client_certificate_names_the_user_and_groups_for_client_auth_only() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, _) = ca(dir.path());
        let signer = CaSigner::load(&cfg).unwrap();
        let (pem, _) = request("alice", &["dev"], &[]);
        let out = signer
            .sign(
                &pem,
                1_700_000_000,
                Duration::from_secs(3600),
                Purpose::Client,
            )
            .unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(out.as_bytes()).unwrap();
        let cert = block.parse_x509().unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let orgs: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(orgs, ["dev"]);
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["alice"]);
    }
}
