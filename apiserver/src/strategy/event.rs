//! Events: core/v1 is the stored form; events.k8s.io/v1 is converted to and from it
//! (regarding ↔ involvedObject, note ↔ message, deprecated* ↔ source/first/last/count).
//! Validation as `legacyValidateEvent`, the event table and its field selectors.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use serde_json::{Map, Value, json};
use skiff_api::validation::{is_dns1123_subdomain, is_qualified_name};

use super::table::{NAME, col, human_duration, wide};
use super::{Column, Strategy, decode, decode_for_validation};
use crate::error::Cause;

/// Strategy for core/v1 events (events.k8s.io/v1 events are stored as these).
pub struct EventStrategy;

/// Field renames between core/v1 (left) and events.k8s.io/v1 (right).
const RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename(obj: Value, to_events: bool, api_version: &str) -> Value {
    let Value::Object(m) = obj else { return obj };
    let mut out = Map::new();
    for (k, v) in m {
        let key = RENAMES
            .iter()
            .find_map(|(core, ev)| match to_events {
                true if k == *core => Some(*ev),
                false if k == *ev => Some(*core),
                _ => None,
            })
            .map(str::to_string)
            .unwrap_or(k);
        out.insert(key, v);
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// core/v1 → events.k8s.io/v1.
pub fn core_to_events_v1(obj: Value) -> Value {
    rename(obj, true, "events.k8s.io/v1")
}

/// events.k8s.io/v1 → core/v1.
pub fn events_v1_to_core(obj: Value) -> Value {
    rename(obj, false, "v1")
}

fn validate_event(ev: &Event) -> Vec<Cause> {
    let mut out = Vec::new();
    let ns = ev.metadata.namespace.clone().unwrap_or_default();
    let involved_ns = ev.involved_object.namespace.clone().unwrap_or_default();
    let mismatch = || {
        Cause::invalid(
            "involvedObject.namespace",
            &json!(involved_ns),
            "does not match event.namespace",
        )
    };
    if ev.event_time.is_none() {
        if involved_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                out.push(mismatch());
            }
        } else if ns != involved_ns {
            out.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            out.push(mismatch());
        }
        let controller = ev.reporting_component.clone().unwrap_or_default();
        if controller.is_empty() {
            out.push(Cause::required("reportingComponent"));
        }
        for msg in is_qualified_name(&controller) {
            out.push(Cause::invalid(
                "reportingComponent",
                &json!(controller),
                msg,
            ));
        }
        if ev.reporting_instance.as_deref().unwrap_or("").is_empty() {
            out.push(Cause::required("reportingInstance"));
        }
        if ev.action.as_deref().unwrap_or("").is_empty() {
            out.push(Cause::required("action"));
        }
        if ev.reason.as_deref().unwrap_or("").is_empty() {
            out.push(Cause::required("reason"));
        }
    }
    if !ns.is_empty() {
        for msg in is_dns1123_subdomain(&ns) {
            out.push(Cause::invalid("namespace", &json!(ns), msg));
        }
    }
    out
}

impl Strategy for EventStrategy {
    fn validate(&self, obj: &Value) -> Vec<Cause> {
        decode_for_validation::<Event>(obj)
            .map(|e| validate_event(&e))
            .unwrap_or_else(|c| c)
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col(
                "Last Seen",
                "string",
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            col(
                "Type",
                "string",
                "Type of this event (Normal, Warning), new types could be added in the future.",
            ),
            col(
                "Reason",
                "string",
                "This should be a short, machine understandable string that gives the reason for this event being generated.",
            ),
            col("Object", "string", "The object that this event is about."),
            wide(
                "Subobject",
                "string",
                "The subobject (e.g. a container) of the object this event is about.",
            ),
            wide("Source", "string", "The component reporting this event."),
            col(
                "Message",
                "string",
                "A human-readable description of the status of this operation.",
            ),
            wide(
                "First Seen",
                "string",
                "The time at which the event was first recorded.",
            ),
            wide(
                "Count",
                "integer",
                "The number of times this event has occurred.",
            ),
            Column {
                name: "Name",
                kind: "string",
                format: "name",
                priority: 1,
                description: NAME.description,
            },
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        event_cells(obj, Timestamp::now())
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        // events.k8s.io/v1 names the same fields after its own schema.
        let path = match path {
            p if p.starts_with("regarding.") => {
                format!("involvedObject.{}", &p["regarding.".len()..])
            }
            "deprecatedSource" => "source".into(),
            "reportingController" => "reportingComponent".into(),
            p => p.to_string(),
        };
        match path.as_str() {
            "involvedObject.kind"
            | "involvedObject.namespace"
            | "involvedObject.name"
            | "involvedObject.uid"
            | "involvedObject.apiVersion"
            | "involvedObject.resourceVersion"
            | "involvedObject.fieldPath"
            | "reason"
            | "reportingComponent"
            | "type" => super::select(obj, &path),
            "source" => Some(
                super::path_str(obj, "source.component")
                    .filter(|s| !s.is_empty())
                    .or_else(|| super::path_str(obj, "reportingComponent"))
                    .unwrap_or_default(),
            ),
            _ => None,
        }
    }
}

fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    t.map(|t| human_duration(now.duration_since(t)))
        .unwrap_or_else(|| "<unknown>".into())
}

fn event_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ev: Event = decode(obj).unwrap_or_default();
    let first = match (&ev.first_timestamp, &ev.event_time) {
        (Some(t), _) => since(Some(t.0), now),
        (None, t) => since(t.as_ref().map(|t| t.0), now),
    };
    let mut last = ev
        .last_timestamp
        .as_ref()
        .map(|t| since(Some(t.0), now))
        .unwrap_or_else(|| first.clone());
    let mut count = ev.count.unwrap_or(0);
    if let Some(series) = &ev.series {
        last = since(series.last_observed_time.as_ref().map(|t| t.0), now);
        count = series.count.unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let io = &ev.involved_object;
    let kind = io.kind.clone().unwrap_or_default().to_lowercase();
    let target = match io.name.as_deref() {
        Some(n) if !n.is_empty() => format!("{kind}/{n}"),
        _ => kind,
    };
    let non_empty = |a: Option<String>, b: Option<String>| {
        a.filter(|s| !s.is_empty()).or(b).unwrap_or_default()
    };
    let source = ev.source.clone().unwrap_or_default();
    let component = non_empty(source.component, ev.reporting_component.clone());
    let instance = non_empty(source.host, ev.reporting_instance.clone());
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(ev.type_.unwrap_or_default()),
        json!(ev.reason.unwrap_or_default()),
        json!(target),
        json!(io.field_path.clone().unwrap_or_default()),
        json!(source),
        json!(ev.message.unwrap_or_default().trim()),
        json!(first),
        json!(count),
        json!(ev.metadata.name.unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core_event() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.17a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u1", "fieldPath": "spec.containers{nginx}"},
            "reason": "Pulled", "message": "Successfully pulled image ", "type": "Normal",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:05:00Z", "count": 3,
            "reportingComponent": "kubelet", "reportingInstance": "node-1"
        })
    }

    #[test]
    fn conversion_round_trips() {
        let core = core_event();
        let ev = core_to_events_v1(core.clone());
        assert_eq!(ev["apiVersion"], "events.k8s.io/v1");
        assert_eq!(ev["regarding"]["name"], "web");
        assert_eq!(ev["note"], "Successfully pulled image ");
        assert_eq!(ev["deprecatedSource"]["component"], "kubelet");
        assert_eq!(ev["deprecatedCount"], 3);
        assert_eq!(ev["reportingController"], "kubelet");
        assert!(ev.get("involvedObject").is_none());
        assert_eq!(events_v1_to_core(ev), core);
    }

    #[test]
    fn table_row_and_fields() {
        let now: Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        let cells = event_cells(&core_event(), now);
        assert_eq!(
            cells[..4],
            [
                json!("5m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web")
            ]
        );
        assert_eq!(cells[5], json!("kubelet, node-1"));
        assert_eq!(cells[6], json!("Successfully pulled image"));
        assert_eq!(cells[7..], [json!("10m"), json!(3), json!("web.17a")]);
        assert_eq!(EventStrategy.columns().len(), cells.len());
        let ev = core_event();
        assert_eq!(
            EventStrategy.field(&ev, "involvedObject.uid").as_deref(),
            Some("u1")
        );
        assert_eq!(
            EventStrategy.field(&ev, "regarding.name").as_deref(),
            Some("web")
        );
        assert_eq!(
            EventStrategy.field(&ev, "source").as_deref(),
            Some("kubelet")
        );
        assert_eq!(EventStrategy.field(&ev, "message"), None);
    }

    #[test]
    fn involved_namespace_must_match() {
        assert!(EventStrategy.validate(&core_event()).is_empty());
        let mut ev = core_event();
        ev["involvedObject"]["namespace"] = json!("other");
        let causes = EventStrategy.validate(&ev);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "involvedObject.namespace");
        assert_eq!(
            causes[0].message,
            "Invalid value: \"other\": does not match event.namespace"
        );
    }

    #[test]
    fn new_style_events_need_reporting_fields() {
        let mut ev = core_event();
        ev["eventTime"] = json!("2024-01-01T00:00:00.000000Z");
        ev.as_object_mut().unwrap().remove("reportingComponent");
        let fields: Vec<String> = EventStrategy
            .validate(&ev)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert!(
            fields.contains(&"reportingComponent".to_string()),
            "{fields:?}"
        );
        assert!(fields.contains(&"action".to_string()), "{fields:?}");
    }
}
