//! The structural schema rules of apiextensions' `structural/validation.go`: every specified
//! field has a type, arrays have items, the root is an object, `metadata` may only restrict
//! `name` and `generateName`, `x-kubernetes-*` extensions are consistent, and the OpenAPI
//! subset a CRD may use (no `uniqueItems`, `properties` xor `additionalProperties`).

use serde_json::{Value, json};

use crate::error::Cause;

const TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

/// Every cause the schema at `path` (a version's `openAPIV3Schema`) breaks.
pub fn validate_schema(schema: &Value, path: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    match schema.get("type").and_then(Value::as_str) {
        None | Some("") => out.push(Cause::required_detail(
            format!("{path}.type"),
            "must not be empty at the root",
        )),
        Some("object") => {}
        Some(t) => out.push(Cause::invalid(
            format!("{path}.type"),
            &json!(t),
            "must be object at the root",
        )),
    }
    if let Some(meta) = schema.pointer("/properties/metadata") {
        let only_names = meta.as_object().is_some_and(|m| {
            m.iter().all(|(k, v)| match k.as_str() {
                "type" => v == "object",
                "properties" => v
                    .as_object()
                    .is_some_and(|p| p.keys().all(|k| k == "name" || k == "generateName")),
                "description" => true,
                _ => false,
            })
        });
        if !only_names {
            out.push(Cause::forbidden(
                format!("{path}.properties[metadata]"),
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    node(schema, path, &mut out);
    out
}

/// Rules for one schema node and, recursively, its children.
fn node(s: &Value, path: &str, out: &mut Vec<Cause>) {
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    if !ty.is_empty() && !TYPES.contains(&ty) {
        out.push(Cause::not_supported(
            format!("{path}.type"),
            &json!(ty),
            TYPES,
        ));
    }
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(false)) {
        out.push(Cause::invalid(
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            &json!(false),
            "must be true or undefined",
        ));
    }
    if int_or_string && !ty.is_empty() {
        out.push(Cause::invalid(
            format!("{path}.type"),
            &json!(ty),
            "must be empty if x-kubernetes-int-or-string is true",
        ));
    }
    if flag(s, "x-kubernetes-embedded-resource") && ty != "object" {
        out.push(Cause::invalid(
            format!("{path}.type"),
            &json!(ty),
            "must be object if x-kubernetes-embedded-resource is true",
        ));
    }
    if s.get("uniqueItems") == Some(&json!(true)) {
        out.push(Cause::forbidden(
            format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let props = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties");
    if props.is_some_and(|p| !p.is_empty())
        && additional.is_some_and(|a| a.is_object() || a == &json!(false))
    {
        out.push(Cause::forbidden(
            format!("{path}.additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    for (k, child) in props.into_iter().flatten() {
        let at = format!("{path}.properties[{k}]");
        child_type(
            child,
            &at,
            "must not be empty for specified object fields",
            out,
        );
        node(child, &at, out);
    }
    if let Some(a) = additional.filter(|a| a.is_object()) {
        let at = format!("{path}.additionalProperties");
        child_type(a, &at, "must not be empty for specified object fields", out);
        node(a, &at, out);
    }
    if ty == "array" {
        match s.get("items") {
            Some(items) if items.is_object() => {
                let at = format!("{path}.items");
                child_type(
                    items,
                    &at,
                    "must not be empty for specified array items",
                    out,
                );
                node(items, &at, out);
            }
            _ => out.push(Cause::required_detail(
                format!("{path}.items"),
                "must be specified",
            )),
        }
    }
    for list in ["allOf", "anyOf", "oneOf"] {
        for (i, sub) in s
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            node(sub, &format!("{path}.{list}[{i}]"), out);
        }
    }
    validate_list_type(s, path, out);
}

/// A child schema must name its type unless it is int-or-string or preserves unknown fields.
fn child_type(s: &Value, path: &str, detail: &str, out: &mut Vec<Cause>) {
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
    if ty.is_empty()
        && !flag(s, "x-kubernetes-int-or-string")
        && !flag(s, "x-kubernetes-preserve-unknown-fields")
    {
        out.push(Cause::required_detail(format!("{path}.type"), detail));
    }
}

fn validate_list_type(s: &Value, path: &str, out: &mut Vec<Cause>) {
    let Some(lt) = s.get("x-kubernetes-list-type").and_then(Value::as_str) else {
        if s.get("x-kubernetes-list-map-keys").is_some() {
            out.push(Cause::forbidden(
                format!("{path}.x-kubernetes-list-map-keys"),
                "must only be set if x-kubernetes-list-type is map",
            ));
        }
        return;
    };
    const LIST_TYPES: &[&str] = &["atomic", "set", "map"];
    if !LIST_TYPES.contains(&lt) {
        out.push(Cause::not_supported(
            format!("{path}.x-kubernetes-list-type"),
            &json!(lt),
            LIST_TYPES,
        ));
    }
    if s.get("type").and_then(Value::as_str) != Some("array") {
        out.push(Cause::invalid(
            format!("{path}.type"),
            s.get("type").unwrap_or(&Value::Null),
            "must be array if x-kubernetes-list-type is specified",
        ));
    }
    let keys = s
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array);
    if lt == "map" && keys.is_none_or(|k| k.is_empty()) {
        out.push(Cause::required_detail(
            format!("{path}.x-kubernetes-list-map-keys"),
            "must not be empty if x-kubernetes-list-type is map",
        ));
    }
    if lt != "map" && keys.is_some() {
        out.push(Cause::forbidden(
            format!("{path}.x-kubernetes-list-map-keys"),
            "must only be set if x-kubernetes-list-type is map",
        ));
    }
}

fn flag(s: &Value, name: &str) -> bool {
    s.get(name).and_then(Value::as_bool) == Some(true)
}
