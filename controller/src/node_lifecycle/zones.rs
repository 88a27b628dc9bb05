//! Zone disruption (Kubernetes' `ComputeZoneState` and `handleDisruption`): how many of a
//! zone's nodes are not Ready decides how fast the zone's nodes may be given a `NoExecute`
//! taint, and when every zone is fully disrupted no node is tainted at all (the control
//! plane, not the nodes, is then the likely fault).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;

use super::health::ready_status;

/// The rate settings of zone disruption.
#[derive(Debug, Clone, PartialEq)]
pub struct EvictionRates {
    /// Nodes tainted per second in a healthy zone (`--node-eviction-rate`, 0.1).
    pub rate: f64,
    /// Nodes tainted per second in an unhealthy large zone (`--secondary-node-eviction-rate`,
    /// 0.01).
    pub secondary_rate: f64,
    /// Share of not-Ready nodes (with more than two of them) that makes a zone unhealthy
    /// (`--unhealthy-zone-threshold`, 0.55).
    pub unhealthy_zone_threshold: f64,
    /// Zones of at most this many nodes stop tainting when unhealthy
    /// (`--large-cluster-size-threshold`, 50).
    pub large_cluster_threshold: usize,
}

impl Default for EvictionRates {
    fn default() -> Self {
        EvictionRates {
            rate: 0.1,
            secondary_rate: 0.01,
            unhealthy_zone_threshold: 0.55,
            large_cluster_threshold: 50,
        }
    }
}

/// A zone's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    /// Not judged yet (a zone first seen).
    Initial,
    /// Few nodes lost.
    Normal,
    /// More than two nodes and at least the threshold's share lost.
    PartialDisruption,
    /// Every node lost.
    FullDisruption,
}

/// The zone a node belongs to: its region and zone labels (empty for neither).
pub fn zone_of(node: &Node) -> String {
    let label = |k: &str| {
        node.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(k))
            .cloned()
            .unwrap_or_default()
    };
    let region = label("topology.kubernetes.io/region");
    let zone = label("topology.kubernetes.io/zone");
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:\0:{zone}")
    }
}

/// The state of a zone with `ready` Ready nodes and `not_ready` others.
pub fn zone_state(ready: usize, not_ready: usize, threshold: f64) -> ZoneState {
    if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && not_ready as f64 / (ready + not_ready) as f64 >= threshold {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// The tainting rate of a zone of `size` nodes in `state`.
pub fn zone_rate(state: ZoneState, size: usize, rates: &EvictionRates) -> f64 {
    match state {
        ZoneState::PartialDisruption if size > rates.large_cluster_threshold => {
            rates.secondary_rate
        }
        ZoneState::PartialDisruption => 0.0,
        _ => rates.rate,
    }
}

/// A token bucket of burst one (the node controller's `evictionLimiterBurst`), on an
/// explicit clock.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    tokens: f64,
    last: Option<Timestamp>,
}

impl TokenBucket {
    /// A full bucket refilled at `qps`.
    pub fn new(qps: f64) -> TokenBucket {
        TokenBucket {
            qps,
            tokens: 1.0,
            last: None,
        }
    }

    fn refill(&mut self, now: Timestamp) {
        if let Some(last) = self.last {
            let secs = now.duration_since(last).as_secs_f64().max(0.0);
            self.tokens = (self.tokens + secs * self.qps).min(1.0);
        }
        self.last = Some(now);
    }

    /// Takes a token at `now` if one is there.
    pub fn try_take(&mut self, now: Timestamp) -> bool {
        self.refill(now);
        if self.qps > 0.0 && self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long from `now` until a token is there (`None`: never, at rate zero).
    pub fn wait(&mut self, now: Timestamp) -> Option<Duration> {
        self.refill(now);
        if self.qps <= 0.0 {
            return None;
        }
        Some(Duration::from_secs_f64(
            ((1.0 - self.tokens) / self.qps).max(0.0),
        ))
    }

    /// Changes the rate, keeping the tokens there (an empty bucket when stopped).
    pub fn swap(&mut self, qps: f64, now: Timestamp) {
        self.refill(now);
        if qps <= 0.0 {
            self.tokens = 0.0;
        }
        self.qps = qps;
    }
}

/// The cluster's zones: their states and taint limiters, updated once per monitor pass.
#[derive(Debug, Default)]
pub struct Zones {
    states: BTreeMap<String, ZoneState>,
    limiters: BTreeMap<String, TokenBucket>,
    /// Every zone fully disrupted: no node is tainted.
    pub evictions_stopped: bool,
}

/// What a pass of [`Zones::update`] asks of the caller besides the new rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing beyond the rates.
    None,
    /// Every zone just became fully disrupted: lift the `NoExecute` taints of every node.
    EnteredFullDisruption,
    /// Some node is Ready again after full disruption: give every node a fresh grace period.
    LeftFullDisruption,
}

impl Zones {
    /// Judges every zone from `nodes` at `now` and sets each zone's tainting rate.
    pub fn update(&mut self, nodes: &[&Node], rates: &EvictionRates, now: Timestamp) -> Transition {
        let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for node in nodes {
            let entry = counts.entry(zone_of(node)).or_default();
            if ready_status(node) == "True" {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
        let new: BTreeMap<String, ZoneState> = counts
            .iter()
            .map(|(z, (r, n))| {
                (
                    z.clone(),
                    zone_state(*r, *n, rates.unhealthy_zone_threshold),
                )
            })
            .collect();
        let gone: BTreeSet<String> = self
            .states
            .keys()
            .filter(|z| !new.contains_key(*z))
            .cloned()
            .collect();
        for z in &gone {
            self.states.remove(z);
            self.limiters.remove(z);
        }
        for z in new.keys() {
            self.states.entry(z.clone()).or_insert(ZoneState::Initial);
            self.limiters
                .entry(z.clone())
                .or_insert_with(|| TokenBucket::new(rates.rate));
        }
        let all_now = new.values().all(|s| *s == ZoneState::FullDisruption);
        let all_before = self
            .states
            .values()
            .all(|s| *s == ZoneState::FullDisruption);
        if all_now && all_before {
            return Transition::None;
        }
        let size = |z: &str| counts.get(z).map_or(0, |(r, n)| r + n);
        if all_now {
            for (z, s) in self.states.iter_mut() {
                *s = ZoneState::FullDisruption;
                if let Some(l) = self.limiters.get_mut(z) {
                    l.swap(0.0, now);
                }
            }
            self.evictions_stopped = true;
            return Transition::EnteredFullDisruption;
        }
        let left = all_before && !self.states.is_empty();
        for (z, state) in &new {
            let old = self.states.insert(z.clone(), *state);
            if left || old != Some(*state) {
                let qps = zone_rate(*state, size(z), rates);
                if let Some(l) = self.limiters.get_mut(z) {
                    l.swap(qps, now);
                }
            }
        }
        self.evictions_stopped = false;
        if left {
            Transition::LeftFullDisruption
        } else {
            Transition::None
        }
    }

    /// Takes a taint token of `zone` at `now`; on refusal, how long until the next one.
    pub fn try_taint(&mut self, zone: &str, now: Timestamp) -> Result<(), Option<Duration>> {
        let Some(l) = self.limiters.get_mut(zone) else {
            return Err(None);
        };
        if l.try_take(now) {
            Ok(())
        } else {
            Err(l.wait(now))
        }
    }

    /// The state of `zone`.
    pub fn state(&self, zone: &str) -> Option<ZoneState> {
        self.states.get(zone).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_000 + ms).unwrap()
    }

    fn node(name: &str, zone: &str, ready: bool) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"Unknown"}}]},
        }))
        .unwrap()
    }

    #[test]
    fn zone_states_follow_kubernetes_thresholds() {
        assert_eq!(zone_state(3, 0, 0.55), ZoneState::Normal);
        assert_eq!(zone_state(0, 1, 0.55), ZoneState::FullDisruption);
        // Two lost of three is two-thirds but not more than two nodes.
        assert_eq!(zone_state(1, 2, 0.55), ZoneState::Normal);
        assert_eq!(zone_state(2, 3, 0.55), ZoneState::PartialDisruption);
        assert_eq!(zone_state(4, 3, 0.55), ZoneState::Normal);
        let r = EvictionRates::default();
        assert_eq!(zone_rate(ZoneState::Normal, 10, &r), 0.1);
        assert_eq!(zone_rate(ZoneState::PartialDisruption, 10, &r), 0.0);
        assert_eq!(zone_rate(ZoneState::PartialDisruption, 51, &r), 0.01);
        assert_eq!(zone_rate(ZoneState::FullDisruption, 10, &r), 0.1);
    }

    #[test]
    fn the_bucket_lets_one_node_through_every_ten_seconds() {
        let mut b = TokenBucket::new(0.1);
        assert!(b.try_take(at(0)));
        assert!(!b.try_take(at(1_000)));
        assert_eq!(b.wait(at(1_000)), Some(Duration::from_secs(9)));
        assert!(!b.try_take(at(9_999)));
        assert!(b.try_take(at(10_000)));
        b.swap(0.0, at(30_000));
        assert!(!b.try_take(at(60_000)));
        assert_eq!(b.wait(at(60_000)), None);
    }

    #[test]
    fn all_zones_lost_stops_tainting_until_a_node_returns() {
        let r = EvictionRates::default();
        let mut z = Zones::default();
        let (a1, a2) = (node("a1", "a", true), node("a2", "a", true));
        let b1 = node("b1", "b", true);
        assert_eq!(z.update(&[&a1, &a2, &b1], &r, at(0)), Transition::None);
        assert_eq!(z.state(&zone_of(&a1)), Some(ZoneState::Normal));
        let key_a = zone_of(&a1);
        assert_eq!(z.try_taint(&key_a, at(0)), Ok(()));
        assert_eq!(
            z.try_taint(&key_a, at(0)),
            Err(Some(Duration::from_secs(10)))
        );

        let lost = [
            node("a1", "a", false),
            node("a2", "a", false),
            node("b1", "b", false),
        ];
        let refs: Vec<&Node> = lost.iter().collect();
        assert_eq!(
            z.update(&refs, &r, at(20_000)),
            Transition::EnteredFullDisruption
        );
        assert!(z.evictions_stopped);
        assert_eq!(z.try_taint(&key_a, at(60_000)), Err(None));
        assert_eq!(z.update(&refs, &r, at(70_000)), Transition::None);

        let back = [
            node("a1", "a", true),
            node("a2", "a", false),
            node("b1", "b", false),
        ];
        let refs: Vec<&Node> = back.iter().collect();
        assert_eq!(
            z.update(&refs, &r, at(80_000)),
            Transition::LeftFullDisruption
        );
        assert!(!z.evictions_stopped);
        assert_eq!(z.state(&zone_of(&b1)), Some(ZoneState::FullDisruption));
        // Zone b is wholly lost but zone a is not: b taints at the normal rate again.
        assert_eq!(z.try_taint(&zone_of(&b1), at(200_000)), Ok(()));
    }

    #[test]
    fn a_large_share_lost_in_one_zone_slows_tainting_there() {
        let r = EvictionRates::default();
        let mut z = Zones::default();
        let nodes: Vec<Node> = (0..5)
            .map(|i| node(&format!("n{i}"), "a", i >= 3))
            .chain([node("x", "b", true)])
            .collect();
        let refs: Vec<&Node> = nodes.iter().collect();
        z.update(&refs, &r, at(0));
        assert_eq!(
            z.state(&zone_of(&nodes[0])),
            Some(ZoneState::PartialDisruption)
        );
        // A small zone in partial disruption taints nothing.
        assert_eq!(z.try_taint(&zone_of(&nodes[0]), at(0)), Err(None));
        assert_eq!(z.try_taint(&zone_of(&nodes[5]), at(0)), Ok(()));
    }
}
