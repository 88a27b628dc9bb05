//! Output: server-side Tables printed as kubectl prints them, and objects as YAML, JSON or
//! `kind.group/name`.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{Map, Value};

/// How a Table is printed.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    /// `-o wide`: show columns of priority > 0.
    pub wide: bool,
    /// `-A`: a NAMESPACE column first.
    pub namespace_column: bool,
    /// `--show-labels`: a LABELS column last.
    pub show_labels: bool,
    /// `kind.group` put before names (`deployment.apps/web`) when several types print.
    pub kind_prefix: Option<String>,
    /// Leave the header row out (watch updates after the first table).
    pub no_headers: bool,
}

/// Lays out rows as Go's tabwriter does for kubectl: every column but the last padded to
/// its widest cell plus three spaces.
pub fn align(rows: &[Vec<String>]) -> String {
    align_remembering(rows, &mut Vec::new())
}

/// [`align`] with column widths carried over from earlier output and grown by these rows, as
/// kubectl's tabwriter (with `RememberWidths`) keeps `get -w` rows under their header.
pub fn align_remembering(rows: &[Vec<String>], widths: &mut Vec<usize>) -> String {
    for r in rows {
        if widths.len() < r.len() {
            widths.resize(r.len(), 0);
        }
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let pad = widths[i] + 3 - c.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The rows (header first unless left out) of a `meta.k8s.io/v1` Table.
pub fn table_rows(table: &Value, opts: &TableOptions) -> Vec<Vec<String>> {
    let columns: Vec<&Value> = table["columnDefinitions"]
        .as_array()
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let shown: Vec<usize> = (0..columns.len())
        .filter(|&i| opts.wide || columns[i]["priority"].as_i64().unwrap_or(0) == 0)
        .collect();
    let mut out = Vec::new();
    if !opts.no_headers {
        let mut header = Vec::new();
        if opts.namespace_column {
            header.push("NAMESPACE".to_string());
        }
        header.extend(shown.iter().map(|&i| {
            columns[i]["name"]
                .as_str()
                .unwrap_or_default()
                .to_uppercase()
        }));
        if opts.show_labels {
            header.push("LABELS".to_string());
        }
        out.push(header);
    }
    for row in table["rows"].as_array().into_iter().flatten() {
        let meta = &row["object"]["metadata"];
        let mut line = Vec::new();
        if opts.namespace_column {
            line.push(meta["namespace"].as_str().unwrap_or_default().to_string());
        }
        for &i in &shown {
            let mut cell = cell_text(&row["cells"][i]);
            if columns[i]["format"] == "name"
                && let Some(prefix) = &opts.kind_prefix
            {
                cell = format!("{prefix}/{cell}");
            }
            line.push(cell);
        }
        if opts.show_labels {
            line.push(format_labels(&meta["labels"]));
        }
        out.push(line);
    }
    out
}

/// One cell as kubectl shows it: strings bare, absent values `<none>`.
fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => "<none>".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `k=v,k2=v2` sorted by key, or `<none>`.
pub fn format_labels(labels: &Value) -> String {
    let Some(m) = labels.as_object().filter(|m| !m.is_empty()) else {
        return "<none>".to_string();
    };
    let sorted: BTreeMap<&String, &Value> = m.iter().collect();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A copy of `v` with every object's keys sorted, as kubectl's output has them.
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// YAML with sorted keys.
pub fn to_yaml(v: &Value) -> Result<String> {
    Ok(super::yaml_out::emit(&sorted(v)))
}

/// JSON with sorted keys and kubectl's four-space indent.
pub fn to_json(v: &Value) -> Result<String> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(&sorted(v), &mut ser)?;
    Ok(go_escape(&String::from_utf8(buf)?) + "\n")
}

/// Escapes what Go's JSON encoder escapes beyond serde_json (`<`, `>`, `&`, U+2028, U+2029);
/// these characters only occur inside strings in JSON text.
pub fn go_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// kubectl's wrapper for several objects: `kind: List`.
pub fn list_of(items: Vec<Value>) -> Value {
    serde_json::json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
}

/// kubectl's HumanDuration, as AGE columns show it.
pub fn human_duration(secs: i64) -> String {
    skiff_api::meta::human_duration(secs)
}

/// Age of an RFC 3339 timestamp, `<unknown>` when it cannot be read.
pub fn age(timestamp: Option<&str>) -> String {
    let Some(ts) = timestamp.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    human_duration(jiff::Timestamp::now().as_second() - ts.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployments_table() -> Value {
        json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "12"},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "priority": 0},
                {"name": "Ready", "type": "string", "format": "", "priority": 0},
                {"name": "Up-to-date", "type": "integer", "format": "", "priority": 0},
                {"name": "Age", "type": "string", "format": "", "priority": 0},
                {"name": "Containers", "type": "string", "format": "", "priority": 1}
            ],
            "rows": [
                {"cells": ["web", "2/2", 2, "5m", "web"],
                 "object": {"kind": "PartialObjectMetadata", "metadata": {"name": "web", "namespace": "default", "labels": {"tier": "front", "app": "web"}}}},
                {"cells": ["api-server", "0/1", 1, "10s", null],
                 "object": {"kind": "PartialObjectMetadata", "metadata": {"name": "api-server", "namespace": "prod"}}}
            ]
        })
    }

    #[test]
    fn tables_print_like_kubectl() {
        let out = align(&table_rows(&deployments_table(), &TableOptions::default()));
        assert_eq!(
            out,
            "NAME         READY   UP-TO-DATE   AGE\nweb          2/2     2            5m\napi-server   0/1     1            10s\n"
        );
    }

    #[test]
    fn wide_namespace_labels_and_kind_prefix() {
        let opts = TableOptions {
            wide: true,
            namespace_column: true,
            show_labels: true,
            kind_prefix: Some("deployment.apps".into()),
            no_headers: false,
        };
        let rows = table_rows(&deployments_table(), &opts);
        assert_eq!(
            rows[0],
            [
                "NAMESPACE",
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AGE",
                "CONTAINERS",
                "LABELS"
            ]
        );
        assert_eq!(
            rows[1],
            [
                "default",
                "deployment.apps/web",
                "2/2",
                "2",
                "5m",
                "web",
                "app=web,tier=front"
            ]
        );
        assert_eq!(rows[2][5], "<none>");
        assert_eq!(rows[2][6], "<none>");
    }

    #[test]
    fn watch_rows_keep_the_header_widths() {
        let mut widths = Vec::new();
        let head = align_remembering(
            &[vec!["NAME".into(), "DATA".into(), "AGE".into()]],
            &mut widths,
        );
        assert_eq!(head, "NAME   DATA   AGE\n");
        let row = align_remembering(
            &[vec!["a-long-name".into(), "0".into(), "1s".into()]],
            &mut widths,
        );
        assert_eq!(row, "a-long-name   0      1s\n");
        let row = align_remembering(&[vec!["b".into(), "1".into(), "2s".into()]], &mut widths);
        assert_eq!(row, "b             1      2s\n");
    }

    #[test]
    fn output_keys_are_sorted() {
        let v = json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"b": "2", "a": "1"}});
        assert_eq!(
            to_yaml(&v).unwrap(),
            "apiVersion: v1\ndata:\n  a: \"1\"\n  b: \"2\"\nkind: ConfigMap\n"
        );
        assert!(
            to_json(&v)
                .unwrap()
                .starts_with("{\n    \"apiVersion\": \"v1\",\n    \"data\": {\n        \"a\"")
        );
    }

    #[test]
    fn durations_match_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 120), "3h2m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(100 * 86400), "100d");
    }
}
