//! HorizontalPodAutoscalers: stored as autoscaling/v2; defaults (minReplicas, cpu 80%,
//! behavior), validation, the table, and the autoscaling/v1 ↔ v2 conversion. What v1
//! cannot express (other metrics, conditions, behavior) travels in the
//! `autoscaling.alpha.kubernetes.io/*` annotations as Kubernetes does; their payload here
//! is the v2 JSON of those fields.

use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, MetricSpec, MetricStatus,
};
use serde_json::{Map, Value, json};

use super::table::{AGE, NAME, age, col, name};
use super::{Column, Strategy, decode, decode_for_validation, with_typed};
use crate::error::Cause;
use validation::validate_hpa;

#[path = "hpa_validation.rs"]
mod validation;

/// Strategy for autoscaling/v2 horizontal pod autoscalers.
pub struct HpaStrategy;

const METRICS_ANN: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CURRENT_METRICS_ANN: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS_ANN: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR_ANN: &str = "autoscaling.alpha.kubernetes.io/behavior";

fn policy(type_: &str, value: i32) -> HPAScalingPolicy {
    HPAScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds: 15,
    }
}

fn fill_rules(rules: &mut Option<HPAScalingRules>, window: i32, policies: Vec<HPAScalingPolicy>) {
    let r = rules.get_or_insert_with(Default::default);
    r.stabilization_window_seconds.get_or_insert(window);
    r.select_policy.get_or_insert_with(|| "Max".into());
    r.policies.get_or_insert(policies);
}

fn default_hpa(hpa: &mut HorizontalPodAutoscaler) {
    let spec = hpa.spec.get_or_insert_with(Default::default);
    spec.min_replicas.get_or_insert(1);
    if spec.metrics.as_ref().is_none_or(|m| m.is_empty()) {
        spec.metrics = Some(vec![
            serde_json::from_value(cpu_metric(80)).unwrap_or_default(),
        ]);
    }
    if let Some(b) = spec.behavior.as_mut() {
        fill_rules(
            &mut b.scale_up,
            0,
            vec![policy("Pods", 4), policy("Percent", 100)],
        );
        // The scale-down window stays unset: the controller's
        // --horizontal-pod-autoscaler-downscale-stabilization applies.
        let down = b.scale_down.get_or_insert_with(Default::default);
        down.select_policy.get_or_insert_with(|| "Max".into());
        down.policies
            .get_or_insert_with(|| vec![policy("Percent", 100)]);
    }
}

fn cpu_metric(utilization: i64) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": utilization}}})
}

impl Strategy for HpaStrategy {
    fn default(&self, obj: &mut Value) {
        with_typed::<HorizontalPodAutoscaler>(obj, default_hpa);
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        decode_for_validation::<HorizontalPodAutoscaler>(obj)
            .map(|h| validate_hpa(&h))
            .unwrap_or_else(|c| c)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Reference",
                "string",
                "CrossVersionObjectReference contains enough information to let you identify the referred resource.",
            ),
            col(
                "Targets",
                "string",
                "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).",
            ),
            col(
                "MinPods",
                "string",
                "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
            ),
            col(
                "MaxPods",
                "integer",
                "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
            ),
            col(
                "Replicas",
                "integer",
                "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.",
            ),
            AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        hpa_cells(obj, Timestamp::now())
    }
}

fn quantity(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> String {
    q.map(|q| q.0.clone()).unwrap_or_else(|| "<unknown>".into())
}

/// `formatHPAMetrics`: up to two `current/target` pairs, then ` + N more...`.
fn format_metrics(specs: &[MetricSpec], statuses: &[MetricStatus]) -> String {
    if specs.is_empty() {
        return "<none>".into();
    }
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let st = statuses.get(i);
            match spec.type_.as_str() {
                "Resource" | "ContainerResource" => {
                    let (name, target, current) = match (&spec.resource, &spec.container_resource) {
                        (Some(r), _) => (
                            r.name.clone(),
                            r.target.clone(),
                            st.and_then(|s| s.resource.as_ref())
                                .map(|s| s.current.clone()),
                        ),
                        (None, Some(c)) => (
                            c.name.clone(),
                            c.target.clone(),
                            st.and_then(|s| s.container_resource.as_ref())
                                .map(|s| s.current.clone()),
                        ),
                        _ => return "<unknown type>".into(),
                    };
                    if let Some(avg) = &target.average_value {
                        let cur = current
                            .and_then(|c| c.average_value)
                            .map(|q| q.0)
                            .unwrap_or_else(|| "<unknown>".into());
                        format!("{name}: {cur}/{}", avg.0)
                    } else {
                        let cur = current
                            .and_then(|c| c.average_utilization)
                            .map(|u| format!("{u}%"))
                            .unwrap_or_else(|| "<unknown>".into());
                        let tgt = target
                            .average_utilization
                            .map(|u| format!("{u}%"))
                            .unwrap_or_else(|| "<auto>".into());
                        format!("{name}: {cur}/{tgt}")
                    }
                }
                "Pods" => {
                    let cur = st
                        .and_then(|s| s.pods.as_ref())
                        .and_then(|p| p.current.average_value.as_ref());
                    let tgt = spec
                        .pods
                        .as_ref()
                        .and_then(|p| p.target.average_value.as_ref());
                    format!("{}/{}", quantity(cur), quantity(tgt))
                }
                "Object" | "External" => {
                    let target = spec
                        .object
                        .as_ref()
                        .map(|o| o.target.clone())
                        .or_else(|| spec.external.as_ref().map(|e| e.target.clone()))
                        .unwrap_or_default();
                    let current = st.and_then(|s| {
                        s.object
                            .as_ref()
                            .map(|o| o.current.clone())
                            .or_else(|| s.external.as_ref().map(|e| e.current.clone()))
                    });
                    match &target.average_value {
                        Some(avg) => format!(
                            "{}/{} (avg)",
                            quantity(current.and_then(|c| c.average_value).as_ref()),
                            avg.0
                        ),
                        None => format!(
                            "{}/{}",
                            quantity(current.and_then(|c| c.value).as_ref()),
                            quantity(target.value.as_ref())
                        ),
                    }
                }
                _ => "<unknown type>".into(),
            }
        })
        .collect();
    if list.len() > 2 {
        format!("{} + {} more...", list[..2].join(", "), list.len() - 2)
    } else {
        list.join(", ")
    }
}

fn hpa_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let hpa: HorizontalPodAutoscaler = decode(obj).unwrap_or_default();
    let spec = hpa.spec.unwrap_or_default();
    let status = hpa.status.unwrap_or_default();
    let r = &spec.scale_target_ref;
    vec![
        name(obj),
        json!(format!("{}/{}", r.kind, r.name)),
        json!(format_metrics(
            spec.metrics.as_deref().unwrap_or(&[]),
            status.current_metrics.as_deref().unwrap_or(&[])
        )),
        json!(
            spec.min_replicas
                .map_or_else(|| "<unset>".to_string(), |m| m.to_string())
        ),
        json!(spec.max_replicas),
        json!(status.current_replicas.unwrap_or(0)),
        age(obj, now),
    ]
}

fn annotations(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = obj
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    meta.as_object_mut()?
        .entry("annotations")
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

fn take_object(m: &mut Map<String, Value>, key: &str) -> Option<Value> {
    m.remove(key).filter(|v| !v.is_null())
}

fn is_cpu_utilization(m: &Value) -> Option<i64> {
    let r = m.get("resource")?;
    (m.get("type")? == "Resource"
        && r.get("name")? == "cpu"
        && r.pointer("/target/type")? == "Utilization")
        .then(|| {
            r.pointer("/target/averageUtilization")
                .and_then(Value::as_i64)
        })
        .flatten()
}

/// autoscaling/v2 → autoscaling/v1.
pub fn v2_to_v1(mut obj: Value) -> Value {
    let mut spec = obj
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    let mut status = obj
        .get_mut("status")
        .and_then(Value::as_object_mut)
        .map(std::mem::take);
    let mut notes: Vec<(&str, Value)> = Vec::new();

    let mut others = Vec::new();
    let mut target_cpu = None;
    if let Some(Value::Array(metrics)) = spec.remove("metrics") {
        for m in metrics {
            match is_cpu_utilization(&m) {
                Some(u) if target_cpu.is_none() => target_cpu = Some(u),
                _ => others.push(m),
            }
        }
    }
    if let Some(u) = target_cpu {
        spec.insert("targetCPUUtilizationPercentage".into(), json!(u));
    }
    if !others.is_empty() {
        notes.push((METRICS_ANN, Value::Array(others)));
    }
    if let Some(b) = take_object(&mut spec, "behavior") {
        notes.push((BEHAVIOR_ANN, b));
    }
    if let Some(st) = status.as_mut() {
        let mut others = Vec::new();
        let mut current_cpu = None;
        if let Some(Value::Array(metrics)) = st.remove("currentMetrics") {
            for m in metrics {
                let cpu = (m.get("type") == Some(&json!("Resource"))
                    && m.pointer("/resource/name") == Some(&json!("cpu")))
                .then(|| {
                    m.pointer("/resource/current/averageUtilization")
                        .and_then(Value::as_i64)
                })
                .flatten();
                match cpu {
                    Some(u) if current_cpu.is_none() => current_cpu = Some(u),
                    _ => others.push(m),
                }
            }
        }
        if let Some(u) = current_cpu {
            st.insert("currentCPUUtilizationPercentage".into(), json!(u));
        }
        if !others.is_empty() {
            notes.push((CURRENT_METRICS_ANN, Value::Array(others)));
        }
        if let Some(c) = take_object(st, "conditions") {
            notes.push((CONDITIONS_ANN, c));
        }
    }
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!("autoscaling/v1"));
        m.insert("spec".into(), Value::Object(spec));
        if let Some(st) = status {
            m.insert("status".into(), Value::Object(st));
        }
    }
    if !notes.is_empty()
        && let Some(ann) = annotations(&mut obj)
    {
        for (k, v) in notes {
            ann.insert(k.into(), json!(v.to_string()));
        }
    }
    obj
}

/// autoscaling/v1 → autoscaling/v2.
pub fn v1_to_v2(mut obj: Value) -> Value {
    let mut from_ann = |key: &str| -> Option<Value> {
        let ann = obj
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)?;
        let raw = ann.remove(key)?;
        serde_json::from_str(raw.as_str()?).ok()
    };
    let other_metrics = from_ann(METRICS_ANN);
    let other_current = from_ann(CURRENT_METRICS_ANN);
    let conditions = from_ann(CONDITIONS_ANN);
    let behavior = from_ann(BEHAVIOR_ANN);
    if obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
        && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("annotations");
    }

    let mut spec = obj
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    let mut metrics: Vec<Value> = match other_metrics {
        Some(Value::Array(m)) => m,
        _ => Vec::new(),
    };
    if let Some(u) = spec
        .remove("targetCPUUtilizationPercentage")
        .and_then(|v| v.as_i64())
    {
        metrics.push(cpu_metric(u));
    }
    if !metrics.is_empty() {
        spec.insert("metrics".into(), Value::Array(metrics));
    }
    if let Some(b) = behavior {
        spec.insert("behavior".into(), b);
    }
    let status = obj.get_mut("status").and_then(Value::as_object_mut).map(|st| {
        let mut st = std::mem::take(st);
        let mut current: Vec<Value> = match &other_current {
            Some(Value::Array(m)) => m.clone(),
            _ => Vec::new(),
        };
        if let Some(u) = st.remove("currentCPUUtilizationPercentage").and_then(|v| v.as_i64()) {
            current.push(json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}}));
        }
        if !current.is_empty() {
            st.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(c) = &conditions {
            st.insert("conditions".into(), c.clone());
        }
        st
    });
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!("autoscaling/v2"));
        m.insert("spec".into(), Value::Object(spec));
        if let Some(st) = status {
            m.insert("status".into(), Value::Object(st));
        }
    }
    obj
}

#[cfg(test)]
#[path = "hpa_tests.rs"]
mod tests;
