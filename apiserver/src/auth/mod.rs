//! Authentication and the cluster's credentials: CA and serving certificates, tokens,
//! kubeconfig files.

pub mod authn;
mod files;
pub mod kubeconfig;
pub mod pki;
pub mod service_account;
pub mod tls;
pub mod tokens;

use std::path::PathBuf;

pub use authn::{Authenticator, UserInfo};
pub use kubeconfig::{KubeconfigUser, write_kubeconfig};
pub use pki::Pki;
pub use tls::server_config;
pub use tokens::Tokens;

/// A failure reading, writing or producing credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A credential file could not be read, written or renamed into place.
    #[error("credential file {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A stored credential file exists but cannot be used.
    #[error("credential file {path} is unusable: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Generating or signing a key or certificate failed.
    #[error("cannot {what}: {source}")]
    Certificate {
        /// What was being produced, e.g. `sign the server certificate`.
        what: String,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
    /// A client certificate request cannot be expressed (too many groups, bad name).
    #[error("invalid certificate request: {0}")]
    InvalidRequest(String),
    /// Building the TLS configuration failed.
    #[error("cannot build the TLS configuration: {0}")]
    Tls(String),
    /// Encoding a kubeconfig or token file failed.
    #[error("cannot encode {path}: {reason}")]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

impl AuthError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuthError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn cert(what: impl Into<String>, source: rcgen::Error) -> Self {
        AuthError::Certificate {
            what: what.into(),
            source,
        }
    }
}
