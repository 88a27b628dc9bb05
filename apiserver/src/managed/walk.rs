//! Field sets of objects and the paths of a set inside an object: the set of fields an
//! object (or an applied configuration) holds, as structured-merge-diff's `ToFieldSet`
//! makes it (scalars, atomic lists and maps, list items, empty maps), lookup of the value at
//! a path, and removal of a path.

use serde_json::Value;

use super::fieldset::{Elem, FieldSet, Path};
use super::shape::{MapKey, Shape, ShapeOf, shape_for};

/// The field set of `obj`.
pub fn field_set(obj: &Value, shape_of: ShapeOf<'_>) -> FieldSet {
    let mut set = FieldSet::new();
    collect(obj, shape_of, &mut Vec::new(), &mut Vec::new(), &mut set);
    set
}

fn collect<'a>(
    v: &'a Value,
    shape_of: ShapeOf<'_>,
    names: &mut Vec<&'a str>,
    path: &mut Path,
    out: &mut FieldSet,
) {
    match (v, shape_for(shape_of, names, v)) {
        (Value::Object(m), Shape::Granular) => {
            for (k, child) in m {
                names.push(k);
                path.push(Elem::field(k));
                collect(child, shape_of, names, path, out);
                let empty = child.is_null() || child.as_object().is_some_and(|c| c.is_empty());
                if empty {
                    out.insert(path);
                }
                path.pop();
                names.pop();
            }
        }
        (Value::Array(items), Shape::Set) => {
            for item in items {
                path.push(Elem::value(item));
                out.insert(path);
                path.pop();
            }
        }
        (Value::Array(items), Shape::Map(keys)) => {
            for (i, item) in items.iter().enumerate() {
                path.push(item_elem(item, &keys, i));
                out.insert(path);
                collect(item, shape_of, names, path, out);
                path.pop();
            }
        }
        _ => out.insert(path),
    }
}

/// The path element of an item of an associative list: its key fields (defaults filling
/// the missing ones), or its index when a key is missing and has no default.
pub fn item_elem(item: &Value, keys: &[MapKey], index: usize) -> Elem {
    let mut fields = Vec::with_capacity(keys.len());
    for k in keys {
        match item.get(&k.name).or(k.default.as_ref()) {
            Some(v) => fields.push((k.name.clone(), v.clone())),
            None => return Elem::index(index),
        }
    }
    Elem::key(&fields)
}

/// Where the item `elem` names sits in `items` (a list of the given shape).
pub fn find_item(items: &[Value], shape: &Shape, elem: &Elem) -> Option<usize> {
    match shape {
        Shape::Map(keys) => items
            .iter()
            .enumerate()
            .position(|(i, it)| item_elem(it, keys, i) == *elem),
        Shape::Set => items.iter().position(|it| Elem::value(it) == *elem),
        _ => elem.as_index().filter(|i| *i < items.len()),
    }
}

/// The value at `path` in `obj`.
pub fn value_at<'a>(obj: &'a Value, path: &[Elem], shape_of: ShapeOf<'_>) -> Option<&'a Value> {
    let mut names: Vec<&str> = Vec::new();
    let mut v = obj;
    for e in path {
        v = match v {
            Value::Object(m) => {
                let (k, child) = m.get_key_value(e.as_field()?)?;
                names.push(k);
                child
            }
            Value::Array(items) => {
                let shape = shape_for(shape_of, &names, v);
                &items[find_item(items, &shape, e)?]
            }
            _ => return None,
        };
    }
    Some(v)
}

/// Removes the value at `path` from `obj`, then the maps it leaves empty up to (not
/// including) the first that `keep` holds. Returns whether something was removed.
pub fn remove_at(
    obj: &mut Value,
    path: &[Elem],
    shape_of: ShapeOf<'_>,
    keep: &dyn Fn(&[Elem]) -> bool,
) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    let list_names: Vec<&str> = parent.iter().filter_map(Elem::as_field).collect();
    let removed = {
        let Some(container) = value_at_mut(obj, parent, shape_of) else {
            return false;
        };
        match container {
            Value::Object(m) => last.as_field().and_then(|f| m.shift_remove(f)).is_some(),
            Value::Array(_) => {
                let shape = shape_for(shape_of, &list_names, container);
                let items = container.as_array_mut().expect("an array");
                match find_item(items, &shape, last) {
                    Some(i) => {
                        items.remove(i);
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    };
    if removed && !parent.is_empty() && !keep(parent) {
        let empty = value_at(obj, parent, shape_of).is_some_and(|p| match p {
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        });
        if empty {
            remove_at(obj, parent, shape_of, keep);
        }
    }
    removed
}

fn value_at_mut<'a>(
    obj: &'a mut Value,
    path: &[Elem],
    shape_of: ShapeOf<'_>,
) -> Option<&'a mut Value> {
    let mut names: Vec<String> = Vec::new();
    let mut v = obj;
    for e in path {
        v = match v {
            Value::Object(m) => {
                let f = e.as_field()?;
                names.push(f.to_string());
                m.get_mut(f)?
            }
            Value::Array(_) => {
                let n: Vec<&str> = names.iter().map(String::as_str).collect();
                let shape = shape_for(shape_of, &n, v);
                let items = v.as_array_mut().expect("an array");
                let i = find_item(items, &shape, e)?;
                &mut items[i]
            }
            _ => return None,
        };
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::managed::shape::builtin_shape;

    fn shapes(n: &[&str], list: bool) -> Shape {
        builtin_shape(n, list)
    }

    fn deploy() -> Value {
        json!({"metadata": {"labels": {"app": "web"}, "finalizers": ["a"]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {}, "spec": {"containers": [
                    {"name": "app", "image": "i", "args": ["x"], "ports": [{"containerPort": 80}]}]}}}})
    }

    #[test]
    fn field_set_is_structured_merge_diffs() {
        let set = field_set(&deploy(), &shapes);
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:finalizers": {"v:\"a\"": {}}, "f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
                    "f:metadata": {},
                    "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                        ".": {}, "f:args": {}, "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                    }}}
                }}
            })
        );
    }

    #[test]
    fn values_are_found_and_removed_by_path() {
        let mut d = deploy();
        let c = vec![
            Elem::field("spec"),
            Elem::field("template"),
            Elem::field("spec"),
            Elem::field("containers"),
            Elem::key(&[("name".into(), json!("app"))]),
        ];
        let mut image = c.clone();
        image.push(Elem::field("image"));
        assert_eq!(value_at(&d, &image, &shapes), Some(&json!("i")));
        let mut port = c.clone();
        port.push(Elem::field("ports"));
        port.push(Elem::key(&[
            ("containerPort".into(), json!(80)),
            ("protocol".into(), json!("TCP")),
        ]));
        assert_eq!(
            value_at(&d, &port, &shapes),
            Some(&json!({"containerPort": 80}))
        );
        assert!(remove_at(&mut d, &image, &shapes, &|_| false));
        assert!(value_at(&d, &image, &shapes).is_none());
        let label = vec![
            Elem::field("metadata"),
            Elem::field("labels"),
            Elem::field("app"),
        ];
        assert!(remove_at(&mut d, &label, &shapes, &|_| false));
        assert!(d["metadata"].get("labels").is_none(), "{d}");
        let fin = vec![
            Elem::field("metadata"),
            Elem::field("finalizers"),
            Elem::value(&json!("a")),
        ];
        assert!(remove_at(&mut d, &fin, &shapes, &|_| false));
        assert!(d.get("metadata").is_none(), "{d}");
        assert!(remove_at(&mut d, &c, &shapes, &|_| false));
        assert!(!remove_at(&mut d, &c, &shapes, &|_| false));
    }
}
