//! Validation of a custom object against its version's structural schema, worded as
//! kube-apiserver's (kube-openapi's validate errors turned into field errors): types and
//! formats, enum, required, nullable, numeric bounds, lengths, patterns, item and property
//! counts, `x-kubernetes-int-or-string`, embedded resources and list types.

use std::collections::BTreeSet;
use std::sync::{LazyLock, Mutex};

use regex::Regex;
use serde_json::{Value, json};

use crate::error::Cause;

/// Every cause `value` (at `path`) breaks against `schema`.
pub fn validate(schema: &Value, value: &Value, path: &str, out: &mut Vec<Cause>) {
    if value.is_null() {
        let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
        if let Some(ty) = ty(schema).filter(|_| !nullable) {
            out.push(type_error(path, ty, "null"));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(value.is_string() || is_integer(value)) {
            let got = json_type(value);
            out.push(Cause::invalid(
                path,
                &json!(got),
                format!("{path} in body must be of type integer,string: {got:?}"),
            ));
            return;
        }
    } else if let Some(want) = ty(schema)
        && !matches_type(want, value)
    {
        out.push(type_error(path, want, json_type(value)));
        return;
    }
    if let Some(choices) = schema.get("enum").and_then(Value::as_array)
        && !choices.contains(value)
    {
        let rendered: Vec<String> = choices.iter().map(crate::error::render_value).collect();
        out.push(Cause {
            reason: "FieldValueNotSupported",
            field: path.into(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                crate::error::render_value(value),
                rendered.join(", ")
            ),
        });
    }
    match value {
        Value::Number(n) => numeric(schema, n.as_f64().unwrap_or(0.0), value, path, out),
        Value::String(s) => string(schema, s, path, out),
        Value::Array(items) => array(schema, items, path, out),
        Value::Object(fields) => object(schema, fields, path, out),
        _ => {}
    }
}

fn numeric(schema: &Value, n: f64, value: &Value, path: &str, out: &mut Vec<Cause>) {
    let excl = |k: &str| schema.get(k).and_then(Value::as_bool) == Some(true);
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let (bad, word) = match excl("exclusiveMaximum") {
            true => (n >= max, "less than"),
            false => (n > max, "less than or equal to"),
        };
        if bad {
            out.push(Cause::invalid(
                path,
                value,
                format!("{path} in body should be {word} {}", number(max)),
            ));
        }
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let (bad, word) = match excl("exclusiveMinimum") {
            true => (n <= min, "greater than"),
            false => (n < min, "greater than or equal to"),
        };
        if bad {
            out.push(Cause::invalid(
                path,
                value,
                format!("{path} in body should be {word} {}", number(min)),
            ));
        }
    }
    if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64)
        && m > 0.0
        && (n / m).fract() != 0.0
    {
        out.push(Cause::invalid(
            path,
            value,
            format!("{path} in body should be a multiple of {}", number(m)),
        ));
    }
}

fn string(schema: &Value, s: &str, path: &str, out: &mut Vec<Cause>) {
    let v = json!(s);
    let chars = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        out.push(Cause {
            reason: "FieldValueTooLong",
            field: path.into(),
            message: format!("Too long: may not be more than {max} bytes"),
        });
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        out.push(Cause::invalid(
            path,
            &v,
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str)
        && !pattern_matches(p, s)
    {
        out.push(Cause::invalid(
            path,
            &v,
            format!("{path} in body should match '{p}'"),
        ));
    }
    if let Some(f) = schema.get("format").and_then(Value::as_str)
        && !super::format::matches(f, s)
    {
        out.push(Cause::invalid(
            path,
            &v,
            format!("{path} in body must be of type {f}: {s:?}"),
        ));
    }
}

fn array(schema: &Value, items: &[Value], path: &str, out: &mut Vec<Cause>) {
    count_bounds(
        schema,
        ("maxItems", "minItems", "items"),
        items.len(),
        path,
        out,
    );
    if let Some(item) = schema.get("items") {
        for (i, v) in items.iter().enumerate() {
            validate(item, v, &format!("{path}[{i}]"), out);
        }
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            let mut seen = BTreeSet::new();
            for (i, v) in items.iter().enumerate() {
                if !seen.insert(v.to_string()) {
                    out.push(Cause::duplicate(format!("{path}[{i}]"), v));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut seen = BTreeSet::new();
            for (i, v) in items.iter().enumerate() {
                let key: serde_json::Map<String, Value> = keys
                    .iter()
                    .filter_map(|k| v.get(*k).map(|x| (k.to_string(), x.clone())))
                    .collect();
                let key = Value::Object(key);
                if !seen.insert(key.to_string()) {
                    out.push(Cause::duplicate(format!("{path}[{i}]"), &key));
                }
            }
        }
        _ => {}
    }
}

fn object(
    schema: &Value,
    fields: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<Cause>,
) {
    let child = |k: &str| match path {
        "" => k.to_string(),
        p => format!("{p}.{k}"),
    };
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !fields.contains_key(r) {
            out.push(Cause::required(child(r)));
        }
    }
    count_bounds(
        schema,
        ("maxProperties", "minProperties", "properties"),
        fields.len(),
        path,
        out,
    );
    let embedded = flag(schema, "x-kubernetes-embedded-resource");
    if embedded {
        for f in ["apiVersion", "kind"] {
            if fields
                .get(f)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                out.push(Cause::required(child(f)));
            }
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, v) in fields {
        // An embedded object's type and metadata follow ObjectMeta's rules, not the schema.
        if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
            validate(s, v, &child(k), out);
        }
    }
}

/// `maxItems`/`minItems` (or the property counts) of a collection of `n` members.
fn count_bounds(
    schema: &Value,
    (max_key, min_key, noun): (&str, &str, &str),
    n: usize,
    path: &str,
    out: &mut Vec<Cause>,
) {
    let n = n as u64;
    if let Some(max) = schema.get(max_key).and_then(Value::as_u64)
        && n > max
    {
        out.push(Cause {
            reason: "FieldValueTooMany",
            field: path.into(),
            message: format!("Too many: {n}: must have at most {max} items"),
        });
    }
    if let Some(min) = schema.get(min_key).and_then(Value::as_u64)
        && n < min
    {
        out.push(Cause::invalid(
            path,
            &json!(n),
            format!("{path} in body should have at least {min} {noun}"),
        ));
    }
}

fn type_error(path: &str, want: &str, got: &str) -> Cause {
    Cause::invalid(
        path,
        &json!(got),
        format!("{path} in body must be of type {want}: {got:?}"),
    )
}

fn ty(schema: &Value) -> Option<&str> {
    schema
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
}

fn flag(s: &Value, name: &str) -> bool {
    s.get(name).and_then(Value::as_bool) == Some(true)
}

fn is_integer(v: &Value) -> bool {
    v.as_i64().is_some() || v.as_u64().is_some() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn matches_type(want: &str, v: &Value) -> bool {
    match want {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => is_integer(v),
        _ => true,
    }
}

/// The JSON type name kube-openapi reports for a value.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A bound as Go's `%v` prints a float64: integers without a fraction.
fn number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

/// Whether `s` matches the schema pattern (compiled once per distinct pattern; a pattern
/// that does not compile matches nothing, as the definition's validation refuses it).
fn pattern_matches(pattern: &str, s: &str) -> bool {
    static CACHE: LazyLock<Mutex<std::collections::HashMap<String, Option<Regex>>>> =
        LazyLock::new(Default::default);
    let mut cache = CACHE.lock().expect("pattern cache lock");
    let re = cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok());
    re.as_ref().is_some_and(|r| r.is_match(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(schema: Value, value: Value) -> Vec<String> {
        let mut out = Vec::new();
        validate(&schema, &value, "", &mut out);
        out.into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    fn spec(props: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}})
    }

    #[test]
    fn type_errors_are_worded_as_kubernetes() {
        let errs = check(
            spec(json!({"replicas": {"type": "integer"}})),
            json!({"spec": {"replicas": "string"}}),
        );
        assert_eq!(
            errs,
            [
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
            ]
        );
    }

    #[test]
    fn bounds_enum_required_lengths_and_patterns() {
        let s = spec(json!({
            "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "name": {"type": "string", "minLength": 3, "maxLength": 5, "pattern": "^[a-z]+$"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 1, "x-kubernetes-list-type": "set"},
        }));
        let mut with_required = s.clone();
        with_required["properties"]["spec"]["required"] = json!(["mode"]);
        let errs = check(
            with_required,
            json!({"spec": {"replicas": 20, "name": "AB", "tags": ["x", "x"]}}),
        );
        assert_eq!(
            errs,
            [
                "spec.mode: Required value",
                "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10",
                "spec.name: Invalid value: \"AB\": spec.name in body should be at least 3 chars long",
                "spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'",
                "spec.tags: Too many: 2: must have at most 1 items",
                "spec.tags[1]: Duplicate value: \"x\"",
            ]
        );
        let errs = check(s, json!({"spec": {"mode": "c"}}));
        assert_eq!(
            errs,
            [r#"spec.mode: Unsupported value: "c": supported values: "a", "b""#]
        );
    }

    #[test]
    fn int_or_string_nullable_and_embedded_resources() {
        let s = spec(json!({
            "port": {"x-kubernetes-int-or-string": true},
            "note": {"type": "string", "nullable": true},
            "other": {"type": "string"},
            "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                         "x-kubernetes-preserve-unknown-fields": true},
        }));
        assert!(check(s.clone(), json!({"spec": {"port": 80, "note": null}})).is_empty());
        assert!(check(s.clone(), json!({"spec": {"port": "http"}})).is_empty());
        let errs = check(
            s,
            json!({"spec": {"port": true, "other": null, "template": {"kind": "Pod"}}}),
        );
        assert_eq!(
            errs,
            [
                r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
                r#"spec.other: Invalid value: "null": spec.other in body must be of type string: "null""#,
                "spec.template.apiVersion: Required value",
            ]
        );
    }
}
