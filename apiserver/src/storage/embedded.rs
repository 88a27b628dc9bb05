//! The embedded `Store`: SQLite in WAL mode with an etcd-like MVCC log, group commit on one
//! writer thread, reads on a connection pool, watches from the log plus a live broadcast,
//! and a background compactor.
//!
//! Durability: every acknowledged write is in a committed transaction with
//! `synchronous=FULL`, so it survives `kill -9` and power loss. Default history kept: the
//! last 10,000 revisions or the last 5 minutes, whichever reaches further back.

mod compactor;
mod reader;
mod sql;
mod watch;
mod writer;

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;

use self::compactor::Retention;
use self::reader::ReadPool;
use self::watch::WatchHub;
use self::writer::{Command, WriteOp, WriteOutcome, Writer};
use super::{KeyValue, ListOptions, ListResult, Revision, Store, StoreError, WatchStream};

/// Tuning of the embedded store; `Default` is what `EmbeddedStore::open` uses.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Keep at least this many recent revisions of history.
    pub retain_revisions: Revision,
    /// Keep at least this much recent history in time.
    pub retain_for: Duration,
    /// How often the background compactor looks.
    pub compact_every: Duration,
    /// Committed batches buffered for watchers before a slow one re-reads from the log.
    pub watch_buffer: usize,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            retain_revisions: 10_000,
            retain_for: Duration::from_secs(300),
            compact_every: Duration::from_secs(30),
            watch_buffer: 1024,
            max_batch: 1024,
        }
    }
}

/// The SQLite-backed store. Dropping it stops the compactor and the writer (after the queued
/// writes) and ends open watches.
pub struct EmbeddedStore {
    hub: Arc<WatchHub>,
    pool: Arc<ReadPool>,
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    stop_compactor: Option<mpsc::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("open {}: {e}", path.display()))
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database at `path` with the default options.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        EmbeddedStore::open_with(path, EmbeddedOptions::default())
    }

    /// Opens (creating if needed) the database file at `path`, or `store.sqlite` inside it
    /// when `path` is an existing directory.
    pub fn open_with(path: &Path, options: EmbeddedOptions) -> Result<EmbeddedStore, StoreError> {
        let file;
        let path = if path.is_dir() {
            file = path.join("store.sqlite");
            file.as_path()
        } else {
            path
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        let conn = sql::open_writer(path).map_err(|e| io_error(path, e))?;
        let current = sql::meta(&conn, sql::CURRENT_REV).map_err(|e| io_error(path, e))?;
        let hub = Arc::new(WatchHub::new(current, options.watch_buffer));
        let writer = Writer::new(conn, Arc::clone(&hub), options.max_batch)?;
        let (commands, queue) = mpsc::channel();
        let (stop_compactor, stop) = mpsc::channel();
        let retention = Retention {
            revisions: options.retain_revisions,
            duration: options.retain_for,
            every: options.compact_every,
        };
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| io_error(path, e))
        };
        let writer_thread = spawn("store-writer", Box::new(move || writer.run(queue)))?;
        let (compactor_commands, compactor_hub) = (commands.clone(), Arc::clone(&hub));
        let compactor_thread = spawn(
            "store-compactor",
            Box::new(move || compactor::run(compactor_commands, compactor_hub, retention, stop)),
        )?;
        Ok(EmbeddedStore {
            hub,
            pool: Arc::new(ReadPool::new(path.to_path_buf())),
            commands: Mutex::new(Some(commands)),
            stop_compactor: Some(stop_compactor),
            // The compactor first: it holds a command sender the writer waits on.
            threads: vec![compactor_thread, writer_thread],
        })
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        let commands = self.commands.lock().unwrap_or_else(|p| p.into_inner());
        commands
            .as_ref()
            .and_then(|c| c.send(command).ok())
            .ok_or_else(|| StoreError::Backend("embedded store is closed".into()))
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        let (ack, done) = oneshot::channel();
        self.send(Command::Write(op, ack))?;
        done.await
            .map_err(|_| StoreError::Backend("embedded store writer stopped".into()))?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.stop_compactor.take();
        self.commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The revision of a create or update.
fn written(outcome: WriteOutcome) -> Result<Revision, StoreError> {
    match outcome {
        WriteOutcome::Written(rev) => Ok(rev),
        WriteOutcome::Deleted(..) => Err(StoreError::Backend(
            "embedded store: write answered as a delete".into(),
        )),
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.to_string();
        self.pool
            .run(move |conn| sql::get(conn, &key).map_err(reader::backend))
            .await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        let prefix = prefix.to_string();
        self.pool
            .run(move |conn| reader::list(conn, &prefix, &opts))
            .await
    }

    async fn count(&self, prefix: &str) -> Result<usize, StoreError> {
        let (lo, hi) = (prefix.as_bytes().to_vec(), sql::prefix_end(prefix));
        self.pool
            .run(move |conn| sql::count(conn, &lo, &hi).map_err(reader::backend))
            .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let key = key.to_string();
        written(self.write(WriteOp::Create { key, value }).await?)
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let key = key.to_string();
        let op = WriteOp::Update {
            key,
            value,
            expected,
        };
        written(self.write(op).await?)
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError> {
        let key = key.to_string();
        match self.write(WriteOp::Delete { key, expected }).await? {
            WriteOutcome::Deleted(rev, prev) => Ok((rev, prev)),
            WriteOutcome::Written(_) => Err(StoreError::Backend(
                "embedded store: delete answered as a write".into(),
            )),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        watch::watch(Arc::clone(&self.hub), Arc::clone(&self.pool), prefix, after)
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.hub.published())
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        self.send(Command::Compact(revision, ack))?;
        done.await
            .map_err(|_| StoreError::Backend("embedded store writer stopped".into()))?
    }
}
