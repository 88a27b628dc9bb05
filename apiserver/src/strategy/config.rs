//! ConfigMaps, Secrets and ServiceAccounts: key validation, Secret `type` defaulting and
//! `stringData` folded into `data`, the `immutable` rule, per-type required Secret keys,
//! and their tables.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use serde_json::{Value, json};
use skiff_api::validation::is_config_map_key;

use super::table::{AGE, NAME, age, col, name};
use super::{Column, Strategy, decode, decode_for_validation, with_typed};
use crate::error::Cause;

/// Strategy for core/v1 configmaps.
pub struct ConfigMapStrategy;
/// Strategy for core/v1 secrets.
pub struct SecretStrategy;
/// Strategy for core/v1 serviceaccounts.
pub struct ServiceAccountStrategy;

/// Kubernetes' cap on the total size of a ConfigMap's or Secret's data (1 MiB).
const MAX_SIZE: usize = 1024 * 1024;
const IMMUTABLE: &str = "field is immutable when `immutable` is set";

fn check_keys<'a>(keys: impl Iterator<Item = &'a String>, path: &str, out: &mut Vec<Cause>) {
    for key in keys {
        for msg in is_config_map_key(key) {
            out.push(Cause::invalid(format!("{path}[{key}]"), &json!(key), msg));
        }
    }
}

fn too_long(field: &str) -> Cause {
    Cause::too_long(field, MAX_SIZE)
}

fn validate_config_map(cm: &ConfigMap) -> Vec<Cause> {
    let mut out = Vec::new();
    let data = cm.data.clone().unwrap_or_default();
    let binary = cm.binary_data.clone().unwrap_or_default();
    check_keys(data.keys(), "data", &mut out);
    check_keys(binary.keys(), "binaryData", &mut out);
    for key in data.keys().filter(|k| binary.contains_key(*k)) {
        out.push(Cause::invalid(
            format!("data[{key}]"),
            &json!(key),
            "duplicate of key present in binaryData",
        ));
        out.push(Cause::invalid(
            format!("binaryData[{key}]"),
            &json!(key),
            "duplicate of key present in data",
        ));
    }
    let size: usize = data.values().map(String::len).sum::<usize>()
        + binary.values().map(|b| b.0.len()).sum::<usize>();
    if size > MAX_SIZE {
        out.push(too_long(""));
    }
    out
}

/// Keys a Secret of a well-known type must carry, as `ValidateSecret` requires them.
fn required_keys(ty: &str) -> &'static [&'static str] {
    match ty {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        _ => &[],
    }
}

fn validate_secret(s: &Secret) -> Vec<Cause> {
    let mut out = Vec::new();
    let data: BTreeMap<String, ByteString> = s.data.clone().unwrap_or_default();
    check_keys(data.keys(), "data", &mut out);
    if data.values().map(|b| b.0.len()).sum::<usize>() > MAX_SIZE {
        out.push(too_long("data"));
    }
    let ty = s.type_.as_deref().unwrap_or("Opaque");
    for key in required_keys(ty) {
        if !data.contains_key(*key) {
            out.push(Cause::required(format!("data[{key}]")));
        }
    }
    if ty == "kubernetes.io/service-account-token"
        && s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubernetes.io/service-account.name"))
            .is_none_or(|v| v.is_empty())
    {
        out.push(Cause::required(
            "metadata.annotations[kubernetes.io/service-account.name]",
        ));
    }
    if ty == "kubernetes.io/basic-auth"
        && !data.contains_key("username")
        && !data.contains_key("password")
    {
        out.push(Cause::required("data[username]"));
        out.push(Cause::required("data[password]"));
    }
    out
}

/// Whether the old object was `immutable: true`.
fn was_immutable(old: &Value) -> bool {
    old.get("immutable").and_then(Value::as_bool) == Some(true)
}

fn immutable_rule(new: &Value, old: &Value, fields: &[&str]) -> Vec<Cause> {
    let mut out = Vec::new();
    if !was_immutable(old) {
        return out;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        out.push(Cause::forbidden("immutable", IMMUTABLE));
    }
    for f in fields {
        let empty = |v: Option<&Value>| {
            v.is_none_or(|v| v.is_null() || v.as_object().is_some_and(|m| m.is_empty()))
        };
        let (n, o) = (new.get(*f), old.get(*f));
        if n != o && !(empty(n) && empty(o)) {
            out.push(Cause::forbidden(*f, IMMUTABLE));
        }
    }
    out
}

impl Strategy for ConfigMapStrategy {
    fn validate(&self, obj: &Value) -> Vec<Cause> {
        decode_for_validation::<ConfigMap>(obj)
            .map(|cm| validate_config_map(&cm))
            .unwrap_or_else(|c| c)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        immutable_rule(new, old, &["data", "binaryData"])
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Data", "integer", "Data contains the configuration data."),
            AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let cm: ConfigMap = decode(obj).unwrap_or_default();
        let n = cm.data.map_or(0, |d| d.len()) + cm.binary_data.map_or(0, |d| d.len());
        vec![name(obj), json!(n), age(obj, Timestamp::now())]
    }
}

impl Strategy for SecretStrategy {
    fn default(&self, obj: &mut Value) {
        with_typed::<Secret>(obj, |s| {
            if s.type_.as_deref().unwrap_or("").is_empty() {
                s.type_ = Some("Opaque".into());
            }
            // stringData is write-only: the v1 conversion folds it into data.
            if let Some(sd) = s.string_data.take() {
                let data = s.data.get_or_insert_with(BTreeMap::new);
                for (k, v) in sd {
                    data.insert(k, ByteString(v.into_bytes()));
                }
            }
        });
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        decode_for_validation::<Secret>(obj)
            .map(|s| validate_secret(&s))
            .unwrap_or_else(|c| c)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        let (n, o) = (new.get("type"), old.get("type"));
        if n != o {
            out.push(Cause::immutable("type", n.unwrap_or(&Value::Null)));
        }
        out.extend(immutable_rule(new, old, &["data"]));
        out
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Type", "string", "The type of the secret"),
            col("Data", "integer", "The number of entries in the secret"),
            AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        secret_cells(obj, Timestamp::now())
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        (path == "type").then(|| super::path_str(obj, "type").unwrap_or_default())
    }
}

fn secret_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let s: Secret = decode(obj).unwrap_or_default();
    vec![
        name(obj),
        json!(s.type_.unwrap_or_default()),
        json!(s.data.map_or(0, |d| d.len())),
        age(obj, now),
    ]
}

impl Strategy for ServiceAccountStrategy {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Secrets",
                "integer",
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let sa: ServiceAccount = decode(obj).unwrap_or_default();
        vec![
            name(obj),
            json!(sa.secrets.map_or(0, |s| s.len())),
            age(obj, Timestamp::now()),
        ]
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
