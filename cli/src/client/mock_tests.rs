//! The verbs' HTTP paths against a tiny in-memory API server on 127.0.0.1 (plain HTTP):
//! create-on-404, patch media types and bodies, unchanged detection, Status errors, delete.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Ctx;
use super::apply::{self, ApplyArgs, LAST_APPLIED, Outcome};
use super::manifest;

/// What the mock saw and holds.
#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    patches: Vec<(String, Value)>,
    revision: u64,
}

type Shared = Arc<Mutex<State>>;

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "code": code, "reason": reason, "message": message});
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

/// Removes strategic-merge directives the mock does not implement, keeping the rest a merge patch.
fn strip_directives(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        m.retain(|k, _| !k.starts_with('$'));
        m.values_mut().for_each(strip_directives);
    }
}

async fn handle(
    state: axum::extract::State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = if segs[0] == "api" {
        &segs[2..]
    } else {
        &segs[3..]
    };
    let (plural, name) = match rest {
        ["namespaces", _, plural] | [plural] => (*plural, None),
        ["namespaces", _, plural, name] | [plural, name] => (*plural, Some(*name)),
        _ => return status(404, "NotFound", "no route".into()),
    };
    let mut st = state.lock().unwrap();
    st.revision += 1;
    let rv = st.revision.to_string();
    match (method, name) {
        (Method::GET, Some(n)) => match st.objects.get(&path) {
            Some(o) => axum::Json(o.clone()).into_response(),
            None => status(404, "NotFound", format!("{plural} \"{n}\" not found")),
        },
        (Method::GET, None) => {
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{path}/")))
                .map(|(_, v)| v.clone())
                .collect();
            axum::Json(json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items})).into_response()
        }
        (Method::POST, None) => {
            let mut obj: Value = serde_json::from_slice(&body).unwrap();
            let n = obj["metadata"]["name"].as_str().unwrap().to_string();
            let key = format!("{path}/{n}");
            if st.objects.contains_key(&key) {
                return status(
                    409,
                    "AlreadyExists",
                    format!("{plural} \"{n}\" already exists"),
                );
            }
            obj["metadata"]["uid"] = json!(format!("uid-{n}"));
            obj["metadata"]["resourceVersion"] = json!(rv);
            obj["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
            st.objects.insert(key, obj.clone());
            (StatusCode::CREATED, axum::Json(obj)).into_response()
        }
        (Method::PATCH, Some(n)) => {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let patch: Value = serde_json::from_slice(&body).unwrap();
            st.patches.push((ct, patch.clone()));
            let Some(mut obj) = st.objects.get(&path).cloned() else {
                return status(404, "NotFound", format!("{plural} \"{n}\" not found"));
            };
            let mut merge = patch;
            strip_directives(&mut merge);
            json_patch::merge(&mut obj, &merge);
            obj["metadata"]["resourceVersion"] = json!(rv);
            st.objects.insert(path, obj.clone());
            axum::Json(obj).into_response()
        }
        (Method::DELETE, Some(n)) => match st.objects.remove(&path) {
            Some(o) => axum::Json(o).into_response(),
            None => status(404, "NotFound", format!("{plural} \"{n}\" not found")),
        },
        _ => status(405, "MethodNotAllowed", "not allowed".into()),
    }
}

async fn start() -> (Ctx, Shared) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let state: Shared = Arc::default();
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    (
        Ctx {
            client,
            namespace: "default".into(),
            explicit_namespace: false,
        },
        state,
    )
}

fn args() -> ApplyArgs {
    ApplyArgs {
        files: vec![],
        server_side: false,
        field_manager: "kubectl".into(),
        force_conflicts: false,
    }
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  labels: {app: web, tier: front}\ndata:\n  a: \"1\"\n";

#[tokio::test]
async fn apply_creates_then_is_unchanged_then_configures() {
    let (ctx, state) = start().await;
    let m = manifest::parse(CM, "cm.yaml").unwrap().remove(0);
    let (res, name, outcome) = apply::apply_one(&ctx, &m, &args()).await.unwrap();
    assert_eq!(
        (res.display().as_str(), name.as_str(), outcome),
        ("configmap", "cfg", Outcome::Created)
    );
    let live = state.lock().unwrap().objects["/api/v1/namespaces/default/configmaps/cfg"].clone();
    let annotation = live["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        annotation.starts_with("{\"apiVersion\":\"v1\",\"data\":{\"a\":\"1\"}"),
        "{annotation}"
    );
    assert_eq!(live["metadata"]["namespace"], "default");

    let (_, _, outcome) = apply::apply_one(&ctx, &m, &args()).await.unwrap();
    assert_eq!(outcome, Outcome::Unchanged);
    assert!(state.lock().unwrap().patches.is_empty());

    let changed = CM
        .replace("{app: web, tier: front}", "{app: web}")
        .replace("\"1\"", "\"2\"");
    let m2 = manifest::parse(&changed, "cm.yaml").unwrap().remove(0);
    let (_, _, outcome) = apply::apply_one(&ctx, &m2, &args()).await.unwrap();
    assert_eq!(outcome, Outcome::Configured);
    let st = state.lock().unwrap();
    let (ct, patch) = &st.patches[0];
    assert_eq!(ct, "application/strategic-merge-patch+json");
    assert_eq!(patch["data"], json!({"a": "2"}));
    assert_eq!(patch["metadata"]["labels"], json!({"tier": null}));
    let live = &st.objects["/api/v1/namespaces/default/configmaps/cfg"];
    assert_eq!(live["metadata"]["labels"], json!({"app": "web"}));
}

#[tokio::test]
async fn server_errors_read_like_kubectl() {
    let (ctx, _state) = start().await;
    let res = super::resource::resolve_local("deploy").unwrap();
    let err = res
        .api(&ctx.client, Some("default"))
        .get("x")
        .await
        .unwrap_err();
    assert_eq!(
        super::errors::format(&anyhow::Error::new(err)),
        "Error from server (NotFound): deployments \"x\" not found"
    );
}

#[tokio::test]
async fn delete_removes_and_waits() {
    let (ctx, state) = start().await;
    let m = manifest::parse(CM, "cm.yaml").unwrap().remove(0);
    apply::apply_one(&ctx, &m, &args()).await.unwrap();
    let del = super::delete::DeleteArgs {
        args: vec!["cm/cfg".into()],
        files: vec![],
        selector: None,
        all: false,
        all_namespaces: false,
        cascade: "foreground".into(),
        grace_period: -1,
        wait: true,
        timeout: "5s".into(),
        ignore_not_found: false,
    };
    let code = super::delete::run(&ctx, del).await.unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert!(state.lock().unwrap().objects.is_empty());
}
