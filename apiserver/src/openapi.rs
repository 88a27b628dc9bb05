//! OpenAPI v3 documents, enough for kubectl --validate=strict and kubectl explain: the
//! `/openapi/v3` index and one document per served group-version, built once and cached.

#[cfg(test)]
mod kubectl_tests;
mod params;
mod paths;
mod schemas;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::discovery::git_version;
use crate::registry::{self, Registry};

/// A built group-version document and the hash its index entry carries.
struct Document {
    bytes: Arc<Vec<u8>>,
    hash: String,
}

/// The documents of every group-version a registry serves, keyed by `api/v1` or
/// `apis/<group>/<version>`. A registry builds them once, on first use.
pub struct Documents(BTreeMap<String, Document>);

/// `api/v1` or `apis/<group>/<version>`: the key of a group-version in `/openapi/v3`.
fn index_key(group: &str, version: &str) -> String {
    paths::prefix(group, version)
        .trim_start_matches('/')
        .to_string()
}

/// The full OpenAPI 3.0 document of one group-version.
fn build(kinds: &Registry, group: &str, version: &str) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": git_version() },
        "paths": paths::paths(kinds, group, version),
        "components": {
            "schemas": schemas::component_schemas(kinds, group, version),
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "authorization",
                    "description": "Bearer Token authentication",
                }
            },
        },
        "security": [{ "BearerToken": [] }],
    })
}

impl Documents {
    /// Builds the document of every group-version served by `kinds`.
    pub fn build(kinds: &Registry) -> Self {
        let mut gvs: Vec<(&str, &str)> = Vec::new();
        for k in kinds.iter() {
            if !gvs.contains(&(k.info.group, k.info.version)) {
                gvs.push((k.info.group, k.info.version));
            }
        }
        let docs = gvs
            .into_iter()
            .map(|(g, v)| {
                let bytes =
                    serde_json::to_vec(&build(kinds, g, v)).expect("a JSON value serializes");
                let hash = hex::encode_upper(Sha256::digest(&bytes));
                (
                    index_key(g, v),
                    Document {
                        bytes: Arc::new(bytes),
                        hash,
                    },
                )
            })
            .collect();
        Self(docs)
    }

    /// `/openapi/v3`: every group-version with the URL of its document. The `hash` query
    /// parameter changes whenever the document does, so clients may cache by URL.
    pub fn index(&self) -> Value {
        let paths: serde_json::Map<String, Value> = self
            .0
            .iter()
            .map(|(key, doc)| {
                let url = format!("/openapi/v3/{key}?hash={}", doc.hash);
                (key.clone(), json!({ "serverRelativeURL": url }))
            })
            .collect();
        json!({ "paths": paths })
    }

    /// `/openapi/v3/<path>` for `path` = `api/v1` or `apis/<group>/<version>` (no leading
    /// slash, no query): the JSON bytes of that group-version's document.
    pub fn document(&self, path: &str) -> Option<Arc<Vec<u8>>> {
        self.0.get(path.trim_matches('/')).map(|d| d.bytes.clone())
    }

    /// The hash of a group-version document (uppercase hex sha256 of its bytes), as its
    /// index URL carries it: usable as an ETag, or to tell a stale `?hash=` from the current
    /// one.
    pub fn hash(&self, path: &str) -> Option<&str> {
        self.0.get(path.trim_matches('/')).map(|d| d.hash.as_str())
    }
}

/// [`Documents::index`] of the built-in kinds.
pub fn v3_index() -> Value {
    registry::builtin().openapi().index()
}

/// [`Documents::document`] of the built-in kinds.
pub fn v3_document(path: &str) -> Option<Arc<Vec<u8>>> {
    registry::builtin().openapi().document(path)
}

/// [`Documents::hash`] of the built-in kinds.
pub fn v3_hash(path: &str) -> Option<&'static str> {
    registry::builtin().openapi().hash(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::resources::{RESOURCES, group_version, group_versions};

    fn document(key: &str) -> Value {
        serde_json::from_slice(&v3_document(key).unwrap_or_else(|| panic!("no document {key}")))
            .unwrap()
    }

    /// Calls `f` on every JSON object inside `v`, with its JSON pointer.
    fn walk(v: &Value, at: &str, f: &mut dyn FnMut(&str, &serde_json::Map<String, Value>)) {
        match v {
            Value::Object(m) => {
                f(at, m);
                for (k, child) in m {
                    walk(child, &format!("{at}/{k}"), f);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{at}/{i}"), f);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn index_lists_every_group_version_with_its_hash() {
        let index = v3_index();
        let paths = index["paths"].as_object().unwrap();
        assert_eq!(paths.len(), group_versions().len());
        for (g, v) in group_versions() {
            let key = index_key(g, v);
            let url = paths[&key]["serverRelativeURL"].as_str().unwrap();
            let (path, hash) = url.split_once("?hash=").unwrap();
            assert_eq!(path, format!("/openapi/v3/{key}"));
            let bytes = v3_document(&key).unwrap();
            assert_eq!(hash, hex::encode_upper(Sha256::digest(bytes.as_slice())));
            assert_eq!(v3_hash(&key), Some(hash));
        }
        assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1"));
        assert!(v3_document("apis/example.com/v1").is_none());
        assert_eq!(v3_index(), index, "index is stable");
    }

    /// What kubectl's query-param verifier does: every PATCH operation tagged with the
    /// kind's GVK must accept `fieldValidation` in the query, and there must be one.
    #[test]
    fn every_kind_has_a_patch_accepting_field_validation() {
        for r in RESOURCES {
            let doc = document(&index_key(r.group, r.version));
            let want = json!({ "group": r.group, "version": r.version, "kind": r.kind });
            let mut found = 0;
            for (path, item) in doc["paths"].as_object().unwrap() {
                let Some(op) = item.get("patch") else {
                    continue;
                };
                if op["x-kubernetes-group-version-kind"] != want {
                    continue;
                }
                found += 1;
                let params = op["parameters"].as_array().unwrap();
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"),
                    "{path} patch lacks fieldValidation"
                );
                let types = op["requestBody"]["content"].as_object().unwrap();
                assert!(!types.contains_key("application/strategic-merge-patch+json"));
                assert!(types.contains_key("application/merge-patch+json"));
                assert!(types.contains_key("application/apply-patch+yaml"));
            }
            assert!(
                found >= 1,
                "no patch operation for {}/{}",
                group_version(r.group, r.version),
                r.kind
            );
        }
    }

    #[test]
    fn documents_are_self_contained_openapi_3_0() {
        for (g, v) in group_versions() {
            let key = index_key(g, v);
            let doc = document(&key);
            assert_eq!(doc["openapi"], "3.0.0");
            let schemas = doc["components"]["schemas"].as_object().unwrap().clone();
            let mut problems = Vec::new();
            walk(&doc, "", &mut |at, obj| {
                // JSONSchemaProps has a property named `$ref`.
                if let Some(r) = obj.get("$ref").filter(|_| !at.ends_with("/properties")) {
                    let name = r.as_str().unwrap().strip_prefix("#/components/schemas/");
                    if !name.is_some_and(|n| schemas.contains_key(n)) {
                        problems.push(format!("{at}: dangling {r}"));
                    }
                    if obj.len() > 1 {
                        problems.push(format!("{at}: $ref with siblings"));
                    }
                }
                for banned in ["$defs", "definitions", "$schema", "const", "examples"] {
                    if obj.contains_key(banned) && !at.ends_with("/properties") {
                        problems.push(format!("{at}: {banned}"));
                    }
                }
                if obj.get("type").is_some_and(|t| t.is_array()) && !at.ends_with("/properties") {
                    problems.push(format!("{at}: type array"));
                }
            });
            assert!(problems.is_empty(), "{key}: {problems:#?}");
        }
    }

    #[test]
    fn kind_schemas_carry_their_gvk() {
        let core = document("api/v1");
        let schemas = &core["components"]["schemas"];
        let pod = &schemas["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{ "group": "", "kind": "Pod", "version": "v1" }])
        );
        assert_eq!(
            pod["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.PodSpec"
        );
        let list = &schemas["io.k8s.api.core.v1.PodList"];
        assert_eq!(
            list["x-kubernetes-group-version-kind"][0]["kind"],
            "PodList"
        );
        assert_eq!(
            list["properties"]["items"]["items"]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.Pod"
        );
        assert_eq!(
            schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]["oneOf"][0]["type"],
            "string"
        );
        assert_eq!(
            schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"],
            "int-or-string"
        );
        assert_eq!(
            schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["format"],
            "date-time"
        );

        let apps = document("apis/apps/v1");
        let schemas = &apps["components"]["schemas"];
        let strategy = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(
            strategy["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"
        );
        assert_eq!(
            schemas["io.k8s.api.autoscaling.v1.Scale"]["x-kubernetes-group-version-kind"][0],
            json!({ "group": "autoscaling", "kind": "Scale", "version": "v1" })
        );
        // autoscaling/v1 describes the v1 HorizontalPodAutoscaler, not v2.
        let hpa1 = document("apis/autoscaling/v1");
        let names = hpa1["components"]["schemas"].as_object().unwrap();
        assert!(names.contains_key("io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler"));
        assert!(!names.contains_key("io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler"));
    }

    #[test]
    fn paths_cover_collections_items_and_subresources() {
        let core = document("api/v1");
        let p = &core["paths"];
        for path in [
            "/api/v1/namespaces/{namespace}/pods",
            "/api/v1/namespaces/{namespace}/pods/{name}",
            "/api/v1/pods",
            "/api/v1/namespaces/{namespace}/pods/{name}/status",
            "/api/v1/namespaces/{namespace}/pods/{name}/binding",
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            "/api/v1/namespaces/{namespace}/pods/{name}/exec",
            "/api/v1/namespaces/{namespace}/pods/{name}/attach",
            "/api/v1/namespaces",
            "/api/v1/namespaces/{name}",
            "/api/v1/nodes/{name}/status",
        ] {
            assert!(p.get(path).is_some(), "{path} missing");
        }
        assert!(p.get("/api/v1/namespaces/{namespace}/nodes").is_none());
        assert!(
            p["/api/v1/namespaces"].get("delete").is_none(),
            "no deletecollection of namespaces"
        );
        let create = &p["/api/v1/namespaces/{namespace}/pods"]["post"];
        assert_eq!(create["operationId"], "createCoreV1NamespacedPod");
        assert_eq!(create["x-kubernetes-action"], "post");
        assert_eq!(
            create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.Pod"
        );
        let names: Vec<&str> = create["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for n in ["dryRun", "fieldManager", "fieldValidation"] {
            assert!(names.contains(&n), "{n} missing from create");
        }
        let item_params = p["/api/v1/namespaces/{namespace}/pods/{name}"]["parameters"]
            .as_array()
            .unwrap();
        assert!(
            item_params
                .iter()
                .any(|q| q["name"] == "name" && q["in"] == "path" && q["required"] == true)
        );
    }
}
