//! What a kubelet serving CertificateSigningRequest must look like: the facts read from its
//! PKCS#10 request and the rules both the approver and the signer apply
//! (`kubernetes.io/kubelet-serving`, as Kubernetes' `IsKubeletServingCSR` checks them).

use std::net::IpAddr;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// The signer of kubelet serving certificates.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// The signer of client certificates the API server accepts (users).
pub const API_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// The signer of kubelets' client certificates.
pub const API_CLIENT_KUBELET_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The group every node identity is in.
pub const GROUP_NODES: &str = "system:nodes";
/// The prefix of node user names (`system:node:<name>`).
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The user the node join token authenticates as.
pub const USER_NODE_BOOTSTRAP: &str = "system:bootstrap:node";
/// The group of node bootstrap identities.
pub const GROUP_BOOTSTRAPPERS: &str = "system:bootstrappers";

/// Usages a kubelet serving certificate may carry; `server auth` and `digital signature`
/// are required, `key encipherment` is allowed (RSA keys need it).
const ALLOWED_USAGES: &[&str] = &["digital signature", "key encipherment", "server auth"];

/// What a certificate request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    /// Subject common names.
    pub common_names: Vec<String>,
    /// Subject organizations.
    pub organizations: Vec<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ips: Vec<IpAddr>,
    /// Subject alternative names of other types (email, URI, ...).
    pub other_sans: usize,
    /// Of those, email addresses.
    pub emails: usize,
    /// Of those, URIs.
    pub uris: usize,
}

/// Why a request is not a valid kubelet serving request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request is for another signer.
    #[error("signer is {0:?}, not {KUBELET_SERVING_SIGNER:?}")]
    OtherSigner(String),
    /// `spec.request` is not a parseable PEM certificate request.
    #[error("the request does not parse: {0}")]
    Unparseable(String),
    /// The subject is not `CN=system:node:<name>, O=system:nodes`.
    #[error("subject must be CN=system:node:<name>, O=system:nodes: {0}")]
    Subject(String),
    /// The usages are not a subset of the allowed ones or lack a required one.
    #[error(
        "usages must be digital signature, server auth and optionally key encipherment, got {0:?}"
    )]
    Usages(Vec<String>),
    /// The request names no DNS or IP SAN, or one of another type.
    #[error("subject alternative names must be DNS names or IP addresses, at least one")]
    Sans,
    /// The requestor may not ask for this node's certificate.
    #[error("requestor {0:?} may not request a serving certificate for node {1:?}")]
    Requestor(String, String),
}

/// Reads the subject and subject alternative names of a PEM `CERTIFICATE REQUEST`.
pub fn request_facts(pem_bytes: &[u8]) -> Result<RequestFacts, Refusal> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_bytes)
        .map_err(|e| Refusal::Unparseable(e.to_string()))?;
    if pem.label != "CERTIFICATE REQUEST" {
        return Err(Refusal::Unparseable(format!(
            "PEM block is {:?}, not CERTIFICATE REQUEST",
            pem.label
        )));
    }
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .map_err(|e| Refusal::Unparseable(e.to_string()))?;
    let subject = &csr.certification_request_info.subject;
    let strings = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
        it.filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect::<Vec<_>>()
    };
    let mut facts = RequestFacts {
        common_names: strings(&mut subject.iter_common_name()),
        organizations: strings(&mut subject.iter_organization()),
        dns_names: Vec::new(),
        ips: Vec::new(),
        other_sans: 0,
        emails: 0,
        uris: 0,
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => facts.dns_names.push(d.to_string()),
                    GeneralName::IPAddress(b) => match ip_from_bytes(b) {
                        Some(ip) => facts.ips.push(ip),
                        None => facts.other_sans += 1,
                    },
                    GeneralName::RFC822Name(_) => {
                        facts.emails += 1;
                        facts.other_sans += 1;
                    }
                    GeneralName::URI(_) => {
                        facts.uris += 1;
                        facts.other_sans += 1;
                    }
                    _ => facts.other_sans += 1,
                }
            }
        }
    }
    Ok(facts)
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

/// Checks a CSR is a well-formed kubelet serving request and returns the node it is for.
/// The requestor is not checked here (see [`requestor_allowed`]).
pub fn kubelet_serving_node(csr: &CertificateSigningRequest) -> Result<String, Refusal> {
    let spec = &csr.spec;
    if spec.signer_name != KUBELET_SERVING_SIGNER {
        return Err(Refusal::OtherSigner(spec.signer_name.clone()));
    }
    let usages = spec.usages.clone().unwrap_or_default();
    let allowed = usages.iter().all(|u| ALLOWED_USAGES.contains(&u.as_str()));
    let has = |u: &str| usages.iter().any(|x| x == u);
    if !allowed || !has("server auth") || !has("digital signature") {
        return Err(Refusal::Usages(usages));
    }
    let facts = request_facts(&spec.request.0)?;
    let node = match facts.common_names.as_slice() {
        [cn] => cn
            .strip_prefix(NODE_USER_PREFIX)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Refusal::Subject(format!("CN is {cn:?}")))?,
        other => return Err(Refusal::Subject(format!("{} common names", other.len()))),
    };
    if facts.organizations != [GROUP_NODES] {
        return Err(Refusal::Subject(format!("O is {:?}", facts.organizations)));
    }
    if facts.other_sans > 0 || (facts.dns_names.is_empty() && facts.ips.is_empty()) {
        return Err(Refusal::Sans);
    }
    Ok(node.to_string())
}

/// Whether the CSR's requestor may ask for `node`'s serving certificate: the node itself
/// (`system:node:<node>` in `system:nodes`), or the node bootstrap identity the join token
/// authenticates as. Agents joining with the shared join token hold no node credential of
/// their own, so the bootstrap identity is trusted for any node that is registered; the
/// approver additionally requires the Node object to exist.
pub fn requestor_allowed(csr: &CertificateSigningRequest, node: &str) -> Result<(), Refusal> {
    let user = csr.spec.username.clone().unwrap_or_default();
    let groups = csr.spec.groups.clone().unwrap_or_default();
    let in_group = |g: &str| groups.iter().any(|x| x == g);
    let is_node = user.strip_prefix(NODE_USER_PREFIX) == Some(node) && in_group(GROUP_NODES);
    let is_bootstrap = user == USER_NODE_BOOTSTRAP && in_group(GROUP_BOOTSTRAPPERS);
    if is_node || is_bootstrap {
        Ok(())
    } else {
        Err(Refusal::Requestor(user, node.to_string()))
    }
}

/// `kubernetes.io/kube-apiserver-client`: any subject; usages among digital signature,
/// key encipherment and client auth, with client auth (Kubernetes' wording).
pub fn api_client_usages(csr: &CertificateSigningRequest) -> Result<(), String> {
    let usages = csr.spec.usages.clone().unwrap_or_default();
    if let Some(bad) = usages
        .iter()
        .find(|u| !["digital signature", "key encipherment", "client auth"].contains(&u.as_str()))
    {
        return Err(format!("invalid usage for client certificate: {bad}"));
    }
    if !usages.iter().any(|u| u == "client auth") {
        return Err("missing required usage for client certificate: client auth".into());
    }
    // The certificate library keeps one value per attribute type, so a second group would
    // be dropped silently from the issued certificate: refused instead.
    let facts = request_facts(&csr.spec.request.0).map_err(|e| e.to_string())?;
    if facts.organizations.len() > 1 || facts.common_names.len() > 1 {
        return Err(format!(
            "this signer issues one common name and at most one organization (group); the subject has {} and {}",
            facts.common_names.len(),
            facts.organizations.len()
        ));
    }
    Ok(())
}

/// `kubernetes.io/kube-apiserver-client-kubelet`: `O=system:nodes`, `CN=system:node:<name>`,
/// no subject alternative names, and exactly the kubelet client usages (Kubernetes'
/// `ValidateKubeletClientCSR`, with its wording).
pub fn kubelet_client(csr: &CertificateSigningRequest) -> Result<(), String> {
    let facts = request_facts(&csr.spec.request.0).map_err(|e| e.to_string())?;
    if facts.organizations != [GROUP_NODES] {
        return Err("subject organization is not system:nodes".into());
    }
    let checks = [
        (!facts.dns_names.is_empty(), "DNS"),
        (facts.emails > 0, "Email"),
        (!facts.ips.is_empty(), "IP"),
        (facts.uris > 0, "URI"),
    ];
    if let Some((_, what)) = checks.iter().find(|(bad, _)| *bad) {
        return Err(format!("{what} subjectAltNames are not allowed"));
    }
    if !facts
        .common_names
        .first()
        .is_some_and(|cn| cn.starts_with(NODE_USER_PREFIX))
    {
        return Err("subject common name does not begin with 'system:node:'".into());
    }
    let mut usages = csr.spec.usages.clone().unwrap_or_default();
    usages.sort();
    usages.dedup();
    let with_rsa = ["client auth", "digital signature", "key encipherment"];
    if usages != with_rsa && usages != ["client auth", "digital signature"] {
        return Err(format!("usages did not match [{}]", with_rsa.join(" ")));
    }
    Ok(())
}

/// Whether the CSR carries a condition of this type.
pub fn has_condition(csr: &CertificateSigningRequest, ty: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == ty))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builds CertificateSigningRequests for the approver and signer tests.
    use k8s_openapi::ByteString;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    use super::*;

    /// A PEM request with these CN, O and SANs (`ip:` prefixed for IP SANs, `email:` for
    /// email).
    pub fn request(cn: &str, orgs: &[&str], sans: &[&str]) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        for o in orgs {
            dn.push(DnType::OrganizationName, *o);
        }
        params.distinguished_name = dn;
        for s in sans {
            params
                .subject_alt_names
                .push(if let Some(ip) = s.strip_prefix("ip:") {
                    SanType::IpAddress(ip.parse().unwrap())
                } else if let Some(e) = s.strip_prefix("email:") {
                    SanType::Rfc822Name(e.try_into().unwrap())
                } else {
                    SanType::DnsName((*s).try_into().unwrap())
                });
        }
        (params.serialize_request(&key).unwrap().pem().unwrap(), key)
    }

    /// A kubelet serving CSR from the bootstrap identity.
    pub fn csr(pem: &str, usages: &[&str]) -> CertificateSigningRequest {
        CertificateSigningRequest {
            metadata: kube::api::ObjectMeta {
                name: Some("node-serving-n1".into()),
                ..Default::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.as_bytes().to_vec()),
                signer_name: KUBELET_SERVING_SIGNER.into(),
                usages: Some(usages.iter().map(|s| s.to_string()).collect()),
                username: Some(USER_NODE_BOOTSTRAP.into()),
                groups: Some(vec![GROUP_BOOTSTRAPPERS.into()]),
                ..Default::default()
            },
            status: None,
        }
    }

    /// The usages the agent asks for.
    pub const USAGES: &[&str] = &["digital signature", "key encipherment", "server auth"];
}
