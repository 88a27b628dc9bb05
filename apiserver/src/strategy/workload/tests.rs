//! Tests for the workload strategies.

use super::daemonset::daemonset_cells;
use super::deployment::deployment_cells;
use super::replicaset::replicaset_cells;
use super::statefulset::statefulset_cells;
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

fn statefulset() -> Value {
    let mut s = deployment();
    s["kind"] = json!("StatefulSet");
    s["spec"]["serviceName"] = json!("web");
    s["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/data"}]);
    s["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
    s
}

#[test]
fn statefulset_defaults_match_kubernetes() {
    let s = defaulted(&StatefulSetStrategy, statefulset());
    let spec = &s["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        spec["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        spec["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(
        spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Filesystem"
    );
    assert_eq!(
        spec["volumeClaimTemplates"][0]["status"]["phase"],
        "Pending"
    );
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
    let causes = StatefulSetStrategy.validate(&s);
    assert!(causes.is_empty(), "{causes:?}");
    // OnDelete gets no rolling-update block.
    let mut od = statefulset();
    od["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    let od = defaulted(&StatefulSetStrategy, od);
    assert_eq!(od["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
}

#[test]
fn statefulset_selector_must_match_template() {
    let mut s = statefulset();
    s["spec"]["template"]["metadata"]["labels"] = json!({"app": "db"});
    let causes = StatefulSetStrategy.validate(&defaulted(&StatefulSetStrategy, s));
    assert_eq!(fields(&causes), ["spec.template.metadata.labels"]);
    assert_eq!(
        causes[0].message,
        "Invalid value: map[string]string{\"app\":\"db\"}: `selector` does not match template `labels`"
    );
    let mut s = statefulset();
    s["spec"].as_object_mut().unwrap().remove("selector");
    let causes = StatefulSetStrategy.validate(&defaulted(&StatefulSetStrategy, s));
    assert_eq!(
        fields(&causes),
        ["spec.selector", "spec.template.metadata.labels"]
    );
    let mut s = statefulset();
    s["spec"]["selector"] = json!({});
    let causes = StatefulSetStrategy.validate(&defaulted(&StatefulSetStrategy, s));
    assert_eq!(fields(&causes), ["spec.selector"]);
    assert!(
        causes[0]
            .message
            .ends_with("empty selector is invalid for statefulset")
    );
}

#[test]
fn statefulset_field_rules() {
    let mut s = defaulted(&StatefulSetStrategy, statefulset());
    s["spec"]["replicas"] = json!(-1);
    s["spec"]["ordinals"] = json!({"start": -2});
    s["spec"]["minReadySeconds"] = json!(-3);
    s["spec"]["podManagementPolicy"] = json!("Random");
    s["spec"]["updateStrategy"]["rollingUpdate"] = json!({"partition": -1, "maxUnavailable": 0});
    s["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = json!("Keep");
    s["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5);
    s["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] =
        json!("-1Gi");
    let causes = StatefulSetStrategy.validate(&s);
    let msg = |f: &str| {
        causes
            .iter()
            .find(|c| c.field == f)
            .unwrap_or_else(|| panic!("no {f} in {causes:?}"))
            .message
            .clone()
    };
    assert_eq!(
        msg("spec.replicas"),
        "Invalid value: -1: must be greater than or equal to 0"
    );
    assert_eq!(
        msg("spec.ordinals.start"),
        "Invalid value: -2: must be greater than or equal to 0"
    );
    assert_eq!(
        msg("spec.minReadySeconds"),
        "Invalid value: -3: must be greater than or equal to 0"
    );
    assert_eq!(
        msg("spec.podManagementPolicy"),
        "Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"
    );
    assert_eq!(
        msg("spec.updateStrategy.rollingUpdate.partition"),
        "Invalid value: -1: must be greater than or equal to 0"
    );
    assert_eq!(
        msg("spec.updateStrategy.rollingUpdate.maxUnavailable"),
        "Invalid value: 0: cannot be 0"
    );
    assert_eq!(
        msg("spec.persistentVolumeClaimRetentionPolicy.whenScaled"),
        "Unsupported value: \"Keep\": supported values: \"Delete\", \"Retain\""
    );
    assert_eq!(
        msg("spec.template.spec.activeDeadlineSeconds"),
        "Forbidden: activeDeadlineSeconds in StatefulSet is not Supported"
    );
    // As in Kubernetes, a claim template is only checked when its claim is made.
    assert!(
        !fields(&causes)
            .iter()
            .any(|f| f.starts_with("spec.volumeClaimTemplates")),
        "{causes:?}"
    );
    let mut bad = defaulted(&StatefulSetStrategy, statefulset());
    bad["spec"]["updateStrategy"] = json!({"type": "Sometimes"});
    assert_eq!(
        fields(&StatefulSetStrategy.validate(&bad)),
        ["spec.updateStrategy"]
    );
    bad["spec"]["updateStrategy"] = json!({"type": "OnDelete", "rollingUpdate": {"partition": 1}});
    assert_eq!(
        fields(&StatefulSetStrategy.validate(&bad)),
        ["spec.updateStrategy.rollingUpdate"]
    );
}

#[test]
fn statefulset_update_may_change_only_some_fields() {
    let old = defaulted(&StatefulSetStrategy, statefulset());
    let mut ok = old.clone();
    ok["spec"]["replicas"] = json!(5);
    ok["spec"]["ordinals"] = json!({"start": 3});
    ok["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    ok["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    ok["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = json!("Delete");
    ok["spec"]["minReadySeconds"] = json!(4);
    ok["spec"]["revisionHistoryLimit"] = json!(2);
    assert!(StatefulSetStrategy.validate_update(&ok, &old).is_empty());
    for (field, value) in [
        ("serviceName", json!("other")),
        ("podManagementPolicy", json!("Parallel")),
        ("selector", json!({"matchLabels": {"app": "web", "x": "y"}})),
        ("volumeClaimTemplates", json!([])),
    ] {
        let mut new = old.clone();
        new["spec"][field] = value;
        let causes = StatefulSetStrategy.validate_update(&new, &old);
        assert_eq!(fields(&causes), ["spec"], "{field}");
        assert_eq!(
            causes[0].message,
            "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        );
    }
    assert!(StatefulSetStrategy.uses_generation());
}

#[test]
fn statefulset_row() {
    let mut s = defaulted(&StatefulSetStrategy, statefulset());
    s["spec"]["replicas"] = json!(3);
    s["status"] = json!({"replicas": 3, "readyReplicas": 2});
    let now: Timestamp = "2024-01-01T00:05:00Z".parse().unwrap();
    assert_eq!(
        statefulset_cells(&s, now),
        vec![
            json!("web"),
            json!("2/3"),
            json!("5m"),
            json!("nginx"),
            json!("nginx:1.25")
        ]
    );
    let names: Vec<&str> = StatefulSetStrategy
        .columns()
        .iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["Name", "Ready", "Age", "Containers", "Images"]);
    let wide: Vec<i32> = StatefulSetStrategy
        .columns()
        .iter()
        .map(|c| c.priority)
        .collect();
    assert_eq!(wide, [0, 0, 0, 1, 1]);
}

#[test]
fn statefulset_status_rules() {
    let mut old = defaulted(&StatefulSetStrategy, statefulset());
    old["status"] = json!({"replicas": 2, "readyReplicas": 2, "collisionCount": 1});
    let mut ok = old.clone();
    ok["status"] = json!({"replicas": 3, "readyReplicas": 2, "availableReplicas": 2,
        "updatedReplicas": 3, "currentReplicas": 1, "collisionCount": 2});
    assert!(StatefulSetStrategy.validate_update(&ok, &old).is_empty());
    let mut bad = old.clone();
    bad["status"] = json!({"replicas": 1, "readyReplicas": 2, "availableReplicas": 3, "updatedReplicas": -1, "collisionCount": 0});
    let causes = StatefulSetStrategy.validate_update(&bad, &old);
    let msgs: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    assert_eq!(
        msgs,
        [
            "status.updatedReplicas: Invalid value: -1: must be greater than or equal to 0",
            "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas",
            "status.availableReplicas: Invalid value: 3: cannot be greater than status.replicas",
            "status.availableReplicas: Invalid value: 3: cannot be greater than status.readyReplicas",
            "status.collisionCount: Invalid value: 0: cannot be decremented",
        ]
    );
}
