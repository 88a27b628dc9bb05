use base64::Engine;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use super::*;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn request_pem(cn: &str) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["n1".to_string()]).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn csr(spec: Value) -> Value {
    json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": "c", "creationTimestamp": "2024-01-01T00:00:00Z"}, "spec": spec})
}

fn good() -> Value {
    csr(json!({
        "request": b64(request_pem("system:node:n1").as_bytes()),
        "signerName": "kubernetes.io/kubelet-serving",
        "usages": ["digital signature", "key encipherment", "server auth"],
    }))
}

fn fields(causes: &[Cause]) -> Vec<&str> {
    causes.iter().map(|c| c.field.as_str()).collect()
}

#[test]
fn a_well_formed_request_is_valid() {
    assert!(CsrStrategy.validate(&good()).is_empty());
}

#[test]
fn request_signer_and_usages_are_checked() {
    let causes = CsrStrategy.validate(&csr(json!({
        "request": b64(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        "usages": ["server auth", "bogus", "server auth"],
        "expirationSeconds": 60,
    })));
    assert_eq!(
        fields(&causes),
        [
            "spec.request",
            "spec.signerName",
            "spec.usages[1]",
            "spec.usages[2]",
            "spec.expirationSeconds"
        ]
    );
    assert!(
        causes[0].message.contains("CERTIFICATE REQUEST"),
        "{}",
        causes[0].message
    );
    assert_eq!(causes[2].reason, "FieldValueNotSupported");
    assert_eq!(causes[3].reason, "FieldValueDuplicate");

    let mut garbage = good();
    garbage["spec"]["request"] = json!(b64(
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    ));
    garbage["spec"]["signerName"] = json!("no-slash");
    garbage["spec"]["usages"] = json!([]);
    assert_eq!(
        fields(&CsrStrategy.validate(&garbage)),
        ["spec.request", "spec.signerName", "spec.usages"]
    );
}

#[test]
fn approved_and_denied_are_exclusive() {
    let mut obj = good();
    obj["status"] = json!({"conditions": [
        {"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]});
    let causes = CsrStrategy.validate(&obj);
    assert_eq!(fields(&causes), ["status.conditions"]);
    assert!(causes[0].message.contains("mutually exclusive"));
}

#[test]
fn requestor_comes_from_the_authenticated_user() {
    let mut obj = good();
    obj["spec"]["username"] = json!("forged");
    obj["spec"]["groups"] = json!(["system:masters"]);
    let user = UserInfo {
        name: "system:bootstrap:node".into(),
        groups: vec!["system:bootstrappers".into(), "system:authenticated".into()],
    };
    CsrStrategy.set_requestor(&mut obj, Some(&user));
    assert_eq!(obj["spec"]["username"], "system:bootstrap:node");
    assert_eq!(
        obj["spec"]["groups"],
        json!(["system:bootstrappers", "system:authenticated"])
    );
    CsrStrategy.set_requestor(&mut obj, None);
    assert!(obj["spec"].get("username").is_none());
}

#[test]
fn spec_is_immutable_and_status_cannot_approve() {
    let old = good();
    let mut new = good();
    new["spec"]["signerName"] = json!("example.com/other");
    new["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}]});
    CsrStrategy.prepare_update(&mut new, &old);
    CsrStrategy.prepare_status_update(&mut new, &old);
    assert_eq!(new["spec"], old["spec"]);
    assert!(new.pointer("/status/conditions").is_none());

    let mut approved = good();
    approved["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}]});
    let mut removed = approved.clone();
    removed["status"] = json!({});
    assert_eq!(
        fields(&CsrStrategy.validate_update(&removed, &approved)),
        ["status.conditions"]
    );
}

#[test]
fn certificate_needs_approval_and_pem() {
    let mut obj = good();
    obj["status"] = json!({"certificate": b64(b"not pem")});
    let causes = CsrStrategy.validate(&obj);
    assert_eq!(
        fields(&causes),
        ["status.certificate", "status.certificate"]
    );
}

#[test]
fn table_row_shows_condition_and_duration() {
    let now: Timestamp = "2024-01-01T00:02:00Z".parse().unwrap();
    let mut obj = good();
    obj["spec"]["username"] = json!("system:node:n1");
    obj["spec"]["expirationSeconds"] = json!(3600);
    assert_eq!(
        csr_cells(&obj, now),
        vec![
            json!("c"),
            json!("2m"),
            json!("kubernetes.io/kubelet-serving"),
            json!("system:node:n1"),
            json!("60m"),
            json!("Pending")
        ]
    );
    obj["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}],
        "certificate": "QUJD"});
    assert_eq!(csr_cells(&obj, now)[5], json!("Approved,Issued"));
    obj["status"] = json!({"conditions": [{"type": "Denied", "status": "True"}, {"type": "Failed", "status": "True"}]});
    assert_eq!(csr_cells(&obj, now)[5], json!("Denied,Failed"));
    obj["spec"]
        .as_object_mut()
        .unwrap()
        .remove("expirationSeconds");
    assert_eq!(csr_cells(&obj, now)[4], json!("<none>"));
}
