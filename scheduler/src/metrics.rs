//! Prometheus metrics of the scheduler: pods scheduled, attempts by result, and scheduling
//! latency (attempt duration and time from queueing to a completed binding).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

/// How a scheduling attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// A node was chosen and the binding succeeded.
    Scheduled,
    /// No node fits.
    Unschedulable,
    /// Binding or another API call failed.
    Error,
}

impl AttemptResult {
    fn label(self) -> &'static str {
        match self {
            AttemptResult::Scheduled => "scheduled",
            AttemptResult::Unschedulable => "unschedulable",
            AttemptResult::Error => "error",
        }
    }
}

/// The scheduler's metrics. Cheap to clone; clones share the values.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    scheduled: Counter,
    attempts: Family<ResultLabels, Counter>,
    attempt_duration: Histogram,
    e2e_latency: Histogram,
    pending: Family<ResultLabels, Gauge>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics in their own registry.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("scheduler");
        let scheduled = Counter::default();
        let attempts = Family::<ResultLabels, Counter>::default();
        let attempt_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let e2e_latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let pending = Family::<ResultLabels, Gauge>::default();
        let leader = Gauge::default();
        registry.register("pods_scheduled", "Pods bound to a node", scheduled.clone());
        registry.register(
            "schedule_attempts",
            "Scheduling attempts by result",
            attempts.clone(),
        );
        registry.register(
            "scheduling_attempt_duration_seconds",
            "Time to filter and score one pod",
            attempt_duration.clone(),
        );
        registry.register(
            "pod_scheduling_duration_seconds",
            "Time from a pod entering the queue to its binding completing",
            e2e_latency.clone(),
        );
        registry.register("pending_pods", "Pods waiting, by queue", pending.clone());
        registry.register(
            "is_leader",
            "1 while this scheduler holds the lease",
            leader.clone(),
        );
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            scheduled,
            attempts,
            attempt_duration,
            e2e_latency,
            pending,
            leader,
        }
    }

    /// Counts one attempt and how long the algorithm took.
    pub fn attempt(&self, result: AttemptResult, took: Duration) {
        self.attempts
            .get_or_create(&ResultLabels {
                result: result.label().into(),
            })
            .inc();
        self.attempt_duration.observe(took.as_secs_f64());
    }

    /// Counts a completed binding and its queue-to-bound latency.
    pub fn scheduled(&self, latency: Duration) {
        self.scheduled.inc();
        self.e2e_latency.observe(latency.as_secs_f64());
    }

    /// Records queue lengths.
    pub fn queues(&self, active: usize, backoff: usize, unschedulable: usize) {
        for (q, n) in [
            ("active", active),
            ("backoff", backoff),
            ("unschedulable", unschedulable),
        ] {
            self.pending
                .get_or_create(&ResultLabels { result: q.into() })
                .set(n as i64);
        }
    }

    /// Records whether this instance leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Pods bound so far.
    pub fn pods_scheduled(&self) -> u64 {
        self.scheduled.get()
    }

    /// Attempts with the given result so far.
    pub fn attempts(&self, result: AttemptResult) -> u64 {
        self.attempts
            .get_or_create(&ResultLabels {
                result: result.label().into(),
            })
            .get()
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_result() {
        let m = Metrics::new();
        m.attempt(AttemptResult::Scheduled, Duration::from_millis(1));
        m.attempt(AttemptResult::Unschedulable, Duration::from_millis(1));
        m.scheduled(Duration::from_millis(20));
        let text = m.render();
        assert!(text.contains("scheduler_pods_scheduled_total 1"), "{text}");
        assert!(
            text.contains("scheduler_schedule_attempts_total{result=\"unschedulable\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("scheduler_pod_scheduling_duration_seconds_count 1"),
            "{text}"
        );
        assert_eq!(m.attempts(AttemptResult::Scheduled), 1);
        assert_eq!(m.pods_scheduled(), 1);
    }
}
