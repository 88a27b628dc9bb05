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
    assert_eq!(
        b["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        300
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
