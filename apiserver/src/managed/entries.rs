//! `metadata.managedFields`: one entry per field manager (its name, operation, API version,
//! subresource, time and FieldsV1 set), decoded from and encoded into objects the way
//! kube-apiserver keeps them: entries with empty sets dropped, sorted by operation, time and
//! manager, and at most ten Update entries (older ones merged into `ancient-changes`).

use serde_json::{Map, Value, json};

use super::ManagedError;
use super::fieldset::FieldSet;

/// Update entries kept before the oldest are merged (kube-apiserver's
/// `DefaultMaxUpdateManagers`).
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager older Update entries are merged into.
pub const ANCIENT_CHANGES: &str = "ancient-changes";

/// The operation of a managed fields entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Create, update and non-apply patches.
    Update,
}

impl Operation {
    /// The `operation` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `manager`.
    pub manager: String,
    /// `operation`.
    pub operation: Operation,
    /// `apiVersion` the fields are written in.
    pub api_version: String,
    /// `time` (RFC 3339).
    pub time: Option<String>,
    /// `subresource` (`status`, `scale`), empty for the main resource.
    pub subresource: String,
    /// The fields the manager owns.
    pub set: FieldSet,
}

impl Entry {
    /// Whether `self` and `other` are the same manager: same name, operation and
    /// subresource, and for Update entries the same API version (appliers keep one entry
    /// whatever version they apply in).
    pub fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// How conflicts name the manager: `"kubectl"`, or for Update entries
    /// `"kube-controller-manager" using apps/v1`.
    pub fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == Operation::Update {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation.as_str()));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }

    fn from_json(v: &Value) -> Result<Entry, ManagedError> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let operation = match s("operation").as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            other => {
                return Err(ManagedError::BadEntry(format!(
                    "operation must be Apply or Update, got {other:?}"
                )));
            }
        };
        match s("fieldsType").as_str() {
            "FieldsV1" | "" => {}
            other => {
                return Err(ManagedError::BadEntry(format!(
                    "fieldsType must be FieldsV1, got {other:?}"
                )));
            }
        }
        let set = match v.get("fieldsV1") {
            Some(f) if !f.is_null() => FieldSet::from_fields_v1(f)?,
            _ => FieldSet::new(),
        };
        Ok(Entry {
            manager: s("manager"),
            operation,
            api_version: s("apiVersion"),
            time: v.get("time").and_then(Value::as_str).map(str::to_string),
            subresource: s("subresource"),
            set,
        })
    }
}

/// The entries of `obj`'s `metadata.managedFields`. Absent is none.
pub fn decode(obj: &Value) -> Result<Vec<Entry>, ManagedError> {
    match obj.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(Entry::from_json).collect(),
        Some(other) => Err(ManagedError::BadEntry(format!(
            "managedFields must be a list, got {other}"
        ))),
    }
}

/// Writes `entries` into `obj`'s `metadata.managedFields` as kube-apiserver keeps them.
pub fn encode(mut entries: Vec<Entry>, obj: &mut Value) {
    entries.retain(|e| !e.set.is_empty());
    cap_update_managers(&mut entries);
    entries.sort_by(|a, b| {
        (
            a.operation.as_str(),
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation.as_str(),
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        meta.shift_remove("managedFields");
    } else {
        let list = entries.iter().map(Entry::to_json).collect();
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Merges the oldest Update entries into one `ancient-changes` entry per API version until
/// at most [`MAX_UPDATE_MANAGERS`] Update entries remain.
fn cap_update_managers(entries: &mut Vec<Entry>) {
    let updates = |es: &Vec<Entry>| {
        es.iter()
            .filter(|e| e.operation == Operation::Update)
            .count()
    };
    while updates(entries) > MAX_UPDATE_MANAGERS {
        let oldest = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.operation == Operation::Update && e.manager != ANCIENT_CHANGES)
            .min_by(|a, b| a.1.time.cmp(&b.1.time))
            .map(|(i, _)| i);
        let Some(i) = oldest else { break };
        let old = entries.remove(i);
        match entries.iter_mut().find(|e| {
            e.manager == ANCIENT_CHANGES
                && e.operation == Operation::Update
                && e.api_version == old.api_version
        }) {
            Some(bucket) => {
                bucket.set = bucket.set.union(&old.set);
                bucket.time = bucket.time.clone().max(old.time);
            }
            None => entries.push(Entry {
                manager: ANCIENT_CHANGES.into(),
                subresource: String::new(),
                ..old
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managed::fieldset::Elem;

    fn entry(manager: &str, op: Operation, time: &str, field: &str) -> Entry {
        let mut set = FieldSet::new();
        set.insert(&[Elem::field(field)]);
        Entry {
            manager: manager.into(),
            operation: op,
            api_version: "v1".into(),
            time: Some(time.into()),
            subresource: String::new(),
            set,
        }
    }

    #[test]
    fn entries_round_trip_sorted_without_empty_sets() {
        let mut empty = entry("gone", Operation::Update, "2026-01-01T00:00:00Z", "x");
        empty.set = FieldSet::new();
        let es = vec![
            entry("b", Operation::Update, "2026-01-02T00:00:00Z", "b"),
            entry("kubectl", Operation::Apply, "2026-01-03T00:00:00Z", "a"),
            empty,
        ];
        let mut obj = json!({"metadata": {"name": "x"}});
        encode(es, &mut obj);
        let mf = obj["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf.len(), 2);
        assert_eq!(mf[0]["manager"], "kubectl");
        assert_eq!(mf[1]["fieldsV1"], json!({"f:b": {}}));
        let back = decode(&obj).unwrap();
        assert_eq!(back[0].operation, Operation::Apply);
        assert_eq!(back[1].describe(), "\"b\" using v1");
    }

    #[test]
    fn more_than_ten_updaters_merge_the_oldest() {
        let es: Vec<Entry> = (0..12)
            .map(|i| {
                entry(
                    &format!("m{i:02}"),
                    Operation::Update,
                    &format!("2026-01-01T00:00:{i:02}Z"),
                    &format!("f{i}"),
                )
            })
            .collect();
        let mut obj = json!({"metadata": {}});
        encode(es, &mut obj);
        let back = decode(&obj).unwrap();
        assert_eq!(back.len(), MAX_UPDATE_MANAGERS);
        let ancient = back.iter().find(|e| e.manager == ANCIENT_CHANGES).unwrap();
        assert!(ancient.set.contains(&[Elem::field("f0")]));
        assert!(ancient.set.contains(&[Elem::field("f2")]));
        assert!(
            !back
                .iter()
                .any(|e| e.manager == "m00" || e.manager == "m02")
        );
    }

    #[test]
    fn bad_entries_are_errors() {
        let obj = json!({"metadata": {"managedFields": [{"manager": "a", "operation": "Merge"}]}});
        assert!(decode(&obj).is_err());
    }
}
