//! InterPodAffinity: required affinity and anti-affinity (the pod's own and existing pods')
//! as a filter, preferred terms as a score, counted per topology domain.

use std::collections::HashMap;

use crate::cache::{Cache, NodeInfo};
use crate::framework::{CycleState, Failure, MAX_NODE_SCORE};
use crate::podinfo::{AffinityTerm, PodInfo};

/// Reason when the pod's required affinity is not met.
pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// Reason when the pod's required anti-affinity is violated.
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// Reason when an existing pod's anti-affinity forbids the pod.
pub const ERR_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// Counts per topology key and value.
#[derive(Debug, Default, Clone)]
pub struct TopologyCounts(HashMap<String, HashMap<String, i64>>);

impl TopologyCounts {
    fn add(&mut self, key: &str, node: &NodeInfo, n: i64) {
        if let Some(v) = node.labels.get(key) {
            *self
                .0
                .entry(key.to_string())
                .or_default()
                .entry(v.clone())
                .or_default() += n;
        }
    }

    /// The count for the node's domain of `key`.
    pub fn get(&self, key: &str, node: &NodeInfo) -> i64 {
        node.labels
            .get(key)
            .and_then(|v| self.0.get(key).and_then(|m| m.get(v)))
            .copied()
            .unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.0.values().all(|m| m.values().all(|n| *n == 0))
    }

    /// The sum of the counts for every domain the node is in.
    fn sum_for(&self, node: &NodeInfo) -> i64 {
        self.0
            .iter()
            .filter_map(|(k, m)| node.labels.get(k).and_then(|v| m.get(v)))
            .sum()
    }
}

/// What the filter needs, computed once per pod.
#[derive(Debug, Default)]
pub struct FilterState {
    existing_anti: TopologyCounts,
    affinity: TopologyCounts,
    anti: TopologyCounts,
}

fn all_match(terms: &[AffinityTerm], pod: &PodInfo) -> bool {
    terms.iter().all(|t| t.matches(pod))
}

/// Counts existing pods' anti-affinity against the pod, and pods matching its own terms.
pub fn pre_filter(pod: &PodInfo, cache: &Cache) -> FilterState {
    let mut s = FilterState::default();
    let own = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
    for node in cache.nodes() {
        if node.pods_with_required_anti_affinity > 0 {
            for existing in node
                .pods
                .iter()
                .filter(|p| !p.required_anti_affinity.is_empty())
            {
                for t in existing
                    .required_anti_affinity
                    .iter()
                    .filter(|t| t.matches(pod))
                {
                    s.existing_anti.add(&t.topology_key, node, 1);
                }
            }
        }
        if !own {
            continue;
        }
        for existing in &node.pods {
            if !pod.required_affinity.is_empty() && all_match(&pod.required_affinity, existing) {
                for t in &pod.required_affinity {
                    s.affinity.add(&t.topology_key, node, 1);
                }
            }
            for t in pod
                .required_anti_affinity
                .iter()
                .filter(|t| t.matches(existing))
            {
                s.anti.add(&t.topology_key, node, 1);
            }
        }
    }
    s
}

/// Filter: required affinity met, own anti-affinity and existing pods' anti-affinity kept.
pub fn filter(state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
    let s = &state.interpod;
    if !pod.required_affinity.is_empty() {
        let satisfied = pod
            .required_affinity
            .iter()
            .all(|t| s.affinity.get(&t.topology_key, node) > 0);
        // The first pod of a group that selects itself may go anywhere with the keys.
        let first_of_group = s.affinity.is_empty()
            && all_match(&pod.required_affinity, pod)
            && pod
                .required_affinity
                .iter()
                .all(|t| node.labels.contains_key(&t.topology_key));
        if !satisfied && !first_of_group {
            return Err(Failure::unresolvable(ERR_AFFINITY));
        }
    }
    if pod
        .required_anti_affinity
        .iter()
        .any(|t| s.anti.get(&t.topology_key, node) > 0)
    {
        return Err(Failure::resolvable(ERR_ANTI_AFFINITY));
    }
    if s.existing_anti.sum_for(node) > 0 {
        return Err(Failure::resolvable(ERR_EXISTING_ANTI_AFFINITY));
    }
    Ok(())
}

/// Preferred-affinity weights per topology domain.
#[derive(Debug, Default)]
pub struct ScoreState(TopologyCounts);

/// Sums the weights of preferred terms (the pod's and existing pods') per domain.
pub fn pre_score(pod: &PodInfo, cache: &Cache) -> ScoreState {
    let mut s = TopologyCounts::default();
    let has_preferred =
        !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
    for node in cache.nodes() {
        if !has_preferred && node.pods_with_affinity == 0 {
            continue;
        }
        for existing in &node.pods {
            for t in pod
                .preferred_affinity
                .iter()
                .filter(|t| t.matches(existing))
            {
                s.add(&t.topology_key, node, t.weight);
            }
            for t in pod
                .preferred_anti_affinity
                .iter()
                .filter(|t| t.matches(existing))
            {
                s.add(&t.topology_key, node, -t.weight);
            }
            if !existing.has_affinity() {
                continue;
            }
            // Existing pods' required affinity counts with kube's hardPodAffinityWeight (1).
            for t in existing.required_affinity.iter().filter(|t| t.matches(pod)) {
                s.add(&t.topology_key, node, 1);
            }
            for t in existing
                .preferred_affinity
                .iter()
                .filter(|t| t.matches(pod))
            {
                s.add(&t.topology_key, node, t.weight);
            }
            for t in existing
                .preferred_anti_affinity
                .iter()
                .filter(|t| t.matches(pod))
            {
                s.add(&t.topology_key, node, -t.weight);
            }
        }
    }
    ScoreState(s)
}

/// Score: the summed weights of the node's domains (normalised by [`normalize`]).
pub fn score(state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
    state.interpod_score.0.sum_for(node)
}

/// Scales scores between the lowest (0) and the highest (100).
pub fn normalize(_: &CycleState, scores: &mut [i64]) {
    let (min, max) = scores
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    let diff = max - min;
    for s in scores.iter_mut() {
        *s = if diff > 0 {
            MAX_NODE_SCORE * (*s - min) / diff
        } else {
            0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_support::{cache_with, named_pod, zone_nodes};
    use serde_json::json;

    fn term(app: &str, key: &str) -> serde_json::Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
    }

    fn run(cache: &Cache, pod: &PodInfo, node: &str) -> Result<(), Failure> {
        let state = CycleState {
            interpod: pre_filter(pod, cache),
            ..CycleState::default()
        };
        filter(&state, pod, cache.node(node).unwrap())
    }

    #[test]
    fn required_affinity_follows_matching_pods_by_zone() {
        // n1, n2 in zone a; n3 in zone b; a "db" pod on n1.
        let cache = cache_with(
            zone_nodes(),
            &[("db", "n1", json!({"app": "db"}), json!({}))],
        );
        let p = named_pod(
            "web",
            json!({"app": "web"}),
            json!({"affinity": {"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}}),
        );
        assert!(run(&cache, &p, "n1").is_ok());
        assert!(run(&cache, &p, "n2").is_ok(), "same zone as the db pod");
        assert_eq!(
            run(&cache, &p, "n3").unwrap_err().reasons,
            vec![ERR_AFFINITY.to_string()]
        );
    }

    #[test]
    fn first_pod_of_a_self_selecting_group_may_go_anywhere() {
        let cache = cache_with(zone_nodes(), &[]);
        let p = named_pod(
            "a",
            json!({"app": "g"}),
            json!({"affinity": {"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("g", "zone")]}}}),
        );
        assert!(run(&cache, &p, "n3").is_ok());
        let other = named_pod(
            "b",
            json!({"app": "h"}),
            json!({"affinity": {"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("g", "zone")]}}}),
        );
        assert!(run(&cache, &other, "n3").is_err());
    }

    #[test]
    fn anti_affinity_own_and_existing() {
        let anti = json!({"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("web", "kubernetes.io/hostname")]}}});
        let cache = cache_with(
            zone_nodes(),
            &[("w1", "n1", json!({"app": "web"}), anti.clone())],
        );
        let p = named_pod("w2", json!({"app": "web"}), anti);
        assert_eq!(
            run(&cache, &p, "n1").unwrap_err().reasons,
            vec![ERR_ANTI_AFFINITY.to_string()]
        );
        assert!(run(&cache, &p, "n2").is_ok());
        // A pod without terms is still kept off n1 by w1's anti-affinity.
        let plain = named_pod("x", json!({"app": "web"}), json!({}));
        assert_eq!(
            run(&cache, &plain, "n1").unwrap_err().reasons,
            vec![ERR_EXISTING_ANTI_AFFINITY.to_string()]
        );
        let unrelated = named_pod("y", json!({"app": "other"}), json!({}));
        assert!(run(&cache, &unrelated, "n1").is_ok());
    }

    #[test]
    fn preferred_terms_score_domains() {
        let cache = cache_with(
            zone_nodes(),
            &[("c", "n3", json!({"app": "cache"}), json!({}))],
        );
        let p = named_pod(
            "w",
            json!({"app": "web"}),
            json!({"affinity": {
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "podAffinityTerm": term("cache", "zone")}]}}}),
        );
        let state = CycleState {
            interpod_score: pre_score(&p, &cache),
            ..CycleState::default()
        };
        let nodes: Vec<&NodeInfo> = ["n1", "n2", "n3"]
            .iter()
            .map(|n| cache.node(n).unwrap())
            .collect();
        let mut scores: Vec<i64> = nodes.iter().map(|n| score(&state, &p, n)).collect();
        assert_eq!(scores, vec![0, 0, 50]);
        normalize(&state, &mut scores);
        assert_eq!(scores, vec![0, 0, 100]);
    }
}
