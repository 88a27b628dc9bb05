//! The SQLite schema of the embedded store and every query it runs, shared by the writer
//! thread and the read pool.
//!
//! Layout (the MVCC model of etcd and kine):
//! - `log`: one row per write, keyed by its revision. A delete is a tombstone row
//!   (`deleted = 1`, empty value). `prev_rev` points at the row this write replaced (0 for a
//!   create), which gives watches their `prev` values and makes compaction incremental.
//! - `current`: key → revision of its live row, so reads at the latest revision touch only
//!   live keys.
//! - `meta`: `current_rev` (the global counter) and `compact_rev` (history before it is gone).
//!
//! Keys are stored as BLOBs so ranges compare bytes; UTF-8 never contains `0xFF`, which
//! serves as the upper bound of the empty prefix.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::storage::{KeyValue, Revision, WatchEvent};

/// Creates the tables if absent.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_rev ON log(key, rev);
CREATE TABLE IF NOT EXISTS current (
    key BLOB PRIMARY KEY,
    rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(name, value) VALUES ('current_rev', 0), ('compact_rev', 0);
";

/// Name of the global revision counter in `meta`.
pub(super) const CURRENT_REV: &str = "current_rev";
/// Name of the compaction point in `meta`.
pub(super) const COMPACT_REV: &str = "compact_rev";

/// Opens the write connection: WAL with `synchronous=FULL` so a commit is on disk when it
/// returns, and the schema in place.
pub(super) fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidQuery);
    }
    conn.execute_batch("PRAGMA synchronous=FULL;")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Opens a read-only connection for the read pool.
pub(super) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA query_only=ON;")?;
    Ok(conn)
}

/// The smallest key strictly above every key starting with `prefix`.
pub(super) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    match end.last_mut() {
        // UTF-8 never holds 0xFF, so the last byte can always be raised.
        Some(last) => *last += 1,
        None => end.push(0xFF),
    }
    end
}

/// The lower bound of a list under `prefix` that starts strictly after `start_after`.
pub(super) fn range_start(prefix: &str, start_after: Option<&str>) -> Vec<u8> {
    match start_after {
        Some(after) if after.as_bytes() >= prefix.as_bytes() => {
            let mut lo = after.as_bytes().to_vec();
            lo.push(0);
            lo
        }
        _ => prefix.as_bytes().to_vec(),
    }
}

/// Reads a `meta` counter.
pub(super) fn meta(conn: &Connection, name: &str) -> rusqlite::Result<Revision> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
}

/// Writes a `meta` counter.
pub(super) fn set_meta(conn: &Connection, name: &str, value: Revision) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE meta SET value = ?2 WHERE name = ?1")?
        .execute(params![name, value])?;
    Ok(())
}

fn key_text(row: &Row<'_>, idx: usize) -> rusqlite::Result<String> {
    let bytes: Vec<u8> = row.get(idx)?;
    String::from_utf8(bytes)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Blob, Box::new(e)))
}

/// Maps `key, value, create_rev, rev` columns to a `KeyValue`.
fn key_value(row: &Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: key_text(row, 0)?,
        value: row.get(1)?,
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
    })
}

/// The live value of `key`.
pub(super) fn get(conn: &Connection, key: &str) -> rusqlite::Result<Option<KeyValue>> {
    conn.prepare_cached(
        "SELECT l.key, l.value, l.create_rev, l.rev
         FROM current c JOIN log l ON l.rev = c.rev WHERE c.key = ?1",
    )?
    .query_row([key.as_bytes()], key_value)
    .optional()
}

/// Live keys in `[lo, hi)`, at most `limit` (`-1` for all).
pub(super) fn list_latest(
    conn: &Connection,
    lo: &[u8],
    hi: &[u8],
    limit: i64,
) -> rusqlite::Result<Vec<KeyValue>> {
    let mut stmt = conn.prepare_cached(
        "SELECT l.key, l.value, l.create_rev, l.rev
         FROM current c JOIN log l ON l.rev = c.rev
         WHERE c.key >= ?1 AND c.key < ?2 ORDER BY c.key LIMIT ?3",
    )?;
    stmt.query_map(params![lo, hi, limit], key_value)?.collect()
}

/// Keys in `[lo, hi)` as they were at revision `at`, from the log.
pub(super) fn list_at(
    conn: &Connection,
    lo: &[u8],
    hi: &[u8],
    at: Revision,
    limit: i64,
) -> rusqlite::Result<Vec<KeyValue>> {
    let mut stmt = conn.prepare_cached(
        "SELECT l.key, l.value, l.create_rev, l.rev FROM log l
         WHERE l.key >= ?1 AND l.key < ?2 AND l.rev <= ?3 AND l.deleted = 0
           AND NOT EXISTS (SELECT 1 FROM log n
                           WHERE n.key = l.key AND n.rev > l.rev AND n.rev <= ?3)
         ORDER BY l.key LIMIT ?4",
    )?;
    stmt.query_map(params![lo, hi, at, limit], key_value)?
        .collect()
}

/// Number of live keys in `[lo, hi)`.
pub(super) fn count(conn: &Connection, lo: &[u8], hi: &[u8]) -> rusqlite::Result<usize> {
    conn.prepare_cached("SELECT COUNT(*) FROM current WHERE key >= ?1 AND key < ?2")?
        .query_row(params![lo, hi], |r| r.get::<_, i64>(0))
        .map(|n| n as usize)
}

/// Appends one row to the log.
pub(super) fn insert_log(
    conn: &Connection,
    rev: Revision,
    key: &str,
    create_rev: Revision,
    prev_rev: Revision,
    value: Option<&[u8]>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO log(rev, key, create_rev, prev_rev, deleted, value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        rev,
        key.as_bytes(),
        create_rev,
        prev_rev,
        value.is_none(),
        value.unwrap_or_default()
    ])?;
    Ok(())
}

/// Points `current` for `key` at `rev`.
pub(super) fn set_current(conn: &Connection, key: &str, rev: Revision) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO current(key, rev) VALUES (?1, ?2)")?
        .execute(params![key.as_bytes(), rev])?;
    Ok(())
}

/// Removes `key` from `current`.
pub(super) fn delete_current(conn: &Connection, key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM current WHERE key = ?1")?
        .execute([key.as_bytes()])?;
    Ok(())
}

/// Drops the history superseded by writes in `(from, to]`: every row such a write replaced,
/// and the tombstones themselves. What remains at or below `to` is exactly the state at `to`.
pub(super) fn compact(conn: &Connection, from: Revision, to: Revision) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM log WHERE rev IN
           (SELECT prev_rev FROM log WHERE rev > ?1 AND rev <= ?2 AND prev_rev > 0)",
    )?
    .execute(params![from, to])?;
    conn.prepare_cached("DELETE FROM log WHERE rev > ?1 AND rev <= ?2 AND deleted = 1")?
        .execute(params![from, to])?;
    Ok(())
}

/// One raw log row with the row it replaced, as read for a watch replay.
struct ReplayRow {
    rev: Revision,
    key: String,
    create_rev: Revision,
    deleted: bool,
    value: Vec<u8>,
    prev: Option<(Revision, Revision, Vec<u8>)>,
}

/// Changes to keys in `[lo, hi)` with revisions in `(after, upto]`, oldest first, at most
/// `limit`.
pub(super) fn replay(
    conn: &Connection,
    lo: &[u8],
    hi: &[u8],
    after: Revision,
    upto: Revision,
    limit: i64,
) -> rusqlite::Result<Vec<WatchEvent>> {
    // The unary `+` keeps SQLite on the revision (rowid) range instead of the key index,
    // which would scan all history of a broad prefix.
    let mut stmt = conn.prepare_cached(
        "SELECT l.rev, l.key, l.create_rev, l.deleted, l.value, p.rev, p.create_rev, p.value
         FROM log l LEFT JOIN log p ON p.rev = l.prev_rev
         WHERE l.rev > ?1 AND l.rev <= ?2 AND +l.key >= ?3 AND +l.key < ?4
         ORDER BY l.rev LIMIT ?5",
    )?;
    let rows = stmt.query_map(params![after, upto, lo, hi, limit], |row| {
        let prev_rev: Option<Revision> = row.get(5)?;
        let prev = match prev_rev {
            Some(rev) => Some((rev, row.get(6)?, row.get(7)?)),
            None => None,
        };
        Ok(ReplayRow {
            rev: row.get(0)?,
            key: key_text(row, 1)?,
            create_rev: row.get(2)?,
            deleted: row.get(3)?,
            value: row.get(4)?,
            prev,
        })
    })?;
    let mut events = Vec::new();
    for row in rows {
        let row = row?;
        let prev = row
            .prev
            .map(|(mod_revision, create_revision, value)| KeyValue {
                key: row.key.clone(),
                value,
                create_revision,
                mod_revision,
            });
        events.push(if row.deleted {
            // A tombstone always points at the value it removed; compaction keeps that row
            // as long as the tombstone is in the history.
            let prev = prev.ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    5,
                    Type::Null,
                    "tombstone without prev".into(),
                )
            })?;
            WatchEvent::Delete {
                prev,
                revision: row.rev,
            }
        } else {
            WatchEvent::Put {
                kv: KeyValue {
                    key: row.key,
                    value: row.value,
                    create_revision: row.create_rev,
                    mod_revision: row.rev,
                },
                prev,
            }
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_is_durable_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open_writer(&dir.path().join("d.db")).expect("open");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal_mode");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("synchronous");
        assert_eq!(
            (mode.as_str(), sync),
            ("wal", 2),
            "WAL with synchronous=FULL"
        );
    }

    #[test]
    fn prefix_bounds_cover_exactly_the_prefix() {
        let hi = prefix_end("/a/");
        assert_eq!(hi, b"/a0".to_vec());
        assert!(b"/a/zzz".as_slice() < hi.as_slice());
        assert!(b"/ab/".as_slice() >= hi.as_slice());
        assert_eq!(prefix_end(""), vec![0xFF]);
        assert_eq!(range_start("/a/", Some("/a/x")), b"/a/x\0".to_vec());
        assert_eq!(range_start("/a/", Some("/0")), b"/a/".to_vec());
        assert_eq!(range_start("/a/", None), b"/a/".to_vec());
    }
}
