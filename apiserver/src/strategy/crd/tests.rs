//! Validation messages of CustomResourceDefinitions, as kube-apiserver words them.

use serde_json::{Value, json};

use super::CrdStrategy;
use crate::strategy::Strategy;

fn crontab() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {"group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "cronSpec": {"type": "string"}, "image": {"type": "string"},
                        "replicas": {"type": "integer"}}}}}}}]}})
}

fn errors(obj: &Value) -> Vec<String> {
    let mut obj = obj.clone();
    CrdStrategy.default(&mut obj);
    CrdStrategy
        .validate(&obj)
        .into_iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect()
}

#[test]
fn the_documentation_s_crontab_is_valid_and_defaulted() {
    let mut obj = crontab();
    CrdStrategy.default(&mut obj);
    assert_eq!(obj["spec"]["names"]["listKind"], "CronTabList");
    assert_eq!(obj["spec"]["conversion"]["strategy"], "None");
    assert!(errors(&obj).is_empty(), "{:?}", errors(&obj));
    CrdStrategy.prepare_create(&mut obj);
    assert_eq!(obj["status"]["storedVersions"], json!(["v1"]));
    assert_eq!(
        obj["metadata"]["finalizers"],
        json!(["customresourcecleanup.apiextensions.k8s.io"])
    );
}

#[test]
fn the_name_must_be_plural_dot_group() {
    let mut obj = crontab();
    obj["metadata"]["name"] = json!("crontab.stable.example.com");
    assert_eq!(
        errors(&obj),
        [
            r#"metadata.name: Invalid value: "crontab.stable.example.com": must be spec.names.plural+"."+spec.group"#
        ]
    );
}

#[test]
fn exactly_one_storage_version() {
    let mut obj = crontab();
    let mut v2 = obj["spec"]["versions"][0].clone();
    v2["name"] = json!("v2");
    obj["spec"]["versions"].as_array_mut().unwrap().push(v2);
    let errs = errors(&obj);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("spec.versions: Invalid value: "),
        "{errs:?}"
    );
    assert!(
        errs[0].ends_with(": must have exactly one version marked as storage version"),
        "{errs:?}"
    );
}

#[test]
fn schemas_are_required_and_structural() {
    let mut obj = crontab();
    obj["spec"]["versions"][0]
        .as_object_mut()
        .unwrap()
        .remove("schema");
    assert_eq!(
        errors(&obj),
        ["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]
    );
    let mut obj = crontab();
    obj["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["replicas"] =
        json!({"description": "no type"});
    obj["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["tags"] =
        json!({"type": "array"});
    assert_eq!(
        errors(&obj),
        [
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].type: Required value: must not be empty for specified object fields",
            "spec.versions[0].schema.openAPIV3Schema.properties[tags].items: Required value: must be specified",
        ]
    );
}

#[test]
fn group_scope_and_names() {
    let mut obj = crontab();
    obj["spec"]["group"] = json!("example");
    obj["metadata"]["name"] = json!("crontabs.example");
    obj["spec"]["scope"] = json!("Global");
    obj["spec"]["names"]["shortNames"] = json!(["Bad_Name"]);
    assert_eq!(
        errors(&obj),
        [
            r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#,
            r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#,
            r#"spec.names.shortNames[0]: Invalid value: "Bad_Name": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
        ]
    );
}

#[test]
fn webhook_conversion_is_refused_clearly() {
    let mut obj = crontab();
    obj["spec"]["conversion"] = json!({"strategy": "Webhook"});
    assert_eq!(
        errors(&obj),
        [
            "spec.conversion.strategy: Forbidden: webhook conversion is not supported by this server; use strategy None"
        ]
    );
}

#[test]
fn group_and_plural_are_immutable() {
    let old = crontab();
    let mut new = crontab();
    new["spec"]["names"]["plural"] = json!("crontabz");
    let errs: Vec<String> = CrdStrategy
        .validate_update(&new, &old)
        .into_iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    assert_eq!(
        errs,
        [r#"spec.names.plural: Invalid value: "crontabz": field is immutable"#]
    );
}
