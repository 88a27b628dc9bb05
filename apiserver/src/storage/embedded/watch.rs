//! Watches of the embedded store: replay from the log, then follow the writer's broadcast,
//! with no gap and no duplicate across the switch-over.
//!
//! The writer publishes a batch's events and the new revision under one lock after the
//! commit, and a watcher subscribes and reads that revision under the same lock. So every
//! change up to the subscription revision is already in the log, and every later one arrives
//! on the broadcast. A watcher that falls behind the broadcast buffer (`Lagged`) subscribes
//! again and re-reads the missed range from the log; if that range has been compacted the
//! stream ends with `Compacted` rather than skipping events.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::reader::{self, ReadPool};
use crate::storage::{Revision, StoreError, WatchEvent, WatchStream};

/// Events of one committed batch, in revision order.
type Batch = Arc<[WatchEvent]>;

/// Events read from the log per query while catching up.
const REPLAY_PAGE: usize = 512;

/// The point where committed changes are handed from the writer to watchers.
pub(super) struct WatchHub {
    state: Mutex<HubState>,
}

struct HubState {
    /// The revision of the last published batch: everything up to it is committed.
    published: Revision,
    /// `None` once the writer has stopped.
    sender: Option<broadcast::Sender<Batch>>,
}

impl WatchHub {
    /// A hub starting at the store's current revision, buffering `capacity` batches.
    pub(super) fn new(published: Revision, capacity: usize) -> WatchHub {
        let (sender, _) = broadcast::channel(capacity.max(1));
        WatchHub {
            state: Mutex::new(HubState {
                published,
                sender: Some(sender),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that everything up to `rev` is committed and sends `events` to watchers.
    pub(super) fn publish(&self, rev: Revision, events: Vec<WatchEvent>) {
        let mut state = self.lock();
        state.published = rev;
        if let Some(sender) = &state.sender
            && !events.is_empty()
        {
            // No receivers is not an error: nobody is watching.
            let _ = sender.send(events.into());
        }
    }

    /// The latest committed and published revision.
    pub(super) fn published(&self) -> Revision {
        self.lock().published
    }

    /// A receiver of every batch after the returned revision; `None` once closed.
    fn subscribe(&self) -> Option<(broadcast::Receiver<Batch>, Revision)> {
        let state = self.lock();
        let sender = state.sender.as_ref()?;
        Some((sender.subscribe(), state.published))
    }

    /// Ends every watch (the writer has stopped).
    pub(super) fn close(&self) {
        self.lock().sender = None;
    }
}

/// Where a watch stream is.
enum Phase {
    /// Must subscribe, then catch up from the log.
    Subscribe,
    /// Reading the log up to `upto`, while `rx` buffers what comes after.
    CatchUp {
        rx: broadcast::Receiver<Batch>,
        upto: Revision,
    },
    /// Following the broadcast.
    Live { rx: broadcast::Receiver<Batch> },
    /// Finished.
    Done,
}

/// The state of one watch stream.
struct Watch {
    prefix: String,
    /// Every change up to this revision has been delivered or skipped as not matching.
    seen: Revision,
    pending: VecDeque<WatchEvent>,
    phase: Phase,
    hub: Arc<WatchHub>,
    pool: Arc<ReadPool>,
}

/// Starts a watch of `prefix` after revision `after` (`0`: from now on).
pub(super) fn watch(
    hub: Arc<WatchHub>,
    pool: Arc<ReadPool>,
    prefix: &str,
    after: Revision,
) -> Result<WatchStream, StoreError> {
    let (rx, published) = hub
        .subscribe()
        .ok_or_else(|| StoreError::Backend("embedded store is closed".into()))?;
    let (seen, phase) = if after <= 0 {
        (published, Phase::Live { rx })
    } else {
        (
            after,
            Phase::CatchUp {
                rx,
                upto: published,
            },
        )
    };
    let state = Watch {
        prefix: prefix.to_string(),
        seen,
        pending: VecDeque::new(),
        phase,
        hub,
        pool,
    };
    Ok(Box::pin(futures::stream::unfold(
        state,
        |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        },
    )))
}

impl Watch {
    async fn next(&mut self) -> Option<Result<WatchEvent, StoreError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::Subscribe => match self.hub.subscribe() {
                    Some((rx, upto)) => self.phase = Phase::CatchUp { rx, upto },
                    None => return None,
                },
                Phase::CatchUp { rx, upto } => {
                    if self.seen >= upto {
                        self.phase = Phase::Live { rx };
                        continue;
                    }
                    let (prefix, after) = (self.prefix.clone(), self.seen);
                    let page = self
                        .pool
                        .run(move |conn| reader::replay(conn, &prefix, after, upto, REPLAY_PAGE))
                        .await;
                    match page {
                        Ok(events) => {
                            // A short page means the whole range up to `upto` was read.
                            self.seen = match events.last() {
                                Some(last) if events.len() >= REPLAY_PAGE => last.revision(),
                                _ => upto,
                            };
                            self.pending.extend(events);
                            self.phase = Phase::CatchUp { rx, upto };
                        }
                        // The stream ends with the error (e.g. `Compacted`).
                        Err(e) => return Some(Err(e)),
                    }
                }
                Phase::Live { mut rx } => match rx.recv().await {
                    Ok(batch) => {
                        for event in batch.iter() {
                            if event.revision() > self.seen && event.key().starts_with(&self.prefix)
                            {
                                self.pending.push_back(event.clone());
                            }
                        }
                        if let Some(last) = batch.last() {
                            self.seen = self.seen.max(last.revision());
                        }
                        self.phase = Phase::Live { rx };
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(
                            prefix = %self.prefix,
                            missed,
                            seen = self.seen,
                            "watcher fell behind; re-reading from the log"
                        );
                        self.phase = Phase::Subscribe;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}
