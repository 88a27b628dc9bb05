//! Base64 fields (`format: byte`, k8s-openapi's `ByteString`) decoded as Go decodes them:
//! Go's base64 decoder skips `\r` and `\n`, so kube-apiserver accepts Secret `data` written as
//! a YAML block (`|`) whose base64 carries line breaks. Before the typed decode, the line
//! breaks of every string the kind's schema marks `format: byte` are removed.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

/// The schema of a typed kind with its definitions, to find its base64 fields.
pub struct ByteSchema {
    root: Value,
    defs: Map<String, Value>,
}

impl ByteSchema {
    /// The schema of `T`.
    pub fn of<T: JsonSchema>() -> Self {
        let mut generator = SchemaSettings::draft2020_12().into_generator();
        let root = generator.subschema_for::<T>().to_value();
        let defs = generator.take_definitions(true);
        Self { root, defs }
    }

    /// Removes `\r` and `\n` from every base64 string of `obj`.
    pub fn strip_line_breaks(&self, obj: &mut Value) {
        strip(obj, &self.root, &self.defs, 0);
    }
}

/// Deep enough for every built-in type; the bound keeps recursive schemas finite.
const MAX_DEPTH: usize = 64;

fn strip(obj: &mut Value, schema: &Value, defs: &Map<String, Value>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let schema = resolve(schema, defs);
    match obj {
        Value::String(s) if schema.get("format").and_then(Value::as_str) == Some("byte") => {
            s.retain(|c| c != '\r' && c != '\n');
        }
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in map.iter_mut() {
                if let Some(sub) = props.and_then(|p| p.get(k)).or(extra) {
                    strip(v, sub, defs, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for v in items {
                    strip(v, sub, defs, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Follows `$ref` (to `#/$defs/<name>`) and single-element `allOf` wrappers.
fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    let mut s = schema;
    for _ in 0..8 {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match r.rsplit('/').next().and_then(|n| defs.get(n)) {
                Some(d) => s = d,
                None => return s,
            }
        } else if let Some([only]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            s = only;
        } else {
            return s;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use serde_json::json;

    use super::*;

    #[test]
    fn line_breaks_leave_secret_data_and_configmap_binary_data() {
        let mut secret = json!({"kind": "Secret", "data": {"a": "YWJj\nZGVm\r\n", "b": "eA=="},
            "stringData": {"s": "keep\nme"}, "metadata": {"annotations": {"x": "a\nb"}}});
        ByteSchema::of::<Secret>().strip_line_breaks(&mut secret);
        assert_eq!(secret["data"], json!({"a": "YWJjZGVm", "b": "eA=="}));
        assert_eq!(secret["stringData"]["s"], "keep\nme");
        assert_eq!(secret["metadata"]["annotations"]["x"], "a\nb");
        let mut cm = json!({"binaryData": {"k": "YW\nJj"}, "data": {"k": "a\nb"}});
        ByteSchema::of::<ConfigMap>().strip_line_breaks(&mut cm);
        assert_eq!(
            cm,
            json!({"binaryData": {"k": "YWJj"}, "data": {"k": "a\nb"}})
        );
    }

    #[test]
    fn nested_byte_fields_are_found_through_references() {
        let mut csr = json!({"spec": {"request": "UE\nVN\n", "signerName": "a\nb"}});
        ByteSchema::of::<CertificateSigningRequest>().strip_line_breaks(&mut csr);
        assert_eq!(
            csr["spec"],
            json!({"request": "UEVN", "signerName": "a\nb"})
        );
    }
}
