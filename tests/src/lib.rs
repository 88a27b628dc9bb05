//! End-to-end test harness: starts real `skiff server` processes (embedded store or a real
//! etcd on loopback), hollow and real nodes, and runs the `skiff` CLI, the real `kubectl`
//! and the Python client against them as a user would. Every process started here is
//! stopped by PID on drop. The benchmarks (`bench/`) start their processes and nodes with
//! the same pieces.
//!
//! - [`process`]: the `skiff` binary, free ports, [`Proc`] (a child stopped by its PID).
//! - [`cluster`]: [`Cluster`], a server on either [`Backend`], restartable; [`Etcd`].
//! - [`dns`]: a loopback upstream resolver and `nslookup` in a pod.
//! - [`http`]: the cluster's API from a program: an admin client and raw requests.
//! - [`hollow`]: [`HollowNodes`] on a thread of the test process.
//! - [`node`]: [`Node`], a real agent on its own [`AgentHost`].
//! - [`assert`]: `ok`, `fails`, `eventually` and pod and node fields.
//! - [`workload`]: manifests, pods as JSON, rollout availability.

pub mod assert;
pub mod cluster;
pub mod dns;
pub mod hollow;
pub mod http;
pub mod node;
pub mod process;
pub mod testhost;
pub mod workload;

pub use assert::{container_status, eventually, fails, node_ready, ok, pod_condition};
pub use cluster::{Backend, Cluster, Etcd};
pub use hollow::HollowNodes;
pub use http::{kube_config, kubelet_client_cert};
pub use node::{AgentCredentials, AgentHost, Node, busybox_rootfs, can_run_nodes};
pub use process::{Proc, free_port, repo_root, skiff_bin};
