//! Event recording for the controllers: fire-and-forget events.k8s.io Events so a slow or
//! failing event write never holds up a reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Records events as one named controller.
#[derive(Clone)]
pub struct EventRecorder {
    recorder: Recorder,
}

impl EventRecorder {
    /// A recorder reporting as `controller` (e.g. `replicaset-controller`).
    pub fn new(client: Client, controller: &str) -> Self {
        let reporter = Reporter {
            controller: controller.into(),
            instance: None,
        };
        EventRecorder {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Records a Normal event about `object` in the background.
    pub fn normal(&self, object: ObjectReference, reason: &str, note: String) {
        self.publish(object, EventType::Normal, reason, note);
    }

    /// Records a Warning event about `object` in the background.
    pub fn warning(&self, object: ObjectReference, reason: &str, note: String) {
        self.publish(object, EventType::Warning, reason, note);
    }

    fn publish(&self, object: ObjectReference, type_: EventType, reason: &str, note: String) {
        let recorder = self.recorder.clone();
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&ev, &object).await {
                tracing::debug!(reason = %ev.reason, error = %e, "event not recorded");
            }
        });
    }
}
