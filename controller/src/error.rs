//! The error every reconciler returns, with the object it concerned.

use skiff_api::labels::SelectorError;

/// What went wrong while reconciling one object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("api call failed for {object}: {source}")]
    Api {
        /// `namespace/name` (or `name`) of the object being reconciled.
        object: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The object's label selector cannot be parsed.
    #[error("invalid selector on {object}: {source}")]
    Selector {
        /// The object carrying the selector.
        object: String,
        /// Why it did not parse.
        #[source]
        source: SelectorError,
    },
    /// The cluster CIDR has no free range left for a node.
    #[error("no pod CIDR left in {cluster_cidr} for node {node}")]
    CidrExhausted {
        /// The cluster range.
        cluster_cidr: String,
        /// The node that asked.
        node: String,
    },
    /// The object lacks a field the controller needs (name, namespace, uid).
    #[error("object {object} is missing {field}")]
    Missing {
        /// The object.
        object: String,
        /// The absent field.
        field: &'static str,
    },
}

impl Error {
    /// Wraps a client error with the object it concerned.
    pub fn api(object: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let object = object.into();
        move |source| Error::Api { object, source }
    }

    /// Whether the error is the API server saying the object was not found.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api { source: kube::Error::Api(s), .. } if s.code == 404)
    }
}

/// Whether a client error is a 404.
pub fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether a client error is a 409 (conflict or already exists).
pub fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Result of one reconcile.
pub type Result<T, E = Error> = std::result::Result<T, E>;
