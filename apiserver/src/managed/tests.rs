//! Field management as a whole: applies and updates over a Deployment.

use serde_json::{Value, json};

use super::*;

fn shapes(n: &[&str], list: bool) -> Shape {
    builtin_shape(n, list)
}

const NOW: &str = "2026-12-02T18:00:00Z";

fn writer(manager: &str) -> Writer<'_> {
    Writer {
        manager,
        api_version: "apps/v1",
        subresource: "",
        part: Part::Main {
            status_subresource: true,
        },
        now: NOW,
    }
}

fn config(replicas: Option<i64>, labels: Value) -> Value {
    let mut c = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}});
    if let Some(r) = replicas {
        c["spec"]["replicas"] = json!(r);
    }
    c
}

fn apply_as(live: &Value, cfg: &Value, manager: &str, force: bool) -> Result<Value, ApiError> {
    apply(live, cfg, &writer(manager), force, &shapes)
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().to_string(),
                        e["operation"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Records an Update by `manager` from `old` to `new`.
fn update_as(old: Option<&Value>, new: &mut Value, manager: &str) {
    let by = Some((Operation::Update, writer(manager)));
    record(old, new, None, by, &shapes);
}

#[test]
fn a_field_dropped_from_the_configuration_is_removed() {
    let first = apply_as(
        &json!({}),
        &config(Some(3), json!({"a": "1", "b": "2"})),
        "mgr",
        false,
    )
    .unwrap();
    assert_eq!(first["spec"]["replicas"], 3);
    let entry = &first["metadata"]["managedFields"][0];
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["time"], NOW);
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert_eq!(
        entry["fieldsV1"]["f:metadata"],
        json!({"f:labels": {"f:a": {}, "f:b": {}}})
    );
    assert_eq!(entry["fieldsV1"]["f:spec"]["f:selector"], json!({}));
    let second = apply_as(&first, &config(None, json!({"a": "1"})), "mgr", false).unwrap();
    assert!(second["spec"].get("replicas").is_none(), "{second}");
    assert_eq!(second["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(
        second["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx"
    );
}

#[test]
fn a_field_another_manager_owns_is_kept_when_dropped() {
    let first = apply_as(
        &json!({}),
        &config(Some(3), json!({"a": "1"})),
        "one",
        false,
    )
    .unwrap();
    let shared = apply_as(&first, &config(Some(3), json!({"a": "1"})), "two", false).unwrap();
    assert_eq!(managers(&shared).len(), 2);
    let dropped = apply_as(&shared, &config(None, json!({"a": "1"})), "one", false).unwrap();
    assert_eq!(dropped["spec"]["replicas"], 3);
}

#[test]
fn conflicts_are_409_worded_as_kube_apiserver_and_force_takes_ownership() {
    let created = apply_as(&json!({}), &config(Some(3), json!({})), "one", false).unwrap();
    let err = apply_as(&created, &config(Some(5), json!({})), "two", false).unwrap_err();
    assert_eq!((err.code, err.reason), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"one\": .spec.replicas"
    );
    let status = err.status();
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "FieldManagerConflict", "message": "conflict with \"one\"", "field": ".spec.replicas"})
    );
    let forced = apply_as(&created, &config(Some(5), json!({})), "two", true).unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);
    let one = forced["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "one")
        .unwrap();
    assert!(one["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    // "one" no longer owns replicas, so dropping it leaves it to "two".
    let again = apply_as(&forced, &config(None, json!({})), "one", false).unwrap();
    assert_eq!(again["spec"]["replicas"], 5);
}

#[test]
fn several_conflicts_are_listed_by_manager() {
    let mut live = config(Some(3), json!({"x": "1"}));
    update_as(None, &mut live, "kubectl-client-side-apply");
    let err = apply_as(&live, &config(Some(5), json!({"x": "2"})), "mgr", false).unwrap_err();
    assert_eq!(
        err.message,
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n- .metadata.labels.x\n- .spec.replicas"
    );
}

#[test]
fn updates_move_ownership_of_what_they_change() {
    let mut live = config(Some(3), json!({}));
    update_as(None, &mut live, "creator");
    assert_eq!(managers(&live), [("creator".into(), "Update".into())]);
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(4);
    update_as(Some(&live), &mut scaled, "scaler");
    let entries = scaled["metadata"]["managedFields"].as_array().unwrap();
    let scaler = entries.iter().find(|e| e["manager"] == "scaler").unwrap();
    assert_eq!(scaler["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    let creator = entries.iter().find(|e| e["manager"] == "creator").unwrap();
    assert!(creator["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    // An update that changes nothing keeps the entries as they are.
    let mut same = scaled.clone();
    update_as(Some(&scaled), &mut same, "other");
    assert_eq!(same, scaled);
    // Clearing with `[{}]` drops every entry.
    let mut cleared = scaled.clone();
    record(
        Some(&scaled),
        &mut cleared,
        Some(json!([{}])),
        Some((Operation::Update, writer("x"))),
        &shapes,
    );
    assert!(
        cleared["metadata"].get("managedFields").is_none(),
        "{cleared}"
    );
}

#[test]
fn kubectl_takes_over_from_client_side_apply_while_values_match_last_applied() {
    let last = config(Some(3), json!({}));
    let mut live = last.clone();
    live["metadata"]["annotations"] = json!({LAST_APPLIED: last.to_string()});
    update_as(None, &mut live, "kubectl-client-side-apply");
    let err = apply_as(&live, &config(Some(4), json!({})), "other", false).unwrap_err();
    assert_eq!(err.code, 409);
    let upgraded = apply_as(&live, &config(Some(4), json!({})), "kubectl", false).unwrap();
    assert_eq!(upgraded["spec"]["replicas"], 4);
    let annotation: Value = serde_json::from_str(
        upgraded["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(annotation["spec"]["replicas"], 4);
    // Once someone else changed replicas, the last-applied value no longer speaks for it.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(7);
    update_as(Some(&live), &mut scaled, "kubectl-client-side-apply");
    let err = apply_as(&scaled, &config(Some(4), json!({})), "kubectl", false).unwrap_err();
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
}

fn container_names(d: &Value) -> Vec<&str> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

#[test]
fn list_items_are_owned_by_key() {
    let mut cfg = config(None, json!({}));
    cfg["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "app", "image": "a"}, {"name": "side", "image": "s"}]);
    let first = apply_as(&json!({}), &cfg, "one", false).unwrap();
    let mut other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "extra", "image": "e"}]}}}});
    let both = apply_as(&first, &other, "two", false).unwrap();
    assert_eq!(container_names(&both), ["app", "side", "extra"]);
    cfg["spec"]["template"]["spec"]["containers"] = json!([{"name": "app", "image": "a"}]);
    let dropped = apply_as(&both, &cfg, "one", false).unwrap();
    assert_eq!(container_names(&dropped), ["app", "extra"]);
    other["spec"]["template"]["spec"]["containers"][0]["image"] = json!("e2");
    assert!(apply_as(&dropped, &other, "two", false).is_ok());
}

#[test]
fn managed_fields_in_a_configuration_are_refused() {
    let mut cfg = config(None, json!({}));
    cfg["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply_as(&json!({}), &cfg, "m", false).unwrap_err().code,
        400
    );
}

#[test]
fn options_are_validated_as_kubernetes_does() {
    let err = validate_options("PatchOptions", None, true, false).unwrap_err();
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let err = validate_options("PatchOptions", Some("m"), false, true).unwrap_err();
    assert_eq!(
        err.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
    );
    assert!(validate_options("PatchOptions", Some(&"x".repeat(129)), false, false).is_err());
    assert!(validate_options("UpdateOptions", Some("kubectl-edit"), false, false).is_ok());
    assert_eq!(
        manager_from_user_agent("kubectl/v1.32.0 (linux/amd64) kubernetes/abc"),
        "kubectl"
    );
}
