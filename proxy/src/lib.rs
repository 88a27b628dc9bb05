//! The skiff service proxy and cluster DNS, in every agent: Services and EndpointSlices
//! become nftables rules in a table of the proxy's own (the shape of kube-proxy's nftables
//! mode), and [`dns`] answers cluster names.
//!
//! [`service`] reads the API objects, [`rules`] renders a Service's chains and map
//! elements, [`transaction`] keeps the record of the kernel table and diffs against it,
//! [`proxier`] holds the caches and syncs, [`run`] watches the API and drives the syncs.

pub mod dns;
pub mod metrics;
pub mod nft;
pub mod proxier;
pub mod rules;
pub mod run;
pub mod service;
pub mod sysctl;
pub mod transaction;

pub use metrics::ProxyMetrics;
pub use proxier::{NftablesProxier, ProxierConfig, SyncReport};
pub use run::{ProxyConfig, ProxyMode, ServiceProxy};
