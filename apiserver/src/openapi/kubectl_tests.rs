//! Checks the discovery and OpenAPI documents against the real kubectl on PATH: a tiny
//! plain-HTTP server on loopback serves them, and kubectl explains and validates with them.

use std::path::Path;
use std::process::Command;

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::discovery;

fn json_response(code: StatusCode, v: Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn found(v: Option<Value>) -> Response {
    match v {
        Some(v) => json_response(StatusCode::OK, v),
        None => not_found().into_response(),
    }
}

fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
               "message": "the server could not find the requested resource", "code": 404}),
    )
}

fn app(address: String) -> Router {
    Router::new()
        .route("/version", get(|| async { json_response(StatusCode::OK, discovery::version_info()) }))
        .route("/api", get(move || async move { json_response(StatusCode::OK, discovery::api_versions(&address)) }))
        .route("/apis", get(|| async { json_response(StatusCode::OK, discovery::api_group_list(crate::registry::builtin())) }))
        .route("/api/{v}", get(|UrlPath(v): UrlPath<String>| async move { found(discovery::resource_list(crate::registry::builtin(), "", &v)) }))
        .route("/apis/{g}", get(|UrlPath(g): UrlPath<String>| async move { found(discovery::api_group(crate::registry::builtin(), &g)) }))
        .route(
            "/apis/{g}/{v}",
            get(|UrlPath((g, v)): UrlPath<(String, String)>| async move {
                if (g.as_str(), v.as_str()) == ("metrics.k8s.io", "v1beta1") {
                    return found(Some(crate::metrics_api::serve::resource_list()));
                }
                found(discovery::resource_list(crate::registry::builtin(), &g, &v))
            }),
        )
        .route("/openapi/v3", get(|| async { json_response(StatusCode::OK, super::v3_index()) }))
        .route(
            "/openapi/v3/{*path}",
            get(|UrlPath(path): UrlPath<String>| async move {
                match super::v3_document(&path) {
                    Some(bytes) => {
                        ([(header::CONTENT_TYPE, "application/json")], bytes.as_ref().clone()).into_response()
                    }
                    None => not_found(),
                }
            }),
        )
        .fallback(|| async { not_found() })
}

struct Kubectl {
    kubeconfig: std::path::PathBuf,
    cache: std::path::PathBuf,
}

impl Kubectl {
    fn new(dir: &Path, port: u16) -> Self {
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: http://127.0.0.1:{port}\n\
                 users:\n- name: t\n  user: {{}}\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: t\n    namespace: default\n\
                 current-context: t\n"
            ),
        )
        .unwrap();
        Kubectl {
            kubeconfig,
            cache: dir.join("cache"),
        }
    }

    /// Runs kubectl; returns (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .output()
            .expect("kubectl runs");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }
}

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_accepts_the_documents() {
    if !kubectl_available() {
        eprintln!("kubectl not on PATH; skipping");
        return;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app(addr.to_string())).into_future());
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(dir.path(), addr.port());
    let manifest = dir.path().join("deploy.yaml");
    let others = dir.path().join("others.yaml");
    std::fs::write(
        &others,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n---\n\
         apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\n\
         spec:\n  maxReplicas: 3\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n",
    )
    .unwrap();
    // An unknown field: kubectl must leave it to the server (fieldValidation=Strict) rather
    // than validate client-side, which would need /openapi/v2 and fail.
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  bogusField: 1\n  \
         selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    \
         spec:\n      containers:\n      - name: web\n        image: nginx\n",
    )
    .unwrap();

    let results = tokio::task::spawn_blocking(move || {
        let m = manifest.to_str().unwrap().to_string();
        let o = others.to_str().unwrap().to_string();
        vec![
            ("api-resources", kubectl.run(&["api-resources"])),
            (
                "explain strategy",
                kubectl.run(&["explain", "deployment.spec.strategy"]),
            ),
            (
                "explain limits",
                kubectl.run(&["explain", "pods.spec.containers.resources.limits"]),
            ),
            (
                "explain targetPort",
                kubectl.run(&["explain", "svc.spec.ports.targetPort"]),
            ),
            (
                "explain hpa",
                kubectl.run(&[
                    "explain",
                    "hpa.spec.metrics",
                    "--api-version=autoscaling/v2",
                ]),
            ),
            (
                "explain recursive",
                kubectl.run(&["explain", "lease", "--recursive"]),
            ),
            (
                "apply",
                kubectl.run(&["apply", "--dry-run=client", "-f", &m]),
            ),
            (
                "create",
                kubectl.run(&["create", "--dry-run=client", "-f", &m]),
            ),
            (
                "apply others",
                kubectl.run(&["apply", "--dry-run=client", "-f", &o]),
            ),
            ("api-versions", kubectl.run(&["api-versions"])),
            (
                "explain hpa v1",
                kubectl.run(&["explain", "hpa.spec", "--api-version=autoscaling/v1"]),
            ),
        ]
    })
    .await
    .unwrap();
    server.abort();

    let mut failures = Vec::new();
    for (name, (ok, stdout, stderr)) in &results {
        println!("== {name} ok={ok}\n{stdout}\n{stderr}");
        if !ok {
            failures.push(format!("{name}: {stderr}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let out = |n: &str| &results.iter().find(|r| r.0 == n).unwrap().1.1;
    assert!(out("api-resources").lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    }));
    assert!(
        out("explain strategy").contains("rollingUpdate"),
        "{}",
        out("explain strategy")
    );
    assert!(out("explain limits").contains("limits"));
    assert!(out("explain hpa").contains("resource"));
    assert!(
        out("explain recursive").contains("metadata\t<ObjectMeta>\n"),
        "metadata is optional"
    );
    assert!(out("apply").contains("created (dry run)"));
    assert_eq!(out("apply others").matches("created (dry run)").count(), 3);
    let versions: Vec<&str> = out("api-versions").lines().collect();
    assert!(versions.contains(&"autoscaling/v1") && versions.contains(&"autoscaling/v2"));
    assert!(out("explain hpa v1").contains("targetCPUUtilizationPercentage"));
}
