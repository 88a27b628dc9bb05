//! `TriggerTimeTracker`: the `endpoints.kubernetes.io/last-change-trigger-time` of a sync —
//! the earliest pod readiness transition (or Service creation) that changed since the
//! Service's previous sync, or the Service's creation time on its first sync.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;

use super::rules::ready_transition;

#[derive(Default)]
struct ServiceState {
    pods: HashMap<String, Timestamp>,
    service: Option<Timestamp>,
}

/// Per-Service memory of the trigger times seen at the last sync.
#[derive(Default)]
pub struct TriggerTimeTracker {
    services: Mutex<HashMap<(String, String), ServiceState>>,
}

impl TriggerTimeTracker {
    /// The trigger time of this sync; `None` clears the annotation.
    pub fn compute(&self, svc: &Service, pods: &[&Pod]) -> Option<Timestamp> {
        let key = (svc.namespace().unwrap_or_default(), svc.name_any());
        let created = svc.creation_timestamp().map(|t| t.0);
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        let known = services.contains_key(&key);
        let state = services.entry(key).or_default();
        let mut min_changed: Option<Timestamp> = None;
        let mut seen = HashMap::new();
        for pod in pods {
            if let Some(t) = ready_transition(pod) {
                let before = state.pods.get(&pod.name_any());
                if before.is_none_or(|b| t > *b) {
                    min_changed = Some(min_changed.map_or(t, |m| m.min(t)));
                }
                seen.insert(pod.name_any(), t);
            }
        }
        if let Some(c) = created
            && state.service.is_none_or(|s| c > s)
        {
            min_changed = Some(min_changed.map_or(c, |m| m.min(c)));
        }
        state.pods = seen;
        state.service = created;
        if known { min_changed } else { created }
    }

    /// Forgets a deleted Service.
    pub fn forget(&self, namespace: &str, name: &str) {
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        services.remove(&(namespace.to_string(), name.to_string()));
    }
}

/// The annotation's value: RFC 3339 with nanoseconds, in UTC.
pub fn format(t: Timestamp) -> String {
    t.to_string()
}
