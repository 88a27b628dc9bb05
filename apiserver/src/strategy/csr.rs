//! CertificateSigningRequests (certificates.k8s.io/v1): the requestor recorded from the
//! authenticated user, an immutable spec, the status/approval split, validation as
//! `ValidateCertificateSigningRequest{Create,Update}` and kubectl's table columns.

use jiff::Timestamp;
use serde_json::{Value, json};
use x509_parser::prelude::FromDer;

use super::table::{AGE, NAME, age, col, name};
use super::{Column, Strategy, path_str};
use crate::auth::UserInfo;
use crate::error::Cause;

/// Strategy for certificates.k8s.io/v1 certificatesigningrequests.
pub struct CsrStrategy;

/// Key usages a CertificateSigningRequest may ask for (`certificates.KeyUsage`).
pub const KEY_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

const APPROVAL_TYPES: &[&str] = &["Approved", "Denied"];
const CONDITION_STATUSES: &[&str] = &["True", "False", "Unknown"];

/// Decodes `spec.request` (base64 in JSON) as a PEM `CERTIFICATE REQUEST` and checks it
/// parses (the signer checks its signature); the error is the message Kubernetes reports.
pub fn parse_request(b64: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let pem_bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("not base64: {e}"))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem_bytes)
        .map_err(|_| "PEM block type must be CERTIFICATE REQUEST".to_string())?;
    if pem.label != "CERTIFICATE REQUEST" {
        return Err("PEM block type must be CERTIFICATE REQUEST".into());
    }
    x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
        .map_err(|e| format!("x509: malformed certificate request: {e}"))?;
    Ok(pem.contents)
}

/// Whether `name` is a signer name of the form `example.com/signer-name`.
fn signer_name_errors(name: &str) -> Option<String> {
    let Some((domain, path)) = name.split_once('/') else {
        return Some(
            "must be a fully qualified domain and path of the form 'example.com/signer-name'"
                .into(),
        );
    };
    if path.is_empty() || !skiff_api::validation::is_dns1123_subdomain(domain).is_empty() {
        return Some(
            "must be a fully qualified domain and path of the form 'example.com/signer-name'"
                .into(),
        );
    }
    if !domain.contains('.') {
        return Some("should be a domain with at least two segments separated by dots".into());
    }
    None
}

fn conditions(obj: &Value) -> Vec<Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn has_condition(obj: &Value, ty: &str) -> bool {
    conditions(obj).iter().any(|c| c["type"] == ty)
}

fn validate_csr(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    match spec.get("request").and_then(Value::as_str) {
        None | Some("") => out.push(Cause::required("spec.request")),
        Some(r) => {
            if let Err(e) = parse_request(r) {
                out.push(Cause::invalid("spec.request", &json!("<request>"), e));
            }
        }
    }
    match spec.get("signerName").and_then(Value::as_str) {
        None | Some("") => out.push(Cause::required("spec.signerName")),
        Some(s) => {
            if let Some(e) = signer_name_errors(s) {
                out.push(Cause::invalid("spec.signerName", &json!(s), e));
            }
        }
    }
    let usages: Vec<Value> = spec
        .get("usages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if usages.is_empty() {
        out.push(Cause::required_detail(
            "spec.usages",
            "usages must be provided",
        ));
    }
    let mut seen = Vec::new();
    for (i, u) in usages.iter().enumerate() {
        let field = format!("spec.usages[{i}]");
        if !u.as_str().is_some_and(|s| KEY_USAGES.contains(&s)) {
            out.push(Cause::not_supported(field, u, KEY_USAGES));
        } else if seen.contains(&u) {
            out.push(Cause::duplicate(field, u));
        }
        seen.push(u);
    }
    if let Some(e) = spec.get("expirationSeconds").and_then(Value::as_i64)
        && e < 600
    {
        out.push(Cause::invalid(
            "spec.expirationSeconds",
            &json!(e),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    let conds = conditions(obj);
    let mut types_seen = Vec::new();
    for (i, c) in conds.iter().enumerate() {
        let ty = c["type"].as_str().unwrap_or("");
        if ty.is_empty() {
            out.push(Cause::required(format!("status.conditions[{i}].type")));
        }
        let st = c["status"].as_str().unwrap_or("");
        if !CONDITION_STATUSES.contains(&st) {
            out.push(Cause::not_supported(
                format!("status.conditions[{i}].status"),
                &json!(st),
                CONDITION_STATUSES,
            ));
        }
        if APPROVAL_TYPES.contains(&ty) || ty == "Failed" {
            if types_seen.contains(&ty) {
                out.push(Cause::duplicate(
                    format!("status.conditions[{i}].type"),
                    &json!(ty),
                ));
            }
            types_seen.push(ty);
        }
    }
    if types_seen.contains(&"Approved") && types_seen.contains(&"Denied") {
        out.push(Cause::invalid(
            "status.conditions",
            &json!(["Approved", "Denied"]),
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    if let Some(cert) = obj.pointer("/status/certificate").and_then(Value::as_str)
        && !cert.is_empty()
    {
        if !types_seen.contains(&"Approved") {
            out.push(Cause::forbidden(
                "status.certificate",
                "certificate may only be set when the request is approved",
            ));
        }
        if let Err(e) = certificate_blocks(cert) {
            out.push(Cause::invalid(
                "status.certificate",
                &json!("<certificate data>"),
                e,
            ));
        }
    }
    out
}

/// Checks `status.certificate` (base64 in JSON) holds one or more PEM CERTIFICATE blocks.
fn certificate_blocks(b64: &str) -> Result<(), String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("not base64: {e}"))?;
    let mut n = 0;
    for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
        let pem = pem.map_err(|e| format!("invalid PEM: {e}"))?;
        if pem.label != "CERTIFICATE" {
            return Err("only CERTIFICATE PEM blocks are allowed".into());
        }
        pem.parse_x509()
            .map_err(|e| format!("invalid certificate: {e}"))?;
        n += 1;
    }
    if n == 0 {
        return Err("must contain at least one CERTIFICATE PEM block".into());
    }
    Ok(())
}

/// Fills each condition's status (`True`) and timestamps, as the approval strategy does.
fn default_conditions(obj: &mut Value) {
    let now = crate::handlers::object::now();
    if let Some(conds) = obj
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in conds {
            if c.get("status")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                c["status"] = json!("True");
            }
            for t in ["lastUpdateTime", "lastTransitionTime"] {
                if c.get(t).is_none_or(Value::is_null) {
                    c[t] = json!(now);
                }
            }
        }
    }
}

impl Strategy for CsrStrategy {
    fn default(&self, obj: &mut Value) {
        default_conditions(obj);
    }

    fn set_requestor(&self, obj: &mut Value, user: Option<&UserInfo>) {
        // The requestor is whoever authenticated, never what the client claims.
        let spec = &mut obj["spec"];
        if !spec.is_object() {
            *spec = json!({});
        }
        let spec = spec.as_object_mut().expect("spec is an object");
        for f in ["username", "uid", "groups", "extra"] {
            spec.remove(f);
        }
        if let Some(u) = user {
            spec.insert("username".into(), json!(u.name));
            spec.insert("groups".into(), json!(u.groups));
        }
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        // The spec never changes after creation (Kubernetes' PrepareForUpdate copies it).
        match old.get("spec") {
            Some(s) => new["spec"] = s.clone(),
            None => {
                new.as_object_mut().map(|m| m.remove("spec"));
            }
        }
    }

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        // The status subresource is the signer's: it may not approve or deny.
        let keep: Vec<Value> = conditions(old)
            .into_iter()
            .filter(|c| APPROVAL_TYPES.contains(&c["type"].as_str().unwrap_or("")))
            .collect();
        let mut conds: Vec<Value> = conditions(new)
            .into_iter()
            .filter(|c| !APPROVAL_TYPES.contains(&c["type"].as_str().unwrap_or("")))
            .collect();
        conds.extend(keep);
        if conds.is_empty() {
            if let Some(s) = new.get_mut("status").and_then(Value::as_object_mut) {
                s.remove("conditions");
            }
        } else {
            new["status"]["conditions"] = Value::Array(conds);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        validate_csr(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        for ty in APPROVAL_TYPES {
            if has_condition(old, ty) && !has_condition(new, ty) {
                out.push(Cause::forbidden(
                    "status.conditions",
                    format!("updates may not remove a condition of type {ty:?}"),
                ));
            }
        }
        let old_cert = path_str(old, "status.certificate").unwrap_or_default();
        let new_cert = path_str(new, "status.certificate").unwrap_or_default();
        if !old_cert.is_empty() && new_cert != old_cert {
            out.push(Cause::invalid(
                "status.certificate",
                &json!("<certificate data>"),
                "updates may not modify existing certificate content",
            ));
        }
        out
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            AGE,
            col("SignerName", "string", "The signer of the request"),
            col("Requestor", "string", "The user who made the request"),
            col(
                "RequestedDuration",
                "string",
                "The requested lifetime of the certificate",
            ),
            col("Condition", "string", "Approval and issuance state"),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        csr_cells(obj, Timestamp::now())
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        (path == "spec.signerName").then(|| path_str(obj, path).unwrap_or_default())
    }
}

/// `Denied` or `Approved` or `Pending`, then `,Failed` and `,Issued` as kubectl prints them.
fn condition_cell(obj: &Value) -> String {
    let mut s = if has_condition(obj, "Denied") {
        "Denied".to_string()
    } else if has_condition(obj, "Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has_condition(obj, "Failed") {
        s.push_str(",Failed");
    }
    if !path_str(obj, "status.certificate")
        .unwrap_or_default()
        .is_empty()
    {
        s.push_str(",Issued");
    }
    s
}

fn csr_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let signer = path_str(obj, "spec.signerName").unwrap_or_default();
    let requestor = path_str(obj, "spec.username").unwrap_or_default();
    let duration = obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .map(skiff_api::meta::human_duration)
        .unwrap_or_else(|| "<none>".into());
    vec![
        name(obj),
        age(obj, now),
        json!(signer),
        json!(requestor),
        json!(duration),
        json!(condition_cell(obj)),
    ]
}

#[cfg(test)]
#[path = "csr_tests.rs"]
mod tests;
