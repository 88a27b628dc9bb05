//! The cluster's bearer tokens (admin and node join), created at first start and stored
//! 0600 in `<data_dir>/tokens.json`.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::AuthError;
use super::files::{PRIVATE, read_optional, write_atomic};

/// File name of the token file inside the data directory.
pub const TOKENS_FILE: &str = "tokens.json";

/// The static bearer tokens of the cluster. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    /// Grants `system:masters`; goes into the admin kubeconfig.
    pub admin: String,
    /// Lets `skiff agent --token` join a node as `system:bootstrap:node`.
    pub node_join: String,
    /// The in-process scheduler's credential: user `system:kube-scheduler`, which holds
    /// only the `system:kube-scheduler` and `system:volume-scheduler` roles. Added to a
    /// token file written before it existed at the next start.
    #[serde(default)]
    pub scheduler: String,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("admin", &"<redacted>")
            .field("node_join", &"<redacted>")
            .field("scheduler", &"<redacted>")
            .finish()
    }
}

/// 32 random bytes, hex-encoded.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Tokens {
    /// Loads the tokens from `<data_dir>/tokens.json`, creating the file at first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Tokens, AuthError> {
        let path = data_dir.join(TOKENS_FILE);
        if let Some(text) = read_optional(&path)? {
            let tokens: Tokens = serde_json::from_str(&text).map_err(|e| AuthError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if tokens.admin.is_empty() || tokens.node_join.is_empty() {
                return Err(AuthError::Corrupt {
                    path,
                    reason: "a token is empty".into(),
                });
            }
            if !tokens.scheduler.is_empty() {
                return Ok(tokens);
            }
            let tokens = Tokens {
                scheduler: random_token(),
                ..tokens
            };
            tokens.write(&path)?;
            return Ok(tokens);
        }
        let tokens = Tokens {
            admin: random_token(),
            node_join: random_token(),
            scheduler: random_token(),
        };
        tokens.write(&path)?;
        Ok(tokens)
    }

    fn write(&self, path: &Path) -> Result<(), AuthError> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| AuthError::Encode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        write_atomic(path, &text, PRIVATE)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_once_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let first = Tokens::load_or_create(dir.path()).unwrap();
        assert_eq!(first.admin.len(), 64);
        assert_ne!(first.admin, first.node_join);
        let second = Tokens::load_or_create(dir.path()).unwrap();
        assert_eq!(first, second);
        let mode = std::fs::metadata(dir.path().join(TOKENS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn debug_redacts() {
        let t = Tokens {
            admin: "secret-a".into(),
            node_join: "secret-b".into(),
            scheduler: "secret-c".into(),
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn a_file_without_the_scheduler_token_gets_one_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(TOKENS_FILE),
            r#"{"admin": "a", "nodeJoin": "b"}"#,
        )
        .unwrap();
        let t = Tokens::load_or_create(dir.path()).unwrap();
        assert_eq!((t.admin.as_str(), t.node_join.as_str()), ("a", "b"));
        assert_eq!(t.scheduler.len(), 64);
        assert_eq!(Tokens::load_or_create(dir.path()).unwrap(), t);
    }

    #[test]
    fn corrupt_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TOKENS_FILE), "{").unwrap();
        let err = Tokens::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains(TOKENS_FILE), "{err}");
    }
}
