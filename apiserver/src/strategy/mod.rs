//! Per-kind behaviour plugged into the generic handlers: defaulting, validation, status
//! rules, server-side table columns, kind-specific field selectors and version conversion.
//!
//! The generic handler path (crate::handlers) does everything common to all kinds (name,
//! namespace, uid, timestamps, resourceVersion, generation, finalizers, label validation,
//! status/spec separation); a `Strategy` only adds what differs per kind.

mod batch;
mod config;
mod controller_revision;
mod crd;
mod csr;
mod endpoints;
mod event;
mod hpa;
mod ipaddress;
mod lease;
mod namespace;
mod node;
mod pdb;
mod pod;
mod rbac;
mod service;
mod storage;
mod table;
mod workload;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use skiff_api::validation;

pub use batch::{CronJobStrategy, JobStrategy};
pub use config::{ConfigMapStrategy, SecretStrategy, ServiceAccountStrategy};
pub use controller_revision::ControllerRevisionStrategy;
pub use crd::{CrdStrategy, validate_definition};
pub use csr::{CsrStrategy, KEY_USAGES, parse_request as parse_certificate_request};
pub use endpoints::{EndpointSliceStrategy, EndpointsStrategy};
pub use event::{EventStrategy, core_to_events_v1, events_v1_to_core};
pub use hpa::{HpaStrategy, v1_to_v2 as hpa_v1_to_v2, v2_to_v1 as hpa_v2_to_v1};
pub use ipaddress::IpAddressStrategy;
pub use lease::LeaseStrategy;
pub use namespace::NamespaceStrategy;
pub use node::NodeStrategy;
pub use pdb::PodDisruptionBudgetStrategy;
pub use pod::PodStrategy;
pub use rbac::{RBAC_GROUP, RbacKind, RbacStrategy};
pub use service::ServiceStrategy;
pub use storage::{
    PersistentVolumeClaimStrategy, PersistentVolumeStrategy, StorageClassStrategy,
    validate_claim_spec,
};
pub use table::{GenericStrategy, since as age_since};
pub use workload::{
    DaemonSetStrategy, DeploymentStrategy, ReplicaSetStrategy, ReplicationControllerStrategy,
    StatefulSetStrategy, map_selector,
};

use crate::error::Cause;

/// What deleting an object of a kind involves beyond finalizers and a grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The object goes once its finalizers and grace period allow.
    Direct,
    /// The object scopes others (a namespace): it is marked terminating, takes no
    /// garbage-collector finalizer, and stays until everything in it has been deleted.
    AfterContents,
}

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

/// Where a kind's `scale` subresource reads and writes: the replicas the user asks for, the
/// replicas observed, and the label selector of what is scaled.
#[derive(Debug, Clone)]
pub struct ScalePaths {
    /// `spec.replicas` of built-in workloads; a CRD's `specReplicasPath`.
    pub spec_replicas: crate::custom::JsonPath,
    /// `status.replicas`; a CRD's `statusReplicasPath`.
    pub status_replicas: crate::custom::JsonPath,
    /// Where the selector is, if anywhere.
    pub selector: Option<crate::custom::JsonPath>,
    /// Whether the selector is already a string (a CRD's `labelSelectorPath`) rather than a
    /// LabelSelector (or a ReplicationController's equality map).
    pub selector_is_text: bool,
}

impl ScalePaths {
    /// The paths of the built-in workloads (Deployments, ReplicaSets, StatefulSets, RCs).
    pub fn workload() -> Self {
        let p = |s| crate::custom::JsonPath::parse(s).expect("a valid built-in path");
        Self {
            spec_replicas: p(".spec.replicas"),
            status_replicas: p(".status.replicas"),
            selector: Some(p(".spec.selector")),
            selector_is_text: false,
        }
    }
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

    /// The rule `metadata.name` follows: a DNS-1123 subdomain unless the kind says otherwise
    /// (namespaces are labels).
    fn name_rule(&self) -> fn(&str) -> Vec<String> {
        validation::is_dns1123_subdomain
    }

    /// Whether a create keeps the status the client sent, for a kind with a status
    /// subresource (kubelets register nodes with their status); other kinds start with none.
    fn keeps_status_on_create(&self) -> bool {
        false
    }

    /// The grace period, in seconds, a deletion of `obj` waits for before the object goes,
    /// given the client's `gracePeriodSeconds` (a bound pod waits for its kubelet). Also
    /// asked of an object already being deleted, with its `deletionGracePeriodSeconds`: a
    /// positive answer keeps it for whoever finishes the deletion. 0 deletes at once.
    fn graceful_delete(&self, _obj: &Value, _requested: Option<i64>) -> i64 {
        0
    }

    /// What deleting an object of this kind involves.
    fn deletion(&self) -> Deletion {
        Deletion::Direct
    }

    /// Adjusts an object whose deletion has just started, before it is stored (a
    /// namespace's `status.phase: Terminating`).
    fn prepare_delete(&self, _obj: &mut Value) {}

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

    /// Where the kind's `scale` subresource reads and writes.
    fn scale_paths(&self) -> ScalePaths {
        ScalePaths::workload()
    }

    /// Whether strategic merge patches apply to the kind. Kubernetes has no patch metadata
    /// for custom kinds and answers such patches with 415.
    fn strategic_merge(&self) -> bool {
        true
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
