//! The address and port ranges Services are given from: a service CIDR per IP family (as
//! `--service-cluster-ip-range`) and the node port range (`--service-node-port-range`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// Why a range flag could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    /// Not a CIDR.
    #[error("invalid service CIDR {0:?}: {1}")]
    Cidr(String, String),
    /// Two ranges of one family, more than two ranges, or a range too small.
    #[error("invalid service CIDRs {0:?}: {1}")]
    Cidrs(String, String),
    /// Not `lo-hi` with 1 <= lo <= hi <= 65535.
    #[error("invalid port range {0:?}: want e.g. 30000-32767")]
    Ports(String),
}

/// An IP family as Services name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `IPv4`.
    V4,
    /// `IPv6`.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    /// The name used in `spec.ipFamilies`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The family named `s` in `spec.ipFamilies`.
    pub fn parse(s: &str) -> Option<Family> {
        match s {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }

    /// The other family.
    pub fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }
}

/// One service CIDR: the addresses in it that can be handed out are all but the network
/// address and, for IPv4, the broadcast address, as kube-apiserver's allocator counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    net: IpNet,
}

impl IpRange {
    /// The range of `net` (host bits are dropped).
    pub fn new(net: IpNet) -> IpRange {
        IpRange { net: net.trunc() }
    }

    /// The CIDR.
    pub fn net(&self) -> IpNet {
        self.net
    }

    /// The family of the range.
    pub fn family(&self) -> Family {
        Family::of(self.net.addr())
    }

    fn base(&self) -> u128 {
        to_u128(self.net.network())
    }

    /// How many addresses can be handed out (capped at `u64::MAX`).
    pub fn size(&self) -> u64 {
        let host_bits = u32::from(self.net.max_prefix_len() - self.net.prefix_len());
        let total: u128 = if host_bits >= 128 {
            u128::MAX
        } else {
            1u128 << host_bits
        };
        let usable = match self.family() {
            Family::V4 => total.saturating_sub(2),
            Family::V6 => total.saturating_sub(1),
        };
        u64::try_from(usable).unwrap_or(u64::MAX)
    }

    /// The `i`-th address that can be handed out (0 is the first after the network
    /// address), if the range has one.
    pub fn nth(&self, i: u64) -> Option<IpAddr> {
        (i < self.size()).then(|| from_u128(self.base() + 1 + u128::from(i), self.family()))
    }

    /// The offset of `ip` among the addresses that can be handed out.
    pub fn offset(&self, ip: IpAddr) -> Option<u64> {
        if Family::of(ip) != self.family() || !self.net.contains(&ip) {
            return None;
        }
        let off = to_u128(ip).checked_sub(self.base() + 1)?;
        u64::try_from(off).ok().filter(|o| *o < self.size())
    }

    /// Whether `ip` can be handed out from this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.offset(ip).is_some()
    }

    /// The size of the lower band kept for requested addresses (KEP-3070): dynamic
    /// allocation tries the addresses above it first.
    pub fn static_band(&self) -> u64 {
        (self.size() / 16).clamp(16, 256).min(self.size())
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.net.fmt(f)
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, family: Family) -> IpAddr {
    match family {
        // Only called with offsets inside a v4 range.
        Family::V4 => IpAddr::V4(u32::try_from(v).unwrap_or(u32::MAX).into()),
        Family::V6 => IpAddr::V6(v.into()),
    }
}

/// The service CIDRs of the cluster: one, or two of different families (dual stack). The
/// first is the primary family, the default of single-stack Services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCidrs {
    ranges: Vec<IpRange>,
}

impl ServiceCidrs {
    /// The range of `family`, if configured.
    pub fn range(&self, family: Family) -> Option<&IpRange> {
        self.ranges.iter().find(|r| r.family() == family)
    }

    /// The primary range.
    pub fn primary(&self) -> &IpRange {
        &self.ranges[0]
    }

    /// Every range, primary first.
    pub fn ranges(&self) -> &[IpRange] {
        &self.ranges
    }

    /// Whether both families are configured.
    pub fn dual_stack(&self) -> bool {
        self.ranges.len() == 2
    }

    /// The range that holds `ip`.
    pub fn holding(&self, ip: IpAddr) -> Option<&IpRange> {
        self.ranges.iter().find(|r| r.contains(ip))
    }
}

impl FromStr for ServiceCidrs {
    type Err = RangeError;

    /// `10.96.0.0/12` or `10.96.0.0/12,fd00:10:96::/112`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut ranges = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net: IpNet = part
                .parse()
                .map_err(|e: ipnet::AddrParseError| RangeError::Cidr(part.into(), e.to_string()))?;
            let r = IpRange::new(net);
            if r.size() < 10 {
                return Err(RangeError::Cidr(
                    part.into(),
                    "too small: a service CIDR needs at least 10 addresses".into(),
                ));
            }
            ranges.push(r);
        }
        match ranges.as_slice() {
            [] => Err(RangeError::Cidrs(s.into(), "no CIDR given".into())),
            [_] => Ok(ServiceCidrs { ranges }),
            [a, b] if a.family() != b.family() => Ok(ServiceCidrs { ranges }),
            [_, _] => Err(RangeError::Cidrs(
                s.into(),
                "a dual-stack pair needs one IPv4 and one IPv6 CIDR".into(),
            )),
            _ => Err(RangeError::Cidrs(s.into(), "at most two CIDRs".into())),
        }
    }
}

impl fmt::Display for ServiceCidrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.ranges.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// The node port range, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
}

impl PortRange {
    /// Whether `port` is in the range.
    pub fn contains(&self, port: i32) -> bool {
        port >= i32::from(self.lo) && port <= i32::from(self.hi)
    }

    /// How many ports the range has.
    pub fn size(&self) -> u32 {
        u32::from(self.hi - self.lo) + 1
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange {
            lo: 30000,
            hi: 32767,
        }
    }
}

impl FromStr for PortRange {
    type Err = RangeError;

    /// `30000-32767` (a single port `N` means `N-N`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RangeError::Ports(s.into());
        let (lo, hi) = s.trim().split_once('-').unwrap_or((s.trim(), s.trim()));
        let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
        let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
        if lo == 0 || lo > hi {
            return Err(bad());
        }
        Ok(PortRange { lo, hi })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_range_skips_network_and_broadcast() {
        let c: ServiceCidrs = "10.96.0.0/12".parse().unwrap();
        let r = c.primary();
        assert_eq!(r.size(), (1 << 20) - 2);
        assert_eq!(r.nth(0), Some("10.96.0.1".parse().unwrap()));
        assert_eq!(r.nth(9), Some("10.96.0.10".parse().unwrap()));
        assert_eq!(r.nth(r.size()), None);
        assert!(!r.contains("10.96.0.0".parse().unwrap()));
        assert!(!r.contains("10.111.255.255".parse().unwrap()));
        assert!(r.contains("10.111.255.254".parse().unwrap()));
        assert!(!r.contains("10.112.0.1".parse().unwrap()));
        assert_eq!(r.offset("10.96.1.0".parse().unwrap()), Some(255));
        assert_eq!(r.static_band(), 256);
    }

    #[test]
    fn dual_stack_pairs_need_both_families() {
        let c: ServiceCidrs = "10.96.0.0/12, fd00:10:96::/112".parse().unwrap();
        assert!(c.dual_stack());
        let v6 = c.range(Family::V6).unwrap();
        assert_eq!(v6.size(), 65535);
        assert_eq!(v6.nth(0), Some("fd00:10:96::1".parse().unwrap()));
        assert!("10.0.0.0/24,10.1.0.0/24".parse::<ServiceCidrs>().is_err());
        assert!("10.0.0.0/30".parse::<ServiceCidrs>().is_err());
        assert!("banana".parse::<ServiceCidrs>().is_err());
    }

    #[test]
    fn port_ranges() {
        let p: PortRange = "30000-32767".parse().unwrap();
        assert_eq!(p, PortRange::default());
        assert_eq!(p.size(), 2768);
        assert!(p.contains(30000) && p.contains(32767) && !p.contains(32768));
        assert!("5-1".parse::<PortRange>().is_err());
        assert!("0-10".parse::<PortRange>().is_err());
        assert_eq!("8080".parse::<PortRange>().unwrap().size(), 1);
    }
}
