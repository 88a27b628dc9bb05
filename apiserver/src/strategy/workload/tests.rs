//! Tests for the workload strategies.

use super::daemonset::daemonset_cells;
use super::deployment::deployment_cells;
use super::replicaset::replicaset_cells;
use super::*;
use crate::strategy::Strategy;
use jiff::Timestamp;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}
        }
    })
}

fn defaulted(s: &dyn Strategy, mut v: Value) -> Value {
    s.default(&mut v);
    v
}

fn fields(causes: &[Cause]) -> Vec<&str> {
    causes.iter().map(|c| c.field.as_str()).collect()
}

#[test]
fn deployment_defaults_match_kubernetes() {
    let d = defaulted(&DeploymentStrategy, deployment());
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    // Pod-only defaults stay off templates, as in Kubernetes.
    assert!(pod.get("enableServiceLinks").is_none());
    assert!(
        DeploymentStrategy.validate(&d).is_empty(),
        "{:?}",
        DeploymentStrategy.validate(&d)
    );
}

#[test]
fn selector_must_match_template_labels() {
    let mut d = deployment();
    d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    let causes = DeploymentStrategy.validate(&defaulted(&DeploymentStrategy, d));
    assert_eq!(fields(&causes), ["spec.template.metadata.labels"]);
    assert_eq!(
        causes[0].message,
        "Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"
    );
}

#[test]
fn deployment_rules() {
    let mut d = defaulted(&DeploymentStrategy, deployment());
    d["spec"]["replicas"] = json!(-1);
    d["spec"]["selector"] = json!({});
    d["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 0, "maxUnavailable": 0});
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    let causes = DeploymentStrategy.validate(&d);
    let f = fields(&causes);
    assert!(f.contains(&"spec.replicas"), "{f:?}");
    assert!(f.contains(&"spec.selector"), "{f:?}");
    assert!(
        f.contains(&"spec.strategy.rollingUpdate.maxUnavailable"),
        "{f:?}"
    );
    assert!(f.contains(&"spec.template.spec.restartPolicy"), "{f:?}");
    let replicas = causes.iter().find(|c| c.field == "spec.replicas").unwrap();
    assert_eq!(
        replicas.message,
        "Invalid value: -1: must be greater than or equal to 0"
    );
    let rp = causes
        .iter()
        .find(|c| c.field == "spec.template.spec.restartPolicy")
        .unwrap();
    assert_eq!(
        rp.message,
        "Unsupported value: \"Never\": supported values: \"Always\""
    );
    let sel = causes.iter().find(|c| c.field == "spec.selector").unwrap();
    assert!(
        sel.message
            .ends_with("empty selector is invalid for deployment"),
        "{}",
        sel.message
    );
}

#[test]
fn template_container_errors_use_template_paths() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
    let causes = DeploymentStrategy.validate(&defaulted(&DeploymentStrategy, d));
    assert_eq!(fields(&causes), ["spec.template.spec.containers[0].image"]);
}

#[test]
fn selector_is_immutable() {
    let old = defaulted(&DeploymentStrategy, deployment());
    let mut new = old.clone();
    new["spec"]["selector"] = json!({"matchLabels": {"app": "web2"}});
    let causes = DeploymentStrategy.validate_update(&new, &old);
    assert_eq!(fields(&causes), ["spec.selector"]);
    assert!(causes[0].message.ends_with("field is immutable"));
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(5);
    assert!(DeploymentStrategy.validate_update(&scaled, &old).is_empty());
}

#[test]
fn deployment_row_two_of_three() {
    let mut d = defaulted(&DeploymentStrategy, deployment());
    d["spec"]["replicas"] = json!(3);
    d["status"] = json!({"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2});
    let now: Timestamp = "2024-01-01T00:12:00Z".parse().unwrap();
    assert_eq!(
        deployment_cells(&d, now),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("12m"),
            json!("nginx"),
            json!("nginx:1.25"),
            json!("app=web")
        ]
    );
    assert_eq!(DeploymentStrategy.columns().len(), 8);
}

fn replicaset() -> Value {
    let mut rs = deployment();
    rs["kind"] = json!("ReplicaSet");
    rs["metadata"]["name"] = json!("web-abc");
    rs
}

#[test]
fn replicaset_defaults_validation_row_and_field() {
    let mut rs = defaulted(&ReplicaSetStrategy, replicaset());
    assert_eq!(rs["spec"]["replicas"], 1);
    assert!(ReplicaSetStrategy.validate(&rs).is_empty());
    rs["status"] = json!({"replicas": 1, "readyReplicas": 1});
    let now: Timestamp = "2024-01-01T00:00:30Z".parse().unwrap();
    let cells = replicaset_cells(&rs, now);
    assert_eq!(
        cells[..5],
        [json!("web-abc"), json!(1), json!(1), json!(1), json!("30s")]
    );
    assert_eq!(
        ReplicaSetStrategy.field(&rs, "status.replicas").as_deref(),
        Some("1")
    );
    assert_eq!(ReplicaSetStrategy.field(&rs, "spec.replicas"), None);
}

#[test]
fn daemonset_defaults_and_row() {
    let mut ds = deployment();
    ds["kind"] = json!("DaemonSet");
    ds["spec"]["template"]["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
    let mut ds = defaulted(&DaemonSetStrategy, ds);
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
    assert!(DaemonSetStrategy.validate(&ds).is_empty());
    ds["status"] = json!({"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
        "updatedNumberScheduled": 2, "numberAvailable": 1, "numberMisscheduled": 0});
    let now: Timestamp = "2024-01-04T05:00:00Z".parse().unwrap();
    let cells = daemonset_cells(&ds, now);
    assert_eq!(
        cells[..8],
        [
            json!("web"),
            json!(2),
            json!(2),
            json!(1),
            json!(2),
            json!(1),
            json!("kubernetes.io/os=linux"),
            json!("3d5h")
        ]
    );
    assert_eq!(cells.len(), DaemonSetStrategy.columns().len());
    ds["spec"]["updateStrategy"]["type"] = json!("Sometimes");
    let causes = DaemonSetStrategy.validate(&ds);
    assert_eq!(fields(&causes), ["spec.updateStrategy.type"]);
}

#[test]
fn missing_selector_is_required_and_unmatched() {
    let mut d = deployment();
    d["spec"].as_object_mut().unwrap().remove("selector");
    let causes = DeploymentStrategy.validate(&defaulted(&DeploymentStrategy, d));
    assert_eq!(
        fields(&causes),
        ["spec.selector", "spec.template.metadata.labels"]
    );
    assert_eq!(causes[0].message, "Required value");
}
