//! The pod-CIDR allocator: a cluster range cut into equal per-node subnets, with the
//! occupied ones tracked so a subnet is handed out at most once.

use std::net::IpAddr;

use ipnet::IpNet;

/// Why a CIDR set could not be built or a range could not be marked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    /// The per-node mask is shorter than the cluster mask, or the range is too large to track.
    #[error("node mask /{node_mask} does not fit cluster range {cluster}")]
    BadMask {
        /// The cluster range.
        cluster: String,
        /// The per-node prefix length.
        node_mask: u8,
    },
    /// The range is not one of the set's subnets.
    #[error("{cidr} is not a /{node_mask} subnet of {cluster}")]
    Foreign {
        /// The range offered.
        cidr: String,
        /// The cluster range.
        cluster: String,
        /// The per-node prefix length.
        node_mask: u8,
    },
}

/// The per-node subnets of a cluster range and which are taken.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: IpNet,
    node_mask: u8,
    used: Vec<bool>,
    /// Where the next search starts, so a just-released subnet is not reused at once.
    next: usize,
}

/// At most this many subnets are tracked (a /8 cut into /24s).
const MAX_SUBNETS: u32 = 1 << 16;

impl CidrSet {
    /// Cuts `cluster` into `/node_mask` subnets, all free.
    pub fn new(cluster: IpNet, node_mask: u8) -> Result<Self, CidrError> {
        let cluster = cluster.trunc();
        let bad = || CidrError::BadMask {
            cluster: cluster.to_string(),
            node_mask,
        };
        if node_mask < cluster.prefix_len() || node_mask > cluster.max_prefix_len() {
            return Err(bad());
        }
        let bits = u32::from(node_mask - cluster.prefix_len());
        if bits >= 32 || (1u32 << bits) > MAX_SUBNETS {
            return Err(bad());
        }
        Ok(CidrSet {
            cluster,
            node_mask,
            used: vec![false; 1usize << bits],
            next: 0,
        })
    }

    /// The cluster range.
    pub fn cluster(&self) -> IpNet {
        self.cluster
    }

    /// The `index`-th subnet.
    fn subnet(&self, index: usize) -> IpNet {
        let shift = u32::from(self.cluster.max_prefix_len() - self.node_mask);
        let addr = match self.cluster.network() {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) + ((index as u32) << shift)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) + ((index as u128) << shift)).into()),
        };
        IpNet::new(addr, self.node_mask).expect("prefix length checked at construction")
    }

    /// The index of `cidr` among the subnets.
    fn index_of(&self, cidr: &IpNet) -> Result<usize, CidrError> {
        let foreign = || CidrError::Foreign {
            cidr: cidr.to_string(),
            cluster: self.cluster.to_string(),
            node_mask: self.node_mask,
        };
        if cidr.prefix_len() != self.node_mask
            || !self.cluster.contains(cidr)
            || cidr.trunc() != *cidr
        {
            return Err(foreign());
        }
        let shift = u32::from(self.cluster.max_prefix_len() - self.node_mask);
        let offset = match (cidr.network(), self.cluster.network()) {
            (IpAddr::V4(c), IpAddr::V4(b)) => u128::from(u32::from(c) - u32::from(b)),
            (IpAddr::V6(c), IpAddr::V6(b)) => u128::from(c) - u128::from(b),
            _ => return Err(foreign()),
        };
        Ok((offset >> shift) as usize)
    }

    /// Marks `cidr` taken (a node already carries it).
    pub fn occupy(&mut self, cidr: &IpNet) -> Result<(), CidrError> {
        let i = self.index_of(cidr)?;
        self.used[i] = true;
        Ok(())
    }

    /// Frees `cidr`.
    pub fn release(&mut self, cidr: &IpNet) -> Result<(), CidrError> {
        let i = self.index_of(cidr)?;
        self.used[i] = false;
        Ok(())
    }

    /// Whether `cidr` is taken.
    pub fn is_used(&self, cidr: &IpNet) -> bool {
        self.index_of(cidr).map(|i| self.used[i]).unwrap_or(false)
    }

    /// Takes the next free subnet, or `None` when the range is full.
    pub fn allocate(&mut self) -> Option<IpNet> {
        let n = self.used.len();
        let i = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&i| !self.used[i])?;
        self.used[i] = true;
        self.next = (i + 1) % n;
        Some(self.subnet(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_consecutive_subnets_and_skips_occupied() {
        let mut set = CidrSet::new(net("10.244.0.0/16"), 24).unwrap();
        set.occupy(&net("10.244.1.0/24")).unwrap();
        assert_eq!(set.allocate(), Some(net("10.244.0.0/24")));
        assert_eq!(set.allocate(), Some(net("10.244.2.0/24")));
        assert!(set.is_used(&net("10.244.1.0/24")));
    }

    #[test]
    fn exhausts_then_reuses_a_released_subnet() {
        let mut set = CidrSet::new(net("10.0.0.0/22"), 24).unwrap();
        let all: Vec<_> = std::iter::from_fn(|| set.allocate()).collect();
        assert_eq!(all.len(), 4);
        assert_eq!(all[3], net("10.0.3.0/24"));
        set.release(&net("10.0.2.0/24")).unwrap();
        assert_eq!(set.allocate(), Some(net("10.0.2.0/24")));
        assert_eq!(set.allocate(), None);
    }

    #[test]
    fn refuses_foreign_ranges_and_bad_masks() {
        let mut set = CidrSet::new(net("10.244.0.0/16"), 24).unwrap();
        assert!(matches!(
            set.occupy(&net("10.245.0.0/24")),
            Err(CidrError::Foreign { .. })
        ));
        assert!(matches!(
            set.occupy(&net("10.244.0.0/25")),
            Err(CidrError::Foreign { .. })
        ));
        assert!(matches!(
            CidrSet::new(net("10.244.0.0/16"), 8),
            Err(CidrError::BadMask { .. })
        ));
    }

    #[test]
    fn cuts_ipv6_ranges() {
        let mut set = CidrSet::new(net("fd00::/112"), 120).unwrap();
        assert_eq!(set.allocate(), Some(net("fd00::/120")));
        assert_eq!(set.allocate(), Some(net("fd00::100/120")));
    }
}
