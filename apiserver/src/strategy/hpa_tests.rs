//! Tests for the HPA strategy and the autoscaling v1 ↔ v2 conversion.

use super::*;

fn v2(spec: Value) -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": spec})
}

fn target() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
}

#[test]
fn defaults_min_replicas_and_cpu_metric() {
    let mut h = v2(json!({"scaleTargetRef": target(), "maxReplicas": 5}));
    HpaStrategy.default(&mut h);
    assert_eq!(h["spec"]["minReplicas"], 1);
    assert_eq!(h["spec"]["metrics"], json!([cpu_metric(80)]));
    assert!(HpaStrategy.validate(&h).is_empty());

    let mut b = v2(json!({"scaleTargetRef": target(), "maxReplicas": 5, "behavior": {}}));
    HpaStrategy.default(&mut b);
    // Unset, so the controller's --horizontal-pod-autoscaler-downscale-stabilization applies.
    assert!(
        b["spec"]["behavior"]["scaleDown"]
            .get("stabilizationWindowSeconds")
            .is_none()
    );
    assert_eq!(
        b["spec"]["behavior"]["scaleDown"]["policies"],
        json!([{"type": "Percent", "value": 100, "periodSeconds": 15}])
    );
    assert_eq!(
        b["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"],
        0
    );
    assert_eq!(
        b["spec"]["behavior"]["scaleUp"]["policies"][0],
        json!({"type": "Pods", "value": 4, "periodSeconds": 15})
    );
}

#[test]
fn validation_rules() {
    let mut h = v2(
        json!({"scaleTargetRef": {"kind": "", "name": "web"}, "minReplicas": 4, "maxReplicas": 2}),
    );
    HpaStrategy.default(&mut h);
    let causes = HpaStrategy.validate(&h);
    let f: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(f, ["spec.maxReplicas", "spec.scaleTargetRef.kind"]);
    assert_eq!(
        causes[0].message,
        "Invalid value: 2: must be greater than or equal to `minReplicas`"
    );
}

fn causes(spec: Value) -> Vec<(String, String)> {
    let mut h = v2(spec);
    HpaStrategy.default(&mut h);
    HpaStrategy
        .validate(&h)
        .into_iter()
        .map(|c| (c.field, c.message))
        .collect()
}

fn with_metric(metric: Value) -> Value {
    json!({"scaleTargetRef": target(), "maxReplicas": 5, "metrics": [metric]})
}

#[test]
fn metric_validation_as_kubernetes_words_it() {
    let bogus = causes(with_metric(json!({"type": "Bogus"})));
    assert_eq!(bogus.len(), 1);
    assert_eq!(bogus[0].0, "spec.metrics[0].type");
    assert!(
        bogus[0]
            .1
            .starts_with("Unsupported value: \"Bogus\": supported values: "),
        "{}",
        bogus[0].1
    );

    let cases = [
        (
            json!({"type": "Resource"}),
            "spec.metrics[0].resource",
            "Required value: must populate information for the given metric source",
        ),
        (
            json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}),
            "spec.metrics[0].resource.target.averageUtilization",
            "Required value: must set either a target raw value or a target utilization",
        ),
        (
            json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}}),
            "spec.metrics[0].resource.target.averageUtilization",
            "Invalid value: 0: must be greater than 0",
        ),
        (
            json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "Average", "averageValue": "1Gi"}}}),
            "spec.metrics[0].resource.target.type",
            "Invalid value: \"Average\": must be either Utilization, Value, or AverageValue",
        ),
        (
            json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "-1"}}}),
            "spec.metrics[0].resource.target.averageValue",
            "Invalid value: \"-1\": must be positive",
        ),
        (
            json!({"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "",
            "target": {"type": "Utilization", "averageUtilization": 50}}}),
            "spec.metrics[0].containerResource.container",
            "Required value: must specify a container",
        ),
        (
            json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50, "averageValue": "1"}}}),
            "spec.metrics[0].resource.target.averageValue",
            "Forbidden: may not set both a target raw value and a target utilization",
        ),
    ];
    for (metric, field, message) in cases {
        let got = causes(with_metric(metric.clone()));
        assert!(
            got.contains(&(field.to_string(), message.to_string())),
            "{metric}: {got:?}"
        );
    }
    let ok = causes(with_metric(
        json!({"type": "ContainerResource", "containerResource": {"name": "cpu",
        "container": "app", "target": {"type": "Utilization", "averageUtilization": 60}}}),
    ));
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn behavior_validation() {
    let spec = |behavior: Value| json!({"scaleTargetRef": target(), "maxReplicas": 5, "behavior": behavior});
    let got = causes(spec(json!({
        "scaleUp": {"stabilizationWindowSeconds": 4000, "selectPolicy": "Most",
            "policies": [{"type": "Pod", "value": 0, "periodSeconds": 2000}]},
        "scaleDown": {"policies": [], "tolerance": "-0.1"}})));
    let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.behavior.scaleUp.stabilizationWindowSeconds",
            "spec.behavior.scaleUp.selectPolicy",
            "spec.behavior.scaleUp.policies[0].type",
            "spec.behavior.scaleUp.policies[0].value",
            "spec.behavior.scaleUp.policies[0].periodSeconds",
            "spec.behavior.scaleDown.policies",
            "spec.behavior.scaleDown.tolerance",
        ]
    );
    assert_eq!(
        got[0].1,
        "Invalid value: 4000: must be greater than or equal to zero and less than or equal to 3600"
    );
    assert_eq!(
        got[4].1,
        "Invalid value: 2000: must be less than or equal to 1800"
    );
    assert_eq!(got[5].1, "Required value: must specify at least one Policy");
    assert!(
        causes(spec(
            json!({"scaleDown": {"stabilizationWindowSeconds": 60}})
        ))
        .is_empty()
    );
}

#[test]
fn scale_to_zero_is_refused() {
    let got = causes(json!({"scaleTargetRef": target(), "minReplicas": 0, "maxReplicas": 5}));
    assert_eq!(
        got[0],
        (
            "spec.minReplicas".to_string(),
            "Invalid value: 0: must be greater than or equal to 1".to_string()
        )
    );
}

#[test]
fn v1_round_trips_through_v2() {
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": target(), "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50},
        "status": {"currentReplicas": 2, "desiredReplicas": 2, "currentCPUUtilizationPercentage": 30}});
    let stored = v1_to_v2(v1.clone());
    assert_eq!(stored["apiVersion"], "autoscaling/v2");
    assert_eq!(stored["spec"]["metrics"], json!([cpu_metric(50)]));
    assert_eq!(
        stored["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
        30
    );
    assert!(stored["metadata"].get("annotations").is_none());
    assert_eq!(v2_to_v1(stored), v1);
}

#[test]
fn v2_only_fields_survive_v1_in_annotations() {
    let pods_metric = json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}});
    let mut stored = v2(
        json!({"scaleTargetRef": target(), "minReplicas": 1, "maxReplicas": 5,
        "metrics": [pods_metric.clone(), cpu_metric(70)], "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}),
    );
    stored["status"] = json!({"currentReplicas": 1, "desiredReplicas": 1,
        "conditions": [{"type": "AbleToScale", "status": "True"}]});
    let v1 = v2_to_v1(stored.clone());
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
    assert!(v1["spec"].get("metrics").is_none());
    let ann = &v1["metadata"]["annotations"];
    assert!(ann[METRICS_ANN].as_str().unwrap().contains("qps"));
    assert!(
        ann[CONDITIONS_ANN]
            .as_str()
            .unwrap()
            .contains("AbleToScale")
    );
    assert_eq!(v1_to_v2(v1), stored);
}

#[test]
fn table_row() {
    let mut h = v2(json!({"scaleTargetRef": target(), "maxReplicas": 5}));
    HpaStrategy.default(&mut h);
    h["status"] = json!({"currentReplicas": 2, "desiredReplicas": 2,
        "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45}}}]});
    let now: Timestamp = "2024-01-01T00:03:00Z".parse().unwrap();
    assert_eq!(
        hpa_cells(&h, now),
        vec![
            json!("web"),
            json!("Deployment/web"),
            json!("cpu: 45%/80%"),
            json!("1"),
            json!(5),
            json!(2),
            json!("3m")
        ]
    );
    h["status"] = json!({"desiredReplicas": 0});
    assert_eq!(hpa_cells(&h, now)[2], json!("cpu: <unknown>/80%"));
}
