//! Service-account tokens: JWTs signed with the cluster's service-account key (ES256), in the
//! shape kube-apiserver issues them (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti` and the
//! private `kubernetes.io` claim naming the namespace, the ServiceAccount and the object the
//! token is bound to), and the OIDC discovery documents that publish the verifying key.
//!
//! The key is generated at the first start and kept in the store (outside the served
//! resources, so no API request can read it), so every server on one etcd signs and verifies
//! with the same key. Signing and verifying are jsonwebtoken's; the key is rcgen's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::storage::{Store, StoreError};

/// The issuer (`--service-account-issuer`) and default audience of every token, as kubeadm
/// and k3s configure kube-apiserver.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Where the signing key lives in the store.
const KEY: &str = "/skiff/private/service-account-signing-key";
/// The JWKS path of the discovery document.
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// The discovery document's path.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// An object a token is bound to (its name and uid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundRef {
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// The private `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: BoundRef,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<BoundRef>,
    /// The Secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<BoundRef>,
    /// The Node the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<BoundRef>,
}

/// The claims of a service-account token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// A unique id (the credential id in audit and user extra).
    pub jti: String,
    /// Namespace, ServiceAccount and bound object.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// The user name of a ServiceAccount.
pub fn user_name(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The groups of a ServiceAccount's user (`system:authenticated` is added by the caller).
pub fn groups(namespace: &str) -> Vec<String> {
    vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{namespace}"),
    ]
}

/// The cluster's service-account signing key.
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    x: String,
    y: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish()
    }
}

impl SigningKey {
    /// A new P-256 key.
    pub fn generate() -> Result<Self, String> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| e.to_string())?;
        Self::from_pkcs8(&pair.serialize_der())
    }

    /// The key of a PKCS#8 DER document.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let pair = rcgen::KeyPair::try_from(der).map_err(|e| e.to_string())?;
        let point = pair.public_key_raw();
        if point.len() != 65 || point[0] != 4 {
            return Err("the service-account key is not an uncompressed P-256 key".into());
        }
        // kube-apiserver's key id: the SHA-256 of the PKIX public key, base64url.
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(
            rcgen::PublicKeyData::subject_public_key_info(&pair),
        ));
        Ok(SigningKey {
            encoding: EncodingKey::from_ec_der(der),
            decoding: DecodingKey::from_ec_der(point),
            kid,
            x: URL_SAFE_NO_PAD.encode(&point[1..33]),
            y: URL_SAFE_NO_PAD.encode(&point[33..]),
        })
    }

    /// The key kept in `store`, made and stored by whichever server starts first.
    pub async fn load_or_create(store: &dyn Store) -> Result<Self, String> {
        if let Some(kv) = store.get(KEY).await.map_err(|e| e.to_string())? {
            return Self::from_pkcs8(&kv.value);
        }
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| e.to_string())?;
        let der = pair.serialize_der();
        match store.create(KEY, der.clone()).await {
            Ok(_) => Self::from_pkcs8(&der),
            // Another server made it first: use theirs.
            Err(StoreError::AlreadyExists { .. }) => {
                let kv = store
                    .get(KEY)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("the service-account key vanished")?;
                Self::from_pkcs8(&kv.value)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// A signed token with these claims.
    pub fn issue(&self, claims: &Claims) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }

    /// The claims of a token this key signed, for one of `audiences`, not expired and not
    /// before its time; `None` for anything else (a token of another issuer included).
    pub fn verify(&self, token: &str, audiences: &[&str]) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[ISSUER]);
        v.set_audience(audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        v.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }

    /// The JWKS document (`/openid/v1/jwks`).
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "use": "sig", "kty": "EC", "kid": self.kid, "crv": "P-256", "alg": "ES256",
            "x": self.x, "y": self.y,
        }]})
    }
}

/// The OIDC discovery document (`/.well-known/openid-configuration`), as kube-apiserver
/// publishes it.
pub fn openid_configuration() -> Value {
    json!({
        "issuer": ISSUER,
        "jwks_uri": format!("{ISSUER}{JWKS_PATH}"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    })
}

/// Whether a bearer token has the shape of a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_in: i64, aud: &str) -> Claims {
        let now = jiff::Timestamp::now().as_second();
        Claims {
            iss: ISSUER.into(),
            sub: user_name("a", "default"),
            aud: vec![aud.into()],
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "j".into(),
            kubernetes: KubernetesClaim {
                namespace: "a".into(),
                serviceaccount: BoundRef {
                    name: "default".into(),
                    uid: "u".into(),
                },
                pod: None,
                secret: None,
                node: None,
            },
        }
    }

    #[test]
    fn issued_tokens_verify_for_their_audience_until_they_expire() {
        let key = SigningKey::generate().unwrap();
        let t = key.issue(&claims(600, ISSUER)).unwrap();
        assert!(looks_like_jwt(&t));
        let got = key.verify(&t, &[ISSUER]).unwrap();
        assert_eq!(got.sub, "system:serviceaccount:a:default");
        assert!(key.verify(&t, &["vault"]).is_none(), "another audience");
        let old = key.issue(&claims(-5, ISSUER)).unwrap();
        assert!(key.verify(&old, &[ISSUER]).is_none(), "expired");
        let other = SigningKey::generate().unwrap();
        assert!(other.verify(&t, &[ISSUER]).is_none(), "another key");
        let mut tampered = t.clone();
        tampered.insert(t.find('.').unwrap() + 3, 'x');
        assert!(key.verify(&tampered, &[ISSUER]).is_none());
    }

    #[test]
    fn the_key_round_trips_and_publishes_its_public_half() {
        let key = SigningKey::generate().unwrap();
        let jwks = key.jwks();
        let k = &jwks["keys"][0];
        assert_eq!(k["kty"], "EC");
        assert_eq!(k["kid"].as_str().unwrap().len(), 43);
        // The published components verify what the key signs.
        let t = key.issue(&claims(600, ISSUER)).unwrap();
        let public =
            DecodingKey::from_ec_components(k["x"].as_str().unwrap(), k["y"].as_str().unwrap())
                .unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[ISSUER]);
        assert!(jsonwebtoken::decode::<Claims>(&t, &public, &v).is_ok());
        assert_eq!(
            openid_configuration()["jwks_uri"],
            "https://kubernetes.default.svc.cluster.local/openid/v1/jwks"
        );
    }
}
