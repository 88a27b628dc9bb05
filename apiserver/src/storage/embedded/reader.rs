//! The read side of the embedded store: a pool of read-only SQLite connections used from
//! tokio's blocking pool, each read in one snapshot (WAL readers never wait for the writer).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::sql;
use crate::storage::{ListOptions, ListResult, Revision, StoreError, WatchEvent};

/// Idle connections kept for reuse; more may be open while many reads run at once.
const MAX_IDLE: usize = 8;

/// A pool of read connections to one database file.
pub(super) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

impl ReadPool {
    /// A pool for the database at `path` (connections open on demand).
    pub(super) fn new(path: PathBuf) -> ReadPool {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `read` on a pooled connection inside one read transaction, off the runtime.
    pub(super) async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let result = (|| {
                let tx = conn.unchecked_transaction().map_err(backend)?;
                let out = read(&tx);
                drop(tx);
                out
            })();
            pool.give(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => sql::open_reader(&self.path).map_err(backend),
        }
    }

    fn give(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// Checks that `at` is within `[compact_rev, current]`.
fn check_revision(conn: &Connection, at: Revision) -> Result<Revision, StoreError> {
    let current = sql::meta(conn, sql::CURRENT_REV).map_err(backend)?;
    let compacted = sql::meta(conn, sql::COMPACT_REV).map_err(backend)?;
    if at > current {
        return Err(StoreError::FutureRevision {
            requested: at,
            current,
        });
    }
    if at < compacted {
        return Err(StoreError::Compacted {
            requested: at,
            oldest: compacted,
        });
    }
    Ok(current)
}

/// A prefix list at the latest revision or, from the log, at an older one.
pub(super) fn list(
    conn: &Connection,
    prefix: &str,
    opts: &ListOptions,
) -> Result<ListResult, StoreError> {
    let lo = sql::range_start(prefix, opts.start_after.as_deref());
    let hi = sql::prefix_end(prefix);
    // A limit of 0 means none, as in etcd. One extra row tells whether more follow.
    let cut = opts.limit.filter(|n| *n > 0);
    let limit = cut.map_or(-1, |n| n as i64 + 1);
    let (revision, mut items) = match opts.revision.filter(|r| *r > 0) {
        Some(at) => {
            let current = check_revision(conn, at)?;
            let items = if at == current {
                sql::list_latest(conn, &lo, &hi, limit)
            } else {
                sql::list_at(conn, &lo, &hi, at, limit)
            };
            (at, items.map_err(backend)?)
        }
        None => {
            let current = sql::meta(conn, sql::CURRENT_REV).map_err(backend)?;
            let items = sql::list_latest(conn, &lo, &hi, limit).map_err(backend)?;
            (current, items)
        }
    };
    let more = match cut {
        Some(n) if items.len() > n => {
            items.truncate(n);
            true
        }
        _ => false,
    };
    Ok(ListResult {
        items,
        revision,
        more,
    })
}

/// Changes under `prefix` in `(after, upto]`, at most `limit`; `Compacted` if part of that
/// history is gone.
pub(super) fn replay(
    conn: &Connection,
    prefix: &str,
    after: Revision,
    upto: Revision,
    limit: usize,
) -> Result<Vec<WatchEvent>, StoreError> {
    let compacted = sql::meta(conn, sql::COMPACT_REV).map_err(backend)?;
    if after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            oldest: compacted,
        });
    }
    let lo = prefix.as_bytes();
    let hi = sql::prefix_end(prefix);
    sql::replay(conn, lo, &hi, after, upto, limit as i64).map_err(backend)
}
