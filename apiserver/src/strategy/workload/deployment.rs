//! Deployments (apps/v1): defaults as apps/v1's defaulter sets them, spec validation
//! (selector, template, replicas, rolling update), the immutable selector, and the table.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStrategy as K8sDeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use super::{
    CONTAINERS, IMAGES, READY, SELECTOR, containers_images, default_template, default_workload,
    nonnegative, ready_cell, selector_immutable, validate_rolling, validate_selector_and_template,
};
use crate::error::Cause;
use crate::strategy::table::{AGE, NAME, age, col, format_selector, name};
use crate::strategy::{Column, Strategy, decode, decode_for_validation};

/// Strategy for apps/v1 deployments.
pub struct DeploymentStrategy;

impl Strategy for DeploymentStrategy {
    fn default(&self, obj: &mut Value) {
        default_workload::<Deployment>(obj, |d| {
            let spec = d.spec.get_or_insert_with(Default::default);
            spec.replicas.get_or_insert(1);
            let strategy = spec
                .strategy
                .get_or_insert_with(K8sDeploymentStrategy::default);
            if strategy.type_.as_deref().unwrap_or("").is_empty() {
                strategy.type_ = Some("RollingUpdate".into());
            }
            if strategy.type_.as_deref() == Some("RollingUpdate") {
                let ru = strategy
                    .rolling_update
                    .get_or_insert_with(RollingUpdateDeployment::default);
                ru.max_unavailable
                    .get_or_insert_with(|| IntOrString::String("25%".into()));
                ru.max_surge
                    .get_or_insert_with(|| IntOrString::String("25%".into()));
            }
            spec.revision_history_limit.get_or_insert(10);
            spec.progress_deadline_seconds.get_or_insert(600);
            default_template(&mut spec.template);
        });
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let d = match decode_for_validation::<Deployment>(obj) {
            Ok(d) => d,
            Err(c) => return c,
        };
        let spec = d.spec.unwrap_or_default();
        let mut out = Vec::new();
        nonnegative(&mut out, "spec.replicas", spec.replicas);
        let selector = obj.pointer("/spec/selector").map(|_| &spec.selector);
        validate_selector_and_template(selector, &spec.template, "deployment", &mut out);
        let strategy = spec.strategy.unwrap_or_default();
        match strategy.type_.as_deref().unwrap_or("") {
            "Recreate" if strategy.rolling_update.is_some() => out.push(Cause::forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            )),
            "Recreate" => {}
            "RollingUpdate" => match &strategy.rolling_update {
                None => out.push(Cause::required("spec.strategy.rollingUpdate")),
                Some(ru) => validate_rolling(
                    ru.max_surge.as_ref(),
                    ru.max_unavailable.as_ref(),
                    "spec.strategy.rollingUpdate",
                    &mut out,
                ),
            },
            other => out.push(Cause::not_supported(
                "spec.strategy.type",
                &json!(other),
                &["Recreate", "RollingUpdate"],
            )),
        }
        nonnegative(&mut out, "spec.minReadySeconds", spec.min_ready_seconds);
        nonnegative(
            &mut out,
            "spec.revisionHistoryLimit",
            spec.revision_history_limit,
        );
        if let Some(p) = spec.progress_deadline_seconds {
            nonnegative(&mut out, "spec.progressDeadlineSeconds", Some(p));
            if p <= spec.min_ready_seconds.unwrap_or(0) {
                out.push(Cause::invalid(
                    "spec.progressDeadlineSeconds",
                    &json!(p),
                    "must be greater than minReadySeconds",
                ));
            }
        }
        out
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        selector_immutable(new, old)
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            READY,
            col(
                "Up-to-date",
                "integer",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "integer",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        deployment_cells(obj, Timestamp::now())
    }
}

pub(super) fn deployment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let d: Deployment = decode(obj).unwrap_or_default();
    let spec = d.spec.unwrap_or_default();
    let st = d.status.unwrap_or_default();
    let (containers, images) = containers_images(Some(&spec.template));
    vec![
        name(obj),
        ready_cell(st.ready_replicas, spec.replicas),
        json!(st.updated_replicas.unwrap_or(0)),
        json!(st.available_replicas.unwrap_or(0)),
        age(obj, now),
        containers,
        images,
        json!(format_selector(Some(&spec.selector))),
    ]
}
