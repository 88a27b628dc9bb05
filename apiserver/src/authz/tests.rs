use std::sync::Arc;

use http::Method;
use serde_json::{Value, json};

use super::rbac::Index;
use super::*;

fn jane() -> UserInfo {
    UserInfo {
        name: "jane".into(),
        groups: vec!["dev".into(), GROUP_AUTHENTICATED.into()],
    }
}

fn attrs(method: Method, path: &str, query: Option<&str>) -> Attributes {
    attributes(jane(), &method, path, query)
}

#[test]
fn paths_become_kubernetes_request_attributes() {
    let a = attrs(Method::GET, "/api/v1/namespaces/ns1/pods", None);
    assert!(a.resource_request);
    assert_eq!(
        (
            a.verb.as_str(),
            a.namespace.as_str(),
            a.resource.as_str(),
            a.name.as_str()
        ),
        ("list", "ns1", "pods", "")
    );
    let a = attrs(
        Method::GET,
        "/api/v1/namespaces/ns1/pods",
        Some("watch=true"),
    );
    assert_eq!(a.verb, "watch");
    let a = attrs(Method::GET, "/api/v1/namespaces/ns1/pods/p/log", None);
    assert_eq!(
        (a.verb.as_str(), a.name.as_str(), a.subresource.as_str()),
        ("get", "p", "log")
    );
    let a = attrs(
        Method::DELETE,
        "/apis/apps/v1/namespaces/ns1/deployments",
        None,
    );
    assert_eq!(
        (a.verb.as_str(), a.api_group.as_str()),
        ("deletecollection", "apps")
    );
    let a = attrs(Method::GET, "/api/v1/namespaces/ns1", None);
    assert_eq!(
        (a.resource.as_str(), a.name.as_str(), a.namespace.as_str()),
        ("namespaces", "ns1", "ns1")
    );
    let a = attrs(Method::PUT, "/api/v1/namespaces/ns1/finalize", None);
    assert_eq!(
        (a.verb.as_str(), a.resource.as_str(), a.subresource.as_str()),
        ("update", "namespaces", "finalize")
    );
    let a = attrs(Method::GET, "/api/v1/watch/namespaces/ns1/pods/p", None);
    assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "p"));
    let a = attrs(
        Method::GET,
        "/api/v1/namespaces/ns1/pods",
        Some("fieldSelector=metadata.name%3Dp&watch=1"),
    );
    assert_eq!((a.verb.as_str(), a.name.as_str()), ("watch", "p"));
    let a = attrs(Method::POST, "/api/v1/nodes", None);
    assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("create", ""));
    for discovery in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps",
        "/healthz",
        "/openapi/v3",
    ] {
        let a = attrs(Method::GET, discovery, None);
        assert!(!a.resource_request, "{discovery}");
        assert_eq!(a.verb, "get");
    }
    assert!(!attrs(Method::GET, "/apis/apps/v1", None).resource_request);
}

#[test]
fn refusals_are_worded_as_kube_apiserver_words_them() {
    let e = forbidden(&attrs(Method::GET, "/api/v1/namespaces/y/pods", None), "");
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"y\""
    );
    assert_eq!(e.details, Some(json!({"kind": "pods"})));
    let e = forbidden(
        &attrs(
            Method::GET,
            "/apis/apps/v1/namespaces/y/deployments/d/scale",
            None,
        ),
        "",
    );
    assert_eq!(
        e.message,
        "deployments.apps \"d\" is forbidden: User \"jane\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"y\""
    );
    let e = forbidden(&attrs(Method::GET, "/api/v1/nodes", None), "");
    assert_eq!(
        e.message,
        "nodes is forbidden: User \"jane\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    let e = forbidden(&attrs(Method::GET, "/metrics", None), "");
    assert_eq!(
        e.message,
        "forbidden: User \"jane\" cannot get path \"/metrics\""
    );
}

fn obj(v: Value) -> Arc<Value> {
    Arc::new(v)
}

fn index() -> Index {
    let view = obj(json!({"metadata": {"name": "view"}, "rules": [
        {"verbs": ["get", "list", "watch"], "apiGroups": ["", "apps"], "resources": ["pods", "pods/log", "deployments"]},
    ]}));
    let urls = obj(json!({"metadata": {"name": "urls"}, "rules": [
        {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api/*"]},
    ]}));
    let secret = obj(
        json!({"metadata": {"name": "one-secret", "namespace": "a"}, "rules": [
            {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]},
        ]}),
    );
    let crb = obj(json!({"metadata": {"name": "everyone-urls"},
        "roleRef": {"kind": "ClusterRole", "name": "urls"},
        "subjects": [{"kind": "Group", "name": GROUP_AUTHENTICATED}]}));
    let rb_view = obj(json!({"metadata": {"name": "jane-view", "namespace": "a"},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "jane"}]}));
    let rb_secret = obj(json!({"metadata": {"name": "dev-secret", "namespace": "a"},
        "roleRef": {"kind": "Role", "name": "one-secret"},
        "subjects": [{"kind": "Group", "name": "dev"}, {"kind": "ServiceAccount", "name": "ci"}]}));
    Index::build(&[view, urls], &[secret], &[crb], &[rb_view, rb_secret])
}

#[test]
fn rbac_allows_only_what_a_binding_grants() {
    let idx = index();
    let can = |user: UserInfo, method: Method, path: &str| {
        idx.authorize(&attributes(user, &method, path, None))
            .allowed()
    };
    assert!(can(jane(), Method::GET, "/api/v1/namespaces/a/pods"));
    assert!(can(jane(), Method::GET, "/api/v1/namespaces/a/pods/p/log"));
    assert!(can(
        jane(),
        Method::GET,
        "/apis/apps/v1/namespaces/a/deployments/d"
    ));
    assert!(!can(jane(), Method::GET, "/api/v1/namespaces/b/pods"));
    assert!(!can(jane(), Method::GET, "/api/v1/pods"));
    assert!(!can(jane(), Method::DELETE, "/api/v1/namespaces/a/pods/p"));
    assert!(!can(
        jane(),
        Method::GET,
        "/api/v1/namespaces/a/pods/p/exec"
    ));
    assert!(can(jane(), Method::GET, "/api/v1/namespaces/a/secrets/s1"));
    assert!(!can(jane(), Method::GET, "/api/v1/namespaces/a/secrets/s2"));
    assert!(!can(jane(), Method::GET, "/api/v1/namespaces/a/secrets"));
    assert!(can(jane(), Method::GET, "/healthz"));
    assert!(can(jane(), Method::GET, "/api/v1"));
    assert!(!can(jane(), Method::GET, "/metrics"));
    let sa = UserInfo {
        name: "system:serviceaccount:a:ci".into(),
        groups: vec![],
    };
    assert!(can(
        sa.clone(),
        Method::GET,
        "/api/v1/namespaces/a/secrets/s1"
    ));
    assert!(!can(sa, Method::GET, "/api/v1/namespaces/a/pods"));
    let rules = idx.rules_for(&jane(), "a");
    assert_eq!(rules.len(), 3);
    assert!(idx.rules_for(&jane(), "b").len() == 1);
}
