//! Sets of field paths as structured-merge-diff keeps them, and their FieldsV1 encoding
//! (`{"f:spec":{"f:replicas":{}},"f:metadata":{"f:labels":{"f:app":{}}}}`).
//!
//! A path is a list of elements: a field (`f:name`), a list item by its keys
//! (`k:{"name":"app"}`), a set item by its value (`v:"a"`) or an item by index (`i:0`). A set
//! is a tree whose nodes say whether the path ending there is a member; a member that also
//! has members below is written with a `.` entry, as Kubernetes writes it.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::ManagedError;

/// One element of a field path, kept as its FieldsV1 text (`f:spec`, `k:{"name":"a"}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Elem(String);

impl Elem {
    /// A field of a map.
    pub fn field(name: &str) -> Self {
        Self(format!("f:{name}"))
    }

    /// An item of an associative list, by its key fields (sorted by name, as Kubernetes
    /// writes them).
    pub fn key(fields: &[(String, Value)]) -> Self {
        let mut sorted: Vec<&(String, Value)> = fields.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut m = Map::new();
        for (k, v) in sorted {
            m.insert(k.clone(), v.clone());
        }
        Self(format!("k:{}", Value::Object(m)))
    }

    /// An item of a set, by its value.
    pub fn value(v: &Value) -> Self {
        Self(format!("v:{v}"))
    }

    /// An item by index (lists without keys).
    pub fn index(i: usize) -> Self {
        Self(format!("i:{i}"))
    }

    /// The field name, for field elements.
    pub fn as_field(&self) -> Option<&str> {
        self.0.strip_prefix("f:")
    }

    /// The key fields, for key elements.
    pub fn as_key(&self) -> Option<Map<String, Value>> {
        match serde_json::from_str(self.0.strip_prefix("k:")?) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        }
    }

    /// The value, for set elements.
    pub fn as_value(&self) -> Option<Value> {
        serde_json::from_str(self.0.strip_prefix("v:")?).ok()
    }

    /// The index, for index elements.
    pub fn as_index(&self) -> Option<usize> {
        self.0.strip_prefix("i:")?.parse().ok()
    }

    fn parse(text: &str) -> Result<Self, ManagedError> {
        let e = Self(text.to_string());
        let ok = e.as_field().is_some()
            || e.as_key().is_some()
            || e.as_value().is_some()
            || e.as_index().is_some();
        match ok {
            true => Ok(e),
            false => Err(ManagedError::BadFieldsV1(format!(
                "unexpected path element {text:?}"
            ))),
        }
    }

    /// Field names first, then keys, values and indices (structured-merge-diff's order).
    fn rank(&self) -> u8 {
        match self.0.as_bytes().first() {
            Some(b'f') => 0,
            Some(b'k') => 1,
            Some(b'v') => 2,
            _ => 3,
        }
    }
}

impl Ord for Elem {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.as_index(), other.as_index()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => (self.rank(), &self.0).cmp(&(other.rank(), &other.0)),
        }
    }
}

impl PartialOrd for Elem {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Elem {
    /// structured-merge-diff's path text: `.name`, `[name="app"]`, `[="a"]`, `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.as_field() {
            return write!(f, ".{name}");
        }
        if let Some(key) = self.as_key() {
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            return write!(f, "[{}]", parts.join(","));
        }
        if let Some(v) = self.as_value() {
            return write!(f, "[={v}]");
        }
        write!(f, "[{}]", self.0.trim_start_matches("i:"))
    }
}

/// A path from the object root.
pub type Path = Vec<Elem>;

/// The text of a path as conflicts name it (`.spec.replicas`).
pub fn path_string(path: &[Elem]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<Elem, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no path is a member.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds `path` (the empty path, the root, is never a member).
    pub fn insert(&mut self, path: &[Elem]) {
        let mut node = self;
        for e in path {
            node = node.children.entry(e.clone()).or_default();
        }
        if !path.is_empty() {
            node.member = true;
        }
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[Elem]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// Whether `path` or a path below it is a member.
    pub fn touches(&self, path: &[Elem]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }

    /// Whether `path` is a member with no members below it.
    pub fn is_leaf(&self, path: &[Elem]) -> bool {
        self.node(path)
            .is_some_and(|n| n.member && n.children.values().all(FieldSet::is_empty))
    }

    fn node(&self, path: &[Elem]) -> Option<&FieldSet> {
        let mut node = self;
        for e in path {
            node = node.children.get(e)?;
        }
        Some(node)
    }

    /// Every member path, parents before their children.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (e, child) in &self.children {
            prefix.push(e.clone());
            child.collect(prefix, out);
            prefix.pop();
        }
    }

    /// Members of either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        for p in other.paths() {
            out.insert(&p);
        }
        out
    }

    /// Members of `self` that are not members of `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        self.filter(|p| !other.contains(p))
    }

    /// Members of both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        self.filter(|p| other.contains(p))
    }

    /// The members for which `keep` holds.
    pub fn filter(&self, mut keep: impl FnMut(&[Elem]) -> bool) -> FieldSet {
        let mut out = FieldSet::new();
        for p in self.paths() {
            if keep(&p) {
                out.insert(&p);
            }
        }
        out
    }

    /// The set without the members at or below `prefix`.
    pub fn without_prefix(&self, prefix: &[Elem]) -> FieldSet {
        self.filter(|p| !p.starts_with(prefix))
    }

    /// The FieldsV1 encoding.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && self.children.values().any(|c| !c.is_empty()) {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (e, child) in &self.children {
            if !child.is_empty() {
                m.insert(e.0.clone(), child.to_fields_v1());
            }
        }
        Value::Object(m)
    }

    /// Decodes FieldsV1.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, ManagedError> {
        let mut set = FieldSet::new();
        decode_into(v, &mut set, true)?;
        Ok(set)
    }
}

fn decode_into(v: &Value, node: &mut FieldSet, root: bool) -> Result<(), ManagedError> {
    let Value::Object(m) = v else {
        return Err(ManagedError::BadFieldsV1(format!(
            "expected an object, got {v}"
        )));
    };
    if !root && (m.is_empty() || m.contains_key(".")) {
        node.member = true;
    }
    for (k, child) in m {
        if k == "." {
            continue;
        }
        let e = Elem::parse(k)?;
        decode_into(child, node.children.entry(e).or_default(), false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn p(parts: &[Elem]) -> Path {
        parts.to_vec()
    }

    #[test]
    fn fields_v1_round_trips_with_dot_for_members_with_children() {
        let v = json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}},
                       "f:finalizers": {"v:\"a\"": {}}, "f:replicas": {}}
        });
        let set = FieldSet::from_fields_v1(&v).unwrap();
        assert!(set.contains(&p(&[Elem::field("spec"), Elem::field("replicas")])));
        assert!(!set.contains(&p(&[Elem::field("spec")])));
        let item = p(&[
            Elem::field("spec"),
            Elem::field("containers"),
            Elem::key(&[("name".into(), json!("app"))]),
        ]);
        assert!(set.contains(&item) && !set.is_leaf(&item));
        assert_eq!(set.to_fields_v1(), v);
    }

    #[test]
    fn set_algebra() {
        let a_path = p(&[Elem::field("a")]);
        let b_path = p(&[Elem::field("b"), Elem::index(0)]);
        let mut a = FieldSet::new();
        a.insert(&a_path);
        a.insert(&b_path);
        let mut b = FieldSet::new();
        b.insert(&b_path);
        assert_eq!(a.difference(&b).paths(), vec![a_path.clone()]);
        assert_eq!(a.intersection(&b).paths(), vec![b_path.clone()]);
        assert_eq!(b.union(&a), a);
        assert!(a.difference(&a).is_empty());
        assert_eq!(a.difference(&a).to_fields_v1(), json!({}));
    }

    #[test]
    fn paths_print_as_structured_merge_diff_does() {
        let path = p(&[
            Elem::field("spec"),
            Elem::field("ports"),
            Elem::key(&[
                ("protocol".into(), json!("TCP")),
                ("containerPort".into(), json!(80)),
            ]),
            Elem::field("name"),
        ]);
        assert_eq!(
            path_string(&path),
            ".spec.ports[containerPort=80,protocol=\"TCP\"].name"
        );
        assert_eq!(
            path_string(&[Elem::field("f"), Elem::value(&json!("x"))]),
            ".f[=\"x\"]"
        );
        assert_eq!(path_string(&[Elem::field("a"), Elem::index(2)]), ".a[2]");
    }

    #[test]
    fn bad_fields_v1_is_an_error() {
        assert!(FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
    }
}
