//! Namespaces: the `kubernetes.io/metadata.name` label, the `kubernetes` finalizer and
//! Active phase on create, finalizers kept across updates, and the table.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::table::{AGE, NAME, age, col, name};
use super::{Column, Deletion, Strategy};

/// Strategy for core/v1 namespaces.
pub struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    fn name_rule(&self) -> fn(&str) -> Vec<String> {
        skiff_api::validation::is_dns1123_label
    }

    fn deletion(&self) -> Deletion {
        Deletion::AfterContents
    }

    fn prepare_delete(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Terminating"});
    }

    fn default(&self, obj: &mut Value) {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !name.is_empty()
            && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        {
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut)
            && status
                .get("phase")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
        {
            status.insert("phase".into(), json!("Active"));
        }
    }

    fn prepare_create(&self, obj: &mut Value) {
        let Some(m) = obj.as_object_mut() else { return };
        let spec = m.entry("spec").or_insert_with(|| json!({}));
        if !spec.is_object() {
            *spec = json!({});
        }
        let finalizers = spec
            .as_object_mut()
            .map(|s| s.entry("finalizers").or_insert_with(|| json!([])));
        if let Some(Value::Array(f)) = finalizers
            && !f.iter().any(|v| v == "kubernetes")
        {
            f.push(json!("kubernetes"));
        }
        m.insert("status".into(), json!({"phase": "Active"}));
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        // spec.finalizers change only through the finalize subresource.
        let old_finalizers = old.pointer("/spec/finalizers").cloned();
        if let Some(m) = new.as_object_mut() {
            let spec = m.entry("spec").or_insert_with(|| json!({}));
            if let Some(s) = spec.as_object_mut() {
                match old_finalizers {
                    Some(f) => s.insert("finalizers".into(), f),
                    None => s.remove("finalizers"),
                };
            }
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Status", "string", "The status of the namespace"),
            AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        namespace_cells(obj, Timestamp::now())
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        (path == "status.phase").then(|| super::path_str(obj, path).unwrap_or_default())
    }
}

fn namespace_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let phase = obj
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    vec![name(obj), json!(phase), age(obj, now)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_sets_label_finalizer_and_phase() {
        let mut ns =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}});
        NamespaceStrategy.default(&mut ns);
        NamespaceStrategy.prepare_create(&mut ns);
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team-a"
        );
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(
            NamespaceStrategy.field(&ns, "status.phase").as_deref(),
            Some("Active")
        );
        assert!(!NamespaceStrategy.uses_generation());
    }

    #[test]
    fn updates_keep_finalizers() {
        let old = json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes"]}});
        let mut new = json!({"metadata": {"name": "a"}, "spec": {"finalizers": []}});
        NamespaceStrategy.prepare_update(&mut new, &old);
        assert_eq!(new["spec"]["finalizers"], json!(["kubernetes"]));
    }

    #[test]
    fn table_row() {
        let now: Timestamp = "2024-01-02T00:00:00Z".parse().unwrap();
        let ns = json!({"metadata": {"name": "a", "creationTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": "Terminating"}});
        assert_eq!(
            namespace_cells(&ns, now),
            vec![json!("a"), json!("Terminating"), json!("24h")]
        );
    }
}
