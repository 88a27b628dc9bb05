//! The merge of an applied configuration into the live object, as structured-merge-diff
//! merges: granular maps field by field, atomic values replaced, sets united, associative
//! lists merged item by item on their keys (live order kept, new items appended).

use serde_json::Value;

use super::shape::{Shape, ShapeOf, shape_for};
use super::walk::{find_item, item_elem};

/// `live` with `config` applied over it.
pub fn merge(live: &Value, config: &Value, shape_of: ShapeOf<'_>) -> Value {
    merge_at(live, config, shape_of, &mut Vec::new())
}

fn merge_at<'a>(
    live: &'a Value,
    config: &'a Value,
    shape_of: ShapeOf<'_>,
    names: &mut Vec<&'a str>,
) -> Value {
    match (live, config, shape_for(shape_of, names, config)) {
        (Value::Object(l), Value::Object(c), Shape::Granular) => {
            let mut out = l.clone();
            for (k, cv) in c {
                names.push(k);
                let merged = match l.get(k) {
                    Some(lv) => merge_at(lv, cv, shape_of, names),
                    None => cv.clone(),
                };
                names.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c), shape @ (Shape::Set | Shape::Map(_))) => {
            let mut out = l.clone();
            for (i, cv) in c.iter().enumerate() {
                let elem = match &shape {
                    Shape::Map(keys) => item_elem(cv, keys, i),
                    _ => super::fieldset::Elem::value(cv),
                };
                let keyed = matches!(shape, Shape::Map(_));
                match find_item(&out, &shape, &elem) {
                    Some(at) if keyed && at < l.len() => {
                        out[at] = merge_at(&l[at], cv, shape_of, names);
                    }
                    // An item the configuration itself repeats: the last one wins.
                    Some(at) if keyed => out[at] = cv.clone(),
                    Some(_) => {}
                    None => out.push(cv.clone()),
                }
            }
            Value::Array(out)
        }
        _ => config.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::managed::shape::builtin_shape;

    fn shapes(n: &[&str], list: bool) -> Shape {
        builtin_shape(n, list)
    }

    #[test]
    fn merges_by_shape() {
        let live = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "1", "b": "2"}},
                "template": {"spec": {"containers": [
                    {"name": "app", "image": "i:1", "args": ["a", "b"]},
                    {"name": "side", "image": "s"}]}}}});
        let config = json!({"metadata": {"labels": {"c": "3"}, "finalizers": ["y", "x"]},
            "spec": {"selector": {"matchLabels": {"a": "1"}},
                "template": {"spec": {"containers": [
                    {"name": "new", "image": "n"},
                    {"name": "app", "image": "i:2", "args": ["c"]}]}}}});
        let got = merge(&live, &config, &shapes);
        assert_eq!(got["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        assert_eq!(got["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(got["spec"]["replicas"], 1);
        assert_eq!(got["spec"]["selector"], json!({"matchLabels": {"a": "1"}}));
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "i:2", "args": ["c"]},
                   {"name": "side", "image": "s"},
                   {"name": "new", "image": "n"}])
        );
    }
}
