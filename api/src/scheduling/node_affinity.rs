//! Node selectors and node affinity as Kubernetes matches them
//! (k8s.io/component-helpers/scheduling/corev1/nodeaffinity): a pod's `nodeSelector` and
//! required node affinity as one [`RequiredNodeAffinity`], preferred terms as weights.
//!
//! Terms are parsed once (label requirements through [`Requirement::new`], with its checks)
//! and then matched against many nodes. A term that does not parse matches no node, as in
//! Kubernetes' lazy-error selector: `Gt`/`Lt` need exactly one integer value, `In`/`NotIn`
//! at least one value, `Exists`/`DoesNotExist` none; `matchFields` takes only `In`/`NotIn`
//! with exactly one value.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec,
    PreferredSchedulingTerm,
};

use crate::labels::{Operator, Requirement, Selector};

/// The one node field a `matchFields` requirement can name.
pub const NODE_NAME_FIELD: &str = "metadata.name";

/// One `matchFields` requirement: the field equals, or differs from, one value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    key: String,
    value: String,
    equal: bool,
}

impl FieldRequirement {
    fn parse(r: &NodeSelectorRequirement) -> Option<FieldRequirement> {
        let equal = match r.operator.as_str() {
            "In" => true,
            "NotIn" => false,
            _ => return None,
        };
        let [value] = r.values.as_deref().unwrap_or(&[]) else {
            return None;
        };
        Some(FieldRequirement {
            key: r.key.clone(),
            value: value.clone(),
            equal,
        })
    }

    fn matches(&self, node_name: &str) -> bool {
        // A node's field set holds only its name; any other field reads as empty.
        let have = if self.key == NODE_NAME_FIELD {
            node_name
        } else {
            ""
        };
        (have == self.value) == self.equal
    }
}

fn label_requirement(r: &NodeSelectorRequirement) -> Option<Requirement> {
    let operator = match r.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::GreaterThan,
        "Lt" => Operator::LessThan,
        _ => return None,
    };
    Requirement::new(&r.key, operator, r.values.clone().unwrap_or_default(), "").ok()
}

/// A parsed node selector term: expressions over labels and requirements on fields, ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    labels: Option<Selector>,
    fields: Vec<FieldRequirement>,
}

impl Term {
    /// The parsed term; `None` for an empty term or one that does not parse, both of which
    /// match no node.
    fn parse(term: &NodeSelectorTerm) -> Option<Term> {
        let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
        let fields = term.match_fields.as_deref().unwrap_or(&[]);
        if exprs.is_empty() && fields.is_empty() {
            return None;
        }
        let labels = if exprs.is_empty() {
            None
        } else {
            let requirements = exprs.iter().map(label_requirement).collect::<Option<_>>()?;
            Some(Selector { requirements })
        };
        let fields = fields
            .iter()
            .map(FieldRequirement::parse)
            .collect::<Option<_>>()?;
        Some(Term { labels, fields })
    }

    fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        // Kubernetes skips field requirements for a node without a name (no fields at all).
        self.labels.as_ref().is_none_or(|s| s.matches(labels))
            && (node_name.is_empty() || self.fields.iter().all(|f| f.matches(node_name)))
    }
}

/// A parsed `NodeSelector`: its terms, ORed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSelectorTerms {
    terms: Vec<Term>,
}

impl NodeSelectorTerms {
    /// Parses a node selector; terms that are empty or do not parse are dropped (they
    /// match nothing).
    pub fn new(selector: &NodeSelector) -> NodeSelectorTerms {
        NodeSelectorTerms {
            terms: selector
                .node_selector_terms
                .iter()
                .filter_map(Term::parse)
                .collect(),
        }
    }

    /// Whether any term matches a node with this name and these labels.
    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().any(|t| t.matches(node_name, labels))
    }
}

/// Whether a node with `node_name` and `labels` satisfies `selector` (parsing it each
/// time; parse once with [`NodeSelectorTerms::new`] to match many nodes).
pub fn node_selector_matches(
    selector: &NodeSelector,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    NodeSelectorTerms::new(selector).matches(node_name, labels)
}

fn node_affinity(spec: &PodSpec) -> Option<&NodeAffinity> {
    spec.affinity.as_ref()?.node_affinity.as_ref()
}

/// What a pod requires of its node's labels and name: `spec.nodeSelector` (every label
/// equal) and the required node affinity (`GetRequiredNodeAffinity`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequiredNodeAffinity {
    node_selector: BTreeMap<String, String>,
    affinity: Option<NodeSelectorTerms>,
}

impl RequiredNodeAffinity {
    /// Parses the requirements of a pod spec.
    pub fn of(spec: &PodSpec) -> RequiredNodeAffinity {
        let affinity = node_affinity(spec)
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(NodeSelectorTerms::new);
        RequiredNodeAffinity {
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            affinity,
        }
    }

    /// Whether a node with this name and these labels meets both requirements.
    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self
                .affinity
                .as_ref()
                .is_none_or(|a| a.matches(node_name, labels))
    }
}

/// A pod's preferred node affinity terms, parsed, with their weights.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreferredSchedulingTerms {
    terms: Vec<(Term, i64)>,
}

impl PreferredSchedulingTerms {
    /// Parses preferred terms; terms of weight 0, empty ones and ones that do not parse
    /// add nothing and are dropped.
    pub fn new(terms: &[PreferredSchedulingTerm]) -> PreferredSchedulingTerms {
        PreferredSchedulingTerms {
            terms: terms
                .iter()
                .filter(|t| t.weight != 0)
                .filter_map(|t| Some((Term::parse(&t.preference)?, i64::from(t.weight))))
                .collect(),
        }
    }

    /// The preferred terms of a pod spec.
    pub fn of(spec: &PodSpec) -> PreferredSchedulingTerms {
        let terms = node_affinity(spec)
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or(&[]);
        PreferredSchedulingTerms::new(terms)
    }

    /// The sum of the weights of the terms a node with this name and labels matches.
    pub fn score(&self, node_name: &str, labels: &BTreeMap<String, String>) -> i64 {
        self.terms
            .iter()
            .filter(|(t, _)| t.matches(node_name, labels))
            .map(|(_, w)| w)
            .sum()
    }
}

#[cfg(test)]
#[path = "node_affinity_tests.rs"]
mod tests;
