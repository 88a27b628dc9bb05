//! The single writer thread of the embedded store: it takes queued writes from many tasks,
//! commits them in one transaction (group commit, one fsync), publishes their events and
//! then acknowledges each.

use std::sync::Arc;
use std::sync::mpsc;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::sql;
use super::watch::WatchHub;
use crate::storage::{KeyValue, Revision, StoreError, WatchEvent};

/// One conditional write.
pub(super) enum WriteOp {
    /// Create a key that must be absent.
    Create { key: String, value: Vec<u8> },
    /// Replace a key whose `mod_revision` is `expected`.
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    /// Delete a key, checking its `mod_revision` when `expected` is given.
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

/// What a successful write returns to its caller.
pub(super) enum WriteOutcome {
    /// The revision of a create or update.
    Written(Revision),
    /// The revision of a delete and the value it removed.
    Deleted(Revision, KeyValue),
}

/// A request to the writer thread.
pub(super) enum Command {
    /// A write, acknowledged once committed.
    Write(WriteOp, oneshot::Sender<Result<WriteOutcome, StoreError>>),
    /// Compact history before the revision.
    Compact(Revision, oneshot::Sender<Result<(), StoreError>>),
}

type Ack = oneshot::Sender<Result<WriteOutcome, StoreError>>;

/// The state owned by the writer thread.
pub(super) struct Writer {
    conn: Connection,
    rev: Revision,
    compact_rev: Revision,
    hub: Arc<WatchHub>,
    max_batch: usize,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

impl Writer {
    /// Takes the write connection; reads the counters it continues from.
    pub(super) fn new(
        conn: Connection,
        hub: Arc<WatchHub>,
        max_batch: usize,
    ) -> Result<Writer, StoreError> {
        let rev = sql::meta(&conn, sql::CURRENT_REV).map_err(backend)?;
        let compact_rev = sql::meta(&conn, sql::COMPACT_REV).map_err(backend)?;
        Ok(Writer {
            conn,
            rev,
            compact_rev,
            hub,
            max_batch: max_batch.max(1),
        })
    }

    /// Serves commands until every sender is gone, then closes the watch hub.
    pub(super) fn run(mut self, commands: mpsc::Receiver<Command>) {
        while let Ok(first) = commands.recv() {
            let mut writes = Vec::new();
            let mut compactions = Vec::new();
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Write(op, ack) => writes.push((op, ack)),
                    Command::Compact(rev, ack) => compactions.push((rev, ack)),
                }
                if writes.len() < self.max_batch {
                    next = commands.try_recv().ok();
                }
            }
            if !writes.is_empty() {
                self.commit_writes(writes);
            }
            for (rev, ack) in compactions {
                let _ = ack.send(self.compact(rev));
            }
        }
        self.hub.close();
    }

    /// Applies a batch in one transaction; on commit publishes the events and acks each.
    fn commit_writes(&mut self, writes: Vec<(WriteOp, Ack)>) {
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut rev = self.rev;
            let mut answers = Vec::with_capacity(writes.len());
            let mut events = Vec::new();
            for (op, _) in &writes {
                match apply(&tx, op, rev + 1)? {
                    Ok((outcome, event)) => {
                        rev += 1;
                        events.push(event);
                        answers.push(Ok(outcome));
                    }
                    Err(refused) => answers.push(Err(refused)),
                }
            }
            if rev != self.rev {
                sql::set_meta(&tx, sql::CURRENT_REV, rev)?;
            }
            tx.commit()?;
            Ok::<_, rusqlite::Error>((rev, answers, events))
        })();
        match result {
            Ok((rev, answers, events)) => {
                self.rev = rev;
                self.hub.publish(rev, events);
                for ((_, ack), answer) in writes.into_iter().zip(answers) {
                    let _ = ack.send(answer);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded store: write batch failed");
                let message = format!("sqlite: {e}");
                for (_, ack) in writes {
                    let _ = ack.send(Err(StoreError::Backend(message.clone())));
                }
            }
        }
    }

    /// Forgets history before `to`: idempotent for points already compacted.
    fn compact(&mut self, to: Revision) -> Result<(), StoreError> {
        if to > self.rev {
            return Err(StoreError::FutureRevision {
                requested: to,
                current: self.rev,
            });
        }
        if to <= self.compact_rev {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        sql::compact(&tx, self.compact_rev, to).map_err(backend)?;
        sql::set_meta(&tx, sql::COMPACT_REV, to).map_err(backend)?;
        tx.commit().map_err(backend)?;
        tracing::debug!(from = self.compact_rev, to, "embedded store compacted");
        self.compact_rev = to;
        Ok(())
    }
}

/// Applies one write at revision `rev` inside the batch transaction. The outer error aborts
/// the batch; the inner one refuses only this write.
#[allow(clippy::type_complexity)]
fn apply(
    conn: &Connection,
    op: &WriteOp,
    rev: Revision,
) -> rusqlite::Result<Result<(WriteOutcome, WatchEvent), StoreError>> {
    match op {
        WriteOp::Create { key, value } => {
            if sql::get(conn, key)?.is_some() {
                return Ok(Err(StoreError::AlreadyExists { key: key.clone() }));
            }
            sql::insert_log(conn, rev, key, rev, 0, Some(value))?;
            sql::set_current(conn, key, rev)?;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: rev,
                mod_revision: rev,
            };
            Ok(Ok((
                WriteOutcome::Written(rev),
                WatchEvent::Put { kv, prev: None },
            )))
        }
        WriteOp::Update {
            key,
            value,
            expected,
        } => {
            let current = match checked(conn, key, Some(*expected))? {
                Ok(current) => current,
                Err(refused) => return Ok(Err(refused)),
            };
            sql::insert_log(
                conn,
                rev,
                key,
                current.create_revision,
                current.mod_revision,
                Some(value),
            )?;
            sql::set_current(conn, key, rev)?;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: current.create_revision,
                mod_revision: rev,
            };
            Ok(Ok((
                WriteOutcome::Written(rev),
                WatchEvent::Put {
                    kv,
                    prev: Some(current),
                },
            )))
        }
        WriteOp::Delete { key, expected } => {
            let current = match checked(conn, key, *expected)? {
                Ok(current) => current,
                Err(refused) => return Ok(Err(refused)),
            };
            sql::insert_log(
                conn,
                rev,
                key,
                current.create_revision,
                current.mod_revision,
                None,
            )?;
            sql::delete_current(conn, key)?;
            Ok(Ok((
                WriteOutcome::Deleted(rev, current.clone()),
                WatchEvent::Delete {
                    prev: current,
                    revision: rev,
                },
            )))
        }
    }
}

/// The live value of `key`, if present and at the `expected` revision (when given).
fn checked(
    conn: &Connection,
    key: &str,
    expected: Option<Revision>,
) -> rusqlite::Result<Result<KeyValue, StoreError>> {
    let Some(current) = sql::get(conn, key)? else {
        return Ok(Err(StoreError::NotFound {
            key: key.to_string(),
        }));
    };
    match expected {
        Some(expected) if expected != current.mod_revision => Ok(Err(StoreError::Conflict {
            key: key.to_string(),
            expected,
            current: Box::new(current),
        })),
        _ => Ok(Ok(current)),
    }
}
