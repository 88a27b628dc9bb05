//! Read helpers over `metadata` of JSON objects, and the well-known label and annotation keys.

use std::collections::BTreeMap;

use serde_json::Value;

/// The annotation `kubectl apply` keeps the last applied manifest in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The annotation naming the container `logs`/`exec` pick by default.
pub const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";
/// The pod-template annotation `rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The revision annotation of Deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The label that ties ReplicaSets and pods to one Deployment template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The node label holding the node's host name.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// The node label holding the operating system (`linux`).
pub const OS_LABEL: &str = "kubernetes.io/os";
/// The node label holding the CPU architecture (`amd64`, `arm64`).
pub const ARCH_LABEL: &str = "kubernetes.io/arch";
/// The node label marking control-plane nodes.
pub const ROLE_CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";

fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(key)?.as_str()
}

fn string_map(obj: &Value, key: &str) -> BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.name`.
pub fn name(obj: &Value) -> Option<&str> {
    meta_str(obj, "name")
}

/// `metadata.namespace`.
pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace")
}

/// `metadata.uid`.
pub fn uid(obj: &Value) -> Option<&str> {
    meta_str(obj, "uid")
}

/// `metadata.resourceVersion`.
pub fn resource_version(obj: &Value) -> Option<&str> {
    meta_str(obj, "resourceVersion")
}

/// `metadata.generateName`.
pub fn generate_name(obj: &Value) -> Option<&str> {
    meta_str(obj, "generateName")
}

/// `metadata.deletionTimestamp`.
pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    meta_str(obj, "deletionTimestamp")
}

/// `metadata.labels` as a map (empty when absent; non-string values skipped).
pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    string_map(obj, "labels")
}

/// `metadata.annotations` as a map (empty when absent; non-string values skipped).
pub fn annotations(obj: &Value) -> BTreeMap<String, String> {
    string_map(obj, "annotations")
}

/// `metadata.ownerReferences` (empty when absent).
pub fn owner_references(obj: &Value) -> &[Value] {
    obj.get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_ref(obj: &Value) -> Option<&Value> {
    owner_references(obj)
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

/// `metadata.finalizers` (empty when absent).
pub fn finalizers(obj: &Value) -> Vec<&str> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_metadata() {
        let obj = json!({
            "metadata": {
                "name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                "generateName": "web-",
                "deletionTimestamp": "2024-01-01T00:00:00Z",
                "labels": {"app": "web", "bad": 1},
                "annotations": {(REVISION): "3"},
                "ownerReferences": [
                    {"kind": "ReplicaSet", "name": "a"},
                    {"kind": "Deployment", "name": "b", "controller": true}
                ],
                "finalizers": ["x"]
            }
        });
        assert_eq!(name(&obj), Some("web"));
        assert_eq!(namespace(&obj), Some("default"));
        assert_eq!(uid(&obj), Some("u1"));
        assert_eq!(resource_version(&obj), Some("7"));
        assert_eq!(generate_name(&obj), Some("web-"));
        assert_eq!(deletion_timestamp(&obj), Some("2024-01-01T00:00:00Z"));
        assert_eq!(labels(&obj), BTreeMap::from([("app".into(), "web".into())]));
        assert_eq!(
            annotations(&obj).get(REVISION).map(String::as_str),
            Some("3")
        );
        assert_eq!(owner_references(&obj).len(), 2);
        assert_eq!(
            controller_ref(&obj).and_then(|r| r["name"].as_str()),
            Some("b")
        );
        assert_eq!(finalizers(&obj), vec!["x"]);
    }

    #[test]
    fn absent_metadata_reads_empty() {
        let obj = json!({"kind": "Pod"});
        assert_eq!(name(&obj), None);
        assert!(labels(&obj).is_empty());
        assert!(owner_references(&obj).is_empty());
        assert!(controller_ref(&obj).is_none());
        assert!(finalizers(&obj).is_empty());
    }
}

/// Formats a duration as Kubernetes' `duration.HumanDuration` does: `5s`, `3m20s`, `12m`,
/// `5h3m`, `3d5h`, `45d`, `2y3d`. Durations under -1s are `<invalid>`.
/// Shared by the server's tables and the CLI's own columns.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}
