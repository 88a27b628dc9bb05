//! Writing kubeconfig files (`skiff` cluster, `admin` user) for kubectl and skiff clients.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::AuthError;
use super::files::{PRIVATE, write_atomic};

/// Name of the cluster, context and (for the user) `admin` entries written.
pub const CLUSTER_NAME: &str = "skiff";
/// Name of the user entry written.
pub const USER_NAME: &str = "admin";

/// How the kubeconfig's user authenticates.
#[derive(Clone)]
pub enum KubeconfigUser {
    /// A bearer token.
    Token(String),
    /// A client certificate and its key, as PEM.
    ClientCert {
        /// Certificate PEM.
        cert_pem: String,
        /// Private key PEM.
        key_pem: String,
    },
}

impl std::fmt::Debug for KubeconfigUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KubeconfigUser::Token(_) => f.write_str("Token(<redacted>)"),
            KubeconfigUser::ClientCert { .. } => f.write_str("ClientCert(<redacted>)"),
        }
    }
}

/// The kubeconfig document as a YAML string, its user entry named `admin`.
pub fn render_kubeconfig(
    server_url: &str,
    ca_pem: &str,
    user: &KubeconfigUser,
) -> Result<String, serde_yaml::Error> {
    render_kubeconfig_for(server_url, ca_pem, USER_NAME, user)
}

/// The kubeconfig document as a YAML string, its user entry named `user_name`.
pub fn render_kubeconfig_for(
    server_url: &str,
    ca_pem: &str,
    user_name: &str,
    user: &KubeconfigUser,
) -> Result<String, serde_yaml::Error> {
    let mut user_entry = Map::new();
    match user {
        KubeconfigUser::Token(token) => {
            user_entry.insert("token".into(), Value::String(token.clone()));
        }
        KubeconfigUser::ClientCert { cert_pem, key_pem } => {
            user_entry.insert(
                "client-certificate-data".into(),
                Value::String(STANDARD.encode(cert_pem)),
            );
            user_entry.insert(
                "client-key-data".into(),
                Value::String(STANDARD.encode(key_pem)),
            );
        }
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CLUSTER_NAME,
            "cluster": {
                "server": server_url,
                "certificate-authority-data": STANDARD.encode(ca_pem),
            },
        }],
        "users": [{ "name": user_name, "user": user_entry }],
        "contexts": [{
            "name": CLUSTER_NAME,
            "context": { "cluster": CLUSTER_NAME, "user": user_name },
        }],
        "current-context": CLUSTER_NAME,
        "preferences": {},
    });
    serde_yaml::to_string(&doc)
}

/// Writes a kubeconfig to `path` (mode 0600, atomically, creating the directory).
pub fn write_kubeconfig(
    path: &Path,
    server_url: &str,
    ca_pem: &str,
    user: KubeconfigUser,
) -> Result<(), AuthError> {
    let text = render_kubeconfig(server_url, ca_pem, &user).map_err(|e| AuthError::Encode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes(), PRIVATE)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn read(path: &Path) -> serde_yaml::Value {
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn b64(v: &serde_yaml::Value) -> String {
        String::from_utf8(STANDARD.decode(v.as_str().unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn token_kubeconfig_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kube/config");
        let ca = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n";
        write_kubeconfig(
            &path,
            "https://127.0.0.1:6443",
            ca,
            KubeconfigUser::Token("t0k".into()),
        )
        .unwrap();
        let doc = read(&path);
        assert_eq!(doc["kind"].as_str(), Some("Config"));
        assert_eq!(doc["current-context"].as_str(), Some("skiff"));
        let cluster = &doc["clusters"][0];
        assert_eq!(cluster["name"].as_str(), Some("skiff"));
        assert_eq!(
            cluster["cluster"]["server"].as_str(),
            Some("https://127.0.0.1:6443")
        );
        assert_eq!(b64(&cluster["cluster"]["certificate-authority-data"]), ca);
        assert_eq!(doc["users"][0]["name"].as_str(), Some("admin"));
        assert_eq!(doc["users"][0]["user"]["token"].as_str(), Some("t0k"));
        assert_eq!(
            doc["contexts"][0]["context"]["cluster"].as_str(),
            Some("skiff")
        );
        assert_eq!(
            doc["contexts"][0]["context"]["user"].as_str(),
            Some("admin")
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn client_cert_kubeconfig_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let user = KubeconfigUser::ClientCert {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        write_kubeconfig(&path, "https://h:6443", "CA", user).unwrap();
        let doc = read(&path);
        let u = &doc["users"][0]["user"];
        assert_eq!(b64(&u["client-certificate-data"]), "CERT");
        assert_eq!(b64(&u["client-key-data"]), "KEY");
        assert!(u.get("token").is_none());
    }
}
