//! Component schemas of one OpenAPI v3 group-version document: the k8s-openapi types of the
//! kinds served there, everything they reference, their lists and the shared meta types,
//! shaped as Kubernetes publishes them (OpenAPI 3.0, `x-kubernetes-group-version-kind`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};
use skiff_api::resources::{ResourceInfo, Subresource, group_versions};

use crate::registry::{Kind, KindCodec, Registry, body_type};

/// Where component schemas live; every `$ref` in a document points below it.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// Component names of the shared meta types operations refer to.
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
/// Body of delete and deletecollection.
pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
/// Body of every patch operation.
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
/// What a watch streams.
pub const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
/// What the group-version root answers.
pub const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// `{"$ref": "#/components/schemas/<name>"}`.
pub fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{REF_PREFIX}{name}") })
}

fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// The codec describing the body of subresource `sub` of `kind`: the entry's own for
/// subresources that speak the parent kind (`status`), the subresource body's for those with
/// their own shape (`scale`, `binding`), `None` for connect options (`exec`).
pub fn body_codec<'a>(kind: &'a Kind, sub: &Subresource) -> Option<&'a dyn KindCodec> {
    if let Some(b) = kind.bodies().iter().find(|b| b.subresource == sub.name) {
        return Some(b.codec.as_ref());
    }
    (sub.group.is_empty() && sub.kind == kind.info.kind).then(|| kind.codec())
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

fn tag_gvk(schemas: &mut Map<String, Value>, name: &str, gvks: Vec<Value>) {
    if let Some(Value::Object(schema)) = schemas.get_mut(name) {
        schema.insert("x-kubernetes-group-version-kind".into(), Value::Array(gvks));
    }
}

/// k8s-openapi marks a kind's `metadata` required because its Rust field is not optional;
/// Kubernetes does not (`generateName` objects arrive without a name), and kubectl explain
/// would print `-required-` beside it.
fn optional_metadata(schemas: &mut Map<String, Value>, name: &str) {
    let Some(Value::Object(schema)) = schemas.get_mut(name) else {
        return;
    };
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.retain(|f| f != "metadata");
        if required.is_empty() {
            schema.remove("required");
        }
    }
}

/// `<Kind>List`: Kubernetes publishes one per resource; k8s-openapi has only a generic List.
fn list_schema(item: &Value, item_name: &str, r: &ResourceInfo) -> Value {
    let field = |f: &str| item["properties"][f].clone();
    json!({
        "description": format!("{} is a list of {} objects.", r.list_kind(), r.kind),
        "type": "object",
        "properties": {
            "apiVersion": field("apiVersion"),
            "items": {
                "description": format!("List of {}.", r.plural),
                "type": "array",
                "items": reference(item_name),
            },
            "kind": field("kind"),
            "metadata": {
                "description": "Standard list metadata.",
                "allOf": [reference(LIST_META)],
            },
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [gvk(r.group, r.version, &r.list_kind())],
    })
}

/// Kubernetes' v3 shapes for the two scalars k8s-openapi describes only through the
/// `x-kubernetes-int-or-string` extension: both accept a number or a string.
fn fix_scalars(schemas: &mut Map<String, Value>) {
    let description = |s: &Map<String, Value>, n: &str| s[n]["description"].clone();
    if schemas.contains_key(QUANTITY) {
        let d = description(schemas, QUANTITY);
        schemas.insert(
            QUANTITY.into(),
            json!({ "description": d, "oneOf": [{"type": "string"}, {"type": "number"}] }),
        );
    }
    if schemas.contains_key(INT_OR_STRING) {
        let d = description(schemas, INT_OR_STRING);
        schemas.insert(
            INT_OR_STRING.into(),
            json!({
                "description": d,
                "format": "int-or-string",
                "oneOf": [{"type": "integer"}, {"type": "string"}],
            }),
        );
    }
}

/// Every component schema of the document of one group-version.
pub fn component_schemas(kinds: &Registry, group: &str, version: &str) -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    add::<meta::Status>(&mut generator);
    add::<meta::DeleteOptions>(&mut generator);
    add::<meta::WatchEvent<()>>(&mut generator);
    add::<meta::Patch>(&mut generator);
    add::<meta::APIResourceList>(&mut generator);
    add::<meta::ListMeta>(&mut generator);
    // (component name, GVKs it is tagged with), and the resources needing a list schema.
    let mut tagged: Vec<(String, Value)> = Vec::new();
    let mut listed: Vec<(&ResourceInfo, String)> = Vec::new();
    for k in kinds
        .iter()
        .filter(|k| k.info.group == group && k.info.version == version)
    {
        let r = k.info;
        k.codec().add_schema(&mut generator);
        let name = k.codec().schema_name();
        tagged.push((name.clone(), gvk(r.group, r.version, r.kind)));
        listed.push((r, name));
        for sub in r.subresources {
            if let Some(codec) = body_codec(k, sub) {
                codec.add_schema(&mut generator);
                let (api_version, kind) = body_type(r, sub);
                let (g, v) = skiff_api::resources::split_api_version(&api_version);
                tagged.push((codec.schema_name(), gvk(g, v, kind)));
            }
        }
    }
    let mut schemas = generator.take_definitions(true);
    fix_scalars(&mut schemas);
    for (r, name) in listed {
        let list = list_schema(&schemas[&name], &name, r);
        schemas.insert(format!("{name}List"), list);
    }
    for (name, gvk) in tagged {
        tag_gvk(&mut schemas, &name, vec![gvk]);
        optional_metadata(&mut schemas, &name);
    }
    // The meta types are shared by every group-version, as Kubernetes tags them.
    let every_gv: Vec<(&str, &str)> = group_versions();
    for name in [STATUS, DELETE_OPTIONS, WATCH_EVENT] {
        let kind = name.rsplit('.').next().unwrap_or_default();
        let mut gvks = vec![gvk("", "v1", kind)];
        if kind != "Status" {
            gvks.extend(
                every_gv
                    .iter()
                    .filter(|(g, _)| !g.is_empty())
                    .map(|(g, v)| gvk(g, v, kind)),
            );
        }
        tag_gvk(&mut schemas, name, gvks);
    }
    tag_gvk(
        &mut schemas,
        API_RESOURCE_LIST,
        vec![gvk("", "v1", "APIResourceList")],
    );
    schemas.sort_keys();
    schemas
}
