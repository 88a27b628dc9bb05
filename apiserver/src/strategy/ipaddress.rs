//! IPAddresses (networking.k8s.io/v1): the cluster IP claims the Service allocator keeps
//! (crate::alloc::ledger) served read-and-write as kube-apiserver 1.33 serves them, with
//! its validation (the name is the address in canonical form, a parent reference is
//! required) and the ParentRef column.

use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::api::networking::v1::IPAddress;
use serde_json::{Value, json};

use super::table::{AGE, NAME, age, col, name};
use super::{Column, Strategy, decode, decode_for_validation};
use crate::error::Cause;

/// Strategy for networking.k8s.io/v1 ipaddresses.
pub struct IpAddressStrategy;

fn name_rule(name: &str) -> Vec<String> {
    match name.parse::<IpAddr>() {
        Ok(ip) if ip.to_string() == name => Vec::new(),
        Ok(ip) => vec![format!("must be in canonical form (\"{ip}\")")],
        Err(_) => vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into()],
    }
}

fn validate(ip: &IPAddress) -> Vec<Cause> {
    let mut out = Vec::new();
    match ip.spec.as_ref().map(|s| &s.parent_ref) {
        None => out.push(Cause::required("spec.parentRef")),
        Some(p) => {
            if p.resource.is_empty() {
                out.push(Cause::required("spec.parentRef.resource"));
            }
            if p.name.is_empty() {
                out.push(Cause::required("spec.parentRef.name"));
            }
        }
    }
    out
}

impl Strategy for IpAddressStrategy {
    fn name_rule(&self) -> fn(&str) -> Vec<String> {
        name_rule
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        match decode_for_validation::<IPAddress>(obj) {
            Ok(ip) => validate(&ip),
            Err(c) => c,
        }
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        if new.pointer("/spec/parentRef") != old.pointer("/spec/parentRef") {
            return vec![Cause::immutable(
                "spec.parentRef",
                new.pointer("/spec/parentRef").unwrap_or(&Value::Null),
            )];
        }
        Vec::new()
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "ParentRef",
                "string",
                "ParentRef references the resource (usually a Service) the IPAddress belongs to.",
            ),
            AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let ip: IPAddress = decode(obj).unwrap_or_default();
        let parent = ip
            .spec
            .map(|s| s.parent_ref)
            .map(|p| {
                let mut s = if p.group.as_deref().unwrap_or("").is_empty() {
                    p.resource.to_lowercase()
                } else {
                    format!("{}.{}", p.resource, p.group.unwrap_or_default()).to_lowercase()
                };
                if let Some(ns) = p.namespace.filter(|n| !n.is_empty()) {
                    s.push('/');
                    s.push_str(&ns);
                }
                s.push('/');
                s.push_str(&p.name);
                s
            })
            .unwrap_or_else(|| "<none>".into());
        vec![name(obj), json!(parent), age(obj, Timestamp::now())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_canonical_addresses_and_the_parent_is_shown() {
        assert!(name_rule("10.96.0.1").is_empty());
        assert!(name_rule("fd00::1").is_empty());
        assert_eq!(
            name_rule("fd00:0::1"),
            ["must be in canonical form (\"fd00::1\")"]
        );
        assert!(!name_rule("web").is_empty());
        let obj = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
            "metadata": {"name": "10.96.0.1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "kubernetes"}}});
        assert!(IpAddressStrategy.validate(&obj).is_empty());
        assert_eq!(
            IpAddressStrategy.cells(&obj)[1],
            "services/default/kubernetes"
        );
        let orphan = json!({"metadata": {"name": "10.96.0.2"}});
        assert_eq!(
            IpAddressStrategy.validate(&orphan)[0].field,
            "spec.parentRef"
        );
        let nameless = json!({"metadata": {"name": "10.96.0.2"},
            "spec": {"parentRef": {"resource": "services", "name": ""}}});
        assert_eq!(
            IpAddressStrategy.validate(&nameless)[0].field,
            "spec.parentRef.name"
        );
    }
}
