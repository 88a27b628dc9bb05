//! What every skiff component that talks to the API server shares, written once on top of
//! kube: Lease-based leader election with client-go's rule, an event recorder, watched
//! stores whose readiness wakes every waiter, a shutdown signal, and the wiring of a
//! kube-runtime controller.

pub mod controller;
pub mod events;
pub mod leader;
pub mod shutdown;
pub mod store;

pub use events::{EventRecorder, EventType, Reporter};
pub use leader::{LeaderElectionConfig, LeaseElector};
pub use shutdown::Shutdown;
pub use store::{ReadyGate, StoreGone, watched_store};

/// `<hostname>_<uuid>`: the identity kube-controller-manager and kube-scheduler use as a
/// Lease holder, unique per process.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!(
        "{}_{}",
        if host.is_empty() { "skiff" } else { &host },
        uuid::Uuid::new_v4()
    )
}
