//! The scheduling queue: an active heap (priority, then arrival), a back-off set (1 s doubling
//! to 10 s per failed attempt) and an unschedulable set parked until the cluster changes.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// First back-off after a failed attempt.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// An unschedulable pod is retried after this long even if nothing changed.
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

#[derive(Debug, PartialEq, Eq)]
struct Active {
    priority: i32,
    seq: u64,
    key: String,
}

impl Ord for Active {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| Reverse(self.seq).cmp(&Reverse(other.seq)))
    }
}

impl PartialOrd for Active {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where a queued pod waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Ready to be scheduled.
    Active,
    /// Waiting out its back-off.
    Backoff,
    /// Parked until the cluster changes.
    Unschedulable,
}

#[derive(Debug)]
struct Entry {
    priority: i32,
    attempts: u32,
    place: Place,
    /// Back-off end (Backoff) or parking time (Unschedulable).
    since: Instant,
    /// The heap entry that is current (stale heap entries are skipped).
    seq: u64,
}

/// Pods waiting to be scheduled, by `namespace/name`.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    heap: BinaryHeap<Active>,
    entries: HashMap<String, Entry>,
    /// Keys popped and not yet returned (being scheduled or bound).
    in_flight: HashMap<String, (i32, u32)>,
    seq: u64,
}

/// How long a pod that failed `attempts` times waits.
pub fn backoff_for(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * 2u32.pow(shift)).min(MAX_BACKOFF)
}

impl SchedulingQueue {
    /// An empty queue.
    pub fn new() -> SchedulingQueue {
        SchedulingQueue::default()
    }

    fn push_active(&mut self, key: &str, priority: i32, attempts: u32) {
        self.seq += 1;
        self.heap.push(Active {
            priority,
            seq: self.seq,
            key: key.to_string(),
        });
        self.entries.insert(
            key.to_string(),
            Entry {
                priority,
                attempts,
                place: Place::Active,
                since: Instant::now(),
                seq: self.seq,
            },
        );
    }

    /// Adds a new pending pod, or refreshes one already queued; a parked pod whose spec
    /// changed (`changed`) goes back to active. Pods in flight are left alone.
    pub fn add(&mut self, key: &str, priority: i32, changed: bool) {
        if self.in_flight.contains_key(key) {
            return;
        }
        match self.entries.get(key).map(|e| (e.place, e.attempts)) {
            None => self.push_active(key, priority, 0),
            Some((Place::Unschedulable, attempts)) if changed => {
                self.push_active(key, priority, attempts)
            }
            Some(_) => {}
        }
    }

    /// Takes the next pod to schedule.
    pub fn pop(&mut self) -> Option<String> {
        while let Some(a) = self.heap.pop() {
            let current = self
                .entries
                .get(&a.key)
                .is_some_and(|e| e.place == Place::Active && e.seq == a.seq);
            if current {
                let e = self.entries.remove(&a.key).expect("entry checked above");
                self.in_flight
                    .insert(a.key.clone(), (e.priority, e.attempts));
                return Some(a.key);
            }
        }
        None
    }

    /// Whether the pod is popped and not yet settled.
    pub fn is_in_flight(&self, key: &str) -> bool {
        self.in_flight.contains_key(key)
    }

    /// Whether the pod is queued anywhere or in flight.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key) || self.in_flight.contains_key(key)
    }

    /// The popped pod fits nowhere: park it until the cluster changes.
    pub fn unschedulable(&mut self, key: &str, now: Instant) {
        if let Some((priority, attempts)) = self.in_flight.remove(key) {
            self.entries.insert(
                key.to_string(),
                Entry {
                    priority,
                    attempts: attempts + 1,
                    place: Place::Unschedulable,
                    since: now,
                    seq: 0,
                },
            );
        }
    }

    /// The popped pod hit an error (binding failed): retry after its back-off.
    pub fn backoff(&mut self, key: &str, now: Instant) {
        if let Some((priority, attempts)) = self.in_flight.remove(key) {
            let attempts = attempts + 1;
            self.entries.insert(
                key.to_string(),
                Entry {
                    priority,
                    attempts,
                    place: Place::Backoff,
                    since: now + backoff_for(attempts),
                    seq: 0,
                },
            );
        }
    }

    /// The pod is settled (bound, deleted, or no longer ours): forget it.
    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
        self.in_flight.remove(key);
    }

    /// The cluster changed: parked pods go to back-off (or straight to active when their
    /// back-off, counted from when they were parked, is over).
    pub fn move_all_unschedulable(&mut self, now: Instant) {
        let parked: Vec<(String, Instant, u32)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.place == Place::Unschedulable)
            .map(|(k, e)| (k.clone(), e.since, e.attempts))
            .collect();
        for (key, since, attempts) in parked {
            let until = since + backoff_for(attempts);
            if until <= now {
                let priority = self.entries[&key].priority;
                self.push_active(&key, priority, attempts);
            } else if let Some(e) = self.entries.get_mut(&key) {
                e.place = Place::Backoff;
                e.since = until;
            }
        }
    }

    /// Moves pods whose back-off ended, and pods parked too long, to active.
    pub fn flush(&mut self, now: Instant) {
        let due: Vec<(String, i32, u32)> = self
            .entries
            .iter()
            .filter(|(_, e)| match e.place {
                Place::Backoff => e.since <= now,
                Place::Unschedulable => now.duration_since(e.since) >= MAX_UNSCHEDULABLE,
                Place::Active => false,
            })
            .map(|(k, e)| (k.clone(), e.priority, e.attempts))
            .collect();
        for (key, priority, attempts) in due {
            self.push_active(&key, priority, attempts);
        }
    }

    /// When the next back-off ends, if any pod is backing off.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| match e.place {
                Place::Backoff => Some(e.since),
                Place::Unschedulable => Some(e.since + MAX_UNSCHEDULABLE),
                Place::Active => None,
            })
            .min()
    }

    /// Where a pod waits, if queued.
    pub fn place(&self, key: &str) -> Option<Place> {
        self.entries.get(key).map(|e| e.place)
    }

    /// Pods waiting in each place: (active, backoff, unschedulable).
    pub fn lengths(&self) -> (usize, usize, usize) {
        let mut out = (0, 0, 0);
        for e in self.entries.values() {
            match e.place {
                Place::Active => out.0 += 1,
                Place::Backoff => out.1 += 1,
                Place::Unschedulable => out.2 += 1,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_priority_first_then_fifo() {
        let mut q = SchedulingQueue::new();
        q.add("a", 0, false);
        q.add("b", 10, false);
        q.add("c", 0, false);
        assert_eq!(q.pop().as_deref(), Some("b"));
        assert_eq!(q.pop().as_deref(), Some("a"));
        assert_eq!(q.pop().as_deref(), Some("c"));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        assert_eq!(backoff_for(1), Duration::from_secs(1));
        assert_eq!(backoff_for(2), Duration::from_secs(2));
        assert_eq!(backoff_for(4), Duration::from_secs(8));
        assert_eq!(backoff_for(5), Duration::from_secs(10));
        assert_eq!(backoff_for(30), Duration::from_secs(10));
    }

    #[test]
    fn failed_pod_waits_out_its_backoff() {
        let mut q = SchedulingQueue::new();
        let t0 = Instant::now();
        q.add("a", 0, false);
        q.pop();
        q.backoff("a", t0);
        assert_eq!(q.place("a"), Some(Place::Backoff));
        q.flush(t0 + Duration::from_millis(500));
        assert_eq!(q.pop(), None);
        q.flush(t0 + Duration::from_secs(1));
        assert_eq!(q.pop().as_deref(), Some("a"));
        q.backoff("a", t0);
        assert_eq!(q.next_wakeup(), Some(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn unschedulable_pods_move_on_cluster_change_and_spec_updates() {
        let mut q = SchedulingQueue::new();
        let t0 = Instant::now();
        q.add("a", 0, false);
        q.pop();
        q.unschedulable("a", t0);
        q.add("a", 0, false);
        assert_eq!(
            q.place("a"),
            Some(Place::Unschedulable),
            "status-only updates do not wake it"
        );
        q.flush(t0 + Duration::from_secs(60));
        assert_eq!(q.place("a"), Some(Place::Unschedulable));
        // A node arrives while still inside the back-off: to back-off.
        q.move_all_unschedulable(t0 + Duration::from_millis(100));
        assert_eq!(q.place("a"), Some(Place::Backoff));
        q.flush(t0 + Duration::from_secs(1));
        assert_eq!(q.pop().as_deref(), Some("a"));
        q.unschedulable("a", t0);
        // Past the back-off: straight to active.
        q.move_all_unschedulable(t0 + Duration::from_secs(5));
        assert_eq!(q.place("a"), Some(Place::Active));
        assert_eq!(q.pop().as_deref(), Some("a"));
        q.unschedulable("a", t0);
        q.add("a", 0, true);
        assert_eq!(
            q.place("a"),
            Some(Place::Active),
            "a spec change retries at once"
        );
    }

    #[test]
    fn in_flight_and_removed_pods_are_not_requeued() {
        let mut q = SchedulingQueue::new();
        q.add("a", 0, false);
        assert_eq!(q.pop().as_deref(), Some("a"));
        q.add("a", 0, true);
        assert_eq!(q.pop(), None);
        assert!(q.is_in_flight("a"));
        q.remove("a");
        assert!(!q.contains("a"));
        q.add("b", 0, false);
        q.remove("b");
        assert_eq!(q.pop(), None);
        assert_eq!(q.lengths(), (0, 0, 0));
    }

    #[test]
    fn long_parked_pods_are_retried() {
        let mut q = SchedulingQueue::new();
        let t0 = Instant::now();
        q.add("a", 0, false);
        q.pop();
        q.unschedulable("a", t0);
        q.flush(t0 + MAX_UNSCHEDULABLE);
        assert_eq!(q.pop().as_deref(), Some("a"));
    }
}
