//! The skiff controller-manager: one module per controller, each a kube-runtime reconcile
//! loop that talks to the API server only through its HTTP API.

pub mod cidr_set;
pub mod claim;
pub mod cronjob;
pub mod csr_approver;
pub mod csr_request;
pub mod csr_signer;
pub mod daemon_eligibility;
pub mod daemon_plan;
pub mod daemonset;
pub mod deployment;
pub mod deployment_status;
pub mod disruption;
pub mod disruption_budget;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslice_mirroring;
pub mod error;
pub mod expectations;
pub mod garbage_collector;
pub mod hpa;
pub mod job;
pub mod metrics;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod pod_control;
pub mod rbac_aggregation;
pub mod replicaset;
pub mod revision_history;
pub mod rollout;
pub mod service_lb;
pub mod service_lb_pool;
pub mod serviceaccounts;
pub mod statefulset;
pub mod template_hash;
pub mod ttl_after_finished;
pub mod volume;

pub use metrics::metrics_text;
pub use skiff_client::{Shutdown, default_identity};

use std::collections::BTreeSet;
use std::future::Future;

use ipnet::IpNet;
use kube::Client;
use kube::api::PatchParams;
use skiff_client::{LeaderElectionConfig, LeaseElector};

/// The Lease the controller-manager elects its leader through (in `kube-system`).
pub const LEASE_NAME: &str = "skiff-controller-manager";

/// The field manager the controllers write with.
pub const FIELD_MANAGER: &str = "skiff-controller-manager";

/// Patch parameters carrying our field manager.
pub(crate) fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// One controller the manager can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ControllerKind {
    /// Pod CIDRs for Nodes.
    NodeIpam,
    /// Pods for ReplicaSets.
    ReplicaSet,
    /// Pods for ReplicationControllers (the ReplicaSet logic).
    ReplicationController,
    /// ReplicaSets for Deployments.
    Deployment,
    /// Pods for DaemonSets.
    DaemonSet,
    /// Pods and their claims for StatefulSets.
    StatefulSet,
    /// Deletion of dependents through ownerReferences.
    GarbageCollector,
    /// Auto-approval of kubelet serving CertificateSigningRequests.
    CsrApproving,
    /// Signing of approved kubelet serving CertificateSigningRequests with the cluster CA.
    CsrSigning,
    /// Status of PodDisruptionBudgets.
    Disruption,
    /// EndpointSlices for Services with a selector.
    EndpointSlice,
    /// Legacy core/v1 Endpoints for Services with a selector.
    Endpoint,
    /// EndpointSlices mirrored from the Endpoints of Services without a selector.
    EndpointSliceMirroring,
    /// Replicas of HorizontalPodAutoscaler targets.
    HorizontalPodAutoscaler,
    /// The service load balancer (`servicelb`).
    ServiceLb,
    /// Pods for Jobs.
    Job,
    /// Deletion of finished Jobs after ttlSecondsAfterFinished.
    TtlAfterFinished,
    /// Jobs for CronJobs.
    CronJob,
    /// Binding of PersistentVolumeClaims to PersistentVolumes, reclaim and protection.
    PersistentVolumeBinder,
    /// Node health from Leases, condition taints and taint-based eviction.
    NodeLifecycle,
    /// Rules of aggregated ClusterRoles (`admin`, `edit`, `view`).
    ClusterRoleAggregation,
    /// The `default` ServiceAccount of every namespace.
    ServiceAccount,
}

impl ControllerKind {
    /// Every controller, in start order.
    pub const ALL: [ControllerKind; 22] = [
        ControllerKind::NodeIpam,
        ControllerKind::ReplicaSet,
        ControllerKind::ReplicationController,
        ControllerKind::Deployment,
        ControllerKind::DaemonSet,
        ControllerKind::StatefulSet,
        ControllerKind::GarbageCollector,
        ControllerKind::CsrApproving,
        ControllerKind::CsrSigning,
        ControllerKind::Disruption,
        ControllerKind::EndpointSlice,
        ControllerKind::Endpoint,
        ControllerKind::EndpointSliceMirroring,
        ControllerKind::HorizontalPodAutoscaler,
        ControllerKind::ServiceLb,
        ControllerKind::Job,
        ControllerKind::TtlAfterFinished,
        ControllerKind::CronJob,
        ControllerKind::PersistentVolumeBinder,
        ControllerKind::NodeLifecycle,
        ControllerKind::ClusterRoleAggregation,
        ControllerKind::ServiceAccount,
    ];

    /// The name used on the command line (`--controllers=replicaset,...`).
    pub fn name(self) -> &'static str {
        match self {
            ControllerKind::NodeIpam => "nodeipam",
            ControllerKind::ReplicaSet => "replicaset",
            ControllerKind::ReplicationController => "replicationcontroller",
            ControllerKind::Deployment => "deployment",
            ControllerKind::DaemonSet => "daemonset",
            ControllerKind::StatefulSet => "statefulset",
            ControllerKind::GarbageCollector => "garbagecollector",
            ControllerKind::CsrApproving => "csrapproving",
            ControllerKind::CsrSigning => "csrsigning",
            ControllerKind::Disruption => "disruption",
            ControllerKind::EndpointSlice => "endpointslice",
            ControllerKind::Endpoint => "endpoint",
            ControllerKind::EndpointSliceMirroring => "endpointslicemirroring",
            ControllerKind::HorizontalPodAutoscaler => "horizontalpodautoscaling",
            ControllerKind::ServiceLb => "servicelb",
            ControllerKind::Job => "job",
            ControllerKind::TtlAfterFinished => "ttl-after-finished",
            ControllerKind::CronJob => "cronjob",
            ControllerKind::PersistentVolumeBinder => "persistentvolume-binder",
            ControllerKind::NodeLifecycle => "nodelifecycle",
            ControllerKind::ClusterRoleAggregation => "clusterrole-aggregation",
            ControllerKind::ServiceAccount => "serviceaccount",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<ControllerKind> {
        ControllerKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// How the controller-manager runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// The range node pod CIDRs are cut from (`--cluster-cidr`).
    pub cluster_cidr: IpNet,
    /// Prefix length of each node's range (`--node-cidr-mask-size`).
    pub node_cidr_mask: u8,
    /// Which controllers run.
    pub controllers: BTreeSet<ControllerKind>,
    /// Whether to hold the `kube-system/skiff-controller-manager` Lease before acting.
    pub leader_elect: bool,
    /// This manager's identity in the Lease (defaults to hostname and a random suffix).
    pub identity: String,
    /// The cluster CA the CSR signer issues with; without it the signer does not run.
    pub csr_signer: Option<csr_signer::SignerConfig>,
    /// Most endpoints in one EndpointSlice (`--max-endpoints-per-slice`, 1 to 1000).
    pub max_endpoints_per_slice: usize,
    /// The horizontal pod autoscaler's settings.
    pub hpa: hpa::HpaOptions,
    /// The service load balancer's pool (`--service-lb-pool`); empty uses the nodes' own
    /// addresses.
    pub service_lb_pool: service_lb::LbPool,
    /// The node lifecycle controller's grace period, monitor period and eviction rates.
    pub node_lifecycle: node_lifecycle::NodeLifecycleOptions,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            cluster_cidr: "10.244.0.0/16".parse().expect("valid default cidr"),
            node_cidr_mask: 24,
            controllers: ControllerKind::ALL.into_iter().collect(),
            leader_elect: true,
            identity: default_identity(),
            csr_signer: None,
            max_endpoints_per_slice: endpointslice::DEFAULT_MAX_ENDPOINTS_PER_SLICE,
            hpa: hpa::HpaOptions::default(),
            service_lb_pool: Default::default(),
            node_lifecycle: Default::default(),
        }
    }
}

/// Runs the enabled controllers until `shutdown` resolves. With leader election they run
/// only while this manager holds the Lease, start over when it is lost, and the Lease is
/// released on shutdown.
pub async fn run(
    client: Client,
    options: ControllerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = Shutdown::when(shutdown);
    if !options.leader_elect {
        return run_controllers(client, &options, stop).await;
    }
    let mut elector = LeaseElector::new(client.clone(), lease_config(&options));
    elector
        .lead(
            &stop,
            |_| {},
            |term| run_controllers(client.clone(), &options, term),
        )
        .await
}

/// kube-controller-manager's election settings (client-go's defaults) under this manager's
/// identity.
fn lease_config(options: &ControllerOptions) -> LeaderElectionConfig {
    LeaderElectionConfig {
        identity: options.identity.clone(),
        ..LeaderElectionConfig::new(LEASE_NAME)
    }
}

/// Starts every enabled controller and waits for all of them.
async fn run_controllers(
    client: Client,
    options: &ControllerOptions,
    stop: Shutdown,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for kind in &options.controllers {
        let (client, stop) = (client.clone(), stop.clone());
        match kind {
            ControllerKind::NodeIpam => {
                let (cidr, mask) = (options.cluster_cidr, options.node_cidr_mask);
                tasks.spawn(node_ipam::run(client, cidr, mask, stop));
            }
            ControllerKind::ReplicaSet => {
                tasks.spawn(replicaset::run(client, stop));
            }
            ControllerKind::ReplicationController => {
                tasks.spawn(replicaset::run_replication_controllers(client, stop));
            }
            ControllerKind::Deployment => {
                tasks.spawn(deployment::run(client, stop));
            }
            ControllerKind::DaemonSet => {
                tasks.spawn(daemonset::run(client, stop));
            }
            ControllerKind::StatefulSet => {
                tasks.spawn(statefulset::run(client, stop));
            }
            ControllerKind::GarbageCollector => {
                tasks.spawn(garbage_collector::run(client, stop));
            }
            ControllerKind::CsrApproving => {
                tasks.spawn(csr_approver::run(client, stop));
            }
            ControllerKind::Disruption => {
                tasks.spawn(disruption::run(client, stop));
            }
            ControllerKind::EndpointSlice => {
                let max = options.max_endpoints_per_slice;
                tasks.spawn(endpointslice::run(client, max, stop));
            }
            ControllerKind::Endpoint => {
                tasks.spawn(endpoints::run(client, stop));
            }
            ControllerKind::EndpointSliceMirroring => {
                tasks.spawn(endpointslice_mirroring::run(client, stop));
            }
            ControllerKind::HorizontalPodAutoscaler => {
                tasks.spawn(hpa::run(client, options.hpa.clone(), stop));
            }
            ControllerKind::ServiceLb => {
                let pool = options.service_lb_pool.clone();
                tasks.spawn(service_lb::run(client, pool, stop));
            }
            ControllerKind::Job => {
                tasks.spawn(job::run(client, stop));
            }
            ControllerKind::TtlAfterFinished => {
                tasks.spawn(ttl_after_finished::run(client, stop));
            }
            ControllerKind::CronJob => {
                tasks.spawn(cronjob::run(client, stop));
            }
            ControllerKind::PersistentVolumeBinder => {
                tasks.spawn(volume::run(client, stop));
            }
            ControllerKind::ClusterRoleAggregation => {
                tasks.spawn(rbac_aggregation::run(client, stop));
            }
            ControllerKind::ServiceAccount => {
                tasks.spawn(serviceaccounts::run(client, stop));
            }
            ControllerKind::NodeLifecycle => {
                let opts = options.node_lifecycle.clone();
                tasks.spawn(node_lifecycle::run(client, opts, stop));
            }
            ControllerKind::CsrSigning => match options.csr_signer.clone() {
                Some(cfg) => {
                    tasks.spawn(csr_signer::run(client, cfg, stop));
                }
                None => tracing::info!("no cluster CA given; the CSR signer is not running"),
            },
        }
    }
    while let Some(res) = tasks.join_next().await {
        res??;
    }
    Ok(())
}
