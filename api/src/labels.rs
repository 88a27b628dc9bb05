//! Label selectors: Kubernetes' `labels.Parse` grammar, matching, and conversion from the
//! API's `LabelSelector`.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use crate::validation::{is_qualified_name, is_valid_label_value};

mod parser;
#[cfg(test)]
mod tests;

/// A selector that could not be parsed or built; the message is worded like Kubernetes'.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// How a requirement compares a label's value with its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value`.
    Equals,
    /// `key==value` (same meaning as `Equals`).
    DoubleEquals,
    /// `key!=value`: the label is absent or differs.
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`: the label is absent or none of the values.
    NotIn,
    /// `key`: the label is present.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>n`: the label is an integer greater than n.
    GreaterThan,
    /// `key<n`: the label is an integer less than n.
    LessThan,
}

/// One clause of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The comparison.
    pub operator: Operator,
    /// The values, sorted and without duplicates.
    pub values: Vec<String>,
}

/// A conjunction of requirements; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    /// The requirements, sorted by key.
    pub requirements: Vec<Requirement>,
}

/// Joins several errors the way Kubernetes' aggregate error prints them.
fn aggregate(errs: Vec<String>) -> Result<(), SelectorError> {
    match errs.len() {
        0 => Ok(()),
        1 => Err(SelectorError(errs.into_iter().next().unwrap_or_default())),
        _ => Err(SelectorError(format!("[{}]", errs.join(", ")))),
    }
}

fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

fn go_string_list(vals: &[String]) -> String {
    format!(
        "[]string{{{}}}",
        vals.iter()
            .map(|v| go_quote(v))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Checks a key as Kubernetes' `validateLabelKey` does; `path` is the field path printed in
/// the message (`<nil>` when parsing a string).
pub(crate) fn validate_key(key: &str, path: &str) -> Result<(), String> {
    let errs = is_qualified_name(key);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{path}: Invalid value: {}: {}",
            go_quote(key),
            errs.join("; ")
        ))
    }
}

impl Requirement {
    /// Builds a requirement, checking key, operator arity and values as `NewRequirement`
    /// does. Values are sorted and deduplicated.
    pub fn new(
        key: &str,
        operator: Operator,
        values: Vec<String>,
        path: &str,
    ) -> Result<Requirement, SelectorError> {
        let mut errs = Vec::new();
        let key_path = if path.is_empty() {
            "key".to_string()
        } else {
            format!("{path}.key")
        };
        if let Err(e) = validate_key(key, &key_path) {
            errs.push(e);
        }
        let values_path = if path.is_empty() {
            "values".to_string()
        } else {
            format!("{path}.values")
        };
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => errs.push(format!(
                "{values_path}: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
                go_string_list(&values)
            )),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errs.push(format!(
                    "{values_path}: Invalid value: {}: exact-match compatibility requires one single value",
                    go_string_list(&values)
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(format!(
                "{values_path}: Invalid value: {}: values set must be empty for exists and does not exist",
                go_string_list(&values)
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "{values_path}: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                        go_string_list(&values)
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(format!(
                            "{values_path}[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                            go_quote(v)
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let msgs = is_valid_label_value(v);
            if !msgs.is_empty() {
                errs.push(format!(
                    "{values_path}[{i}][{key}]: Invalid value: {}: {}",
                    go_quote(v),
                    msgs.join("; ")
                ));
            }
        }
        aggregate(errs)?;
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// Whether a label set satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.key).map(String::as_str))
    }

    fn matches_value(&self, value: Option<&str>) -> bool {
        let contains = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => value.is_some_and(contains),
            Operator::NotEquals | Operator::NotIn => !value.is_some_and(contains),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let Some(want) = self.values.first().and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let joined = self.values.join(",");
        if matches!(self.operator, Operator::In | Operator::NotIn) {
            write!(f, "({joined})")
        } else {
            f.write_str(&joined)
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl Selector {
    /// Parses a selector string (`a=b,c in (x,y),!d`).
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let mut requirements = parser::parse(s)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements })
    }

    /// The selector that matches every object.
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// Whether the selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether a label set satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the labels of a JSON object (`metadata.labels`, possibly absent) match.
    pub fn matches_json(&self, labels: Option<&Value>) -> bool {
        let map = labels.and_then(Value::as_object);
        self.requirements
            .iter()
            .all(|r| r.matches_value(map.and_then(|m| m.get(&r.key)).and_then(Value::as_str)))
    }

    /// Converts an API `LabelSelector` (matchLabels and matchExpressions); an empty one
    /// matches everything.
    pub fn from_label_selector(sel: &LabelSelector) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::new(k, Operator::Equals, vec![v.clone()], "")?);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError(format!(
                        "{} is not a valid label selector operator",
                        go_quote(other)
                    )));
                }
            };
            let values = expr.values.clone().unwrap_or_default();
            requirements.push(Requirement::new(&expr.key, operator, values, "")?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements })
    }
}
