//! Request authentication: bearer tokens and CA-verified client certificates become a user
//! name and groups.

use std::sync::RwLock;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use super::Tokens;

/// Group of cluster administrators (bypasses authorization).
pub const GROUP_MASTERS: &str = "system:masters";
/// Group every authenticated user is in.
pub const GROUP_AUTHENTICATED: &str = "system:authenticated";
/// Group of node bootstrap identities.
pub const GROUP_BOOTSTRAPPERS: &str = "system:bootstrappers";
/// User the node join token authenticates as.
pub const USER_NODE_BOOTSTRAP: &str = "system:bootstrap:node";
/// The user the in-process scheduler runs as (Kubernetes' own name for it).
pub const USER_SCHEDULER: &str = "system:kube-scheduler";
/// User the admin token authenticates as.
pub const USER_ADMIN: &str = "admin";

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// User name (`admin`, a certificate's CN).
    pub name: String,
    /// Groups (`system:masters`, a certificate's O entries).
    pub groups: Vec<String>,
}

impl UserInfo {
    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Maps request credentials to users. Tokens are kept only as SHA-256 digests.
pub struct Authenticator {
    tokens: RwLock<Vec<([u8; 32], UserInfo)>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.tokens.read().map(|t| t.len()).unwrap_or(0);
        f.debug_struct("Authenticator").field("tokens", &n).finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests without an early exit, so timing says nothing about the token.
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator {
    /// An authenticator that knows the cluster's admin and node join tokens.
    pub fn new(tokens: &Tokens) -> Authenticator {
        let auth = Authenticator {
            tokens: RwLock::new(Vec::new()),
        };
        auth.add_token(
            &tokens.admin,
            UserInfo {
                name: USER_ADMIN.into(),
                groups: vec![GROUP_MASTERS.into(), GROUP_AUTHENTICATED.into()],
            },
        );
        auth.add_token(
            &tokens.node_join,
            UserInfo {
                name: USER_NODE_BOOTSTRAP.into(),
                groups: vec![GROUP_BOOTSTRAPPERS.into(), GROUP_AUTHENTICATED.into()],
            },
        );
        auth.add_token(
            &tokens.scheduler,
            UserInfo {
                name: USER_SCHEDULER.into(),
                groups: vec![GROUP_AUTHENTICATED.into()],
            },
        );
        auth
    }

    /// Adds a bearer token for `user` (e.g. a service account token).
    pub fn add_token(&self, token: &str, user: UserInfo) {
        if token.is_empty() {
            return;
        }
        let mut tokens = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        tokens.push((digest(token), user));
    }

    /// Authenticates a request by its `Authorization: Bearer` header, else by the client
    /// certificate TLS already verified against the CA. `None` means anonymous or invalid.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        peer_cert: Option<&CertificateDer<'_>>,
    ) -> Option<UserInfo> {
        if headers.contains_key(AUTHORIZATION) {
            // A present but wrong token fails the request rather than falling back.
            return self.authenticate_bearer(bearer_token(headers)?);
        }
        peer_cert.and_then(user_from_cert)
    }

    /// The user of one of the static bearer tokens.
    pub fn authenticate_bearer(&self, token: &str) -> Option<UserInfo> {
        let wanted = digest(token);
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        // Scan every entry so the time taken does not depend on which one matches.
        let mut found = None;
        for (d, user) in tokens.iter() {
            if digests_equal(d, &wanted) && found.is_none() {
                found = Some(user.clone());
            }
        }
        found
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let header = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The user a client certificate names: CN is the user, each O a group.
pub fn user_from_cert(cert: &CertificateDer<'_>) -> Option<UserInfo> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    if name.is_empty() {
        return None;
    }
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    if !groups.iter().any(|g| g == GROUP_AUTHENTICATED) {
        groups.push(GROUP_AUTHENTICATED.into());
    }
    Some(UserInfo { name, groups })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use rustls_pki_types::pem::PemObject;

    use super::*;
    use crate::auth::Pki;

    fn tokens() -> Tokens {
        Tokens {
            admin: "admin-token".into(),
            node_join: "join-token".into(),
            scheduler: "scheduler-token".into(),
        }
    }

    fn bearer(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn tokens_map_to_users() {
        let auth = Authenticator::new(&tokens());
        type Case<'a> = (&'a str, Option<(&'a str, &'a [&'a str])>);
        let cases: &[Case] = &[
            (
                "Bearer admin-token",
                Some(("admin", &[GROUP_MASTERS, GROUP_AUTHENTICATED])),
            ),
            (
                "bearer  admin-token ",
                Some(("admin", &[GROUP_MASTERS, GROUP_AUTHENTICATED])),
            ),
            (
                "Bearer join-token",
                Some((
                    USER_NODE_BOOTSTRAP,
                    &[GROUP_BOOTSTRAPPERS, GROUP_AUTHENTICATED],
                )),
            ),
            ("Bearer wrong", None),
            ("Bearer admin-token-x", None),
            ("Bearer ", None),
            ("Basic admin-token", None),
            ("admin-token", None),
        ];
        for (header, want) in cases {
            let got = auth.authenticate(&bearer(header), None);
            let want = want.map(|(n, g)| UserInfo {
                name: n.to_string(),
                groups: g.iter().map(|s| s.to_string()).collect(),
            });
            assert_eq!(got, want, "header {header:?}");
        }
        assert_eq!(auth.authenticate(&HeaderMap::new(), None), None);
    }

    #[test]
    fn added_tokens_authenticate() {
        let auth = Authenticator::new(&tokens());
        let sa = UserInfo {
            name: "system:serviceaccount:default:x".into(),
            groups: vec![],
        };
        auth.add_token("sa-token", sa.clone());
        assert_eq!(
            auth.authenticate(&bearer("Bearer sa-token"), None),
            Some(sa)
        );
    }

    #[test]
    fn client_certificate_names_user_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &["127.0.0.1".into()]).unwrap();
        let auth = Authenticator::new(&tokens());
        let (cert_pem, _key) = pki.issue_client_cert("jane", &["dev", "ops"]).unwrap();
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        let user = auth.authenticate(&HeaderMap::new(), Some(&der)).unwrap();
        assert_eq!(user.name, "jane");
        assert_eq!(user.groups, vec!["dev", "ops", GROUP_AUTHENTICATED]);

        let (node_pem, _) = pki
            .issue_client_cert("system:node:n1", &["system:nodes"])
            .unwrap();
        let der = CertificateDer::from_pem_slice(node_pem.as_bytes()).unwrap();
        let user = auth.authenticate(&HeaderMap::new(), Some(&der)).unwrap();
        assert_eq!(user.name, "system:node:n1");
        assert!(user.in_group("system:nodes"));

        // A wrong bearer token is not rescued by a certificate.
        assert_eq!(auth.authenticate(&bearer("Bearer nope"), Some(&der)), None);
    }
}
