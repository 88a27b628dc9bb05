//! Parsing an HTTP request at the edge into a typed `ApiRequest`: which kind, namespace,
//! name and subresource, which verb and action, and the query options. Everything is
//! validated here, once; nothing downstream re-parses or matches strings.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use serde_json::Value;
use skiff_api::fields::FieldSelector;
use skiff_api::labels::Selector;

use super::update::UpdateScope;
use crate::error::ApiError;
use crate::registry::{FieldValidation, Kind, Registry};

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

/// A subresource of an object, as its path segment names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `status`: the status part of the object.
    Status,
    /// `scale`: an autoscaling/v1 Scale view of a workload's replicas.
    Scale,
    /// `binding`: the scheduler's assignment of a pod to a node.
    Binding,
    /// `eviction`: a policy/v1 Eviction of a pod.
    Eviction,
    /// `log`: a container's log, from the pod's node.
    Log,
    /// `exec`: a command in a container, relayed to the pod's node.
    Exec,
    /// `attach`: a container's stdio, relayed to the pod's node.
    Attach,
    /// `portforward`: ports of a pod, relayed to the pod's node.
    PortForward,
    /// `proxy`: HTTP to the object (not served yet by any kind).
    Proxy,
    /// `approval`: a CertificateSigningRequest's Approved/Denied conditions.
    Approval,
    /// `token`: a ServiceAccount's TokenRequest.
    Token,
}

impl Subresource {
    /// The subresource of a path segment.
    pub fn parse(segment: &str) -> Option<Self> {
        Some(match segment {
            "status" => Self::Status,
            "scale" => Self::Scale,
            "binding" => Self::Binding,
            "eviction" => Self::Eviction,
            "token" => Self::Token,
            "log" => Self::Log,
            "exec" => Self::Exec,
            "attach" => Self::Attach,
            "portforward" => Self::PortForward,
            "proxy" => Self::Proxy,
            "approval" => Self::Approval,
            _ => return None,
        })
    }

    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Scale => "scale",
            Self::Binding => "binding",
            Self::Eviction => "eviction",
            Self::Token => "token",
            Self::Log => "log",
            Self::Exec => "exec",
            Self::Attach => "attach",
            Self::PortForward => "portforward",
            Self::Proxy => "proxy",
            Self::Approval => "approval",
        }
    }
}

/// A stream the API server relays from the pod's node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStream {
    /// `pods/log`.
    Log,
    /// `pods/exec`.
    Exec,
    /// `pods/attach`.
    Attach,
    /// `pods/portforward`.
    PortForward,
}

/// What a resource request does: the verb and subresource, validated together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// GET of an object (or of its status or approval, which answer the whole object).
    Get,
    /// GET of the Scale view of a workload.
    GetScale,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// POST of a new object.
    Create,
    /// POST of a pod's Binding.
    Bind,
    /// POST of a pod's Eviction.
    Evict,
    /// POST of a ServiceAccount's TokenRequest.
    RequestToken,
    /// PUT of an object, or of the part of it a subresource names.
    Update(UpdateScope),
    /// PUT of a Scale.
    UpdateScale,
    /// PATCH of an object, or of the part of it a subresource names.
    Patch(UpdateScope),
    /// PATCH of a Scale.
    PatchScale,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
    /// A stream relayed from the pod's node.
    NodeRelay(NodeStream),
    /// POST of a review (SelfSubjectAccessReview, ...): answered, not stored.
    Review,
}

fn not_allowed() -> ApiError {
    ApiError::method_not_allowed("the server does not allow this method on the requested resource")
}

impl Action {
    /// The action of `verb` on `sub`, or 405 when the pair is not served.
    fn of(verb: Verb, sub: Option<Subresource>) -> Result<Self, ApiError> {
        use Subresource as S;
        let scope = |s: Option<Subresource>| match s {
            Some(S::Status) => UpdateScope::Status,
            Some(S::Approval) => UpdateScope::Approval,
            _ => UpdateScope::Main,
        };
        Ok(match (verb, sub) {
            (Verb::List, _) => Action::List,
            (Verb::Watch, _) => Action::Watch,
            (Verb::Get, None | Some(S::Status | S::Approval)) => Action::Get,
            (Verb::Get, Some(S::Scale)) => Action::GetScale,
            (Verb::Get, Some(S::Log)) => Action::NodeRelay(NodeStream::Log),
            (Verb::Get | Verb::Create, Some(S::Exec)) => Action::NodeRelay(NodeStream::Exec),
            (Verb::Get | Verb::Create, Some(S::Attach)) => Action::NodeRelay(NodeStream::Attach),
            (Verb::Get | Verb::Create, Some(S::PortForward)) => {
                Action::NodeRelay(NodeStream::PortForward)
            }
            (Verb::Create, None) => Action::Create,
            (Verb::Create, Some(S::Binding)) => Action::Bind,
            (Verb::Create, Some(S::Eviction)) => Action::Evict,
            (Verb::Create, Some(S::Token)) => Action::RequestToken,
            (Verb::Update, None | Some(S::Status | S::Approval)) => Action::Update(scope(sub)),
            (Verb::Update, Some(S::Scale)) => Action::UpdateScale,
            (Verb::Patch, None | Some(S::Status | S::Approval)) => Action::Patch(scope(sub)),
            (Verb::Patch, Some(S::Scale)) => Action::PatchScale,
            (Verb::Delete, None) => Action::Delete,
            (Verb::DeleteCollection, None) => Action::DeleteCollection,
            _ => return Err(not_allowed()),
        })
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
    /// `fieldManager`, as the client sent it.
    pub field_manager: Option<String>,
    /// `force` (server-side apply taking fields from other managers).
    pub force: bool,
    /// The manager a write without `fieldManager` is recorded as: the User-Agent's product.
    pub default_manager: String,
}

/// A parsed resource request.
#[derive(Debug)]
pub struct ApiRequest {
    /// The kind addressed (its served version).
    pub kind: Arc<Kind>,
    /// The kind its objects are stored as (`kind` unless that is an alias version).
    pub storage: Arc<Kind>,
    /// The namespace from the path, if any.
    pub namespace: Option<String>,
    /// The object name, if any.
    pub name: Option<String>,
    /// The subresource, if any (served by the kind).
    pub subresource: Option<Subresource>,
    /// The verb.
    pub verb: Verb,
    /// What the request does.
    pub action: Action,
    /// Query options.
    pub query: Query,
    /// Requested representation.
    pub representation: Representation,
}

fn flag(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1" | "True"))
}

impl ApiRequest {
    /// Who a write of `operation` is recorded as, after checking `fieldManager` and `force`
    /// as kube-apiserver checks the options kind (`PatchOptions`, `CreateOptions`, ...).
    pub fn field_write(
        &self,
        options_kind: &str,
        operation: crate::managed::Operation,
    ) -> Result<crate::managed::FieldWrite, ApiError> {
        let apply = operation == crate::managed::Operation::Apply;
        let explicit = self.query.field_manager.as_deref();
        crate::managed::validate_options(options_kind, explicit, apply, self.query.force)?;
        Ok(crate::managed::FieldWrite {
            manager: explicit
                .filter(|m| !m.is_empty())
                .unwrap_or(&self.query.default_manager)
                .to_string(),
            operation,
            subresource: self
                .subresource
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
        })
    }

    /// Converts a stored object into the served version the request addressed.
    pub fn to_served(&self, obj: Value) -> Result<Value, ApiError> {
        crate::registry::convert(obj, &self.storage, &self.kind)
    }
}

/// Parses method, path, query and headers against the served `kinds`. Paths are
/// `/api/v1/...` or `/apis/<g>/<v>/...`.
pub fn parse(
    kinds: &Registry,
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
    let kind = kinds.find(group, version, plural).ok_or_else(not_found)?;
    let resource = kind.info;
    if !resource.namespaced && namespace.is_some() {
        return Err(not_found());
    }
    if resource.namespaced && name.is_some() && namespace.is_none() {
        return Err(not_found());
    }
    let sub = match sub {
        Some(s) if resource.subresource(s).is_none() => return Err(not_found()),
        Some(s) => Some(Subresource::parse(s).ok_or_else(not_found)?),
        None => None,
    };
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
        field_manager: params.get("fieldManager").cloned(),
        force: flag(params.get("force")),
        default_manager: crate::managed::manager_from_user_agent(
            headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        ),
    };
    // Reviews are answered on create and never stored: nothing else is served on them.
    let action = match (resource.is_stored(), verb, sub) {
        (true, _, _) => Action::of(verb, sub)?,
        (false, Verb::Create, None) => Action::Review,
        (false, _, _) => return Err(not_allowed()),
    };
    Ok(ApiRequest {
        kind: kind.clone(),
        storage: kinds.storage_of(kind).clone(),
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub,
        verb,
        action,
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
        parse(
            crate::registry::builtin(),
            &Method::GET,
            path,
            q,
            &HeaderMap::new(),
        )
    }

    #[test]
    fn parses_namespaced_and_cluster_paths() {
        let r = get("/apis/apps/v1/namespaces/default/deployments/web", None).unwrap();
        assert_eq!(
            (
                r.kind.info.kind,
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
            (r.kind.info.kind, r.name.as_deref()),
            ("Namespace", Some("kube-system"))
        );
        let r = get("/api/v1/namespaces/a/status", None).unwrap();
        assert_eq!(
            (r.kind.info.kind, r.name.as_deref(), r.subresource),
            ("Namespace", Some("a"), Some(Subresource::Status))
        );
        let r = parse(
            crate::registry::builtin(),
            &Method::POST,
            "/api/v1/namespaces/a/pods/p/binding",
            None,
            &HeaderMap::new(),
        )
        .unwrap();
        assert_eq!(
            (r.verb, r.subresource, r.action),
            (Verb::Create, Some(Subresource::Binding), Action::Bind)
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
    fn actions_are_validated_at_the_edge() {
        let at = |m: Method, path: &str| {
            parse(
                crate::registry::builtin(),
                &m,
                path,
                None,
                &HeaderMap::new(),
            )
        };
        let pod = "/api/v1/namespaces/a/pods/p";
        assert_eq!(
            at(Method::PUT, &format!("{pod}/status")).unwrap().action,
            Action::Update(UpdateScope::Status)
        );
        assert_eq!(
            at(Method::POST, &format!("{pod}/exec")).unwrap().action,
            Action::NodeRelay(NodeStream::Exec)
        );
        assert_eq!(
            at(
                Method::PATCH,
                "/apis/apps/v1/namespaces/a/deployments/d/scale"
            )
            .unwrap()
            .action,
            Action::PatchScale
        );
        for (m, path) in [
            (Method::PUT, format!("{pod}/binding")),
            (Method::DELETE, format!("{pod}/log")),
            (Method::GET, format!("{pod}/eviction")),
        ] {
            assert_eq!(at(m, &path).unwrap_err().code, 405, "{path}");
        }
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
