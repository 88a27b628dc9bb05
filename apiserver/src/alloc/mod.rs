//! Service addresses: cluster IPs from the service CIDRs (`--service-cidr`, one per IP
//! family) and node ports from `--service-node-port-range`, each allocation one stored
//! claim made with create-if-absent, so that concurrent creates, restarts and several
//! servers on one etcd never hand out an address twice; and the repair loop that finds
//! leaked claims and Services holding addresses nobody claimed.

mod families;
pub mod ledger;
pub mod range;
pub mod repair;
pub mod service;

use std::sync::Arc;

pub use ledger::{Ledger, Owner, Slot};
pub use range::{Family, IpRange, PortRange, RangeError, ServiceCidrs};
pub use service::ServiceAllocator;

use crate::handlers::hooks::WriteHooks;
use crate::storage::Store;

/// kube-apiserver's default `--service-cluster-ip-range`.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";

/// The cluster's service network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNetwork {
    /// The service CIDRs, primary family first.
    pub cidrs: ServiceCidrs,
    /// The node port range.
    pub node_ports: PortRange,
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        ServiceNetwork {
            cidrs: DEFAULT_SERVICE_CIDR
                .parse()
                .expect("the default CIDR parses"),
            node_ports: PortRange::default(),
        }
    }
}

impl ServiceNetwork {
    /// The `kubernetes` Service's address: the first of the primary range.
    pub fn api_service_ip(&self) -> std::net::IpAddr {
        self.cidrs
            .primary()
            .nth(0)
            .expect("ranges hold at least 10 addresses")
    }

    /// The `kube-dns` Service's address: the tenth of the primary range (10.96.0.10).
    pub fn dns_service_ip(&self) -> std::net::IpAddr {
        self.cidrs
            .primary()
            .nth(9)
            .expect("ranges hold at least 10 addresses")
    }
}

/// The allocator of `net` over `store`, and the write hooks: the Service hook that runs it
/// and the claim resize admission.
pub fn service_hooks(
    net: &ServiceNetwork,
    store: Arc<dyn Store>,
) -> (ServiceAllocator, WriteHooks) {
    let alloc = ServiceAllocator::new(net.clone(), Ledger::new(store.clone()));
    let mut hooks = WriteHooks::default();
    hooks.insert("", "services", Arc::new(alloc.clone()));
    hooks.insert(
        "",
        "persistentvolumeclaims",
        Arc::new(crate::admission::ClaimResize::new(store)),
    );
    (alloc, hooks)
}
