//! The registry against the shared resource table: one entry per served resource, strategies
//! whose rows fit their columns, conversions dispatched by version.

use serde_json::json;
use skiff_api::resources::RESOURCES;

use super::{builtin, convert};

#[test]
fn one_entry_per_served_resource_in_table_order() {
    let kinds = builtin();
    let served: Vec<_> = kinds.iter().map(|k| k.info).collect();
    assert_eq!(served.len(), RESOURCES.len());
    for (k, r) in served.iter().zip(RESOURCES) {
        assert!(std::ptr::eq(*k, r), "{} out of order", r.plural);
    }
    for k in kinds.iter() {
        for b in k.bodies() {
            assert!(
                k.info.subresource(b.subresource).is_some(),
                "{}",
                k.info.plural
            );
        }
    }
}

#[test]
fn every_resource_has_a_strategy_with_matching_rows() {
    let kinds = builtin();
    for k in kinds.iter() {
        let r = k.info;
        let st = k.strategy();
        let obj = json!({"apiVersion": r.api_version(), "kind": r.kind, "metadata": {"name": "x"}});
        assert_eq!(st.columns().len(), st.cells(&obj).len(), "{}", r.plural);
    }
    let pods = kinds.find("", "v1", "pods").unwrap();
    assert!(pods.strategy().uses_generation());
    let services = kinds.find("", "v1", "services").unwrap();
    assert!(!services.strategy().uses_generation());
}

#[test]
fn convert_dispatches_by_version() {
    let kinds = builtin();
    let v1 = kinds
        .find("autoscaling", "v1", "horizontalpodautoscalers")
        .unwrap();
    let v2 = kinds
        .find("autoscaling", "v2", "horizontalpodautoscalers")
        .unwrap();
    assert!(std::ptr::eq(kinds.storage_of(v1).info, v2.info));
    let obj = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"}, "spec": {"targetCPUUtilizationPercentage": 50}});
    let stored = convert(obj.clone(), v1, v2).unwrap();
    assert_eq!(stored["apiVersion"], "autoscaling/v2");
    assert_eq!(convert(stored, v2, v1).unwrap(), obj);
    assert_eq!(convert(obj.clone(), v1, v1).unwrap(), obj);

    let core = kinds.find("", "v1", "events").unwrap();
    let ev = kinds.find("events.k8s.io", "v1", "events").unwrap();
    let e = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "note": "hi"});
    assert_eq!(convert(e, ev, core).unwrap()["message"], "hi");

    let pods = kinds.find("", "v1", "pods").unwrap();
    assert_eq!(convert(obj, v1, pods).unwrap_err().code, 500);
}

#[test]
fn lookups_by_kind_and_protobuf_table() {
    let kinds = builtin();
    let d = kinds.find_by_kind("apps/v1", "Deployment").unwrap();
    assert_eq!(d.info.plural, "deployments");
    assert_eq!(kinds.protobuf_table("apps/v1", "Deployment"), d.protobuf());
    assert!(kinds.protobuf_table("autoscaling/v1", "Scale").is_some());
    assert!(kinds.protobuf_table("v1", "Binding").is_some());
    assert!(
        kinds
            .protobuf_table("apps/v1", "ControllerRevision")
            .is_some()
    );
    assert!(
        kinds
            .protobuf_table("apiextensions.k8s.io/v1", "CustomResourceDefinition")
            .is_none()
    );
    assert!(kinds.protobuf_table("batch/v1", "Job").is_some());
    assert!(kinds.protobuf_table("batch/v1", "CronJob").is_some());
}
