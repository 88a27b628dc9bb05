//! Strategic merge patch (`application/strategic-merge-patch+json`): a JSON merge patch whose
//! lists merge by key where the schema says so, plus the `$patch`, `$retainKeys`,
//! `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>` directives.
//!
//! Follows Kubernetes' apimachinery `strategicpatch` as the server applies it, with three
//! deliberate differences: directive keys and `null`s never reach the result (Kubernetes
//! copies a patch value verbatim when the original lacks the field), `$patch: merge` is
//! accepted on maps, and `$patch: delete` on a map removes the field instead of leaving `{}`.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use thiserror::Error;

use super::list_order::{ItemId, canonical, reorder};
use super::merge_keys::{ListStrategy, list_strategy};
use crate::error::ApiError;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList";

/// Why a strategic merge patch could not be applied. Messages are Kubernetes' own.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StrategicMergeError {
    /// The patch document is not a JSON object.
    #[error("strategic merge patch format is not supported: the patch must be a JSON object")]
    NotAnObject,
    /// `$patch` holds something other than replace, delete or merge.
    #[error("unknown patch type: {directive} in map: {map}")]
    UnknownDirective {
        /// The `$patch` value.
        directive: String,
        /// The map holding it.
        map: String,
    },
    /// An item of a keyed list lacks the merge key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey {
        /// The item.
        map: String,
        /// The list's merge key.
        key: &'static str,
    },
    /// A list of maps is declared as a merge list of scalars.
    #[error("cannot merge lists without merge key for type map")]
    NoMergeKeyDeclared,
    /// `$retainKeys` is not a list, or the patch sets a field it does not list.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// A `$setElementOrder` directive is malformed.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// The patch list orders its items differently from `$setElementOrder`.
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    OrderMismatch {
        /// The patch list.
        patch: String,
        /// The `$setElementOrder` list.
        order: String,
    },
    /// A `$deleteFromPrimitiveList` directive is malformed.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    /// A merge list holds lists.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// A merge list mixes item types.
    #[error("list element types are not identical: {0}")]
    MixedListTypes(String),
}

impl StrategicMergeError {
    /// The API error Kubernetes answers for this failure: 422 for content the schema cannot
    /// hold, 400 for a malformed patch.
    pub fn into_api_error(self) -> ApiError {
        match self {
            Self::ListOfLists => super::rejected(self.to_string()),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, StrategicMergeError>;

/// Applies a raw strategic merge patch body to `original`.
pub fn apply_strategic_patch(
    original: &Value,
    body: &[u8],
) -> std::result::Result<Value, ApiError> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    strategic_merge(original, &patch).map_err(StrategicMergeError::into_api_error)
}

/// Merges the parsed strategic merge `patch` into `original` (treated as `{}` when it is
/// not an object).
pub fn strategic_merge(original: &Value, patch: &Value) -> Result<Value> {
    let Value::Object(patch) = patch else {
        return Err(StrategicMergeError::NotAnObject);
    };
    let base = match original {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let merged = merge_map(base, patch.clone(), &mut Vec::new())?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

/// Merges `patch` into `original`, the map at `path`. `None` means `$patch: delete`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    path: &mut Vec<String>,
) -> Result<Option<Map<String, Value>>> {
    if let Some(directive) = patch.shift_remove(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => return merge_map(Map::new(), patch, path),
            Some("delete") => return Ok(None),
            Some("merge") => {}
            _ => {
                return Err(StrategicMergeError::UnknownDirective {
                    directive: render(&directive),
                    map: render(&Value::Object(patch)),
                });
            }
        }
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_element_orders(&mut original, &mut patch, path)?;

    for (key, patch_value) in patch {
        if key.starts_with(DELETE_PRIMITIVE_PREFIX) {
            delete_from_primitive_list(&mut original, &key, &patch_value)?;
            continue;
        }
        if patch_value.is_null() {
            original.shift_remove(&key);
            continue;
        }
        let strategy = list_strategy(path, &key);
        path.push(key.clone());
        let merged = match (original.get_mut(&key), patch_value) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                merge_map(std::mem::take(o), p, path)?.map(Value::Object)
            }
            (Some(Value::Array(o)), Value::Array(p)) => Some(Value::Array(
                merge_list(std::mem::take(o), p, strategy, path)?.items,
            )),
            (_, p) => fresh(p, strategy, path)?,
        };
        path.pop();
        match merged {
            Some(v) => {
                original.insert(key, v);
            }
            None => {
                original.shift_remove(&key);
            }
        }
    }
    Ok(Some(original))
}

/// A patch value for a field the original lacks (or holds with another type): merged into
/// an empty value so directives and nulls drop out. `None` when it deletes itself.
fn fresh(value: Value, strategy: ListStrategy, path: &mut Vec<String>) -> Result<Option<Value>> {
    Ok(match value {
        Value::Object(p) => merge_map(Map::new(), p, path)?.map(Value::Object),
        Value::Array(p) => Some(Value::Array(
            merge_list(Vec::new(), p, strategy, path)?.items,
        )),
        scalar => Some(scalar),
    })
}

/// The merged items, and the order used to place server-only items under
/// `$setElementOrder`: the items left after deletions followed by new items, cut to the
/// original list's length. Kubernetes reads that order through a slice sharing storage
/// with the merged one; the cut reproduces its results (new items that do not fit count
/// as unknown to the server and go before server-only items).
struct MergedList {
    items: Vec<Value>,
    server_order: Vec<Value>,
    id: ItemId,
}

/// Merges the list at `path` by its strategy.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    strategy: ListStrategy,
    path: &mut Vec<String>,
) -> Result<MergedList> {
    let key = match strategy {
        ListStrategy::Replace => {
            let items = clean_list(patch, path)?;
            return Ok(MergedList {
                server_order: items.clone(),
                items,
                id: ItemId::Scalar,
            });
        }
        ListStrategy::MergePrimitive => None,
        ListStrategy::MergeByKey(key) => Some(key),
    };
    if original.is_empty() && patch.is_empty() {
        return Ok(MergedList {
            items: original,
            server_order: Vec::new(),
            id: ItemId::Scalar,
        });
    }
    if !holds_maps(&original, &patch)? {
        return Ok(merge_scalars(original, patch));
    }
    let key = key.ok_or(StrategicMergeError::NoMergeKeyDeclared)?;
    merge_keyed(original, patch, key, path)
}

/// Whether the items of both lists are maps; errors on lists of lists and mixed types.
fn holds_maps(original: &[Value], patch: &[Value]) -> Result<bool> {
    let mut kind = None;
    for item in original.iter().chain(patch) {
        let k = std::mem::discriminant(item);
        if item.is_array() {
            return Err(StrategicMergeError::ListOfLists);
        }
        match kind {
            None => kind = Some(k),
            Some(seen) if seen != k => {
                return Err(StrategicMergeError::MixedListTypes(format!(
                    "{} and {}",
                    render(&Value::Array(original.to_vec())),
                    render(&Value::Array(patch.to_vec()))
                )));
            }
            Some(_) => {}
        }
    }
    Ok(original
        .iter()
        .chain(patch)
        .next()
        .is_some_and(Value::is_object))
}

/// Union of two scalar lists without duplicates, ordered as Kubernetes orders it.
fn merge_scalars(original: Vec<Value>, patch: Vec<Value>) -> MergedList {
    let mut seen = HashSet::new();
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for v in original.iter().chain(&patch) {
        if seen.insert(canonical(v)) {
            merged.push(v.clone());
        }
    }
    let items = reorder(merged.clone(), &patch, &original, ItemId::Scalar);
    merged.truncate(original.len());
    MergedList {
        items,
        server_order: merged,
        id: ItemId::Scalar,
    }
}

/// Merges two lists of maps by `key`, honouring `$patch: delete|replace|merge` items.
fn merge_keyed(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: &'static str,
    path: &mut Vec<String>,
) -> Result<MergedList> {
    let id = ItemId::Key(key);
    let original_len = original.len();
    let mut base = original;
    let mut plain: Vec<Map<String, Value>> = Vec::new();
    let mut replace = false;
    let mut deleted = HashSet::new();
    for item in patch {
        let Value::Object(mut m) = item else {
            return Err(not_a_map());
        };
        let Some(directive) = m.get(DIRECTIVE) else {
            plain.push(m);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(k) = m.get(key) else {
                    return Err(no_merge_key(&m, key));
                };
                deleted.insert(canonical(k));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                m.shift_remove(DIRECTIVE);
                plain.push(m);
            }
            _ => {
                return Err(StrategicMergeError::UnknownDirective {
                    directive: render(directive),
                    map: render(&Value::Object(m)),
                });
            }
        }
    }
    if replace {
        let items = clean_list(plain.into_iter().map(Value::Object).collect(), path)?;
        return Ok(MergedList {
            server_order: items.clone(),
            items,
            id,
        });
    }

    if !deleted.is_empty() {
        base.retain(|o| id.get(o).is_none_or(|k| !deleted.contains(&canonical(k))));
    }
    let survivors = base.clone();
    let mut merged = base;
    // First position of each key; patch items merge into the first match, as in Kubernetes.
    let mut positions: HashMap<String, usize> = HashMap::new();
    for (i, item) in merged.iter().enumerate() {
        if let Some(k) = id.get(item) {
            positions.entry(canonical(k)).or_insert(i);
        }
    }
    let mut patch_items = Vec::with_capacity(plain.len());
    for m in plain {
        let Some(k) = m.get(key).cloned() else {
            return Err(no_merge_key(&m, key));
        };
        let k_text = canonical(&k);
        patch_items.push(Value::Object(Map::from_iter([(key.to_string(), k)])));
        match positions.get(&k_text) {
            Some(&i) => {
                let Value::Object(o) = std::mem::take(&mut merged[i]) else {
                    return Err(not_a_map());
                };
                // Plain items carry no `$patch`, so the merge always yields a map.
                merged[i] = Value::Object(merge_map(o, m, path)?.unwrap_or_default());
            }
            None => {
                let done = merge_map(Map::new(), m, path)?.unwrap_or_default();
                positions.insert(k_text, merged.len());
                merged.push(Value::Object(done));
            }
        }
    }
    let items = reorder(merged.clone(), &patch_items, &survivors, id);
    merged.truncate(original_len);
    Ok(MergedList {
        items,
        server_order: merged,
        id,
    })
}

/// Strips directives and nulls from the items of a list the patch sets whole; maps marked
/// `$patch: delete` vanish.
fn clean_list(items: Vec<Value>, path: &mut Vec<String>) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Object(m) => {
                if let Some(done) = merge_map(Map::new(), m, path)? {
                    out.push(Value::Object(done));
                }
            }
            Value::Array(inner) => out.push(Value::Array(clean_list(inner, path)?)),
            scalar => out.push(scalar),
        }
    }
    Ok(out)
}

/// `$retainKeys`: drop the original's fields the list leaves out, after checking the patch
/// only sets listed fields.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<()> {
    let Some(list) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(list) = list else {
        return Err(StrategicMergeError::BadRetainKeys);
    };
    let retained = |k: &str| list.iter().any(|v| v.as_str() == Some(k));
    let sets_unlisted = patch.iter().any(|(k, v)| {
        !v.is_null()
            && !k.starts_with(DELETE_PRIMITIVE_PREFIX)
            && !k.starts_with(SET_ORDER_PREFIX)
            && !retained(k)
    });
    if sets_unlisted {
        return Err(StrategicMergeError::BadRetainKeys);
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

/// `$deleteFromPrimitiveList/<list>`: removes the listed values from the original list.
fn delete_from_primitive_list(
    original: &mut Map<String, Value>,
    key: &str,
    values: &Value,
) -> Result<()> {
    let field = directive_field(key, DELETE_PRIMITIVE_PREFIX)
        .ok_or(StrategicMergeError::BadPrimitiveList)?;
    let Value::Array(values) = values else {
        return Err(StrategicMergeError::BadPrimitiveList);
    };
    if let Some(Value::Array(items)) = original.get_mut(field) {
        let doomed: HashSet<String> = values.iter().map(canonical).collect();
        items.retain(|v| !doomed.contains(&canonical(v)));
    }
    Ok(())
}

/// `$setElementOrder/<list>`: merges the list now (taking it out of the patch) and puts the
/// items in the given order, server-only items kept near their old neighbours.
fn apply_element_orders(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    path: &mut Vec<String>,
) -> Result<()> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER_PREFIX))
        .cloned()
        .collect();
    for directive in directives {
        let order = patch.shift_remove(&directive).unwrap_or_default();
        let field = directive_field(&directive, SET_ORDER_PREFIX)
            .ok_or(StrategicMergeError::BadSetElementOrder)?
            .to_string();
        let Value::Array(order) = order else {
            return Err(StrategicMergeError::BadSetElementOrder);
        };
        let strategy = list_strategy(path, &field);
        if strategy == ListStrategy::Replace {
            continue;
        }
        let patch_list = match patch.get(&field) {
            Some(Value::Array(p)) => Some(p.clone()),
            // Deleting the list: the main pass does it.
            Some(Value::Null) => continue,
            Some(_) => return Err(StrategicMergeError::BadSetElementOrder),
            None => None,
        };
        let original_list = match original.get(&field) {
            Some(Value::Array(o)) => Some(o.clone()),
            _ => None,
        };
        if let Some(p) = &patch_list {
            check_patch_order(p, &order, strategy)?;
        }
        path.push(field.clone());
        let merged = match (original_list, patch_list) {
            (None, None) => None,
            (Some(o), None) => {
                let id = if o.iter().any(Value::is_object) {
                    id_for(strategy)
                } else {
                    ItemId::Scalar
                };
                Some(MergedList {
                    items: o.clone(),
                    server_order: o,
                    id,
                })
            }
            (o, Some(p)) => Some(merge_list(o.unwrap_or_default(), p, strategy, path)?),
        };
        path.pop();
        let Some(merged) = merged else { continue };
        if let ItemId::Key(key) = merged.id
            && let Some(bad) = order.iter().find(|o| merged.id.get(o).is_none())
        {
            return Err(no_merge_key_value(bad, key));
        }
        let ordered = reorder(merged.items, &order, &merged.server_order, merged.id);
        original.insert(field.clone(), Value::Array(ordered));
        patch.shift_remove(&field);
    }
    Ok(())
}

/// Kubernetes' check that the patch list's items appear in `$setElementOrder`'s order.
fn check_patch_order(patch: &[Value], order: &[Value], strategy: ListStrategy) -> Result<()> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let keyed = patch.iter().any(Value::is_object);
    let id = if keyed {
        id_for(strategy)
    } else {
        ItemId::Scalar
    };
    let items: Vec<&Value> = patch
        .iter()
        .filter(|v| !(keyed && v.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")))
        .collect();
    let (mut pi, mut oi) = (0, 0);
    while pi < items.len() && oi < order.len() {
        if items[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        let (Some(a), Some(b)) = (id.get(items[pi]), id.get(&order[oi])) else {
            let bad = if id.get(items[pi]).is_none() {
                items[pi]
            } else {
                &order[oi]
            };
            return Err(match id {
                ItemId::Key(key) => no_merge_key_value(bad, key),
                ItemId::Scalar => StrategicMergeError::BadSetElementOrder,
            });
        };
        if scalar_eq(a, b) {
            pi += 1;
        }
        oi += 1;
    }
    if pi < items.len() {
        return Err(StrategicMergeError::OrderMismatch {
            patch: render(&Value::Array(patch.to_vec())),
            order: render(&Value::Array(order.to_vec())),
        });
    }
    Ok(())
}

fn id_for(strategy: ListStrategy) -> ItemId {
    match strategy {
        ListStrategy::MergeByKey(key) => ItemId::Key(key),
        _ => ItemId::Scalar,
    }
}

/// The list field named by a `<prefix>/<field>` directive key.
fn directive_field<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    match key.split_once('/') {
        Some((p, field)) if p == prefix => Some(field),
        _ => None,
    }
}

/// Equality of merge-key values and scalars: numbers compare by value, as Go's float64s do.
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn no_merge_key(m: &Map<String, Value>, key: &'static str) -> StrategicMergeError {
    StrategicMergeError::NoMergeKey {
        map: render(&Value::Object(m.clone())),
        key,
    }
}

fn no_merge_key_value(v: &Value, key: &'static str) -> StrategicMergeError {
    StrategicMergeError::NoMergeKey {
        map: render(v),
        key,
    }
}

/// `holds_maps` has checked every item is a map; reaching this means it was wrong.
fn not_a_map() -> StrategicMergeError {
    StrategicMergeError::MixedListTypes("expected a list of maps".into())
}

fn render(v: &Value) -> String {
    v.to_string()
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
