//! One scheduling cycle: pre-filter state, filters over a rotating sample of nodes, weighted
//! and normalised scores, host selection, and the Kubernetes-worded failure summary.

use std::collections::BTreeMap;
use std::fmt;

use rand::Rng;

use crate::cache::{Cache, NodeInfo};
use crate::plugins::{self, FILTERS, SCORES};
use crate::podinfo::PodInfo;

/// The highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;
/// Below this many nodes every node is evaluated (kube-scheduler's minFeasibleNodesToFind).
const MIN_FEASIBLE_NODES: usize = 100;

/// Why one node rejected the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Reasons as Kubernetes words them (`Insufficient cpu`).
    pub reasons: Vec<String>,
    /// Whether evicting pods could help (false for taints, selectors, ...).
    pub resolvable: bool,
}

impl Failure {
    /// A failure that removing pods from the node cannot fix.
    pub fn unresolvable(reason: impl Into<String>) -> Failure {
        Failure {
            reasons: vec![reason.into()],
            resolvable: false,
        }
    }

    /// A failure that removing pods from the node could fix.
    pub fn resolvable(reason: impl Into<String>) -> Failure {
        Failure {
            reasons: vec![reason.into()],
            resolvable: true,
        }
    }
}

/// Per-cycle state computed once per pod before filtering and scoring.
#[derive(Debug, Default)]
pub struct CycleState {
    /// Inter-pod affinity counts for the filter.
    pub interpod: plugins::interpod::FilterState,
    /// Inter-pod affinity weights for the score.
    pub interpod_score: plugins::interpod::ScoreState,
    /// Topology spread counts for the filter.
    pub spread: plugins::spread::FilterState,
    /// Topology spread counts for the score.
    pub spread_score: plugins::spread::ScoreState,
    /// Image spread facts for the image locality score.
    pub images: plugins::image::ScoreState,
    /// The pod's claims and their volumes.
    pub volumes: plugins::volume_binding::FilterState,
}

impl CycleState {
    /// Computes the state every filter needs for `pod`.
    pub fn pre_filter(pod: &PodInfo, cache: &Cache) -> CycleState {
        CycleState {
            interpod: plugins::interpod::pre_filter(pod, cache),
            spread: plugins::spread::pre_filter(pod, cache),
            volumes: plugins::volume_binding::pre_filter(pod, cache),
            ..CycleState::default()
        }
    }

    /// Computes the state the scores need.
    pub fn pre_score(&mut self, pod: &PodInfo, cache: &Cache) {
        self.interpod_score = plugins::interpod::pre_score(pod, cache);
        self.spread_score = plugins::spread::pre_score(pod, cache);
        self.images = plugins::image::pre_score(pod, cache);
    }
}

/// A filter plugin.
pub type FilterFn = fn(&CycleState, &PodInfo, &NodeInfo) -> Result<(), Failure>;
/// A score plugin's raw score.
pub type ScoreFn = fn(&CycleState, &PodInfo, &NodeInfo) -> i64;

/// How a score plugin's raw scores become 0–100.
#[derive(Debug, Clone, Copy)]
pub enum Normalize {
    /// Already 0–100.
    None,
    /// Scaled by the highest score; `reverse` makes lower raw scores better.
    Max {
        /// Lower raw scores are better.
        reverse: bool,
    },
    /// A plugin-specific normalisation.
    Custom(fn(&CycleState, &mut [i64])),
}

/// A named, weighted score plugin.
pub struct ScorePlugin {
    /// Plugin name (as in kube-scheduler).
    pub name: &'static str,
    /// Raw score.
    pub score: ScoreFn,
    /// Normalisation.
    pub normalize: Normalize,
    /// Weight in the total.
    pub weight: i64,
}

/// Kubernetes' DefaultNormalizeScore.
pub fn normalize_by_max(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for s in scores.iter_mut() {
        *s = match (max, reverse) {
            (0, true) => MAX_NODE_SCORE,
            (0, false) => 0,
            (m, false) => *s * MAX_NODE_SCORE / m,
            (m, true) => MAX_NODE_SCORE - *s * MAX_NODE_SCORE / m,
        };
    }
}

/// Where a pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The chosen node.
    pub node: String,
    /// How many nodes were filtered.
    pub evaluated: usize,
    /// How many of them fit.
    pub feasible: usize,
    /// `(namespace, name)` of the claims to annotate with the node before binding.
    pub claims_to_select: Vec<(String, String)>,
}

/// A pod that fits no node, with the per-reason node counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FitError {
    /// Nodes considered.
    pub num_nodes: usize,
    /// Reason → how many nodes gave it.
    pub reasons: BTreeMap<String, usize>,
    /// Nodes whose failure preemption could not fix.
    pub unresolvable_nodes: usize,
    /// Nodes whose failure preemption could fix.
    pub resolvable_nodes: usize,
    /// Why a PreFilter plugin turned the pod away before any node was looked at.
    pub pre_filter: Option<String>,
}

fn histogram(items: impl Iterator<Item = (String, usize)>) -> String {
    // Kubernetes sorts the "<count> <reason>" strings themselves.
    let mut parts: Vec<String> = items.map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_nodes)?;
        if let Some(msg) = &self.pre_filter {
            write!(f, " {msg}.")?;
        }
        let filters = histogram(self.reasons.iter().map(|(r, n)| (r.clone(), *n)));
        if !filters.is_empty() {
            write!(f, " {filters}.")?;
        }
        // There is no preemption here; this is what DefaultPreemption reports when no
        // lower-priority victims exist.
        let mut preemption = Vec::new();
        if self.unresolvable_nodes > 0 {
            preemption.push((
                "Preemption is not helpful for scheduling".to_string(),
                self.unresolvable_nodes,
            ));
        }
        if self.resolvable_nodes > 0 {
            preemption.push((
                "No preemption victims found for incoming pod".to_string(),
                self.resolvable_nodes,
            ));
        }
        write!(
            f,
            " preemption: 0/{} nodes are available: {}.",
            self.num_nodes,
            histogram(preemption.into_iter())
        )
    }
}

impl std::error::Error for FitError {}

/// How many feasible nodes to look for before stopping (kube-scheduler's adaptive
/// percentageOfNodesToScore).
pub fn nodes_to_find(all: usize, percentage: Option<u32>) -> usize {
    if all < MIN_FEASIBLE_NODES {
        return all;
    }
    let pct = match percentage {
        Some(p) if p > 0 => p.min(100) as usize,
        _ => 50usize.saturating_sub(all / 125).max(5),
    };
    (all * pct / 100).max(MIN_FEASIBLE_NODES)
}

/// The scheduling algorithm: remembers where the last search stopped so successive pods
/// sample different nodes.
#[derive(Debug, Default)]
pub struct Algorithm {
    next_start: usize,
    /// Fixed percentage of nodes to score; `None` for the adaptive default.
    pub percentage: Option<u32>,
}

impl Algorithm {
    /// An algorithm scoring `percentage` of the nodes (`None`: kube-scheduler's adaptive value).
    pub fn new(percentage: Option<u32>) -> Algorithm {
        Algorithm {
            next_start: 0,
            percentage,
        }
    }

    /// Finds a node for the pod.
    pub fn schedule(&mut self, pod: &PodInfo, cache: &Cache) -> Result<Decision, FitError> {
        let names = cache.node_names();
        let all = names.len();
        if all == 0 {
            return Err(FitError::default());
        }
        let mut state = CycleState::pre_filter(pod, cache);
        if let Some(reason) = state.volumes.rejection.clone() {
            return Err(FitError {
                num_nodes: all,
                unresolvable_nodes: all,
                pre_filter: Some(reason),
                ..FitError::default()
            });
        }
        let want = nodes_to_find(all, self.percentage);
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(all));
        let mut err = FitError {
            num_nodes: all,
            ..FitError::default()
        };
        let mut evaluated = 0;
        for i in 0..all {
            let Some(node) = cache.node(&names[(self.next_start + i) % all]) else {
                continue;
            };
            evaluated += 1;
            match FILTERS.iter().try_for_each(|(_, f)| f(&state, pod, node)) {
                Ok(()) => {
                    feasible.push(node);
                    if feasible.len() >= want {
                        break;
                    }
                }
                Err(failure) => {
                    for r in failure.reasons {
                        *err.reasons.entry(r).or_default() += 1;
                    }
                    if failure.resolvable {
                        err.resolvable_nodes += 1;
                    } else {
                        err.unresolvable_nodes += 1;
                    }
                }
            }
        }
        self.next_start = (self.next_start + evaluated) % all;
        if feasible.is_empty() {
            return Err(err);
        }
        let node = if feasible.len() == 1 {
            feasible[0].name.clone()
        } else {
            state.pre_score(pod, cache);
            select_host(&state, pod, &feasible)
        };
        Ok(Decision {
            node,
            evaluated,
            feasible: feasible.len(),
            claims_to_select: state.volumes.claims_to_select(),
        })
    }
}

/// The total weighted score of every feasible node.
pub fn total_scores(state: &CycleState, pod: &PodInfo, nodes: &[&NodeInfo]) -> Vec<i64> {
    let mut total = vec![0i64; nodes.len()];
    let mut raw = vec![0i64; nodes.len()];
    for plugin in SCORES {
        for (slot, node) in raw.iter_mut().zip(nodes) {
            *slot = (plugin.score)(state, pod, node);
        }
        match plugin.normalize {
            Normalize::None => {}
            Normalize::Max { reverse } => normalize_by_max(&mut raw, reverse),
            Normalize::Custom(f) => f(state, &mut raw),
        }
        for (t, s) in total.iter_mut().zip(&raw) {
            *t += s * plugin.weight;
        }
    }
    total
}

fn select_host(state: &CycleState, pod: &PodInfo, nodes: &[&NodeInfo]) -> String {
    let total = total_scores(state, pod, nodes);
    let mut rng = rand::rng();
    let mut best = 0;
    let mut ties = 0u32;
    for (i, s) in total.iter().enumerate() {
        if *s > total[best] {
            best = i;
            ties = 1;
        } else if *s == total[best] {
            // Reservoir sampling: each tied node is equally likely.
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    nodes[best].name.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_matches_kubernetes_wording() {
        let mut e = FitError {
            num_nodes: 3,
            unresolvable_nodes: 1,
            resolvable_nodes: 2,
            ..FitError::default()
        };
        e.reasons
            .insert("node(s) had untolerated taint {key: value}".into(), 1);
        e.reasons.insert("Insufficient cpu".into(), 2);
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, 2 Insufficient cpu. \
             preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
             2 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn algorithm_picks_a_fitting_node_or_summarises_failures() {
        use crate::plugins::test_support::{cache_with, named_pod};
        use serde_json::json;
        let cache = cache_with(
            vec![
                ("n1", json!({"zone": "a"})),
                ("n2", json!({"zone": "b"})),
                ("n3", json!({"zone": "b"})),
            ],
            &[],
        );
        let mut alg = Algorithm::new(None);
        let p = named_pod("p", json!({}), json!({"nodeSelector": {"zone": "a"}}));
        let d = alg.schedule(&p, &cache).unwrap();
        assert_eq!((d.node.as_str(), d.evaluated, d.feasible), ("n1", 3, 1));
        let big = named_pod(
            "big",
            json!({}),
            json!({"nodeSelector": {"zone": "b"}, "containers": [{"name": "c", "resources": {"requests": {"cpu": "9"}}}]}),
        );
        let err = alg.schedule(&big, &cache).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu. \
             preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
             2 No preemption victims found for incoming pod."
        );
        assert_eq!(
            alg.schedule(&p, &Cache::new()).unwrap_err().to_string(),
            "no nodes available to schedule pods"
        );
    }

    #[test]
    fn adaptive_sample_size() {
        assert_eq!(nodes_to_find(50, None), 50);
        assert_eq!(nodes_to_find(1000, None), 420);
        assert_eq!(nodes_to_find(5000, None), 500);
        assert_eq!(nodes_to_find(200, Some(10)), 100);
        assert_eq!(nodes_to_find(1000, Some(100)), 1000);
    }

    #[test]
    fn default_normalisation() {
        let mut s = vec![0, 5, 10];
        normalize_by_max(&mut s, false);
        assert_eq!(s, vec![0, 50, 100]);
        let mut s = vec![0, 1, 2];
        normalize_by_max(&mut s, true);
        assert_eq!(s, vec![100, 50, 0]);
        let mut s = vec![0, 0];
        normalize_by_max(&mut s, true);
        assert_eq!(s, vec![100, 100]);
    }
}
