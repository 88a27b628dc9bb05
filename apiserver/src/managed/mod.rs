//! Field management: `metadata.managedFields` recorded for every write and server-side apply
//! with field ownership, as kube-apiserver's field manager does it.
//!
//! - `fieldset.rs`: field paths, sets of them and their FieldsV1 encoding.
//! - `shape.rs`: list and map semantics (atomic, set, map with keys, granular), from the
//!   kind's codec (`KindCodec::field_shape`, the built-in table by default).
//! - `walk.rs`: the field set of an object, values at paths, removal of paths.
//! - `merge.rs`: the merge of an applied configuration into the live object.
//! - `entries.rs`: managedFields entries, their order and the cap on Update entries.
//! - `manager.rs`: what an Update or an Apply does to the owners (conflicts, pruning, the
//!   upgrade from client-side apply).
//!
//! The handlers call [`record`] for writes and [`apply`] for server-side apply patches.

mod entries;
mod fieldset;
mod manager;
mod merge;
mod shape;
mod walk;

use serde_json::Value;

pub use entries::{Entry, Operation};
pub use fieldset::{Elem, FieldSet};
pub use manager::{Conflict, Conflicts, LAST_APPLIED, Part, Writer};
pub use shape::{MapKey, Shape, builtin_shape, schema_shape};

use crate::error::ApiError;

/// Failures reading managed fields.
#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    /// A FieldsV1 value that is not a set of path elements.
    #[error("invalid FieldsV1: {0}")]
    BadFieldsV1(String),
    /// A managedFields entry that does not decode.
    #[error("invalid managedFields entry: {0}")]
    BadEntry(String),
}

/// Who writes, as the request names it: `fieldManager` (or the User-Agent's product), the
/// operation, and the subresource.
#[derive(Debug, Clone)]
pub struct FieldWrite {
    /// The manager's name.
    pub manager: String,
    /// Apply (server-side apply) or Update (everything else).
    pub operation: Operation,
    /// `status`, `scale`, ... or empty for the main resource.
    pub subresource: String,
}

/// The largest manager name kube-apiserver accepts.
const MAX_MANAGER_LEN: usize = 128;

/// The default manager of a request without `fieldManager`: the User-Agent's product
/// (`kubectl` of `kubectl/v1.32.0 (linux/amd64) ...`), printable characters only.
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let product = user_agent.split('/').next().unwrap_or("");
    product
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_MANAGER_LEN)
        .collect()
}

/// Checks `fieldManager` and `force` as kube-apiserver validates PatchOptions,
/// CreateOptions and UpdateOptions: at most 128 printable characters, required for apply,
/// `force` only for apply.
pub fn validate_options(
    options_kind: &str,
    manager: Option<&str>,
    apply: bool,
    force: bool,
) -> Result<(), ApiError> {
    use crate::error::Cause;
    let mut causes = Vec::new();
    match manager {
        None | Some("") if apply => causes.push(Cause::required_detail(
            "fieldManager",
            "is required for apply patch",
        )),
        Some(m) if m.len() > MAX_MANAGER_LEN => {
            causes.push(Cause::too_long("fieldManager", MAX_MANAGER_LEN));
        }
        Some(m) if m.chars().any(char::is_control) => causes.push(Cause::invalid(
            "fieldManager",
            &Value::from(m),
            "must be made of printable UTF-8 characters",
        )),
        _ => {}
    }
    if force && !apply {
        causes.push(Cause::forbidden(
            "force",
            "may not be specified for non-apply patch",
        ));
    }
    if causes.is_empty() {
        return Ok(());
    }
    let mut e = ApiError::invalid("meta.k8s.io", options_kind, "", &causes);
    e.message = e.message.replacen(
        &format!("{options_kind} \"\""),
        &format!("{options_kind}.meta.k8s.io \"\""),
        1,
    );
    Err(e)
}

/// Sets `new`'s managedFields for a write by `by` from `old` (`None` for a create):
/// - no writer (the server's own writes): the live entries stay;
/// - entries the client sent that differ from the live ones replace them (`[{}]` clears
///   them), as Kubernetes lets a client reset managed fields;
/// - an Apply carries the entries [`apply`] computed;
/// - an Update gives its manager what it added or changed.
pub fn record(
    old: Option<&Value>,
    new: &mut Value,
    sent: Option<Value>,
    by: Option<(Operation, Writer<'_>)>,
    shape_of: shape::ShapeOf<'_>,
) {
    let live = old
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .cloned();
    let live_entries = old
        .map(|o| entries::decode(o).unwrap_or_default())
        .unwrap_or_default();
    let entries = match by {
        None => live_entries,
        Some((Operation::Apply, _)) => sent
            .map(|s| decode_list(&s).unwrap_or_default())
            .unwrap_or_default(),
        Some((Operation::Update, writer)) => {
            match sent.filter(|s| s.as_array().is_some_and(|a| !a.is_empty())) {
                Some(s) if Some(&s) != live.as_ref() => decode_list(&s).unwrap_or_default(),
                _ => {
                    let empty = Value::Object(Default::default());
                    let old = old.unwrap_or(&empty);
                    manager::update(old, new, live_entries, &writer, shape_of)
                }
            }
        }
    };
    entries::encode(entries, new);
}

fn decode_list(list: &Value) -> Result<Vec<Entry>, ManagedError> {
    entries::decode(&serde_json::json!({ "metadata": { "managedFields": list } }))
}

/// Server-side apply of `config` over `live` (served version; `{}` when absent) by
/// `writer`: the merged object carrying its new managedFields, or the 409 of its
/// conflicts. A configuration carrying managedFields is a 400.
pub fn apply(
    live: &Value,
    config: &Value,
    writer: &Writer<'_>,
    force: bool,
    shape_of: shape::ShapeOf<'_>,
) -> Result<Value, ApiError> {
    if config.pointer("/metadata/managedFields").is_some() {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let entries = entries::decode(live).unwrap_or_default();
    let applied = manager::apply(live, config, entries, writer, force, shape_of)
        .map_err(Conflicts::into_api_error)?;
    let mut object = applied.object;
    entries::encode(applied.entries, &mut object);
    Ok(object)
}

#[cfg(test)]
mod tests;
