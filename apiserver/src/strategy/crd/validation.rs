//! `ValidateCustomResourceDefinition` and its update rules, worded as kube-apiserver's
//! apiextensions validation: the name `<plural>.<group>`, group, scope, names, versions with
//! exactly one storage version, a structural schema per version, printer columns,
//! subresources and conversion.

use crate::custom::str_at;
use serde_json::{Value, json};
use skiff_api::validation::{is_dns1035_label, is_dns1123_subdomain};

use super::structural::validate_schema;
use crate::error::Cause;

const SCOPES: &[&str] = &["Cluster", "Namespaced"];
const COLUMN_TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];

/// Every cause of an invalid definition (create and update alike).
pub fn validate_definition(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let (group, plural) = (
        str_at(obj, "/spec/group"),
        str_at(obj, "/spec/names/plural"),
    );
    let name = str_at(obj, "/metadata/name");
    if !name.is_empty() && name != format!("{plural}.{group}") {
        out.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let Some(spec) = obj.get("spec") else {
        out.push(Cause::required("spec"));
        return out;
    };
    validate_group(group, &mut out);
    match str_at(spec, "/scope") {
        "" => out.push(Cause::required("spec.scope")),
        s if SCOPES.contains(&s) => {}
        s => out.push(Cause::not_supported("spec.scope", &json!(s), SCOPES)),
    }
    for (field, required) in [
        ("plural", true),
        ("singular", true),
        ("kind", true),
        ("listKind", true),
    ] {
        if required && str_at(spec, &format!("/names/{field}")).is_empty() {
            out.push(Cause::required(format!("spec.names.{field}")));
        }
    }
    out.extend(validate_names(spec.get("names"), "spec.names"));
    validate_versions(spec, &mut out);
    validate_conversion(spec, &mut out);
    out
}

fn validate_group(group: &str, out: &mut Vec<Cause>) {
    if group.is_empty() {
        out.push(Cause::required("spec.group"));
        return;
    }
    let errs = is_dns1123_subdomain(group);
    if !errs.is_empty() {
        out.push(Cause::invalid("spec.group", &json!(group), errs.join(",")));
    } else if !group.contains('.') {
        out.push(Cause::invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
}

/// `ValidateCustomResourceDefinitionNames`: DNS-1035 labels, mixed-case kinds.
fn validate_names(names: Option<&Value>, path: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(names) = names else { return out };
    for field in ["plural", "singular"] {
        let v = str_at(names, &format!("/{field}"));
        let errs = is_dns1035_label(v);
        if !v.is_empty() && !errs.is_empty() {
            out.push(Cause::invalid(
                format!("{path}.{field}"),
                &json!(v),
                errs.join(","),
            ));
        }
    }
    for field in ["kind", "listKind"] {
        let v = str_at(names, &format!("/{field}"));
        let errs = is_dns1035_label(&v.to_lowercase());
        if !v.is_empty() && !errs.is_empty() {
            out.push(Cause::invalid(
                format!("{path}.{field}"),
                &json!(v),
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    errs.join(",")
                ),
            ));
        }
    }
    for list in ["shortNames", "categories"] {
        for (i, v) in names
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let v = v.as_str().unwrap_or("");
            let errs = is_dns1035_label(v);
            if !errs.is_empty() {
                out.push(Cause::invalid(
                    format!("{path}.{list}[{i}]"),
                    &json!(v),
                    errs.join(","),
                ));
            }
        }
    }
    let kind = str_at(names, "/kind");
    if !kind.is_empty() && kind == str_at(names, "/listKind") {
        out.push(Cause::invalid(
            format!("{path}.listKind"),
            &json!(kind),
            "kind and listKind may not be the same",
        ));
    }
    out
}

fn validate_versions(spec: &Value, out: &mut Vec<Cause>) {
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut storage = 0;
    let mut seen = std::collections::BTreeSet::new();
    let mut unique = true;
    for (i, v) in versions.iter().enumerate() {
        let at = format!("spec.versions[{i}]");
        let name = str_at(v, "/name");
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage += 1;
        }
        if !seen.insert(name.to_string()) {
            unique = false;
        }
        let errs = is_dns1035_label(name);
        if !errs.is_empty() {
            out.push(Cause::invalid(
                format!("{at}.name"),
                &json!(name),
                errs.join(","),
            ));
        }
        match v.pointer("/schema/openAPIV3Schema") {
            Some(schema) if !schema.is_null() => {
                out.extend(validate_schema(
                    schema,
                    &format!("{at}.schema.openAPIV3Schema"),
                ));
            }
            _ => out.push(Cause::required_detail(
                format!("{at}.schema.openAPIV3Schema"),
                "schemas are required",
            )),
        }
        validate_columns(v, &at, out);
        validate_subresources(v, &at, out);
    }
    let all = Value::Array(versions);
    if !unique {
        out.push(Cause::invalid(
            "spec.versions",
            &all,
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        out.push(Cause::invalid(
            "spec.versions",
            &all,
            "must have exactly one version marked as storage version",
        ));
    }
}

fn validate_columns(version: &Value, at: &str, out: &mut Vec<Cause>) {
    for (i, c) in version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("{at}.additionalPrinterColumns[{i}]");
        if str_at(c, "/name").is_empty() {
            out.push(Cause::required(format!("{path}.name")));
        }
        match str_at(c, "/type") {
            "" => out.push(Cause::required(format!("{path}.type"))),
            t if COLUMN_TYPES.contains(&t) => {}
            t => out.push(Cause::not_supported(
                format!("{path}.type"),
                &json!(t),
                COLUMN_TYPES,
            )),
        }
        let json_path = str_at(c, "/jsonPath");
        if json_path.is_empty() {
            out.push(Cause::required(format!("{path}.jsonPath")));
        } else if crate::custom::JsonPath::parse(json_path).is_err() {
            out.push(Cause::invalid(
                format!("{path}.jsonPath"),
                &json!(json_path),
                "must be a simple json path",
            ));
        }
    }
}

fn validate_subresources(version: &Value, at: &str, out: &mut Vec<Cause>) {
    let Some(scale) = version.pointer("/subresources/scale") else {
        return;
    };
    let path = format!("{at}.subresources.scale");
    for (field, required) in [
        ("specReplicasPath", true),
        ("statusReplicasPath", true),
        ("labelSelectorPath", false),
    ] {
        let p = str_at(scale, &format!("/{field}"));
        if p.is_empty() {
            if required {
                out.push(Cause::required(format!("{path}.{field}")));
            }
            continue;
        }
        let prefix = if field == "specReplicasPath" {
            ".spec."
        } else {
            ".status."
        };
        let prefix_ok =
            p.starts_with(prefix) || (field == "labelSelectorPath" && p.starts_with(".spec."));
        if crate::custom::JsonPath::parse(p).is_err() {
            out.push(Cause::invalid(
                format!("{path}.{field}"),
                &json!(p),
                "must be a valid JSON path",
            ));
        } else if !prefix_ok {
            let detail = match field {
                "specReplicasPath" => "should be a json path under .spec",
                "statusReplicasPath" => "should be a json path under .status",
                _ => "should be a json path under either .spec or .status",
            };
            out.push(Cause::invalid(format!("{path}.{field}"), &json!(p), detail));
        }
    }
}

fn validate_conversion(spec: &Value, out: &mut Vec<Cause>) {
    match str_at(spec, "/conversion/strategy") {
        "" | "None" => {}
        "Webhook" => out.push(Cause::forbidden(
            "spec.conversion.strategy",
            "webhook conversion is not supported by this server; use strategy None",
        )),
        s => out.push(Cause::not_supported(
            "spec.conversion.strategy",
            &json!(s),
            &["None", "Webhook"],
        )),
    }
}

/// `ValidateCustomResourceDefinitionUpdate`: group and plural (the name) never change; scope
/// and kind not once established; stored versions must stay in spec.versions.
pub fn validate_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let established = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| str_at(c, "/type") == "Established" && str_at(c, "/status") == "True");
    let mut fixed = vec![
        ("group", "/spec/group"),
        ("names.plural", "/spec/names/plural"),
    ];
    if established {
        fixed.push(("scope", "/spec/scope"));
        fixed.push(("names.kind", "/spec/names/kind"));
    }
    for (field, pointer) in fixed {
        let v = new.pointer(pointer).cloned().unwrap_or(Value::Null);
        if Some(&v) != old.pointer(pointer) {
            out.push(Cause::immutable(format!("spec.{field}"), &v));
        }
    }
    let names: Vec<&str> = new
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| str_at(v, "/name"))
        .collect();
    for (i, v) in new
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !names.contains(&v.as_str().unwrap_or("")) {
            out.push(Cause::invalid(
                format!("status.storedVersions[{i}]"),
                v,
                "must appear in spec.versions",
            ));
        }
    }
    out
}
