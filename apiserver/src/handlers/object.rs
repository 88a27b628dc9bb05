//! The object rules every verb shares, as Kubernetes' generic registry applies them: where an
//! object lives and how it is read, stored and addressed in errors, the type check of a body,
//! its decoding into storage form, and metadata validation. Each verb is its own file
//! (`create.rs`, `update.rs`, `delete.rs`, ...).

use std::sync::Arc;

use serde_json::{Map, Value, json};
use skiff_api::validation::{self, Cause};

use super::ApiState;
use super::update::UpdateScope;
use crate::error::ApiError;
use crate::managed::{self, FieldWrite, Part, Writer};
use crate::registry::{FieldValidation, Kind, Registry};
use crate::storage::{KeyValue, Revision, StoreError};
use crate::watchcache::decode;

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(super) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub(super) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

/// Whether the kind splits status from the main resource.
pub(super) fn has_status_sub(k: &Kind) -> bool {
    k.info.subresource("status").is_some()
}

/// Where an object lives: its kind as served and as stored, namespace and name.
pub struct ObjectRef<'a> {
    /// The served kind.
    pub kind: &'a Arc<Kind>,
    /// The kind objects are stored as (the served one unless it is an alias version).
    pub storage: &'a Arc<Kind>,
    /// Namespace (namespaced kinds).
    pub namespace: Option<&'a str>,
    /// Name.
    pub name: &'a str,
}

impl<'a> ObjectRef<'a> {
    /// The object `name` (in `namespace`) of `kind`.
    pub fn new(
        kinds: &'a Registry,
        kind: &'a Arc<Kind>,
        namespace: Option<&'a str>,
        name: &'a str,
    ) -> Self {
        Self {
            kind,
            storage: kinds.storage_of(kind),
            namespace,
            name,
        }
    }

    pub(super) fn key(&self) -> String {
        self.storage.info.key(self.namespace, self.name)
    }

    pub(super) fn not_found(&self) -> ApiError {
        ApiError::not_found(self.kind.info.group, self.kind.info.plural, self.name)
    }

    pub(super) fn store_err(&self, e: StoreError) -> ApiError {
        ApiError::from_store(e, self.kind.info.group, self.kind.info.plural, self.name)
    }

    pub(super) fn conflict(&self, message: &str) -> ApiError {
        ApiError::conflict(
            self.kind.info.group,
            self.kind.info.plural,
            self.name,
            message,
        )
    }
}

pub(super) fn decode_kv(kv: &KeyValue) -> Result<Value, ApiError> {
    decode(&kv.value, kv.mod_revision).map_err(ApiError::internal)
}

pub(super) fn encode(obj: &Value) -> Vec<u8> {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("selfLink");
    }
    serde_json::to_vec(&o).expect("JSON values always encode")
}

pub(super) fn set_rv(obj: &mut Value, rev: Revision) {
    crate::watchcache::place_resource_version(obj, rev);
}

/// Which fields a write of `scope` to a `s` object may own.
pub(super) fn owned_part(s: &Kind, scope: UpdateScope) -> Part {
    match scope {
        UpdateScope::Status | UpdateScope::Approval => Part::Status,
        UpdateScope::Main => Part::Main {
            status_subresource: has_status_sub(s),
        },
        UpdateScope::Both => Part::Main {
            status_subresource: false,
        },
    }
}

/// Sets `new`'s `metadata.managedFields` for a write of the served `kind` by `by` (`None`
/// for the server's own writes, which keep the entries as they are). `sent` is the
/// managedFields of the request body.
pub(super) fn record_fields(
    kind: &Kind,
    old: Option<&Value>,
    new: &mut Value,
    sent: Option<Value>,
    part: Part,
    by: Option<&FieldWrite>,
) {
    let now = now();
    let api_version = kind.info.api_version();
    let writer = by.map(|b| {
        let w = Writer {
            manager: &b.manager,
            api_version: &api_version,
            subresource: &b.subresource,
            part,
            now: &now,
        };
        (b.operation, w)
    });
    let codec = kind.codec();
    managed::record(old, new, sent, writer, &|n, l| codec.field_shape(n, l));
}

/// The managedFields a request body carries.
pub(super) fn sent_fields(obj: &Value) -> Option<Value> {
    obj.pointer("/metadata/managedFields").cloned()
}

/// `obj` re-encoded through its kind's type, so every field sits where the type definition
/// puts it (metadata set by the server, fields a strategy or hook added) as Kubernetes
/// writes objects.
pub(super) fn canonical(s: &Kind, obj: Value) -> Result<Value, ApiError> {
    s.codec().round_trip(obj).map_err(ApiError::internal)
}

/// Reads the core/v1 object `plural/name` (in `namespace`), without its revision.
pub async fn read_core(
    state: &ApiState,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    let kind = state
        .kinds
        .find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))?;
    Ok(
        read(state, &ObjectRef::new(&state.kinds, kind, namespace, name))
            .await?
            .0,
    )
}

/// Reads one object in storage form with its revision.
pub async fn read(state: &ApiState, at: &ObjectRef<'_>) -> Result<(Value, Revision), ApiError> {
    let kv = state
        .store
        .get(&at.key())
        .await
        .map_err(|e| at.store_err(e))?;
    let kv = kv.ok_or_else(|| at.not_found())?;
    Ok((decode_kv(&kv)?, kv.mod_revision))
}

/// Checks `apiVersion`/`kind` of a request body against the resource, filling them if absent.
fn check_type(k: &Kind, obj: &mut Value) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON or YAML object",
        ));
    };
    let api_version = k.info.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::String(k.info.kind.into()));
        }
        Some(kind) if kind == k.info.kind => {}
        Some(kind) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                k.info.kind
            )));
        }
    }
    Ok(())
}

/// Decodes a request body into the storage form of `kind`: type check, pruning or strict
/// rejection of unknown fields, version conversion.
pub fn decode_body(
    kinds: &Registry,
    kind: &Arc<Kind>,
    mut obj: Value,
    fv: FieldValidation,
) -> Result<Value, ApiError> {
    check_type(kind, &mut obj)?;
    let obj = kind.normalize(obj, fv)?;
    kinds.to_storage(kind, obj)
}

/// Generic metadata validation (name by the kind's rule, namespace, labels, annotations)
/// plus the kind's own.
pub(super) fn validate(s: &Kind, obj: &Value) -> Vec<Cause> {
    let empty = json!({});
    let mut causes = validation::validate_object_meta(
        obj.get("metadata").unwrap_or(&empty),
        s.info.namespaced,
        s.strategy().name_rule(),
    );
    causes.extend(s.strategy().validate(obj));
    causes
}

pub(super) fn invalid(s: &Kind, obj: &Value, causes: &[Cause]) -> ApiError {
    let name = meta_str(obj, "name")
        .or(meta_str(obj, "generateName"))
        .unwrap_or("");
    ApiError::invalid(s.info.group, s.info.kind, name, causes)
}

pub(super) fn finalizers_empty(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
}
