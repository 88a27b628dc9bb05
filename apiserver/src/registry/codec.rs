//! How a kind's bodies decode: the `KindCodec` of an entry (its round trip and OpenAPI
//! schema), the typed codec of built-in kinds, and `normalize`, which prunes unknown fields
//! (as Kubernetes does for built-in kinds) or, under `fieldValidation=Strict`, rejects them.

use std::marker::PhantomData;
use std::sync::OnceLock;

use schemars::JsonSchema;
use schemars::generate::SchemaGenerator;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use skiff_api::resources::ResourceInfo;

use super::byte_fields::ByteSchema;
use crate::error::ApiError;

/// The schema side of a kind: decodes a body into exactly the fields the kind knows, and
/// describes them in OpenAPI.
pub trait KindCodec: Send + Sync {
    /// Decodes `obj` and re-encodes it, dropping fields the schema does not know. The error
    /// is the decoder's message.
    fn round_trip(&self, obj: Value) -> Result<Value, String>;

    /// The component name of the kind's schema (`io.k8s.api.apps.v1.Deployment`).
    fn schema_name(&self) -> String;

    /// Adds the kind's schema, and everything it references, to `generator`.
    fn add_schema(&self, generator: &mut SchemaGenerator);

    /// How server-side apply treats the list (`list`) or map at `names` (field names from
    /// the root, list items left out). The default is the built-in kinds' table (patch-merge
    /// keys, list-map keys, atomic structs); a codec with `x-kubernetes-list-type`,
    /// `x-kubernetes-list-map-keys` and `x-kubernetes-map-type` in its schema answers from
    /// them.
    fn field_shape(&self, names: &[&str], list: bool) -> crate::managed::Shape {
        crate::managed::builtin_shape(names, list)
    }
}

/// The codec of a built-in kind: its k8s-openapi struct.
pub struct Typed<T> {
    bytes: OnceLock<ByteSchema>,
    kind: PhantomData<fn() -> T>,
}

impl<T> Typed<T> {
    /// The codec of `T`.
    pub fn new() -> Self {
        Self {
            bytes: OnceLock::new(),
            kind: PhantomData,
        }
    }
}

impl<T> Default for Typed<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: DeserializeOwned + Serialize + JsonSchema> KindCodec for Typed<T> {
    fn round_trip(&self, mut obj: Value) -> Result<Value, String> {
        self.bytes
            .get_or_init(ByteSchema::of::<T>)
            .strip_line_breaks(&mut obj);
        let typed: T = serde_json::from_value(obj).map_err(|e| e.to_string())?;
        serde_json::to_value(typed).map_err(|e| e.to_string())
    }

    fn schema_name(&self) -> String {
        T::schema_name().into_owned()
    }

    fn add_schema(&self, generator: &mut SchemaGenerator) {
        generator.subschema_for::<T>();
    }
}

/// How unknown fields in a request body are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them, warn (as Kubernetes does by default; we drop).
    #[default]
    Warn,
    /// Reject the request with 400.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter value.
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("Strict") => Self::Strict,
            Some("Ignore") => Self::Ignore,
            _ => Self::Warn,
        }
    }
}

/// Decodes `obj` through `codec` and re-encodes it, so the result has exactly the fields the
/// kind of `resource` knows. Errors are 400 BadRequest with the decoder's message; unknown
/// fields are an error under `Strict`.
pub fn normalize(
    resource: &ResourceInfo,
    codec: &dyn KindCodec,
    obj: Value,
    validation: FieldValidation,
) -> Result<Value, ApiError> {
    let original = (validation == FieldValidation::Strict).then(|| obj.clone());
    let out = codec.round_trip(obj).map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized or malformed: {e}"
        ))
    })?;
    if let Some(original) = original {
        let mut unknown = Vec::new();
        unknown_fields(&original, &out, "", &mut unknown);
        if !unknown.is_empty() {
            let msgs: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            // kube-apiserver's wording: `Pod in version "v1" cannot be handled as a Pod: ...`.
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                msgs.join(", "),
                kind = resource.kind,
                version = resource.version,
            )));
        }
    }
    Ok(out)
}

/// Collects paths present in `input` but absent from the typed re-encoding `typed`. Fields
/// the typed form drops because they were null or empty defaults are not unknown.
fn unknown_fields(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match t.get(k) {
                    Some(tv) => unknown_fields(v, tv, &p, out),
                    None if is_empty_value(v) => {}
                    None => {
                        // A field that the typed struct knows but omitted because it held
                        // its default would re-appear when set to a non-default; we cannot
                        // tell from the output alone, so probe: an unknown field stays
                        // unknown whatever its value.
                        out.push(p);
                    }
                }
            }
        }
        (Value::Array(i), Value::Array(t)) => {
            for (n, (iv, tv)) in i.iter().zip(t.iter()).enumerate() {
                unknown_fields(iv, tv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn normalize(
        group: &str,
        version: &str,
        plural: &str,
        obj: Value,
        fv: FieldValidation,
    ) -> Result<Value, ApiError> {
        let kind = crate::registry::builtin()
            .find(group, version, plural)
            .unwrap();
        kind.normalize(obj, fv)
    }

    #[test]
    fn prunes_unknown_fields_unless_strict() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}, "bogus": 1});
        let out = normalize("", "v1", "configmaps", obj.clone(), FieldValidation::Warn).unwrap();
        assert!(out.get("bogus").is_none());
        assert_eq!(out["data"]["k"], "v");
        let err = normalize("", "v1", "configmaps", obj, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("unknown field \"bogus\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn strict_finds_nested_unknown_fields() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "replicsa": 2,
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i", "imagePolicy": "x"}]}}}});
        let err = normalize("apps", "v1", "deployments", obj, FieldValidation::Strict).unwrap_err();
        assert!(err.message.contains("spec.replicsa"), "{}", err.message);
        assert!(
            err.message
                .contains("spec.template.spec.containers[0].imagePolicy"),
            "{}",
            err.message
        );
    }

    #[test]
    fn wrong_types_are_bad_requests() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 5}});
        assert_eq!(
            normalize("", "v1", "configmaps", obj, FieldValidation::Warn)
                .unwrap_err()
                .code,
            400
        );
    }

    /// CertificateSigningRequests go through the same pruning and strict validation as
    /// every other kind (they once skipped it).
    #[test]
    fn certificate_signing_requests_are_pruned_and_strictly_validated() {
        let csr = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "c"}, "bogus": true,
            "spec": {"request": "UEVN", "signerName": "kubernetes.io/kube-apiserver-client", "usagez": ["x"]}});
        let gvr = ("certificates.k8s.io", "v1", "certificatesigningrequests");
        let out = normalize(gvr.0, gvr.1, gvr.2, csr.clone(), FieldValidation::Warn).unwrap();
        assert!(out.get("bogus").is_none(), "{out}");
        assert!(out["spec"].get("usagez").is_none(), "{out}");
        assert_eq!(out["spec"]["request"], "UEVN");
        let err = normalize(gvr.0, gvr.1, gvr.2, csr, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.starts_with("CertificateSigningRequest in version \"v1\" cannot be handled as a CertificateSigningRequest: strict decoding error:"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("unknown field \"bogus\""),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("unknown field \"spec.usagez\""),
            "{}",
            err.message
        );
    }
}
