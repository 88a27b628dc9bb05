//! The skiff service proxy: Services and EndpointSlices become nftables rules in a table of
//! the proxy's own, in every agent (the shape of kube-proxy's nftables mode).
//!
//! [`service`] reads the API objects, [`rules`] renders a Service's chains and map
//! elements, [`transaction`] keeps the record of the kernel table and diffs against it,
//! [`proxier`] holds the caches and syncs, [`run`] watches the API and drives the syncs.

pub mod nft;
pub mod proxier;
pub mod rules;
pub mod run;
pub mod service;
pub mod sysctl;
pub mod transaction;

pub use proxier::{NftablesProxier, ProxierConfig, SyncReport};
pub use run::{ProxyConfig, ProxyMode, ServiceProxy};
