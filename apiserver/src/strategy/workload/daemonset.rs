//! DaemonSets (apps/v1): defaults, spec validation (selector, template, update strategy),
//! the immutable selector, and the table.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetUpdateStrategy, RollingUpdateDaemonSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use super::{
    CONTAINERS, IMAGES, containers_images, default_template, default_workload, int_or_percent,
    ios_json, nonnegative, selector_immutable, validate_rolling, validate_selector_and_template,
};
use crate::error::Cause;
use crate::strategy::table::{AGE, NAME, age, col, format_labels, format_selector, name, wide};
use crate::strategy::{Column, Strategy, decode, decode_for_validation};

/// Strategy for apps/v1 daemonsets.
pub struct DaemonSetStrategy;

impl Strategy for DaemonSetStrategy {
    fn default(&self, obj: &mut Value) {
        default_workload::<DaemonSet>(obj, |ds| {
            let spec = ds.spec.get_or_insert_with(Default::default);
            let us = spec
                .update_strategy
                .get_or_insert_with(DaemonSetUpdateStrategy::default);
            if us.type_.as_deref().unwrap_or("").is_empty() {
                us.type_ = Some("RollingUpdate".into());
            }
            if us.type_.as_deref() == Some("RollingUpdate") {
                let ru = us
                    .rolling_update
                    .get_or_insert_with(RollingUpdateDaemonSet::default);
                ru.max_unavailable.get_or_insert(IntOrString::Int(1));
                ru.max_surge.get_or_insert(IntOrString::Int(0));
            }
            spec.revision_history_limit.get_or_insert(10);
            default_template(&mut spec.template);
        });
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let ds = match decode_for_validation::<DaemonSet>(obj) {
            Ok(d) => d,
            Err(c) => return c,
        };
        let spec = ds.spec.unwrap_or_default();
        let mut out = Vec::new();
        let selector = obj.pointer("/spec/selector").map(|_| &spec.selector);
        validate_selector_and_template(selector, &spec.template, "daemonset", &mut out);
        let us = spec.update_strategy.unwrap_or_default();
        match us.type_.as_deref().unwrap_or("") {
            "OnDelete" => {}
            "RollingUpdate" => match &us.rolling_update {
                None => out.push(Cause::required("spec.updateStrategy.rollingUpdate")),
                Some(ru) => {
                    validate_rolling(
                        ru.max_surge.as_ref(),
                        ru.max_unavailable.as_ref(),
                        "spec.updateStrategy.rollingUpdate",
                        &mut out,
                    );
                    if int_or_percent(ru.max_surge.as_ref()) > 100
                        && matches!(ru.max_surge, Some(IntOrString::String(_)))
                    {
                        let v = ru.max_surge.as_ref().map(ios_json).unwrap_or(Value::Null);
                        out.push(Cause::invalid(
                            "spec.updateStrategy.rollingUpdate.maxSurge",
                            &v,
                            "must not be greater than 100%",
                        ));
                    }
                }
            },
            other => out.push(Cause::not_supported(
                "spec.updateStrategy.type",
                &json!(other),
                &["OnDelete", "RollingUpdate"],
            )),
        }
        nonnegative(&mut out, "spec.minReadySeconds", spec.min_ready_seconds);
        nonnegative(
            &mut out,
            "spec.revisionHistoryLimit",
            spec.revision_history_limit,
        );
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
            col(
                "Desired",
                "integer",
                "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
            ),
            col(
                "Current",
                "integer",
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
            ),
            col(
                "Ready",
                "integer",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
            ),
            col(
                "Up-to-date",
                "integer",
                "The total number of nodes that are running updated daemon pod",
            ),
            col(
                "Available",
                "integer",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
            ),
            col(
                "Node Selector",
                "string",
                "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            wide(
                "Selector",
                "string",
                "A label query over pods that are managed by the daemon set.",
            ),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        daemonset_cells(obj, Timestamp::now())
    }
}

pub(super) fn daemonset_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ds: DaemonSet = decode(obj).unwrap_or_default();
    let spec = ds.spec.unwrap_or_default();
    let st = ds.status.unwrap_or_default();
    let (containers, images) = containers_images(Some(&spec.template));
    let node_selector = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref());
    vec![
        name(obj),
        json!(st.desired_number_scheduled),
        json!(st.current_number_scheduled),
        json!(st.number_ready),
        json!(st.updated_number_scheduled.unwrap_or(0)),
        json!(st.number_available.unwrap_or(0)),
        json!(format_labels(node_selector)),
        age(obj, now),
        containers,
        images,
        json!(format_selector(Some(&spec.selector))),
    ]
}
