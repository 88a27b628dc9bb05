//! PodTopologySpread: DoNotSchedule constraints as a filter (maxSkew, minDomains),
//! ScheduleAnyway constraints as a score.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use skiff_api::labels::Selector;

use crate::cache::{Cache, NodeInfo};
use crate::framework::{CycleState, Failure, MAX_NODE_SCORE};
use crate::podinfo::PodInfo;

/// Reason when placing the pod would exceed maxSkew.
pub const ERR_SKEW: &str = "node(s) didn't match pod topology spread constraints";
/// Reason when the node lacks a constraint's topology key.
pub const ERR_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// One parsed constraint.
#[derive(Debug, Clone)]
struct Constraint {
    max_skew: i64,
    key: String,
    selector: Option<Selector>,
    min_domains: i64,
    /// Pod count per domain value (nodes admitted by the pod's node affinity only).
    counts: HashMap<String, i64>,
}

impl Constraint {
    fn matches(&self, pod: &PodInfo) -> bool {
        self.selector
            .as_ref()
            .is_some_and(|s| s.matches(&pod.labels))
    }
}

fn constraints(pod: &PodInfo, when: &str, cache: &Cache) -> Vec<Constraint> {
    let list: &[TopologySpreadConstraint] = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or(&[]);
    let mut out: Vec<Constraint> = list
        .iter()
        .filter(|c| c.when_unsatisfiable == when)
        .map(|c| Constraint {
            max_skew: i64::from(c.max_skew),
            key: c.topology_key.clone(),
            selector: c
                .label_selector
                .as_ref()
                .and_then(|s| Selector::from_label_selector(s).ok()),
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            counts: HashMap::new(),
        })
        .collect();
    if out.is_empty() {
        return out;
    }
    for node in cache.nodes() {
        if !pod.required_node_affinity.matches(&node.name, &node.labels)
            || !out.iter().all(|c| node.labels.contains_key(&c.key))
        {
            continue;
        }
        for c in out.iter_mut() {
            let matching = node
                .pods
                .iter()
                .filter(|p| {
                    p.namespace == pod.namespace
                        && p.pod.metadata.deletion_timestamp.is_none()
                        && c.matches(p)
                })
                .count() as i64;
            *c.counts.entry(node.labels[&c.key].clone()).or_default() += matching;
        }
    }
    out
}

/// The filter's constraints with their domain counts and minimums.
#[derive(Debug, Default)]
pub struct FilterState {
    constraints: Vec<(Constraint, i64)>,
}

/// Counts matching pods per domain for every DoNotSchedule constraint.
pub fn pre_filter(pod: &PodInfo, cache: &Cache) -> FilterState {
    let constraints = constraints(pod, "DoNotSchedule", cache)
        .into_iter()
        .map(|c| {
            let domains = c.counts.len() as i64;
            // Fewer domains than minDomains: the global minimum counts as zero.
            let min = if domains < c.min_domains {
                0
            } else {
                c.counts.values().copied().min().unwrap_or(0)
            };
            (c, min)
        })
        .collect();
    FilterState { constraints }
}

/// Filter: placing the pod here keeps every constraint's skew within maxSkew.
pub fn filter(state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
    for (c, min) in &state.spread.constraints {
        let Some(value) = node.labels.get(&c.key) else {
            return Err(Failure::unresolvable(ERR_MISSING_LABEL));
        };
        let own = i64::from(c.matches(pod));
        let here = c.counts.get(value).copied().unwrap_or(0);
        if here + own - min > c.max_skew {
            return Err(Failure::resolvable(ERR_SKEW));
        }
    }
    Ok(())
}

/// The score's constraints with their weights.
#[derive(Debug, Default)]
pub struct ScoreState {
    constraints: Vec<(Constraint, f64)>,
}

/// Counts matching pods per domain for every ScheduleAnyway constraint.
pub fn pre_score(pod: &PodInfo, cache: &Cache) -> ScoreState {
    let constraints = constraints(pod, "ScheduleAnyway", cache)
        .into_iter()
        .map(|c| {
            // Keys with more domains weigh more, as kube-scheduler's log(size + 2).
            let weight = ((c.counts.len() + 2) as f64).ln();
            (c, weight)
        })
        .collect();
    ScoreState { constraints }
}

/// Score (lower is better): weighted matching pods in the node's domains; -1 marks a node
/// lacking a topology key, which scores 0.
pub fn score(state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
    let cs = &state.spread_score.constraints;
    if cs.is_empty() {
        return 0;
    }
    let mut total = 0.0;
    for (c, weight) in cs {
        let Some(value) = node.labels.get(&c.key) else {
            return -1;
        };
        let n = c.counts.get(value).copied().unwrap_or(0);
        total += n as f64 * weight + (c.max_skew - 1) as f64;
    }
    total.round() as i64
}

/// Reverses and scales the scores so the least crowded domain gets 100.
pub fn normalize(state: &CycleState, scores: &mut [i64]) {
    if state.spread_score.constraints.is_empty() {
        return;
    }
    let counted = scores.iter().copied().filter(|s| *s >= 0);
    let min = counted.clone().min().unwrap_or(0);
    let max = counted.max().unwrap_or(0);
    for s in scores.iter_mut() {
        *s = if *s < 0 {
            0
        } else if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max + min - *s) / max
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_support::{cache_with, named_pod, zone_nodes};
    use serde_json::json;

    fn spread(when: &str, skew: i32, extra: serde_json::Value) -> serde_json::Value {
        let mut c = json!({"maxSkew": skew, "topologyKey": "zone", "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        json!({"topologySpreadConstraints": [c]})
    }

    fn run(cache: &Cache, pod: &PodInfo, node: &str) -> Result<(), Failure> {
        let state = CycleState {
            spread: pre_filter(pod, cache),
            ..CycleState::default()
        };
        filter(&state, pod, cache.node(node).unwrap())
    }

    #[test]
    fn max_skew_blocks_the_crowded_zone() {
        // Zone a (n1, n2) has one web pod, zone b (n3) none.
        let cache = cache_with(
            zone_nodes(),
            &[("w1", "n1", json!({"app": "web"}), json!({}))],
        );
        let p = named_pod(
            "w2",
            json!({"app": "web"}),
            spread("DoNotSchedule", 1, json!({})),
        );
        assert_eq!(
            run(&cache, &p, "n2").unwrap_err().reasons,
            vec![ERR_SKEW.to_string()]
        );
        assert!(run(&cache, &p, "n3").is_ok());
        let loose = named_pod(
            "w2",
            json!({"app": "web"}),
            spread("DoNotSchedule", 2, json!({})),
        );
        assert!(run(&cache, &loose, "n2").is_ok());
    }

    #[test]
    fn missing_key_and_min_domains() {
        let mut nodes = zone_nodes();
        nodes.push(("bare", json!({})));
        let cache = cache_with(nodes, &[("w1", "n3", json!({"app": "web"}), json!({}))]);
        let p = named_pod(
            "w2",
            json!({"app": "web"}),
            spread("DoNotSchedule", 1, json!({})),
        );
        assert_eq!(
            run(&cache, &p, "bare").unwrap_err().reasons,
            vec![ERR_MISSING_LABEL.to_string()]
        );
        assert!(run(&cache, &p, "n1").is_ok());
        // One web pod per zone: skew allows n1, unless minDomains 3 makes the minimum 0.
        let cache = cache_with(
            zone_nodes(),
            &[
                ("w0", "n1", json!({"app": "web"}), json!({})),
                ("w1", "n3", json!({"app": "web"}), json!({})),
            ],
        );
        assert!(run(&cache, &p, "n1").is_ok());
        let p = named_pod(
            "w2",
            json!({"app": "web"}),
            spread("DoNotSchedule", 1, json!({"minDomains": 3})),
        );
        assert!(run(&cache, &p, "n1").is_err());
        assert!(run(&cache, &p, "n3").is_err());
    }

    #[test]
    fn schedule_anyway_scores_emptier_zones_higher() {
        let cache = cache_with(
            zone_nodes(),
            &[
                ("w1", "n1", json!({"app": "web"}), json!({})),
                ("w2", "n2", json!({"app": "web"}), json!({})),
            ],
        );
        let p = named_pod(
            "w3",
            json!({"app": "web"}),
            spread("ScheduleAnyway", 1, json!({})),
        );
        let state = CycleState {
            spread_score: pre_score(&p, &cache),
            ..CycleState::default()
        };
        let mut scores: Vec<i64> = ["n1", "n3"]
            .iter()
            .map(|n| score(&state, &p, cache.node(n).unwrap()))
            .collect();
        assert!(scores[0] > scores[1]);
        normalize(&state, &mut scores);
        assert!(scores[1] > scores[0]);
        assert_eq!(scores[1], MAX_NODE_SCORE);
    }
}
