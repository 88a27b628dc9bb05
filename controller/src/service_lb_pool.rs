//! The service load balancer's address pool (`--service-lb-pool`: CIDRs and `a-b` ranges,
//! comma-separated) and the pure decision of which address a LoadBalancer Service gets.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// The `loadBalancerClass` this load balancer serves (besides Services without a class).
pub const LB_CLASS: &str = "skiff.io/servicelb";

/// Why a pool could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid service load balancer pool entry {0:?}: want a CIDR or a range a.b.c.d-e.f.g.h")]
pub struct PoolError(pub String);

/// An inclusive address range of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    first: u128,
    last: u128,
    v6: bool,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(v.into())
    } else {
        IpAddr::V4(u32::try_from(v).unwrap_or(u32::MAX).into())
    }
}

/// The load balancer address pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LbPool {
    spans: Vec<Span>,
}

impl LbPool {
    /// Whether no pool was configured (the nodes' addresses are used).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Whether `ip` is in the pool.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v, v6) = (to_u128(ip), ip.is_ipv6());
        self.spans
            .iter()
            .any(|s| s.v6 == v6 && s.first <= v && v <= s.last)
    }

    /// The first address of the pool not in `taken`, in pool order.
    pub fn first_free(&self, taken: &impl Fn(IpAddr) -> bool) -> Option<IpAddr> {
        for s in &self.spans {
            let mut v = s.first;
            loop {
                let ip = from_u128(v, s.v6);
                if !taken(ip) {
                    return Some(ip);
                }
                if v == s.last {
                    break;
                }
                v += 1;
            }
        }
        None
    }
}

impl FromStr for LbPool {
    type Err = PoolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut spans = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || PoolError(part.into());
            let span = if let Some((a, b)) = part.split_once('-') {
                let (a, b): (IpAddr, IpAddr) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a.is_ipv6() != b.is_ipv6() || to_u128(a) > to_u128(b) {
                    return Err(bad());
                }
                Span {
                    first: to_u128(a),
                    last: to_u128(b),
                    v6: a.is_ipv6(),
                }
            } else {
                let net: IpNet = part.parse().map_err(|_| bad())?;
                let (mut first, mut last) = (to_u128(net.network()), to_u128(net.broadcast()));
                // An IPv4 subnet's network and broadcast addresses are not handed out.
                if net.addr().is_ipv4() && net.prefix_len() <= 30 {
                    first += 1;
                    last -= 1;
                }
                Span {
                    first,
                    last,
                    v6: net.addr().is_ipv6(),
                }
            };
            spans.push(span);
        }
        Ok(LbPool { spans })
    }
}

/// What a LoadBalancer Service should get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The Service is not ours (not a LoadBalancer, or another class): hold nothing.
    NotOurs,
    /// Write these ingress addresses.
    Ingress(Vec<IpAddr>),
    /// No address can be given: the reason for a Warning event.
    Failed(String),
}

/// What the decision looks at for one Service.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    /// `spec.type == LoadBalancer`.
    pub is_lb: bool,
    /// `spec.loadBalancerClass`.
    pub class: Option<String>,
    /// `spec.loadBalancerIP`.
    pub requested: Option<IpAddr>,
    /// The ingress addresses in its status now.
    pub current: Vec<IpAddr>,
}

/// Decides the Service's addresses. `holders` maps every pool address other Services
/// hold to them; `nodes` are the nodes' InternalIP addresses (used when the pool is
/// empty, as k3s's servicelb does).
pub fn decide(
    want: &Wanted,
    pool: &LbPool,
    holders: &BTreeMap<IpAddr, String>,
    nodes: &[IpAddr],
) -> Decision {
    if !want.is_lb || want.class.as_deref().is_some_and(|c| c != LB_CLASS) {
        return Decision::NotOurs;
    }
    if pool.is_empty() {
        if nodes.is_empty() {
            return Decision::Failed("no node has an InternalIP address to use".into());
        }
        return Decision::Ingress(nodes.to_vec());
    }
    if let Some(ip) = want.requested {
        if !pool.contains(ip) {
            return Decision::Failed(format!(
                "requested loadBalancerIP {ip} is not in the service load balancer pool"
            ));
        }
        if let Some(other) = holders.get(&ip) {
            return Decision::Failed(format!(
                "requested loadBalancerIP {ip} is already allocated to {other}"
            ));
        }
        return Decision::Ingress(vec![ip]);
    }
    if let Some(ip) = want
        .current
        .iter()
        .find(|ip| pool.contains(**ip) && !holders.contains_key(ip))
    {
        return Decision::Ingress(vec![*ip]);
    }
    match pool.first_free(&|ip| holders.contains_key(&ip)) {
        Some(ip) => Decision::Ingress(vec![ip]),
        None => Decision::Failed("no available addresses in the service load balancer pool".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn lb() -> Wanted {
        Wanted {
            is_lb: true,
            ..Default::default()
        }
    }

    #[test]
    fn pools_parse_cidrs_and_ranges() {
        let p: LbPool = "192.168.50.0/30, 10.0.0.5-10.0.0.6".parse().unwrap();
        assert!(!p.contains(ip("192.168.50.0")) && p.contains(ip("192.168.50.1")));
        assert!(p.contains(ip("192.168.50.2")) && !p.contains(ip("192.168.50.3")));
        assert!(p.contains(ip("10.0.0.6")) && !p.contains(ip("10.0.0.7")));
        assert_eq!(
            p.first_free(&|a| a == ip("192.168.50.1")),
            Some(ip("192.168.50.2"))
        );
        assert!("10.0.0.9-10.0.0.1".parse::<LbPool>().is_err());
        assert!("nope".parse::<LbPool>().is_err());
        assert!("".parse::<LbPool>().unwrap().is_empty());
    }

    #[test]
    fn decisions() {
        let pool: LbPool = "10.0.0.1-10.0.0.2".parse().unwrap();
        let mut holders = BTreeMap::new();
        assert_eq!(
            decide(&lb(), &pool, &holders, &[]),
            Decision::Ingress(vec![ip("10.0.0.1")])
        );
        holders.insert(ip("10.0.0.1"), "default/a".to_string());
        assert_eq!(
            decide(&lb(), &pool, &holders, &[]),
            Decision::Ingress(vec![ip("10.0.0.2")])
        );
        let keep = Wanted {
            current: vec![ip("10.0.0.2")],
            ..lb()
        };
        assert_eq!(
            decide(&keep, &pool, &holders, &[]),
            Decision::Ingress(vec![ip("10.0.0.2")])
        );
        holders.insert(ip("10.0.0.2"), "default/b".to_string());
        assert_eq!(
            decide(&lb(), &pool, &holders, &[]),
            Decision::Failed("no available addresses in the service load balancer pool".into())
        );
        let taken = Wanted {
            requested: Some(ip("10.0.0.1")),
            ..lb()
        };
        assert_eq!(
            decide(&taken, &pool, &holders, &[]),
            Decision::Failed(
                "requested loadBalancerIP 10.0.0.1 is already allocated to default/a".into()
            )
        );
        let outside = Wanted {
            requested: Some(ip("10.9.0.1")),
            ..lb()
        };
        assert!(matches!(
            decide(&outside, &pool, &holders, &[]),
            Decision::Failed(_)
        ));
        let other = Wanted {
            class: Some("example.com/lb".into()),
            ..lb()
        };
        assert_eq!(decide(&other, &pool, &holders, &[]), Decision::NotOurs);
        let ours = Wanted {
            class: Some(LB_CLASS.into()),
            ..lb()
        };
        assert!(matches!(
            decide(&ours, &pool, &BTreeMap::new(), &[]),
            Decision::Ingress(_)
        ));
        assert_eq!(
            decide(&Wanted::default(), &pool, &holders, &[]),
            Decision::NotOurs
        );
        let nodes = [ip("192.168.1.10"), ip("192.168.1.11")];
        assert_eq!(
            decide(&lb(), &LbPool::default(), &BTreeMap::new(), &nodes),
            Decision::Ingress(nodes.to_vec())
        );
    }
}
