//! The field manager: what a write does to the owners of an object's fields, as
//! kube-apiserver's field manager (structured-merge-diff's `Updater`) decides it.
//!
//! - An Update (create, update, non-apply patch) gives its manager the fields it added or
//!   changed and takes those from everyone else; fields it removed leave its set.
//! - An Apply merges the configuration into the live object. Fields it changes that another
//!   manager owns are conflicts (409) unless forced, which moves them to the applier. The
//!   applier then owns exactly its configuration's fields, and the fields of its previous
//!   configuration that it no longer applies are removed from the object unless another
//!   manager owns them.
//! - `kubectl`'s first server-side apply over client-side apply takes over the fields whose
//!   values still match the last-applied annotation, and keeps that annotation current.

use serde_json::Value;

use super::entries::{Entry, Operation};
use super::fieldset::{Elem, FieldSet, path_string};
use super::merge::merge;
use super::shape::ShapeOf;
use super::walk::{field_set, remove_at, value_at};
use crate::error::ApiError;

/// kubectl's client-side apply annotation.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Which fields of an object a write may own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource; `status` excluded when the kind has a status subresource.
    Main {
        /// Whether the kind serves status separately.
        status_subresource: bool,
    },
    /// The status subresource: only `status`.
    Status,
}

/// The manager making a write.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    /// Its name (`fieldManager`).
    pub manager: &'a str,
    /// The API version it writes in.
    pub api_version: &'a str,
    /// The subresource it writes (`status`), empty for the main resource.
    pub subresource: &'a str,
    /// Which fields it may own.
    pub part: Part,
    /// The write's time (RFC 3339).
    pub now: &'a str,
}

impl Writer<'_> {
    fn entry(&self, operation: Operation, set: FieldSet) -> Entry {
        Entry {
            manager: self.manager.into(),
            operation,
            api_version: self.api_version.into(),
            time: Some(self.now.into()),
            subresource: self.subresource.into(),
            set,
        }
    }
}

/// One field another manager owns that an apply would change.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// How the owner is named (`"kubectl-client-side-apply" using apps/v1`).
    pub manager: String,
    /// The field (`.spec.replicas`).
    pub path: String,
}

/// The conflicts of an apply, answered as a 409 worded as kube-apiserver's.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflicts(pub Vec<Conflict>);

impl Conflicts {
    /// kube-apiserver's message: `Apply failed with 1 conflict: conflict with "x": .spec.a`,
    /// or for several, by manager: `Apply failed with 2 conflicts: conflicts with "x":\n-
    /// .spec.a\n- .spec.b`.
    pub fn message(&self) -> String {
        if let [one] = self.0.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                one.manager, one.path
            );
        }
        let mut managers: Vec<&str> = self.0.iter().map(|c| c.manager.as_str()).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            for c in self.0.iter().filter(|c| c.manager == m) {
                lines.push(format!("- {}", c.path));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }

    /// The 409 Conflict with one `FieldManagerConflict` cause per field.
    pub fn into_api_error(self) -> ApiError {
        let mut e = ApiError::new(409, "Conflict", self.message());
        let causes: Vec<Value> = self
            .0
            .iter()
            .map(|c| {
                serde_json::json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {}", c.manager),
                    "field": c.path,
                })
            })
            .collect();
        e.details = Some(serde_json::json!({ "causes": causes }));
        e
    }
}

/// The metadata no manager owns (kube-apiserver's `stripMeta`).
const SERVER_META: [&str; 9] = [
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "generation",
    "managedFields",
    "resourceVersion",
    "deletionTimestamp",
];

/// The fields of `set` that a writer of `part` may own.
fn ownable(set: FieldSet, part: Part) -> FieldSet {
    let status = Elem::field("status");
    set.filter(|p| {
        let top = p[0].as_field().unwrap_or("");
        if matches!(top, "apiVersion" | "kind") {
            return false;
        }
        if top == "metadata" {
            match p.get(1).and_then(Elem::as_field) {
                None => return false,
                Some(f) if SERVER_META.contains(&f) => return false,
                _ => {}
            }
        }
        match part {
            Part::Main {
                status_subresource: true,
            } => p[0] != status,
            Part::Main { .. } => true,
            Part::Status => p[0] == status,
        }
    })
}

/// The fields an object holds that a writer of `part` may own.
pub fn owned_fields(obj: &Value, part: Part, shape_of: ShapeOf<'_>) -> FieldSet {
    ownable(field_set(obj, shape_of), part)
}

/// What changed from `old` to `new`: added fields, removed fields and leaves whose value
/// differs.
struct Comparison {
    added: FieldSet,
    removed: FieldSet,
    modified: FieldSet,
}

fn compare(old: &Value, new: &Value, part: Part, shape_of: ShapeOf<'_>) -> Comparison {
    let s_old = owned_fields(old, part, shape_of);
    let s_new = owned_fields(new, part, shape_of);
    let modified = s_old
        .intersection(&s_new)
        .filter(|p| s_new.is_leaf(p) && value_at(old, p, shape_of) != value_at(new, p, shape_of));
    Comparison {
        added: s_new.difference(&s_old),
        removed: s_old.difference(&s_new),
        modified,
    }
}

/// The entries after an Update by `writer` from `old` to `new` (`old` is `{}` for a
/// create).
pub fn update(
    old: &Value,
    new: &Value,
    mut entries: Vec<Entry>,
    writer: &Writer<'_>,
    shape_of: ShapeOf<'_>,
) -> Vec<Entry> {
    let c = compare(old, new, writer.part, shape_of);
    let taken = c.modified.union(&c.added);
    let me = writer.entry(Operation::Update, FieldSet::new());
    for e in entries.iter_mut().filter(|e| !e.same_manager(&me)) {
        e.set = e.set.difference(&taken);
    }
    match entries.iter_mut().find(|e| e.same_manager(&me)) {
        Some(e) => {
            let set = e.set.difference(&c.removed).union(&taken);
            if set != e.set {
                e.set = set;
                e.time = me.time;
            }
        }
        None => entries.push(writer.entry(Operation::Update, taken)),
    }
    entries
}

/// The outcome of an apply: the new object (before defaulting) and its entries.
#[derive(Debug)]
pub struct Applied {
    /// The merged object with the fields the applier dropped removed.
    pub object: Value,
    /// The managed fields entries.
    pub entries: Vec<Entry>,
}

/// Applies `config` (the applier's whole configuration, in the served version) over `live`
/// (`{}` when the object does not exist).
pub fn apply(
    live: &Value,
    config: &Value,
    mut entries: Vec<Entry>,
    writer: &Writer<'_>,
    force: bool,
    shape_of: ShapeOf<'_>,
) -> Result<Applied, Conflicts> {
    let config_set = owned_fields(config, writer.part, shape_of);
    let mut object = merge(live, config, shape_of);
    let c = compare(live, &object, writer.part, shape_of);
    let changed = c.modified.union(&c.added);
    let me = writer.entry(Operation::Apply, config_set.clone());
    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| !e.same_manager(&me)) {
        for p in e.set.intersection(&changed).paths() {
            conflicts.push(Conflict {
                manager: e.describe(),
                path: path_string(&p),
            });
        }
    }
    conflicts.sort_by(|a, b| (&a.manager, &a.path).cmp(&(&b.manager, &b.path)));
    let mut force = force;
    if !conflicts.is_empty() && !force {
        let allowed = match writer.manager {
            "kubectl" => from_last_applied(live, writer.part, shape_of),
            _ => FieldSet::new(),
        };
        let allowed: Vec<String> = allowed.paths().iter().map(|p| path_string(p)).collect();
        let refused: Vec<Conflict> = conflicts
            .iter()
            .filter(|c| !allowed.contains(&c.path))
            .cloned()
            .collect();
        if !refused.is_empty() {
            return Err(Conflicts(refused));
        }
        force = true;
    }
    if force {
        for e in entries.iter_mut().filter(|e| !e.same_manager(&me)) {
            e.set = e.set.difference(&changed);
        }
    }
    let previous = entries
        .iter()
        .find(|e| e.same_manager(&me))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let others = entries
        .iter()
        .filter(|e| !e.same_manager(&me))
        .fold(FieldSet::new(), |acc, e| acc.union(&e.set));
    let dropped = previous.difference(&config_set).difference(&others);
    let keep = |p: &[Elem]| config_set.touches(p) || others.contains(p);
    for p in dropped.paths() {
        if !others.touches(&p) {
            remove_at(&mut object, &p, shape_of, &keep);
        }
    }
    if writer.manager == "kubectl" {
        keep_last_applied_current(&mut object, config);
    }
    let unchanged = previous == config_set && object == *live;
    entries.retain(|e| !e.same_manager(&me));
    let mut mine = me;
    if unchanged {
        let old_time = entry_time(live, writer);
        mine.time = old_time.or(mine.time);
    }
    entries.push(mine);
    Ok(Applied { object, entries })
}

fn entry_time(live: &Value, writer: &Writer<'_>) -> Option<String> {
    let me = writer.entry(Operation::Apply, FieldSet::new());
    super::entries::decode(live)
        .ok()?
        .into_iter()
        .find(|e| e.same_manager(&me))?
        .time
}

/// The fields of kubectl's last-applied annotation whose live values still match it: those
/// a first server-side apply by kubectl may take from client-side apply.
fn from_last_applied(live: &Value, part: Part, shape_of: ShapeOf<'_>) -> FieldSet {
    let Some(text) = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
    else {
        return FieldSet::new();
    };
    let Ok(last) = serde_json::from_str::<Value>(text) else {
        return FieldSet::new();
    };
    let set = owned_fields(&last, part, shape_of);
    let modified = compare(&last, live, part, shape_of).modified;
    set.difference(&modified)
}

/// Rewrites an existing last-applied annotation to the configuration now applied, so a
/// later client-side apply starts from it.
fn keep_last_applied_current(object: &mut Value, config: &Value) {
    let Some(ann) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if !ann.contains_key(LAST_APPLIED) {
        return;
    }
    let mut applied = config.clone();
    if let Some(a) = applied
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.shift_remove(LAST_APPLIED);
        if a.is_empty()
            && let Some(m) = applied
                .pointer_mut("/metadata")
                .and_then(Value::as_object_mut)
        {
            m.shift_remove("annotations");
        }
    }
    ann.insert(LAST_APPLIED.into(), Value::String(format!("{applied}\n")));
}
