//! ControllerRevisions (apps/v1): immutable snapshots of a controller's template, as
//! `ValidateControllerRevision` / `ValidateControllerRevisionUpdate` check them, with the
//! CONTROLLER and REVISION columns of `kubectl get controllerrevisions`.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::table::{AGE, NAME, age, col, name};
use super::{Column, Strategy};
use crate::error::Cause;

/// Strategy for apps/v1 controllerrevisions.
pub struct ControllerRevisionStrategy;

impl Strategy for ControllerRevisionStrategy {
    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        match obj.get("revision") {
            Some(r) if r.as_i64().is_some_and(|r| r >= 0) => {}
            Some(r) if r.is_i64() => out.push(Cause::invalid(
                "revision",
                r,
                "must be greater than or equal to 0",
            )),
            Some(r) => out.push(Cause::invalid("revision", r, "must be an integer")),
            None => out.push(Cause::required("revision")),
        }
        out
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        if new.get("data") != old.get("data") {
            return vec![Cause::immutable(
                "data",
                new.get("data").unwrap_or(&Value::Null),
            )];
        }
        Vec::new()
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Controller",
                "string",
                "The controller that owns this revision",
            ),
            col("Revision", "integer", "The revision number"),
            AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        revision_cells(obj, Timestamp::now())
    }
}

fn revision_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let controller = obj["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
        .map(|r| {
            let group = r["apiVersion"]
                .as_str()
                .and_then(|v| v.split_once('/'))
                .map(|(g, _)| format!(".{g}"))
                .unwrap_or_default();
            let kind = r["kind"].as_str().unwrap_or_default().to_lowercase();
            format!("{kind}{group}/{}", r["name"].as_str().unwrap_or_default())
        })
        .unwrap_or_else(|| "<none>".into());
    vec![
        name(obj),
        json!(controller),
        obj.get("revision").cloned().unwrap_or(json!(0)),
        age(obj, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(rev: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": "agent-5d8f", "namespace": "default",
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "u", "controller": true}]},
            "data": {"spec": {"template": {"$patch": "replace"}}},
            "revision": rev})
    }

    #[test]
    fn revision_must_be_non_negative_and_data_immutable() {
        assert!(
            ControllerRevisionStrategy
                .validate(&revision(json!(2)))
                .is_empty()
        );
        let causes = ControllerRevisionStrategy.validate(&revision(json!(-1)));
        assert_eq!(causes[0].field, "revision");
        assert_eq!(
            causes[0].message,
            "Invalid value: -1: must be greater than or equal to 0"
        );
        let mut changed = revision(json!(2));
        changed["data"] = json!({"spec": {}});
        let causes = ControllerRevisionStrategy.validate_update(&changed, &revision(json!(2)));
        assert_eq!(causes[0].field, "data");
        let mut bumped = revision(json!(2));
        bumped["revision"] = json!(3);
        assert!(
            ControllerRevisionStrategy
                .validate_update(&bumped, &revision(json!(2)))
                .is_empty(),
            "the revision number may change (a rollback reuses a revision)"
        );
    }

    #[test]
    fn row_names_the_controller() {
        let now: Timestamp = "2024-01-01T00:00:05Z".parse().unwrap();
        assert_eq!(
            revision_cells(&revision(json!(3)), now),
            vec![
                json!("agent-5d8f"),
                json!("daemonset.apps/agent"),
                json!(3),
                json!("5s")
            ]
        );
    }
}
