//! The `Store` trait: the one seam between the API and persistence, with an embedded
//! (SQLite) backend and an etcd backend that pass one conformance suite.
//!
//! Revisions are one global, increasing integer. An object's `metadata.resourceVersion` is
//! the revision of its last write (`mod_revision`); the stored bytes never carry it.

pub mod conformance;
pub mod embedded;
pub mod etcd;
pub mod etcd_server;

#[cfg(test)]
mod embedded_tests;
#[cfg(test)]
mod etcd_tests;

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Stream;

/// A revision of the store: one global, increasing integer, starting at 1.
pub type Revision = i64;

/// One stored key and its value at some revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Full key, e.g. `/registry/apps/deployments/default/web`.
    pub key: String,
    /// The stored bytes (JSON of the object, without resourceVersion).
    pub value: Vec<u8>,
    /// Revision at which the key was created (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
}

/// Options of a prefix list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Read as of this revision; `None` reads the latest.
    pub revision: Option<Revision>,
    /// At most this many items; `None` for all.
    pub limit: Option<usize>,
    /// Start strictly after this key (the continue point of a paged list).
    pub start_after: Option<String>,
}

/// The answer of a prefix list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// Matching keys in ascending key order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at (the store's current revision when not given).
    pub revision: Revision,
    /// Whether more keys follow the last item (only when a limit cut the list).
    pub more: bool,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created or updated; `prev` is its value before, if it existed.
    Put {
        /// The new value, with its revisions.
        kv: KeyValue,
        /// The value before this write, if the key existed.
        prev: Option<KeyValue>,
    },
    /// A key was deleted at `revision`; `prev` is its last value.
    Delete {
        /// The last value of the key before deletion.
        prev: KeyValue,
        /// The revision of the deletion.
        revision: Revision,
    },
}

impl WatchEvent {
    /// The revision at which this change happened.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
        }
    }

    /// The key this change is about.
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put { kv, .. } => &kv.key,
            WatchEvent::Delete { prev, .. } => &prev.key,
        }
    }
}

/// A stream of changes in revision order. It ends with `Err(StoreError::Compacted)` when the
/// requested start revision is no longer in the history.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StoreError>> + Send>>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A create found the key already present.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// An update or delete found no such key.
    #[error("key {key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// A conditional update or delete found a different revision; `current` is what is stored.
    #[error("key {key} was modified (expected revision {expected}, found {})", current.mod_revision)]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// What is stored now.
        current: Box<KeyValue>,
    },
    /// The requested revision has been compacted away.
    #[error("revision {requested} has been compacted (oldest available {oldest})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        oldest: Revision,
    },
    /// The requested revision is newer than the store has.
    #[error("revision {requested} is in the future (current {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// The backend failed (I/O, connection, corruption).
    #[error("storage backend: {0}")]
    Backend(String),
}

/// Persistence for API objects. Every backend passes `conformance`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one key at the latest revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Lists keys under `prefix` in key order.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError>;

    /// Counts keys under `prefix` at the latest revision.
    async fn count(&self, prefix: &str) -> Result<usize, StoreError>;

    /// Creates `key`; fails with `AlreadyExists` if present. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError>;

    /// Replaces `key` if its `mod_revision` equals `expected`. Returns the new revision.
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<Revision, StoreError>;

    /// Deletes `key`, only if its `mod_revision` equals `expected` when given. Returns the
    /// revision of the deletion and the last value.
    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError>;

    /// Watches every key under `prefix` for changes after revision `after` (exclusive).
    /// `after = 0` means from now on.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;

    /// The latest revision.
    async fn current_revision(&self) -> Result<Revision, StoreError>;

    /// Forgets history older than `revision`; later reads or watches before it answer
    /// `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;
}

/// Which backend to open, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded SQLite store in one file.
    Embedded {
        /// The database file (created with its directory if absent); an existing directory
        /// holds it as `store.sqlite`.
        path: PathBuf,
    },
    /// An etcd v3 cluster.
    Etcd {
        /// Client URLs, e.g. `http://127.0.0.1:2379`.
        endpoints: Vec<String>,
    },
}

/// Opens the configured backend.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StoreConfig::Embedded { path } => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || embedded::EmbeddedStore::open(&path))
                .await
                .map_err(|e| StoreError::Backend(format!("open embedded store: {e}")))??;
            Ok(Arc::new(store))
        }
        StoreConfig::Etcd { endpoints } => Ok(Arc::new(etcd::EtcdStore::connect(endpoints).await?)),
    }
}
