//! Per-kind behaviour plugged into the generic handlers: defaulting, validation, status
//! rules, server-side table columns, kind-specific field selectors and version conversion.
//!
//! The generic handler path (crate::handlers) does everything common to all kinds (name,
//! namespace, uid, timestamps, resourceVersion, generation, finalizers, label validation,
//! status/spec separation); a `Strategy` only adds what differs per kind.

mod config;
mod controller_revision;
mod csr;
mod event;
mod hpa;
mod lease;
mod namespace;
mod node;
mod pod;
mod pod_status;
mod pod_validation;
mod service;
mod table;
mod workloads;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use skiff_api::resources::ResourceInfo;

pub use csr::{KEY_USAGES, parse_request as parse_certificate_request};

use crate::error::{ApiError, Cause};

/// One column of a server-side `meta.k8s.io/v1` Table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Header, e.g. `Ready`.
    pub name: &'static str,
    /// `string`, `integer`, `number`, `boolean`, `date`.
    pub kind: &'static str,
    /// `name` for the name column, otherwise usually empty.
    pub format: &'static str,
    /// 0 shows by default; 1 only with `-o wide`.
    pub priority: i32,
    /// Description shown by `kubectl get --show-kind`-style consumers.
    pub description: &'static str,
}

/// What a kind does beyond the generic object rules. Every method has a sensible default
/// so a kind only overrides what it needs.
pub trait Strategy: Send + Sync {
    /// Fills defaults as Kubernetes' defaulters do (called on create and on every update,
    /// after patches are applied). `obj` is in the stored version.
    fn default(&self, _obj: &mut Value) {}

    /// Adjusts a new object before it is stored, e.g. a Pod's initial
    /// `status: {phase: Pending, qosClass}`. The generic path has already dropped any
    /// client-sent status for kinds with a status subresource.
    fn prepare_create(&self, _obj: &mut Value) {}

    /// Adjusts an updated object from the old one before validation, as Kubernetes'
    /// `PrepareForUpdate` does (e.g. a Service keeps its allocated `clusterIP` when the
    /// update leaves it empty). Called after `default`.
    fn prepare_update(&self, _new: &mut Value, _old: &Value) {}

    /// Adjusts a status-subresource update from the old object, after `prepare_update`
    /// (e.g. a CertificateSigningRequest's signer may not touch its approval).
    fn prepare_status_update(&self, _new: &mut Value, _old: &Value) {}

    /// Records the authenticated creator in a new object, as kube-apiserver's
    /// `PrepareForCreate` does from the request context (a CertificateSigningRequest's
    /// `spec.username` and `spec.groups`). Called before `default` on create.
    fn set_requestor(&self, _obj: &mut Value, _user: Option<&crate::auth::UserInfo>) {}

    /// Validates an object on create and update (defaults already applied). Metadata name,
    /// namespace, labels and annotations are validated generically.
    fn validate(&self, _obj: &Value) -> Vec<Cause> {
        Vec::new()
    }

    /// Validates an update against the old object: immutable fields and the like.
    fn validate_update(&self, _new: &Value, _old: &Value) -> Vec<Cause> {
        Vec::new()
    }

    /// Whether the kind keeps `metadata.generation` (bumped on every spec change).
    fn uses_generation(&self) -> bool {
        false
    }

    /// Table columns as Kubernetes prints them; usually the first is `Name` (format
    /// `name`), but events put it last with priority 1, as Kubernetes does.
    fn columns(&self) -> Vec<Column>;

    /// The cells of one row, in column order (wide columns included; clients hide them
    /// by priority).
    fn cells(&self, obj: &Value) -> Vec<Value>;

    /// The value of a kind-specific selectable field (`spec.nodeName`, `status.phase`,
    /// `involvedObject.name`, ...). `None` means the field cannot be selected on this kind
    /// (the request is then a 400). `metadata.name`/`metadata.namespace` are generic.
    fn field(&self, _obj: &Value, _path: &str) -> Option<String> {
        None
    }
}

/// The strategy for a resource, chosen by its stored kind (aliases such as
/// events.k8s.io/v1 events share the strategy of the kind they are stored as).
pub fn strategy_for(resource: &ResourceInfo) -> &'static dyn Strategy {
    match (resource.storage_group, resource.kind) {
        ("", "Pod") => &pod::PodStrategy,
        ("", "Service") => &service::ServiceStrategy,
        ("", "Endpoints") => &service::EndpointsStrategy,
        ("discovery.k8s.io", "EndpointSlice") => &service::EndpointSliceStrategy,
        ("", "Namespace") => &namespace::NamespaceStrategy,
        ("", "Node") => &node::NodeStrategy,
        ("", "ConfigMap") => &config::ConfigMapStrategy,
        ("", "Secret") => &config::SecretStrategy,
        ("", "ServiceAccount") => &config::ServiceAccountStrategy,
        ("", "Event") => &event::EventStrategy,
        ("apps", "Deployment") => &workloads::DeploymentStrategy,
        ("apps", "ReplicaSet") => &workloads::ReplicaSetStrategy,
        ("apps", "DaemonSet") => &workloads::DaemonSetStrategy,
        ("apps", "ControllerRevision") => &controller_revision::ControllerRevisionStrategy,
        ("autoscaling", "HorizontalPodAutoscaler") => &hpa::HpaStrategy,
        ("coordination.k8s.io", "Lease") => &lease::LeaseStrategy,
        ("certificates.k8s.io", "CertificateSigningRequest") => &csr::CsrStrategy,
        _ => &table::GenericStrategy,
    }
}

/// Converts an object between two served versions of one resource (autoscaling v1 ↔ v2
/// HPAs, core ↔ events.k8s.io Events). `obj` carries `apiVersion`/`kind` of `from`; the
/// result carries those of `to`. Same group-version is the identity.
pub fn convert(obj: Value, from: &ResourceInfo, to: &ResourceInfo) -> Result<Value, ApiError> {
    if from.group == to.group && from.version == to.version {
        return Ok(obj);
    }
    match (from.group, from.version, to.group, to.version) {
        ("autoscaling", "v1", "autoscaling", "v2") => Ok(hpa::v1_to_v2(obj)),
        ("autoscaling", "v2", "autoscaling", "v1") => Ok(hpa::v2_to_v1(obj)),
        ("events.k8s.io", "v1", "", "v1") => Ok(event::events_v1_to_core(obj)),
        ("", "v1", "events.k8s.io", "v1") => Ok(event::core_to_events_v1(obj)),
        _ => Err(ApiError::internal(format!(
            "no conversion from {} to {} for {}",
            from.api_version(),
            to.api_version(),
            from.kind
        ))),
    }
}

/// Decodes an object into its typed form; `None` when it does not fit the schema (the
/// object is then left untouched by defaulting and reported by validation).
fn decode<T: DeserializeOwned>(obj: &Value) -> Option<T> {
    serde_json::from_value(obj.clone()).ok()
}

/// Writes a typed object back over `obj`.
fn encode<T: Serialize>(typed: &T, obj: &mut Value) {
    if let Ok(v) = serde_json::to_value(typed) {
        *obj = v;
    }
}

/// Runs `f` over the typed form of `obj` and writes the result back.
fn with_typed<T: DeserializeOwned + Serialize>(obj: &mut Value, f: impl FnOnce(&mut T)) {
    if let Some(mut typed) = decode::<T>(obj) {
        f(&mut typed);
        encode(&typed, obj);
    }
}

/// Decodes for validation: an object that does not fit its schema yields one cause.
fn decode_for_validation<T: DeserializeOwned>(obj: &Value) -> Result<T, Vec<Cause>> {
    serde_json::from_value(obj.clone()).map_err(|e| {
        vec![Cause {
            reason: "FieldValueInvalid",
            field: String::new(),
            message: format!("Invalid value: {e}"),
        }]
    })
}

/// The string at a dotted path of a JSON object, numbers and booleans rendered as text.
fn path_str(obj: &Value, path: &str) -> Option<String> {
    let mut cur = obj;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A selectable field's value: the string at `path`, or empty when absent.
fn select(obj: &Value, path: &str) -> Option<String> {
    Some(path_str(obj, path).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skiff_api::resources::{RESOURCES, find};

    #[test]
    fn every_resource_has_a_strategy_with_matching_rows() {
        for r in RESOURCES {
            let st = strategy_for(r);
            let obj =
                json!({"apiVersion": r.api_version(), "kind": r.kind, "metadata": {"name": "x"}});
            assert_eq!(st.columns().len(), st.cells(&obj).len(), "{}", r.plural);
        }
        let pods = find("", "v1", "pods").unwrap();
        assert!(strategy_for(pods).uses_generation());
        let services = find("", "v1", "services").unwrap();
        assert!(!strategy_for(services).uses_generation());
    }

    #[test]
    fn convert_dispatches_by_version() {
        let v1 = find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let v2 = find("autoscaling", "v2", "horizontalpodautoscalers").unwrap();
        let obj = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h"}, "spec": {"targetCPUUtilizationPercentage": 50}});
        let stored = convert(obj.clone(), v1, v2).unwrap();
        assert_eq!(stored["apiVersion"], "autoscaling/v2");
        assert_eq!(convert(stored, v2, v1).unwrap(), obj);
        assert_eq!(convert(obj.clone(), v1, v1).unwrap(), obj);

        let core = find("", "v1", "events").unwrap();
        let ev = find("events.k8s.io", "v1", "events").unwrap();
        let e = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "note": "hi"});
        assert_eq!(convert(e, ev, core).unwrap()["message"], "hi");

        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(convert(obj, v1, pods).unwrap_err().code, 500);
    }
}
