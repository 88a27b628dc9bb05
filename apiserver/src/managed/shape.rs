//! How server-side apply treats a list or a map: structured-merge-diff's element
//! relationships (`x-kubernetes-list-type` atomic/set/map with `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type`). Built-in kinds take them from the Kubernetes patch-merge keys
//! (`patch::list_strategy`) plus the list-map keys and atomic structs of the Kubernetes
//! OpenAPI; a kind's codec may answer from its own schema instead (`KindCodec::field_shape`).

use serde_json::Value;

use crate::patch::{ListStrategy, list_strategy};

/// One key field of an associative list, with the default a missing key takes.
#[derive(Debug, Clone, PartialEq)]
pub struct MapKey {
    /// The key field's name.
    pub name: String,
    /// Its schema default, used when an item leaves it out (`protocol: TCP` for ports).
    pub default: Option<Value>,
}

impl MapKey {
    /// A key with no default.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            default: None,
        }
    }

    fn with_default(name: &str, default: Value) -> Self {
        Self {
            name: name.into(),
            default: Some(default),
        }
    }
}

/// The element relationship of a list or map field.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Owned and replaced as a whole (`x-kubernetes-list-type: atomic`, atomic structs).
    Atomic,
    /// A map or struct whose fields are owned one by one.
    Granular,
    /// A list of scalars owned by value (`x-kubernetes-list-type: set`).
    Set,
    /// A list of objects owned by their key fields (`x-kubernetes-list-type: map`).
    Map(Vec<MapKey>),
}

/// The shape of the field at `names` (field names from the object root, list items left
/// out: `["spec", "template", "spec", "containers"]`) in a built-in kind; `list` says whether
/// the field holds a list. Lists without a patch strategy are atomic; maps are granular
/// unless Kubernetes marks them atomic.
pub fn builtin_shape(names: &[&str], list: bool) -> Shape {
    let Some((field, parent)) = names.split_last() else {
        return Shape::Granular;
    };
    let last = parent.last().copied();
    if !list {
        // LabelSelector and Service selectors are atomic (`+structType`/`+mapType=atomic`).
        return match *field {
            "selector" if last == Some("spec") => Shape::Atomic,
            "nodeSelector" => Shape::Atomic,
            _ => Shape::Granular,
        };
    }
    let in_container = last.is_some_and(|l| l.ends_with("ontainers"));
    match *field {
        // Container ports are keyed by containerPort and protocol, Service ports by port and
        // protocol; protocol defaults to TCP.
        "ports" if in_container => {
            return Shape::Map(vec![
                MapKey::new("containerPort"),
                MapKey::with_default("protocol", Value::from("TCP")),
            ]);
        }
        "ports" if parent == ["spec"] => {
            return Shape::Map(vec![
                MapKey::new("port"),
                MapKey::with_default("protocol", Value::from("TCP")),
            ]);
        }
        _ => {}
    }
    match list_strategy(parent, field) {
        ListStrategy::MergeByKey(key) => Shape::Map(vec![MapKey::new(key)]),
        ListStrategy::MergePrimitive => Shape::Set,
        ListStrategy::Replace => Shape::Atomic,
    }
}

/// The shape of the field at `names` from an OpenAPI v3 schema's extensions
/// (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`), as
/// structured-merge-diff reads a CustomResourceDefinition's schema: lists without a list
/// type are atomic, maps granular. Key defaults come from the key properties' `default`.
pub fn schema_shape(schema: &Value, names: &[&str], list: bool) -> Shape {
    let mut s = schema;
    for name in names {
        while s.get("type").and_then(Value::as_str) == Some("array") {
            match s.get("items") {
                Some(items) => s = items,
                None => break,
            }
        }
        let next = s
            .get("properties")
            .and_then(|p| p.get(*name))
            .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()));
        match next {
            Some(n) => s = n,
            None => return if list { Shape::Atomic } else { Shape::Granular },
        }
    }
    let ext = |k: &str| s.get(k).and_then(Value::as_str);
    if !list {
        return match ext("x-kubernetes-map-type") {
            Some("atomic") => Shape::Atomic,
            _ => Shape::Granular,
        };
    }
    match ext("x-kubernetes-list-type") {
        Some("set") => Shape::Set,
        Some("map") => {
            let props = s.pointer("/items/properties");
            let keys = s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|k| MapKey {
                    name: k.into(),
                    default: props
                        .and_then(|p| p.get(k))
                        .and_then(|p| p.get("default"))
                        .cloned(),
                })
                .collect();
            Shape::Map(keys)
        }
        _ => Shape::Atomic,
    }
}

/// Answers the shape of the field at a path of names, for lists (`true`) or maps.
pub type ShapeOf<'a> = &'a dyn Fn(&[&str], bool) -> Shape;

/// The shape of a field given its value: lists and maps as `shape_of` says (a list the
/// lookup calls granular is atomic; a map it calls a set or a keyed list is granular),
/// anything else atomic.
pub fn shape_for(shape_of: ShapeOf<'_>, names: &[&str], v: &Value) -> Shape {
    match v {
        Value::Array(_) => match shape_of(names, true) {
            Shape::Granular => Shape::Atomic,
            s => s,
        },
        Value::Object(_) if names.is_empty() => Shape::Granular,
        Value::Object(_) => match shape_of(names, false) {
            Shape::Atomic => Shape::Atomic,
            _ => Shape::Granular,
        },
        _ => Shape::Atomic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_extensions_give_the_shape() {
        let schema = serde_json::json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "hosts": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "routes": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name", "proto"],
                "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "proto": {"type": "string", "default": "TCP"},
                    "tags": {"type": "array", "items": {"type": "string"}}}}},
            "sel": {"type": "object", "x-kubernetes-map-type": "atomic"},
            "args": {"type": "array", "items": {"type": "string"}}}}}});
        assert_eq!(schema_shape(&schema, &["spec", "hosts"], true), Shape::Set);
        assert_eq!(
            schema_shape(&schema, &["spec", "routes"], true),
            Shape::Map(vec![
                MapKey::new("name"),
                MapKey::with_default("proto", "TCP".into())
            ])
        );
        assert_eq!(
            schema_shape(&schema, &["spec", "routes", "tags"], true),
            Shape::Atomic
        );
        assert_eq!(
            schema_shape(&schema, &["spec", "sel"], false),
            Shape::Atomic
        );
        assert_eq!(schema_shape(&schema, &["spec"], false), Shape::Granular);
        assert_eq!(
            schema_shape(&schema, &["spec", "args"], true),
            Shape::Atomic
        );
        assert_eq!(
            schema_shape(&schema, &["spec", "nope"], true),
            Shape::Atomic
        );
    }

    #[test]
    fn builtin_shapes_follow_kubernetes() {
        let c = ["spec", "template", "spec", "containers"];
        assert_eq!(
            builtin_shape(&c, true),
            Shape::Map(vec![MapKey::new("name")])
        );
        let ports = ["spec", "template", "spec", "containers", "ports"];
        assert!(matches!(builtin_shape(&ports, true), Shape::Map(k) if k.len() == 2));
        assert!(
            matches!(builtin_shape(&["spec", "ports"], true), Shape::Map(k) if k[0].name == "port")
        );
        assert_eq!(builtin_shape(&["spec", "selector"], false), Shape::Atomic);
        let args = ["spec", "template", "spec", "containers", "args"];
        assert_eq!(builtin_shape(&args, true), Shape::Atomic);
        assert_eq!(builtin_shape(&["metadata", "finalizers"], true), Shape::Set);
        assert_eq!(builtin_shape(&["spec", "tolerations"], true), Shape::Atomic);
        assert_eq!(
            builtin_shape(&["metadata", "labels"], false),
            Shape::Granular
        );
        let shape_of = |n: &[&str], list: bool| builtin_shape(n, list);
        assert_eq!(
            shape_for(
                &shape_of,
                &["metadata", "labels"],
                &serde_json::json!({"a": "b"})
            ),
            Shape::Granular
        );
    }
}
