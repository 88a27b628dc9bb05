//! Defaulting from a structural schema, as apiextensions' `structuraldefaulting`: a missing
//! property whose schema has a `default` gets it, in objects that exist (a default never makes
//! its parent appear unless the parent's own default does), through arrays and maps.

use serde_json::Value;

/// Fills the schema's defaults into `value`.
pub fn apply(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(fields) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    if !fields.contains_key(k)
                        && let Some(d) = s.get("default")
                    {
                        fields.insert(k.clone(), d.clone());
                    }
                }
                for (k, v) in fields.iter_mut() {
                    if let Some(s) = props.get(k) {
                        apply(s, v);
                    }
                }
            } else if let Some(a) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for v in fields.values_mut() {
                    apply(a, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for v in items {
                    apply(s, v);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::apply;
    use serde_json::json;

    #[test]
    fn fills_missing_properties_of_present_objects() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "default": 1},
                "image": {"type": "string", "default": "nginx"},
                "ports": {"type": "array", "items": {"type": "object", "properties": {
                    "protocol": {"type": "string", "default": "TCP"}}}},
            }},
            "status": {"type": "object", "properties": {"phase": {"type": "string", "default": "New"}}},
        }});
        let mut obj = json!({"spec": {"image": "busybox", "ports": [{"port": 80}]}});
        apply(&schema, &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"image": "busybox", "ports": [{"port": 80, "protocol": "TCP"}], "replicas": 1}})
        );
    }
}
