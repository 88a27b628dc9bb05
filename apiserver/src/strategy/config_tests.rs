//! Tests for the ConfigMap, Secret and ServiceAccount strategies.

use super::*;

fn secret(extra: Value) -> Value {
    let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

#[test]
fn secret_defaults_type_and_folds_string_data() {
    let mut s = secret(json!({"data": {"a": "eA=="}, "stringData": {"b": "hello"}}));
    SecretStrategy.default(&mut s);
    assert_eq!(s["type"], "Opaque");
    assert_eq!(s["data"], json!({"a": "eA==", "b": "aGVsbG8="}));
    assert!(s.get("stringData").is_none());
    assert!(SecretStrategy.validate(&s).is_empty());
    assert_eq!(SecretStrategy.field(&s, "type").as_deref(), Some("Opaque"));
    assert_eq!(
        secret_cells(&s, Timestamp::now())[..3],
        [json!("s"), json!("Opaque"), json!(2)]
    );
}

#[test]
fn secret_keys_and_required_tls_keys() {
    let mut s = secret(json!({"type": "kubernetes.io/tls", "data": {"bad key": "eA=="}}));
    SecretStrategy.default(&mut s);
    let causes = SecretStrategy.validate(&s);
    let f: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(f, ["data[bad key]", "data[tls.crt]", "data[tls.key]"]);
    assert!(
        causes[0]
            .message
            .starts_with("Invalid value: \"bad key\": "),
        "{}",
        causes[0].message
    );
}

#[test]
fn immutable_secret_and_type() {
    let old = secret(json!({"type": "Opaque", "immutable": true, "data": {"a": "eA=="}}));
    let mut new = old.clone();
    new["data"]["a"] = json!("eQ==");
    new["type"] = json!("other");
    let causes = SecretStrategy.validate_update(&new, &old);
    let f: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(f, ["type", "data"]);
    assert_eq!(
        causes[1].message,
        "Forbidden: field is immutable when `immutable` is set"
    );
    assert!(SecretStrategy.validate_update(&old, &old).is_empty());
}

#[test]
fn config_maps() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "data": {"a": "1", "b/c": "2"}, "binaryData": {"a": "eA=="}});
    let causes = ConfigMapStrategy.validate(&cm);
    let f: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(f, ["data[b/c]", "data[a]", "binaryData[a]"]);
    assert_eq!(ConfigMapStrategy.cells(&cm)[1], json!(3));

    let old = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
    let mut new = old.clone();
    new["immutable"] = json!(false);
    let f: Vec<String> = ConfigMapStrategy
        .validate_update(&new, &old)
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(f, ["immutable"]);
}

#[test]
fn service_account_row() {
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}, "secrets": [{"name": "x"}]});
    assert_eq!(
        ServiceAccountStrategy.cells(&sa)[..2],
        [json!("default"), json!(1)]
    );
}
