//! The background compactor of the embedded store: keeps history covering both the last
//! `retain_revisions` revisions and the last `retain_for`, whichever reaches further back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::watch::WatchHub;
use super::writer::Command;
use crate::storage::Revision;

/// How much history the compactor keeps.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retention {
    pub(super) revisions: Revision,
    pub(super) duration: Duration,
    pub(super) every: Duration,
}

/// The revision to compact to at `now`, given samples of `(time, revision)` (oldest first):
/// the revision seen `duration` ago, but no later than `current - revisions`.
fn target(
    samples: &mut VecDeque<(Instant, Revision)>,
    now: Instant,
    current: Revision,
    retention: &Retention,
) -> Option<Revision> {
    // Keep only the newest sample that is old enough, and everything after it.
    while samples.len() >= 2 && now.duration_since(samples[1].0) >= retention.duration {
        samples.pop_front();
    }
    let &(time, rev) = samples.front()?;
    if now.duration_since(time) < retention.duration {
        return None;
    }
    let target = rev.min(current - retention.revisions);
    (target > 0).then_some(target)
}

/// Runs until `stop` is dropped, asking the writer to compact on every tick.
pub(super) fn run(
    commands: mpsc::Sender<Command>,
    hub: Arc<WatchHub>,
    retention: Retention,
    stop: mpsc::Receiver<()>,
) {
    let mut samples = VecDeque::new();
    let mut compacted = 0;
    loop {
        match stop.recv_timeout(retention.every) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let now = Instant::now();
        let current = hub.published();
        samples.push_back((now, current));
        let Some(to) = target(&mut samples, now, current, &retention) else {
            continue;
        };
        if to <= compacted {
            continue;
        }
        let (ack, done) = oneshot::channel();
        if commands.send(Command::Compact(to, ack)).is_err() {
            return;
        }
        match done.blocking_recv() {
            Ok(Ok(())) => compacted = to,
            Ok(Err(e)) => tracing::warn!(error = %e, to, "embedded store: compaction failed"),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retention() -> Retention {
        Retention {
            revisions: 100,
            duration: Duration::from_secs(300),
            every: Duration::from_secs(30),
        }
    }

    #[test]
    fn keeps_everything_younger_than_the_duration() {
        let start = Instant::now();
        let mut samples = VecDeque::from([(start, 10)]);
        let now = start + Duration::from_secs(299);
        assert_eq!(target(&mut samples, now, 10_000, &retention()), None);
    }

    #[test]
    fn compacts_to_the_revision_seen_a_duration_ago() {
        let start = Instant::now();
        let mut samples = VecDeque::from([
            (start, 10),
            (start + Duration::from_secs(30), 500),
            (start + Duration::from_secs(60), 900),
        ]);
        let now = start + Duration::from_secs(340);
        assert_eq!(target(&mut samples, now, 10_000, &retention()), Some(500));
        assert_eq!(samples.len(), 2, "older samples are dropped");
    }

    #[test]
    fn keeps_at_least_the_revision_count() {
        let start = Instant::now();
        let mut samples = VecDeque::from([(start, 950)]);
        let now = start + Duration::from_secs(400);
        assert_eq!(target(&mut samples, now, 1_000, &retention()), Some(900));
    }
}
