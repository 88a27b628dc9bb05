//! One event recorder for every component: Events written in the background so a slow or
//! failing event write never holds up a reconcile or a pod worker, reported as a named
//! component and instance.
//!
//! Two wires, as the components have written them: core/v1 Events (the kubelet and the
//! scheduler; `kubectl describe` lists them, one Event per occurrence with `count: 1`)
//! and events.k8s.io/v1 Events (the controllers; repeats are folded into a `series` by
//! kube-runtime's recorder).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::runtime::events as runtime_events;

/// Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Who reports an event.
#[derive(Debug, Clone, Default)]
pub struct Reporter {
    /// `reportingComponent` (`reportingController`) and `source.component`, e.g. `kubelet`.
    pub component: String,
    /// `reportingInstance`, e.g. the node a kubelet runs on.
    pub instance: Option<String>,
    /// `source.host` (core/v1 only).
    pub host: Option<String>,
}

#[derive(Clone)]
enum Wire {
    CoreV1,
    EventsV1(runtime_events::Recorder),
}

/// Records events as one reporter.
#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
    reporter: Reporter,
    wire: Wire,
}

/// A reference to `pod` and, when named, one of its containers (`fieldPath`
/// `spec.containers{name}` or `spec.initContainers{name}`), as the kubelet reports.
pub fn pod_reference(pod: &Pod, container: Option<&str>) -> ObjectReference {
    let m = &pod.metadata;
    let field_path = container.map(|c| {
        let is_init = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|ics| ics.iter().any(|i| i.name == c));
        let field = if is_init {
            "initContainers"
        } else {
            "containers"
        };
        format!("spec.{field}{{{c}}}")
    });
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(m.namespace.clone().unwrap_or_else(|| "default".into())),
        name: Some(m.name.clone().unwrap_or_default()),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        field_path,
    }
}

impl EventRecorder {
    /// A recorder writing core/v1 Events.
    pub fn core_v1(client: kube::Client, reporter: Reporter) -> Self {
        EventRecorder {
            client,
            reporter,
            wire: Wire::CoreV1,
        }
    }

    /// A recorder writing events.k8s.io/v1 Events, repeats folded into a series.
    pub fn events_v1(client: kube::Client, reporter: Reporter) -> Self {
        let runtime_reporter = runtime_events::Reporter {
            controller: reporter.component.clone(),
            instance: reporter.instance.clone(),
        };
        EventRecorder {
            wire: Wire::EventsV1(runtime_events::Recorder::new(
                client.clone(),
                runtime_reporter,
            )),
            client,
            reporter,
        }
    }

    /// A controller's recorder: events.k8s.io/v1 reported as `controller` (e.g.
    /// `replicaset-controller`).
    pub fn for_controller(client: kube::Client, controller: &str) -> Self {
        let reporter = Reporter {
            component: controller.into(),
            ..Reporter::default()
        };
        EventRecorder::events_v1(client, reporter)
    }

    /// Records a Normal event about `object` in the background (action = reason).
    pub fn normal(&self, object: ObjectReference, reason: &str, note: String) {
        self.publish(object, EventType::Normal, reason, Some(reason), note);
    }

    /// Records a Warning event about `object` in the background (action = reason).
    pub fn warning(&self, object: ObjectReference, reason: &str, note: String) {
        self.publish(object, EventType::Warning, reason, Some(reason), note);
    }

    /// Records an event about `pod` (and one of its containers) in the background.
    pub fn record(
        &self,
        pod: &Pod,
        container: Option<&str>,
        kind: EventType,
        reason: &str,
        message: String,
    ) {
        self.publish(pod_reference(pod, container), kind, reason, None, message);
    }

    /// Records an event in the background; a failure is logged, not returned.
    pub fn publish(
        &self,
        object: ObjectReference,
        kind: EventType,
        reason: &str,
        action: Option<&str>,
        note: String,
    ) {
        let recorder = self.clone();
        let (reason, action) = (reason.to_string(), action.map(str::to_string));
        tokio::spawn(async move {
            if let Err(e) = recorder
                .write(&object, kind, &reason, action.as_deref(), note)
                .await
            {
                tracing::debug!(reason = %reason, error = %e, "event not recorded");
            }
        });
    }

    /// Writes an event and waits for the API server's answer.
    pub async fn write(
        &self,
        object: &ObjectReference,
        kind: EventType,
        reason: &str,
        action: Option<&str>,
        note: String,
    ) -> Result<(), kube::Error> {
        match &self.wire {
            Wire::EventsV1(recorder) => {
                let type_ = match kind {
                    EventType::Normal => runtime_events::EventType::Normal,
                    EventType::Warning => runtime_events::EventType::Warning,
                };
                let ev = runtime_events::Event {
                    type_,
                    reason: reason.into(),
                    note: Some(note),
                    action: action.unwrap_or(reason).into(),
                    secondary: None,
                };
                recorder.publish(&ev, object).await
            }
            Wire::CoreV1 => {
                let ns = object.namespace.clone().unwrap_or_else(|| "default".into());
                let event = core_event(&self.reporter, object, &ns, kind, reason, action, note);
                let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
                api.create(&PostParams::default(), &event).await.map(|_| ())
            }
        }
    }
}

/// The core/v1 Event for one occurrence, named `<object>.<nanoseconds in hex>`.
fn core_event(
    reporter: &Reporter,
    object: &ObjectReference,
    ns: &str,
    kind: EventType,
    reason: &str,
    action: Option<&str>,
    message: String,
) -> Event {
    let now = Timestamp::now();
    let name = object.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(ns.into()),
            ..ObjectMeta::default()
        },
        involved_object: object.clone(),
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(kind.as_str().into()),
        source: Some(EventSource {
            component: Some(reporter.component.clone()),
            host: reporter.host.clone(),
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some(reporter.component.clone()),
        reporting_instance: reporter.instance.clone(),
        action: action.map(str::to_string),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_core_event_names_its_reporter_and_container() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u1", "resourceVersion": "7"},
            "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "app"}]},
        }))
        .unwrap();
        let reporter = Reporter {
            component: "kubelet".into(),
            instance: Some("n1".into()),
            host: Some("n1".into()),
        };
        let object = pod_reference(&pod, Some("init"));
        let ev = core_event(
            &reporter,
            &object,
            "prod",
            EventType::Warning,
            "BackOff",
            None,
            "m".into(),
        );
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(
            v["involvedObject"]["fieldPath"],
            "spec.initContainers{init}"
        );
        assert_eq!(v["involvedObject"]["uid"], "u1");
        assert_eq!(v["source"], json!({"component": "kubelet", "host": "n1"}));
        assert_eq!(v["reportingComponent"], "kubelet");
        assert_eq!(v["reportingInstance"], "n1");
        assert_eq!(v["type"], "Warning");
        assert_eq!(v["count"], 1);
        assert!(v.get("action").is_none());
        assert!(v["metadata"]["name"].as_str().unwrap().starts_with("web."));
        assert_eq!(
            pod_reference(&pod, Some("app")).field_path.as_deref(),
            Some("spec.containers{app}")
        );
    }
}
