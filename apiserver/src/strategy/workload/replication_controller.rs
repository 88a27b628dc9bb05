//! ReplicationControllers (core/v1), the ReplicaSet's predecessor with an equality-only
//! selector map: defaults as `SetDefaults_ReplicationController` (the selector and the
//! object's labels from the template's labels when empty, one replica),
//! `ValidateReplicationControllerSpec`, and the same table as ReplicaSets. The selector may
//! change on update, as Kubernetes allows for this kind.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};
use skiff_api::labels::Selector;

use super::{
    containers_images, default_template, go_map, nonnegative, replica_columns,
    status_replicas_field, validate_template_spec,
};
use crate::error::Cause;
use crate::strategy::table::{age, name};
use crate::strategy::{Column, Strategy, decode, decode_for_validation, with_typed};

/// The selector an equality map stands for (`None` when a key or value is malformed).
pub fn map_selector(m: &std::collections::BTreeMap<String, String>) -> Option<Selector> {
    Selector::from_label_selector(&LabelSelector {
        match_labels: Some(m.clone()),
        match_expressions: None,
    })
    .ok()
}

/// Strategy for core/v1 replicationcontrollers.
pub struct ReplicationControllerStrategy;

impl Strategy for ReplicationControllerStrategy {
    fn default(&self, obj: &mut Value) {
        with_typed::<ReplicationController>(obj, |rc| {
            let labels = rc
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .filter(|l| !l.is_empty());
            let spec = rc.spec.get_or_insert_with(Default::default);
            if let Some(labels) = labels {
                if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
                    spec.selector = Some(labels.clone());
                }
                if rc.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
                    rc.metadata.labels = Some(labels);
                }
            }
            spec.replicas.get_or_insert(1);
            if let Some(t) = spec.template.as_mut() {
                default_template(t);
            }
        });
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let rc = match decode_for_validation::<ReplicationController>(obj) {
            Ok(r) => r,
            Err(c) => return c,
        };
        let spec = rc.spec.unwrap_or_default();
        let mut out = Vec::new();
        nonnegative(&mut out, "spec.minReadySeconds", spec.min_ready_seconds);
        let selector = spec.selector.clone().unwrap_or_default();
        if selector.is_empty() {
            out.push(Cause::required("spec.selector"));
        }
        nonnegative(&mut out, "spec.replicas", spec.replicas);
        match &spec.template {
            None => out.push(Cause::required("spec.template")),
            Some(t) => {
                let labels = t.metadata.as_ref().and_then(|m| m.labels.clone());
                let matches = map_selector(&selector)
                    .is_some_and(|s| s.matches(&labels.clone().unwrap_or_default()));
                if !selector.is_empty() && !matches {
                    out.push(Cause {
                        reason: "FieldValueInvalid",
                        field: "spec.template.metadata.labels".into(),
                        message: format!(
                            "Invalid value: {}: `selector` does not match template `labels`",
                            go_map(labels.as_ref())
                        ),
                    });
                }
                let pod = t.spec.clone().unwrap_or_default();
                validate_template_spec(&pod, "ReplicationController", &mut out);
            }
        }
        out
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        replica_columns("The number of ready replicas for this replication controller.")
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        rc_cells(obj, Timestamp::now())
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        status_replicas_field(obj, path)
    }
}

fn rc_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let rc: ReplicationController = decode(obj).unwrap_or_default();
    let spec = rc.spec.unwrap_or_default();
    let st = rc.status.unwrap_or_default();
    let (containers, images) = containers_images(spec.template.as_ref());
    let selector = map_selector(&spec.selector.unwrap_or_default())
        .map(|s| s.to_string())
        .unwrap_or_default();
    vec![
        name(obj),
        json!(spec.replicas.unwrap_or(0)),
        json!(st.replicas),
        json!(st.ready_replicas.unwrap_or(0)),
        age(obj, now),
        containers,
        images,
        json!(selector),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ReplicationController",
               "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn template(labels: Value) -> Value {
        json!({"metadata": {"labels": labels},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    }

    #[test]
    fn the_selector_labels_and_replicas_default_from_the_template() {
        let mut obj = rc(json!({"template": template(json!({"app": "web"}))}));
        ReplicationControllerStrategy.default(&mut obj);
        assert_eq!(obj["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(obj["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(obj["spec"]["replicas"], 1);
        assert_eq!(obj["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert!(ReplicationControllerStrategy.validate(&obj).is_empty());
        // A given selector and labels are kept.
        let mut obj = rc(json!({"selector": {"app": "web"}, "replicas": 0,
                                "template": template(json!({"app": "web", "v": "2"}))}));
        obj["metadata"]["labels"] = json!({"team": "a"});
        ReplicationControllerStrategy.default(&mut obj);
        assert_eq!(obj["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(obj["metadata"]["labels"], json!({"team": "a"}));
        assert_eq!(obj["spec"]["replicas"], 0);
    }

    #[test]
    fn bad_specs_get_kubernetes_messages() {
        let causes = |spec: Value| -> Vec<(String, String)> {
            let mut obj = rc(spec);
            ReplicationControllerStrategy.default(&mut obj);
            ReplicationControllerStrategy
                .validate(&obj)
                .into_iter()
                .map(|c| (c.field, c.message))
                .collect()
        };
        let got = causes(json!({"selector": {"app": "web"}, "replicas": -1,
                                "template": template(json!({"app": "other"}))}));
        assert!(
            got.contains(&(
                "spec.replicas".into(),
                "Invalid value: -1: must be greater than or equal to 0".into()
            )),
            "{got:?}"
        );
        assert!(got.contains(&(
            "spec.template.metadata.labels".into(),
            "Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`".into()
        )), "{got:?}");
        let got = causes(json!({}));
        assert!(
            got.contains(&("spec.selector".into(), "Required value".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&("spec.template".into(), "Required value".into())),
            "{got:?}"
        );
    }

    #[test]
    fn the_table_is_a_replica_sets() {
        let obj = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "selector": {"app": "web"}, "template": template(json!({"app": "web"}))},
            "status": {"replicas": 2, "readyReplicas": 1}});
        let cells = rc_cells(&obj, "2026-01-01T00:01:00Z".parse().unwrap());
        assert_eq!(cells[..4], [json!("web"), json!(3), json!(2), json!(1)]);
        assert_eq!(cells[7], json!("app=web"));
    }
}
