//! ReplicaSets (apps/v1): defaults, spec validation (selector, template, replicas), the
//! immutable selector, and the table.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use serde_json::{Value, json};

use super::{
    containers_images, default_template, default_workload, nonnegative, replica_columns,
    selector_immutable, status_replicas_field, validate_selector_and_template,
};
use crate::error::Cause;
use crate::strategy::table::{age, format_selector, name};
use crate::strategy::{Column, Strategy, decode, decode_for_validation};

/// Strategy for apps/v1 replicasets.
pub struct ReplicaSetStrategy;

impl Strategy for ReplicaSetStrategy {
    fn default(&self, obj: &mut Value) {
        default_workload::<ReplicaSet>(obj, |rs| {
            let spec = rs.spec.get_or_insert_with(Default::default);
            spec.replicas.get_or_insert(1);
            if let Some(t) = spec.template.as_mut() {
                default_template(t);
            }
        });
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let rs = match decode_for_validation::<ReplicaSet>(obj) {
            Ok(r) => r,
            Err(c) => return c,
        };
        let spec = rs.spec.unwrap_or_default();
        let mut out = Vec::new();
        nonnegative(&mut out, "spec.replicas", spec.replicas);
        nonnegative(&mut out, "spec.minReadySeconds", spec.min_ready_seconds);
        match &spec.template {
            None => out.push(Cause::required("spec.template")),
            // Kubernetes' ReplicaSet validation reuses the deployment wording.
            Some(t) => {
                let selector = obj.pointer("/spec/selector").map(|_| &spec.selector);
                validate_selector_and_template(selector, t, "deployment", &mut out)
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
        replica_columns("The number of ready replicas for this replica set.")
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        replicaset_cells(obj, Timestamp::now())
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        status_replicas_field(obj, path)
    }
}

pub(super) fn replicaset_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let rs: ReplicaSet = decode(obj).unwrap_or_default();
    let spec = rs.spec.unwrap_or_default();
    let st = rs.status.unwrap_or_default();
    let (containers, images) = containers_images(spec.template.as_ref());
    vec![
        name(obj),
        json!(spec.replicas.unwrap_or(0)),
        json!(st.replicas),
        json!(st.ready_replicas.unwrap_or(0)),
        age(obj, now),
        containers,
        images,
        json!(format_selector(Some(&spec.selector))),
    ]
}
