//! Shared table helpers: column constructors, ages as Kubernetes' `HumanDuration` prints
//! them, label and selector strings, and the fallback strategy (Name, Age) for kinds
//! without their own printer.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use super::{Column, Strategy};

/// The `Name` column every kind prints first.
pub(super) const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
};

/// The `Age` column.
pub(super) const AGE: Column = Column {
    name: "Age",
    kind: "string",
    format: "",
    priority: 0,
    description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.",
};

/// A default-priority column.
pub(super) const fn col(
    name: &'static str,
    kind: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority: 0,
        description,
    }
}

/// A column shown only with `-o wide`.
pub(super) const fn wide(
    name: &'static str,
    kind: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority: 1,
        description,
    }
}

/// Formats a duration as Kubernetes' `duration.HumanDuration` does (see
/// `skiff_api::meta::human_duration`).
pub fn human_duration(d: jiff::SignedDuration) -> String {
    skiff_api::meta::human_duration(d.as_secs())
}

/// Time since an RFC 3339 timestamp, as `translateTimestampSince` prints it
/// (`<unknown>` when absent or unparseable).
pub fn since(timestamp: Option<&str>, now: Timestamp) -> String {
    match timestamp.and_then(|t| t.parse::<Timestamp>().ok()) {
        Some(t) => human_duration(now.duration_since(t)),
        None => "<unknown>".into(),
    }
}

/// The Age cell of an object.
pub fn age(obj: &Value, now: Timestamp) -> Value {
    json!(since(
        obj.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str),
        now
    ))
}

/// The object's name cell.
pub fn name(obj: &Value) -> Value {
    json!(
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

/// `k1=v1,k2=v2` as `labels.FormatLabels` prints a map (sorted; `<none>` when empty).
pub fn format_labels(labels: Option<&BTreeMap<String, String>>) -> String {
    match labels {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

/// A label selector as `metav1.LabelSelectorAsSelector(..).String()` prints it:
/// requirements sorted by key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
pub fn format_selector(sel: Option<&LabelSelector>) -> String {
    // A nil selector is `labels.Nothing()`, which prints as the empty string.
    let Some(sel) = sel else { return String::new() };
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        reqs.push((k.clone(), format!("{k}={v}")));
    }
    for e in sel.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other}", e.key),
        };
        reqs.push((e.key.clone(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// Joins at most `max` items with `,`, adding ` + N more...` as Kubernetes' printers do;
/// `empty` when there is nothing.
pub fn list_with_more(items: &[String], max: usize, empty: &str) -> String {
    if items.is_empty() {
        return empty.into();
    }
    let shown = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if items.len() > max {
        format!("{shown} + {} more...", items.len() - max)
    } else {
        shown
    }
}

/// Kinds without a printer of their own: Name and Age.
pub struct GenericStrategy;

impl Strategy for GenericStrategy {
    fn columns(&self) -> Vec<Column> {
        vec![NAME, AGE]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        vec![name(obj), age(obj, Timestamp::now())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    fn h(secs: i64) -> String {
        human_duration(SignedDuration::from_secs(secs))
    }

    #[test]
    fn human_duration_matches_kubernetes() {
        assert_eq!(h(-5), "<invalid>");
        assert_eq!(h(-1), "0s");
        assert_eq!(h(5), "5s");
        assert_eq!(h(119), "119s");
        assert_eq!(h(200), "3m20s");
        assert_eq!(h(180), "3m");
        assert_eq!(h(12 * 60 + 7), "12m");
        assert_eq!(h(179 * 60), "179m");
        assert_eq!(h(5 * 3600 + 3 * 60), "5h3m");
        assert_eq!(h(5 * 3600), "5h");
        assert_eq!(h(30 * 3600), "30h");
        assert_eq!(h(3 * 86400 + 5 * 3600), "3d5h");
        assert_eq!(h(3 * 86400), "3d");
        assert_eq!(h(45 * 86400), "45d");
        assert_eq!(h(800 * 86400), "2y70d");
        assert_eq!(h(9 * 365 * 86400), "9y");
    }

    #[test]
    fn since_handles_missing_and_present_timestamps() {
        let now: Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        assert_eq!(since(Some("2024-01-01T00:00:00Z"), now), "10m");
        assert_eq!(since(None, now), "<unknown>");
        assert_eq!(since(Some("garbage"), now), "<unknown>");
    }

    #[test]
    fn selectors_print_like_kubernetes() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [
                {"key": "c", "operator": "In", "values": ["y", "x"]},
                {"key": "d", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        assert_eq!(format_selector(Some(&sel)), "a=1,b=2,c in (x,y),!d");
        assert_eq!(format_selector(None), "");
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn lists_are_truncated() {
        let items: Vec<String> = (1..=5).map(|i| i.to_string()).collect();
        assert_eq!(list_with_more(&items, 3, "<none>"), "1,2,3 + 2 more...");
        assert_eq!(list_with_more(&items[..2], 3, "<none>"), "1,2");
        assert_eq!(list_with_more(&[], 3, "<unset>"), "<unset>");
    }
}
