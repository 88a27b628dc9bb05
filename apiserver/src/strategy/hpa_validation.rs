//! HorizontalPodAutoscaler validation as kube-apiserver's (pkg/apis/autoscaling/validation):
//! replica bounds (minReplicas ≥ 1, the HPAScaleToZero gate being off by default), the
//! scale target, each metric source and target, and the `behavior` rules.

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior, MetricSpec,
    MetricTarget,
};
use serde_json::json;

use crate::error::Cause;

const MAX_STABILIZATION_WINDOW_SECONDS: i32 = 3600;
const MAX_PERIOD_SECONDS: i32 = 1800;

fn required_because(field: String, why: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired",
        field,
        message: format!("Required value: {why}"),
    }
}

fn positive_quantity(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> bool {
    skiff_api::quantity::Quantity::parse(&q.0).is_ok_and(|q| !q.is_negative() && !q.is_zero())
}

/// `validateMetricTarget`.
fn validate_target(t: &MetricTarget, at: &str, out: &mut Vec<Cause>) {
    const TYPES: &[&str] = &["Utilization", "Value", "AverageValue"];
    if t.type_.is_empty() {
        out.push(required_because(
            format!("{at}.type"),
            "must specify a metric target type",
        ));
    } else if !TYPES.contains(&t.type_.as_str()) {
        out.push(Cause::invalid(
            format!("{at}.type"),
            &json!(t.type_),
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    for (field, q) in [("value", &t.value), ("averageValue", &t.average_value)] {
        if let Some(q) = q.as_ref().filter(|q| !positive_quantity(q)) {
            out.push(Cause::invalid(
                format!("{at}.{field}"),
                &json!(q.0),
                "must be positive",
            ));
        }
    }
    if let Some(u) = t.average_utilization.filter(|u| *u < 1) {
        out.push(Cause::invalid(
            format!("{at}.averageUtilization"),
            &json!(u),
            "must be greater than 0",
        ));
    }
}

/// The rules a Resource and a ContainerResource source share.
fn validate_resource_target(name: &str, t: &MetricTarget, at: &str, out: &mut Vec<Cause>) {
    if name.is_empty() {
        out.push(required_because(
            format!("{at}.name"),
            "must specify a resource name",
        ));
    }
    if t.average_utilization.is_none() && t.average_value.is_none() {
        out.push(required_because(
            format!("{at}.target.averageUtilization"),
            "must set either a target raw value or a target utilization",
        ));
    }
    if t.average_utilization.is_some() && t.average_value.is_some() {
        out.push(Cause::forbidden(
            format!("{at}.target.averageValue"),
            "may not set both a target raw value and a target utilization",
        ));
    }
    validate_target(t, &format!("{at}.target"), out);
}

/// `validateMetricSpec`.
fn validate_metric(m: &MetricSpec, at: &str, out: &mut Vec<Cause>) {
    const TYPES: &[&str] = &[
        "Object",
        "Pods",
        "Resource",
        "External",
        "ContainerResource",
    ];
    if m.type_.is_empty() {
        out.push(required_because(
            format!("{at}.type"),
            "must specify a metric source type",
        ));
        return;
    }
    if !TYPES.contains(&m.type_.as_str()) {
        out.push(Cause::not_supported(
            format!("{at}.type"),
            &json!(m.type_),
            TYPES,
        ));
        return;
    }
    let populated = [
        ("Object", m.object.is_some()),
        ("Pods", m.pods.is_some()),
        ("Resource", m.resource.is_some()),
        ("External", m.external.is_some()),
        ("ContainerResource", m.container_resource.is_some()),
    ];
    let given = populated
        .iter()
        .find(|(t, _)| *t == m.type_)
        .is_some_and(|(_, set)| *set);
    if !given {
        out.push(required_because(
            format!("{at}.{}", lower_first(&m.type_)),
            "must populate information for the given metric source",
        ));
    }
    if populated.iter().any(|(t, set)| *set && *t != m.type_) {
        out.push(Cause::forbidden(
            format!("{at}.type"),
            "must populate the given metric source only",
        ));
    }
    if let Some(r) = &m.resource {
        validate_resource_target(&r.name, &r.target, &format!("{at}.resource"), out);
    }
    if let Some(c) = &m.container_resource {
        let at = format!("{at}.containerResource");
        if c.container.is_empty() {
            out.push(required_because(
                format!("{at}.container"),
                "must specify a container",
            ));
        }
        validate_resource_target(&c.name, &c.target, &at, out);
    }
    if let Some(p) = &m.pods {
        validate_target(&p.target, &format!("{at}.pods.target"), out);
    }
    if let Some(o) = &m.object {
        validate_target(&o.target, &format!("{at}.object.target"), out);
    }
    if let Some(e) = &m.external {
        validate_target(&e.target, &format!("{at}.external.target"), out);
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// `validateScalingRules`.
fn validate_rules(r: &HPAScalingRules, at: &str, out: &mut Vec<Cause>) {
    if let Some(w) = r
        .stabilization_window_seconds
        .filter(|w| !(0..=MAX_STABILIZATION_WINDOW_SECONDS).contains(w))
    {
        out.push(Cause::invalid(
            format!("{at}.stabilizationWindowSeconds"),
            &json!(w),
            format!("must be greater than or equal to zero and less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"),
        ));
    }
    const SELECT: &[&str] = &["Max", "Min", "Disabled"];
    if let Some(p) = r
        .select_policy
        .as_ref()
        .filter(|p| !SELECT.contains(&p.as_str()))
    {
        out.push(Cause::not_supported(
            format!("{at}.selectPolicy"),
            &json!(p),
            SELECT,
        ));
    }
    let policies = r.policies.as_deref().unwrap_or_default();
    if policies.is_empty() {
        out.push(required_because(
            format!("{at}.policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        let at = format!("{at}.policies[{i}]");
        if p.type_ != "Pods" && p.type_ != "Percent" {
            out.push(Cause::not_supported(
                format!("{at}.type"),
                &json!(p.type_),
                &["Percent", "Pods"],
            ));
        }
        if p.value <= 0 {
            out.push(Cause::invalid(
                format!("{at}.value"),
                &json!(p.value),
                "must be greater than zero",
            ));
        }
        if p.period_seconds <= 0 {
            out.push(Cause::invalid(
                format!("{at}.periodSeconds"),
                &json!(p.period_seconds),
                "must be greater than zero",
            ));
        } else if p.period_seconds > MAX_PERIOD_SECONDS {
            out.push(Cause::invalid(
                format!("{at}.periodSeconds"),
                &json!(p.period_seconds),
                format!("must be less than or equal to {MAX_PERIOD_SECONDS}"),
            ));
        }
    }
    if let Some(t) = &r.tolerance
        && skiff_api::quantity::Quantity::parse(&t.0).is_ok_and(|q| q.is_negative())
    {
        out.push(Cause::invalid(
            format!("{at}.tolerance"),
            &json!(t.0),
            "must be greater than or equal to zero",
        ));
    }
}

fn validate_behavior(b: &HorizontalPodAutoscalerBehavior, out: &mut Vec<Cause>) {
    if let Some(r) = &b.scale_up {
        validate_rules(r, "spec.behavior.scaleUp", out);
    }
    if let Some(r) = &b.scale_down {
        validate_rules(r, "spec.behavior.scaleDown", out);
    }
}

/// Every rule, in Kubernetes' order.
pub fn validate_hpa(hpa: &HorizontalPodAutoscaler) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = hpa.spec.clone().unwrap_or_default();
    if let Some(min) = spec.min_replicas.filter(|m| *m < 1) {
        out.push(Cause::invalid(
            "spec.minReplicas",
            &json!(min),
            "must be greater than or equal to 1",
        ));
    }
    if spec.max_replicas < 1 {
        out.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(spec.max_replicas),
            "must be greater than 0",
        ));
    }
    if spec.min_replicas.is_some_and(|min| spec.max_replicas < min) {
        out.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(spec.max_replicas),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let r = &spec.scale_target_ref;
    for (field, v) in [("kind", &r.kind), ("name", &r.name)] {
        let path = format!("spec.scaleTargetRef.{field}");
        if v.is_empty() {
            out.push(Cause::required(path));
        } else if v == "." || v == ".." {
            out.push(Cause::invalid(path, &json!(v), format!("may not be '{v}'")));
        } else if v.contains('/') || v.contains('%') {
            let bad = if v.contains('/') { "/" } else { "%" };
            out.push(Cause::invalid(
                path,
                &json!(v),
                format!("may not contain '{bad}'"),
            ));
        }
    }
    for (i, m) in spec.metrics.iter().flatten().enumerate() {
        validate_metric(m, &format!("spec.metrics[{i}]"), &mut out);
    }
    if let Some(b) = &spec.behavior {
        validate_behavior(b, &mut out);
    }
    out
}
