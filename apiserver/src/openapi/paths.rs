//! Path items of one OpenAPI v3 group-version document: collection, item, all-namespaces
//! and subresource paths of every resource, with the operations, parameters and GVK
//! extensions kubectl looks for (a `patch` per kind accepting `fieldValidation`).

use serde_json::{Map, Value, json};
use skiff_api::resources::{ResourceInfo, Subresource};

use super::params::{
    connect_params, delete_params, list_params, log_params, path_params, write_params,
};
use super::schemas::{API_RESOURCE_LIST, DELETE_OPTIONS, PATCH, STATUS, body_codec, reference};
use crate::registry::{Kind, Registry};

/// Patch media types offered. Strategic merge patch is left out on purpose: without it,
/// kubectl apply computes its patch from the metadata compiled into kubectl.
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
];

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// The operationId stem: `CoreV1`, `AppsV1`, `CoordinationV1`, `AutoscalingV2`.
fn stem(group: &str, version: &str) -> String {
    let group = if group.is_empty() {
        "core"
    } else {
        group.trim_end_matches(".k8s.io")
    };
    let mut out = String::new();
    for word in group.split(['.', '-']).chain([version]) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// The operation tag: `core_v1`, `apps_v1`, `coordination_v1`.
fn tag(group: &str, version: &str) -> String {
    let group = if group.is_empty() {
        "core"
    } else {
        group.split('.').next().unwrap_or(group)
    };
    format!("{group}_{version}")
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

fn content(types: &[&str], schema: &Value) -> Value {
    let mut m = Map::new();
    for t in types {
        m.insert((*t).into(), json!({ "schema": schema }));
    }
    Value::Object(m)
}

fn responses(codes: &[(&str, &str)], types: &[&str], schema: &Value) -> Value {
    let mut m = Map::new();
    for (code, description) in codes {
        m.insert(
            (*code).into(),
            json!({ "description": description, "content": content(types, schema) }),
        );
    }
    m.insert("401".into(), json!({ "description": "Unauthorized" }));
    Value::Object(m)
}

/// One operation with Kubernetes' extensions.
struct Operation<'a> {
    id: String,
    description: String,
    action: &'a str,
    gvk: Value,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Value,
}

impl Operation<'_> {
    fn render(self, tag: &str) -> Value {
        let mut op = json!({
            "description": self.description,
            "operationId": self.id,
            "tags": [tag],
            "x-kubernetes-action": self.action,
            "x-kubernetes-group-version-kind": self.gvk,
            "responses": self.responses,
        });
        if !self.params.is_empty() {
            op["parameters"] = Value::Array(self.params);
        }
        if let Some(body) = self.body {
            op["requestBody"] = body;
        }
        op
    }
}

fn body(types: &[&str], schema: &Value) -> Value {
    json!({ "required": true, "content": content(types, schema) })
}

/// Builds the path items of one group-version.
struct Builder<'a> {
    group: &'a str,
    version: &'a str,
    stem: String,
    tag: String,
    paths: Map<String, Value>,
}

const JSON: &[&str] = &["application/json", "application/yaml"];
const WATCHABLE: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/json;stream=watch",
];

impl Builder<'_> {
    fn insert(&mut self, path: String, params: Vec<Value>, ops: Vec<(&str, Operation<'_>)>) {
        let mut item = Map::new();
        for (method, op) in ops {
            item.insert(method.into(), op.render(&self.tag));
        }
        item.insert("parameters".into(), Value::Array(params));
        self.paths.insert(path, Value::Object(item));
    }

    /// `Namespaced` in operation ids of namespaced resources.
    fn scoped(r: &ResourceInfo) -> &'static str {
        if r.namespaced { "Namespaced" } else { "" }
    }

    fn base(&self, r: &ResourceInfo) -> String {
        let p = prefix(self.group, self.version);
        if r.namespaced {
            format!("{p}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{p}/{}", r.plural)
        }
    }

    fn resource(&mut self, k: &Kind) {
        let r = k.info;
        let schema_name = k.codec().schema_name();
        let object = reference(&schema_name);
        let list = reference(&format!("{schema_name}List"));
        let status = reference(STATUS);
        let gvk = gvk(r.group, r.version, r.kind);
        let (stem, scoped, kind) = (self.stem.clone(), Self::scoped(r), r.kind);
        let op = |id: String, description: String, action, params, body, responses| Operation {
            id,
            description,
            action,
            gvk: gvk.clone(),
            params,
            body,
            responses,
        };
        let base = self.base(r);

        let mut collection = vec![
            (
                "get",
                op(
                    format!("list{stem}{scoped}{kind}"),
                    format!("list or watch objects of kind {kind}"),
                    "list",
                    list_params(true),
                    None,
                    responses(&[("200", "OK")], WATCHABLE, &list),
                ),
            ),
            (
                "post",
                op(
                    format!("create{stem}{scoped}{kind}"),
                    format!("create a {kind}"),
                    "post",
                    write_params(false),
                    Some(body(&["application/json"], &object)),
                    responses(
                        &[("200", "OK"), ("201", "Created"), ("202", "Accepted")],
                        JSON,
                        &object,
                    ),
                ),
            ),
        ];
        if !(r.group.is_empty() && r.plural == "namespaces") {
            let mut params = delete_params();
            params.extend(list_params(false));
            collection.push(("delete", op(
                format!("delete{stem}Collection{scoped}{kind}"),
                format!("delete collection of {kind}"),
                "deletecollection",
                params,
                Some(json!({ "content": content(&["application/json"], &reference(DELETE_OPTIONS)) })),
                responses(&[("200", "OK")], JSON, &status),
            )));
        }
        self.insert(base.clone(), path_params(r.namespaced, false), collection);

        let item = vec![
            (
                "get",
                op(
                    format!("read{stem}{scoped}{kind}"),
                    format!("read the specified {kind}"),
                    "get",
                    Vec::new(),
                    None,
                    responses(&[("200", "OK")], JSON, &object),
                ),
            ),
            (
                "put",
                op(
                    format!("replace{stem}{scoped}{kind}"),
                    format!("replace the specified {kind}"),
                    "put",
                    write_params(false),
                    Some(body(&["application/json"], &object)),
                    responses(&[("200", "OK"), ("201", "Created")], JSON, &object),
                ),
            ),
            (
                "patch",
                op(
                    format!("patch{stem}{scoped}{kind}"),
                    format!("partially update the specified {kind}"),
                    "patch",
                    write_params(true),
                    Some(body(PATCH_TYPES, &reference(PATCH))),
                    responses(&[("200", "OK"), ("201", "Created")], JSON, &object),
                ),
            ),
            (
                "delete",
                op(
                    format!("delete{stem}{scoped}{kind}"),
                    format!("delete a {kind}"),
                    "delete",
                    delete_params(),
                    Some(
                        json!({ "content": content(&["application/json"], &reference(DELETE_OPTIONS)) }),
                    ),
                    responses(&[("200", "OK"), ("202", "Accepted")], JSON, &status),
                ),
            ),
        ];
        self.insert(
            format!("{base}/{{name}}"),
            path_params(r.namespaced, true),
            item,
        );

        if r.namespaced {
            let all = vec![(
                "get",
                op(
                    format!("list{stem}{kind}ForAllNamespaces"),
                    format!("list or watch objects of kind {kind}"),
                    "list",
                    list_params(true),
                    None,
                    responses(&[("200", "OK")], WATCHABLE, &list),
                ),
            )];
            let path = format!("{}/{}", prefix(self.group, self.version), r.plural);
            self.insert(path, path_params(false, false), all);
        }
        for sub in r.subresources {
            self.subresource(k, sub, &base);
        }
    }

    fn subresource(&mut self, k: &Kind, sub: &Subresource, base: &str) {
        let r = k.info;
        let (g, v) = match sub.group.is_empty() {
            true => (r.group, r.version),
            false => (sub.group, sub.version),
        };
        let gvk = gvk(g, v, sub.kind);
        let path = format!("{base}/{{name}}/{}", sub.name);
        let (stem, scoped, kind) = (self.stem.clone(), Self::scoped(r), r.kind);
        let suffix = capitalize(sub.name);
        let text = json!({ "type": "string" });
        let mut ops = Vec::new();
        let mut params = path_params(r.namespaced, true);
        match (sub.name, body_codec(k, sub).map(|c| c.schema_name())) {
            ("log", _) => {
                params.extend(log_params());
                ops.push((
                    "get",
                    Operation {
                        id: format!("read{stem}{scoped}{kind}Log"),
                        description: format!("read log of the specified {kind}"),
                        action: "get",
                        gvk,
                        params: Vec::new(),
                        body: None,
                        responses: responses(&[("200", "OK")], &["text/plain"], &text),
                    },
                ));
            }
            (_, Some(schema_name)) => {
                let object = reference(&schema_name);
                for verb in sub.verbs {
                    let (method, verb_word, action, params, body, codes): (
                        _,
                        _,
                        _,
                        _,
                        _,
                        &[(&str, &str)],
                    ) = match *verb {
                        "get" => ("get", "read", "get", Vec::new(), None, &[("200", "OK")]),
                        "update" => (
                            "put",
                            "replace",
                            "put",
                            write_params(false),
                            Some(body(&["application/json"], &object)),
                            &[("200", "OK"), ("201", "Created")],
                        ),
                        "patch" => (
                            "patch",
                            "patch",
                            "patch",
                            write_params(true),
                            Some(body(PATCH_TYPES, &reference(PATCH))),
                            &[("200", "OK"), ("201", "Created")],
                        ),
                        "create" => (
                            "post",
                            "create",
                            "post",
                            write_params(false),
                            Some(body(&["application/json"], &object)),
                            &[("200", "OK"), ("201", "Created"), ("202", "Accepted")],
                        ),
                        _ => continue,
                    };
                    ops.push((
                        method,
                        Operation {
                            id: format!("{verb_word}{stem}{scoped}{kind}{suffix}"),
                            description: format!(
                                "{verb_word} {} of the specified {kind}",
                                sub.name
                            ),
                            action,
                            gvk: gvk.clone(),
                            params,
                            body,
                            responses: responses(codes, JSON, &object),
                        },
                    ));
                }
            }
            (_, None) => {
                params.extend(connect_params(sub.name));
                for verb in sub.verbs {
                    let (method, word) = match *verb {
                        "get" => ("get", "Get"),
                        "create" => ("post", "Post"),
                        _ => continue,
                    };
                    ops.push((
                        method,
                        Operation {
                            id: format!("connect{word}{stem}{scoped}{kind}{suffix}"),
                            description: format!(
                                "connect {word} requests to {} of {kind}",
                                sub.name
                            ),
                            action: "connect",
                            gvk: gvk.clone(),
                            params: Vec::new(),
                            body: None,
                            responses: responses(&[("200", "OK")], &["*/*"], &text),
                        },
                    ));
                }
            }
        }
        if !ops.is_empty() {
            self.insert(path, params, ops);
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Every path item of the document of one group-version.
pub fn paths(kinds: &Registry, group: &str, version: &str) -> Map<String, Value> {
    let mut b = Builder {
        group,
        version,
        stem: stem(group, version),
        tag: tag(group, version),
        paths: Map::new(),
    };
    let root = json!({
        "get": {
            "description": "get available resources",
            "operationId": format!("get{}APIResources", b.stem),
            "tags": [b.tag],
            "responses": responses(&[("200", "OK")], JSON, &reference(API_RESOURCE_LIST)),
        }
    });
    b.paths.insert(format!("{}/", prefix(group, version)), root);
    for k in kinds
        .iter()
        .filter(|k| k.info.group == group && k.info.version == version)
    {
        b.resource(k);
    }
    b.paths.sort_keys();
    b.paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_follow_kubernetes_naming() {
        assert_eq!(stem("", "v1"), "CoreV1");
        assert_eq!(stem("coordination.k8s.io", "v1"), "CoordinationV1");
        assert_eq!(stem("autoscaling", "v2"), "AutoscalingV2");
        assert_eq!(tag("events.k8s.io", "v1"), "events_v1");
        let p = paths(crate::registry::builtin(), "apps", "v1");
        let scale = &p["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        assert_eq!(
            scale["patch"]["operationId"],
            "patchAppsV1NamespacedDeploymentScale"
        );
        assert_eq!(
            scale["patch"]["x-kubernetes-group-version-kind"]["group"],
            "autoscaling"
        );
        let all = &p["/apis/apps/v1/deployments"]["get"];
        assert_eq!(all["operationId"], "listAppsV1DeploymentForAllNamespaces");
    }
}
