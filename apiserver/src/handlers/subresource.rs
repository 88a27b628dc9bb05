//! Subresources with their own shape: `scale` (an autoscaling/v1 Scale view of a workload's
//! replicas) and `binding` (the scheduler's assignment of a pod to a node); `eviction` is
//! `eviction.rs`.

use serde_json::{Value, json};
use skiff_api::labels::Selector;

use super::ApiState;
use super::object::{ObjectRef, now, read};
use super::update::{UpdateScope, update};
use crate::error::ApiError;
use crate::strategy::ScalePaths;

/// The Scale view of a workload object (storage form), read where `paths` say.
pub fn scale_of(paths: &ScalePaths, obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let raw = paths.selector.as_ref().and_then(|p| p.get(obj));
    // A ReplicationController's selector is an equality map, not a LabelSelector.
    let equality_map = raw
        .and_then(Value::as_object)
        .is_some_and(|m| !m.contains_key("matchLabels") && !m.contains_key("matchExpressions"));
    let selector = if paths.selector_is_text {
        raw.and_then(Value::as_str).map(str::to_string)
    } else if equality_map {
        raw.and_then(|s| serde_json::from_value(s.clone()).ok())
            .and_then(|m| crate::strategy::map_selector(&m))
            .map(|s| s.to_string())
    } else {
        raw.and_then(|s| serde_json::from_value(s.clone()).ok())
            .and_then(|s| Selector::from_label_selector(&s).ok())
            .map(|s| s.to_string())
    }
    .unwrap_or_default();
    let mut m = json!({});
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(f) {
            m[f] = v.clone();
        }
    }
    let replicas = |p: &crate::custom::JsonPath| p.get(obj).cloned().unwrap_or(json!(0));
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": m,
        "spec": {"replicas": replicas(&paths.spec_replicas)},
        "status": {
            "replicas": replicas(&paths.status_replicas),
            "selector": selector,
        },
    })
}

/// Applies a new Scale (from PUT or a patched Scale) to its workload.
pub async fn update_scale(
    state: &ApiState,
    at: &ObjectRef<'_>,
    scale: Value,
    dry_run: bool,
    by: Option<&crate::managed::FieldWrite>,
) -> Result<Value, ApiError> {
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    if !replicas.is_i64() {
        return Err(ApiError::bad_request("spec.replicas must be an integer"));
    }
    if replicas.as_i64().unwrap_or(0) < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            at.name,
            &[skiff_api::validation::Cause::invalid(
                "spec.replicas",
                &replicas,
                "must be greater than or equal to 0",
            )],
        ));
    }
    let (orig, rev) = read(state, at).await?;
    let mut obj = orig.clone();
    if let Some(want) = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        && want != rev.to_string()
    {
        return Err(at.conflict(
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
    }
    let paths = at.storage.strategy().scale_paths();
    if !paths.spec_replicas.set(&mut obj, replicas) {
        return Err(ApiError::internal(format!(
            "cannot set the replicas of {} at {:?}",
            at.name,
            paths.spec_replicas.field_name()
        )));
    }
    let out = update(
        state,
        at,
        obj,
        UpdateScope::Main,
        dry_run,
        Some((orig, rev)),
        by,
    )
    .await?;
    Ok(scale_of(&paths, &out))
}

/// POST pods/<name>/binding: sets `spec.nodeName` once and marks the pod scheduled.
pub async fn bind(
    state: &ApiState,
    at: &ObjectRef<'_>,
    binding: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            at.name,
            &[skiff_api::validation::Cause::required("target.name")],
        ));
    }
    for _ in 0..5 {
        let (orig, rev) = read(state, at).await?;
        let mut pod = orig.clone();
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                "",
                "pods",
                at.name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        if let Some(cur) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict(
                "",
                "pods/binding",
                at.name,
                &format!("pod {} is already assigned to node \"{cur}\"", at.name),
            ));
        }
        pod["spec"]["nodeName"] = json!(node);
        let conds = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conds: Vec<Value> = conds
            .into_iter()
            .filter(|c| c["type"] != "PodScheduled")
            .collect();
        conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}));
        pod["status"]["conditions"] = Value::Array(conds);
        match update(
            state,
            at,
            pod,
            UpdateScope::Both,
            dry_run,
            Some((orig, rev)),
            None,
        )
        .await
        {
            Ok(_) => {
                return Ok(
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                );
            }
            Err(e) if e.code == 409 && e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(
        "",
        "pods",
        at.name,
        "the pod kept changing; try again",
    ))
}
