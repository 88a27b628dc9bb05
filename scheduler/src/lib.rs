//! The skiff scheduler: an informer-fed scheduling queue, filter and score plugins in
//! kube-scheduler's shape, an assume cache, binding through `pods/binding`, and leader
//! election through a Lease. It reaches the cluster only through the Kubernetes API.

pub mod binder;
pub mod cache;
pub mod framework;
pub mod metrics;
pub mod plugins;
pub mod podinfo;
pub mod queue;
pub mod resources;
mod scheduler;
pub mod volumes;

use std::future::Future;

use skiff_client::{LeaseElector, Shutdown};

pub use metrics::Metrics;
pub use skiff_client::LeaderElectionConfig;

/// The scheduler name pods get when they name none.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// The Lease the scheduler elects its leader through (in `kube-system`).
pub const LEASE_NAME: &str = "kube-scheduler";

/// How the scheduler runs.
#[derive(Clone)]
pub struct SchedulerOptions {
    /// Pods whose `spec.schedulerName` is one of these are ours.
    pub scheduler_names: Vec<String>,
    /// Leader election; `None` schedules without electing (a single scheduler).
    pub leader_election: Option<LeaderElectionConfig>,
    /// Metrics, shared with whoever renders them.
    pub metrics: Metrics,
    /// Bindings in flight at once.
    pub bind_concurrency: usize,
    /// Percentage of nodes to look at per pod; `None` for kube-scheduler's adaptive value.
    pub percentage_of_nodes_to_score: Option<u32>,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            scheduler_names: vec![DEFAULT_SCHEDULER_NAME.into()],
            leader_election: Some(LeaderElectionConfig::new(LEASE_NAME)),
            metrics: Metrics::new(),
            bind_concurrency: 32,
            percentage_of_nodes_to_score: None,
        }
    }
}

/// Runs the scheduler until `shutdown` completes. With leader election it schedules only
/// while holding the lease, starts over (fresh caches) when it loses it, and releases the
/// lease on shutdown.
pub async fn run(
    client: kube::Client,
    options: SchedulerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Some(le) = options.leader_election.clone() else {
        let identity = format!("{}-{}", DEFAULT_SCHEDULER_NAME, uuid::Uuid::new_v4());
        options.metrics.set_leader(true);
        return tokio::select! {
            r = scheduler::schedule(client, options, identity) => r,
            _ = shutdown => Ok(()),
        };
    };
    let stop = Shutdown::when(shutdown);
    let mut elector = LeaseElector::new(client.clone(), le.clone());
    let metrics = options.metrics.clone();
    elector
        .lead(
            &stop,
            |leading| metrics.set_leader(leading),
            |term| {
                let schedule =
                    scheduler::schedule(client.clone(), options.clone(), le.identity.clone());
                async move {
                    tokio::select! {
                        r = schedule => r,
                        _ = term.signalled() => Ok(()),
                    }
                }
            },
        )
        .await
}
