//! Parsing an HTTP request at the edge into a typed `ApiRequest`: which resource, namespace,
//! name and subresource, which verb, and the query options. Nothing downstream re-parses.

use std::collections::HashMap;

use axum::http::{HeaderMap, Method};
use skiff_api::fields::FieldSelector;
use skiff_api::labels::Selector;
use skiff_api::resources::{self, ResourceInfo};

use super::typed::FieldValidation;
use crate::error::ApiError;

/// The verb of a resource request, as Kubernetes names it for metrics and authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET one object.
    Get,
    /// GET a collection.
    List,
    /// GET a collection with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE one object.
    Delete,
    /// DELETE a collection.
    DeleteCollection,
}

impl Verb {
    /// Lower-case name (`get`, `list`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// How a client wants the response shaped (from `Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The objects themselves.
    Object,
    /// A `meta.k8s.io/v1` Table.
    Table,
    /// PartialObjectMetadata(List).
    Metadata,
}

/// Query options of a request.
#[derive(Debug, Default)]
pub struct Query {
    /// `labelSelector`.
    pub labels: Option<Selector>,
    /// `fieldSelector`.
    pub fields: Option<FieldSelector>,
    /// `limit`.
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `allowWatchBookmarks`.
    pub allow_bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `propagationPolicy`.
    pub propagation_policy: Option<String>,
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `includeObject` for tables (`None`, `Metadata`, `Object`).
    pub include_object: Option<String>,
}

/// A parsed resource request.
#[derive(Debug)]
pub struct ApiRequest {
    /// The resource addressed (the served version).
    pub resource: &'static ResourceInfo,
    /// The namespace from the path, if any.
    pub namespace: Option<String>,
    /// The object name, if any.
    pub name: Option<String>,
    /// The subresource, if any.
    pub subresource: Option<String>,
    /// The verb.
    pub verb: Verb,
    /// Query options.
    pub query: Query,
    /// Requested representation.
    pub representation: Representation,
}

fn flag(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1" | "True"))
}

/// Parses method, path, query and headers. Paths are `/api/v1/...` or `/apis/<g>/<v>/...`.
pub fn parse(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<ApiRequest, ApiError> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    };
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..] if !matches!(*plural, "status" | "finalize") => {
            match tail {
                [] => (Some(*ns), *plural, None, None),
                [name] => (Some(*ns), *plural, Some(*name), None),
                [name, sub] => (Some(*ns), *plural, Some(*name), Some(*sub)),
                _ => return Err(not_found()),
            }
        }
        [plural] => (None, *plural, None, None),
        [plural, name] => (None, *plural, Some(*name), None),
        [plural, name, sub] => (None, *plural, Some(*name), Some(*sub)),
        _ => return Err(not_found()),
    };
    let resource = resources::find(group, version, plural).ok_or_else(not_found)?;
    if !resource.namespaced && namespace.is_some() {
        return Err(not_found());
    }
    if resource.namespaced && name.is_some() && namespace.is_none() {
        return Err(not_found());
    }
    if let Some(s) = sub {
        if resource.subresource(s).is_none() {
            return Err(not_found());
        }
    }
    let params: HashMap<String, String> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let watch = flag(params.get("watch"));
    let verb = match (method.as_str(), name.is_some()) {
        ("GET", true) => Verb::Get,
        ("GET", false) if watch => Verb::Watch,
        ("GET", false) => Verb::List,
        ("POST", false) => Verb::Create,
        ("POST", true) if sub.is_some() => Verb::Create,
        ("PUT", true) => Verb::Update,
        ("PATCH", true) => Verb::Patch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        (m, _) => {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({m})"
            )));
        }
    };
    let labels = match params.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            Selector::parse(s)
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
        ),
        None => None,
    };
    let fields = match params.get("fieldSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            FieldSelector::parse(s)
                .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?,
        ),
        None => None,
    };
    let num = |k: &str| -> Result<Option<i64>, ApiError> {
        params
            .get(k)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {s:?}")))
            })
            .transpose()
    };
    let limit = num("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let timeout_seconds = num("timeoutSeconds")?.filter(|t| *t > 0).map(|t| t as u64);
    let grace_period_seconds = num("gracePeriodSeconds")?;
    let query = Query {
        labels,
        fields,
        limit,
        continue_token: params.get("continue").filter(|s| !s.is_empty()).cloned(),
        resource_version: params
            .get("resourceVersion")
            .filter(|s| !s.is_empty())
            .cloned(),
        resource_version_match: params
            .get("resourceVersionMatch")
            .filter(|s| !s.is_empty())
            .cloned(),
        timeout_seconds,
        allow_bookmarks: flag(params.get("allowWatchBookmarks")),
        send_initial_events: params.get("sendInitialEvents").map(|v| v == "true"),
        dry_run: params.get("dryRun").is_some_and(|v| v == "All"),
        field_validation: FieldValidation::parse(params.get("fieldValidation").map(String::as_str)),
        propagation_policy: params.get("propagationPolicy").cloned(),
        grace_period_seconds,
        include_object: params.get("includeObject").cloned(),
    };
    Ok(ApiRequest {
        resource,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
        verb,
        query,
        representation: representation(headers),
    })
}

/// Picks the first acceptable representation from `Accept`.
pub fn representation(headers: &HeaderMap) -> Representation {
    let accept = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    for media in accept.split(',') {
        let mut parts = media.split(';').map(str::trim);
        let base = parts.next().unwrap_or("");
        let params: HashMap<&str, &str> = parts.filter_map(|p| p.split_once('=')).collect();
        if !matches!(
            base,
            "application/json" | "*/*" | "application/*" | "application/yaml"
        ) {
            continue;
        }
        match (params.get("as"), params.get("g")) {
            (Some(&"Table"), Some(&"meta.k8s.io")) => return Representation::Table,
            (
                Some(&("PartialObjectMetadata" | "PartialObjectMetadataList")),
                Some(&"meta.k8s.io"),
            ) => {
                return Representation::Metadata;
            }
            (Some(_), _) => continue,
            (None, _) => return Representation::Object,
        }
    }
    Representation::Object
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, q: Option<&str>) -> Result<ApiRequest, ApiError> {
        parse(&Method::GET, path, q, &HeaderMap::new())
    }

    #[test]
    fn parses_namespaced_and_cluster_paths() {
        let r = get("/apis/apps/v1/namespaces/default/deployments/web", None).unwrap();
        assert_eq!(
            (
                r.resource.kind,
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.verb
            ),
            ("Deployment", Some("default"), Some("web"), Verb::Get)
        );
        let r = get("/api/v1/pods", Some("watch=true&resourceVersion=5")).unwrap();
        assert_eq!(
            (r.verb, r.namespace, r.query.resource_version.as_deref()),
            (Verb::Watch, None, Some("5"))
        );
        let r = get("/api/v1/namespaces/kube-system", None).unwrap();
        assert_eq!(
            (r.resource.kind, r.name.as_deref()),
            ("Namespace", Some("kube-system"))
        );
        let r = get("/api/v1/namespaces/a/status", None).unwrap();
        assert_eq!(
            (r.resource.kind, r.name.as_deref(), r.subresource.as_deref()),
            ("Namespace", Some("a"), Some("status"))
        );
        let r = parse(
            &Method::POST,
            "/api/v1/namespaces/a/pods/p/binding",
            None,
            &HeaderMap::new(),
        )
        .unwrap();
        assert_eq!(
            (r.verb, r.subresource.as_deref()),
            (Verb::Create, Some("binding"))
        );
    }

    #[test]
    fn rejects_unknown_paths() {
        assert_eq!(get("/api/v1/widgets", None).unwrap_err().code, 404);
        assert_eq!(
            get("/api/v1/namespaces/a/nodes/x", None).unwrap_err().code,
            404
        );
        assert_eq!(get("/api/v1/pods/x", None).unwrap_err().code, 404);
        assert_eq!(
            get("/api/v1/namespaces/a/pods/x/bogus", None)
                .unwrap_err()
                .code,
            404
        );
    }

    #[test]
    fn picks_table_from_accept() {
        let mut h = HeaderMap::new();
        h.insert("accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json".parse().unwrap());
        assert_eq!(representation(&h), Representation::Table);
        h.insert(
            "accept",
            "application/vnd.kubernetes.protobuf, */*".parse().unwrap(),
        );
        assert_eq!(representation(&h), Representation::Object);
    }
}
