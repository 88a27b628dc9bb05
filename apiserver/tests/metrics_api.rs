//! `metrics.k8s.io/v1beta1` through the router: discovery, NodeMetrics and PodMetrics get
//! and list with selectors, metrics-server's NotFound wording and 405 for writes, with
//! metrics fed as the scraper records them from fake nodes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use skiff_apiserver::handlers::{ApiState, router};
use skiff_apiserver::metrics_api::{ContainerReading, NodeReading, PodReading, Reading};
use skiff_apiserver::server::bootstrap;
use skiff_apiserver::storage::Store;
use skiff_apiserver::storage::embedded::EmbeddedStore;
use tower::ServiceExt;

struct Api {
    state: ApiState,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("db.sqlite")).unwrap());
        let state = ApiState::new(store, "127.0.0.1:6443");
        bootstrap(&state).await.unwrap();
        Self { state, _dir: dir }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| Body::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let resp = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, None).await
    }

    async fn create(&self, path: &str, body: Value) {
        let (code, out) = self.call("POST", path, Some(body)).await;
        assert_eq!(code, StatusCode::CREATED, "{out}");
    }

    /// Lists until the watch cache has caught up with `n` items.
    async fn list(&self, path: &str, n: usize) -> Value {
        for _ in 0..100 {
            let (code, out) = self.get(path).await;
            assert_eq!(code, 200, "{out}");
            if out["items"].as_array().map(Vec::len) == Some(n) {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{path} never listed {n} items");
    }
}

fn reading(secs: i64, cpu_ns: u64, memory: u64) -> Reading {
    Reading {
        time: jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap(),
        cpu_ns,
        memory,
    }
}

/// A scrape of a node running pods (name, cpu ns, memory) with one container `app` each.
fn scrape(secs: i64, node_cpu: u64, pods: &[(&str, u64, u64)]) -> NodeReading {
    NodeReading {
        node: Some(reading(secs, node_cpu, 3 << 30)),
        pods: pods
            .iter()
            .map(|(name, cpu, mem)| PodReading {
                namespace: "default".into(),
                name: (*name).into(),
                containers: vec![ContainerReading {
                    name: "app".into(),
                    reading: reading(secs, *cpu, *mem),
                }],
            })
            .collect(),
    }
}

async fn cluster() -> Api {
    let api = Api::new().await;
    for (node, zone) in [("n1", "a"), ("n2", "b")] {
        api.create(
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": node, "labels": {"zone": zone}}}),
        )
        .await;
    }
    for (pod, node, app) in [
        ("web", "n1", "web"),
        ("db", "n2", "db"),
        ("idle", "n1", "web"),
    ] {
        api.create(
            "/api/v1/namespaces/default/pods",
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": pod, "labels": {"app": app}},
                   "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}}),
        )
        .await;
    }
    let m = &api.state.resource_metrics;
    // n1: 1.5 cores, web at 250m and 2 MiB over 10 s; n2: db at 1 core. `idle` has no
    // metrics (its node never reported it).
    m.record("n1", scrape(0, 0, &[("web", 0, 1 << 20)]));
    m.record("n2", scrape(0, 0, &[("db", 0, 1 << 20)]));
    m.record(
        "n1",
        scrape(10, 15_000_000_000, &[("web", 2_500_000_000, 2 << 20)]),
    );
    m.record(
        "n2",
        scrape(10, 10_000_000_000, &[("db", 10_000_000_000, 3 << 20)]),
    );
    api
}

#[tokio::test]
async fn discovery_lists_the_metrics_group() {
    let api = Api::new().await;
    let (_, groups) = api.get("/apis").await;
    let group = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "metrics.k8s.io")
        .expect("metrics.k8s.io in /apis");
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        "metrics.k8s.io/v1beta1"
    );
    let (code, g) = api.get("/apis/metrics.k8s.io").await;
    assert_eq!((code.as_u16(), g["kind"].as_str()), (200, Some("APIGroup")));
    let (_, list) = api.get("/apis/metrics.k8s.io/v1beta1").await;
    assert_eq!(list["groupVersion"], "metrics.k8s.io/v1beta1");
    let kinds: Vec<(&str, &str, bool)> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["kind"].as_str().unwrap(),
                r["namespaced"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("nodes", "NodeMetrics", false),
            ("pods", "PodMetrics", true)
        ]
    );
    assert_eq!(list["resources"][0]["verbs"], json!(["get", "list"]));
}

#[tokio::test]
async fn node_metrics_get_and_list() {
    let api = cluster().await;
    let (code, n1) = api.get("/apis/metrics.k8s.io/v1beta1/nodes/n1").await;
    assert_eq!(code, 200, "{n1}");
    assert_eq!(n1["kind"], "NodeMetrics");
    assert_eq!(n1["apiVersion"], "metrics.k8s.io/v1beta1");
    assert_eq!(n1["metadata"]["labels"]["zone"], "a");
    assert_eq!(n1["usage"], json!({"cpu": "1500m", "memory": "3Gi"}));
    assert_eq!(n1["window"], "10s");
    assert_eq!(n1["timestamp"], "2027-01-15T08:00:10Z");
    let list = api.list("/apis/metrics.k8s.io/v1beta1/nodes", 2).await;
    assert_eq!(list["kind"], "NodeMetricsList");
    assert_eq!(list["items"][1]["usage"]["cpu"], "1");
    let b = api
        .list(
            "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%3Db",
            1,
        )
        .await;
    assert_eq!(b["items"][0]["metadata"]["name"], "n2");
    let by_name = api
        .list(
            "/apis/metrics.k8s.io/v1beta1/nodes?fieldSelector=metadata.name%3Dn1",
            1,
        )
        .await;
    assert_eq!(by_name["items"][0]["metadata"]["name"], "n1");
}

#[tokio::test]
async fn pod_metrics_get_and_list_with_selectors() {
    let api = cluster().await;
    let (code, web) = api
        .get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web")
        .await;
    assert_eq!(code, 200, "{web}");
    assert_eq!(web["kind"], "PodMetrics");
    assert_eq!(web["metadata"]["namespace"], "default");
    assert_eq!(web["metadata"]["labels"]["app"], "web");
    assert_eq!(
        web["containers"],
        json!([{"name": "app", "usage": {"cpu": "250m", "memory": "2Mi"}}])
    );
    assert_eq!(web["window"], "10s");
    // Pods without metrics are left out of lists.
    let all = api.list("/apis/metrics.k8s.io/v1beta1/pods", 2).await;
    assert_eq!(all["kind"], "PodMetricsList");
    let names: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db", "web"]);
    let sel = api
        .list(
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dweb",
            1,
        )
        .await;
    assert_eq!(sel["items"][0]["metadata"]["name"], "web");
    let field = api
        .list(
            "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.name%3Ddb",
            1,
        )
        .await;
    assert_eq!(field["items"][0]["containers"][0]["usage"]["cpu"], "1");
    api.list(
        "/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods",
        0,
    )
    .await;
}

#[tokio::test]
async fn not_found_bad_selectors_and_writes() {
    let api = cluster().await;
    let (code, s) = api
        .get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/idle")
        .await;
    assert_eq!(code, 404);
    assert_eq!(
        s["message"],
        "podmetrics.metrics.k8s.io \"default/idle\" not found"
    );
    let (code, s) = api
        .get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope")
        .await;
    assert_eq!(code, 404);
    assert_eq!(s["message"], "pods \"default/nope\" not found");
    let (code, s) = api.get("/apis/metrics.k8s.io/v1beta1/nodes/nope").await;
    assert_eq!(
        (code.as_u16(), s["message"].as_str()),
        (404, Some("nodes \"nope\" not found"))
    );
    api.create(
        "/api/v1/nodes",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n3"}}),
    )
    .await;
    let (code, s) = api.get("/apis/metrics.k8s.io/v1beta1/nodes/n3").await;
    assert_eq!(code, 404);
    assert_eq!(s["message"], "nodemetrics.metrics.k8s.io \"n3\" not found");
    let (code, s) = api
        .get("/apis/metrics.k8s.io/v1beta1/pods?labelSelector=a%20in")
        .await;
    assert_eq!(code, 400, "{s}");
    let (code, _) = api.get("/apis/metrics.k8s.io/v1beta1/widgets").await;
    assert_eq!(code, 404);
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let (code, s) = api
            .call(
                method,
                "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web",
                Some(json!({})),
            )
            .await;
        assert_eq!(code, 405, "{method}: {s}");
        assert_eq!(s["reason"], "MethodNotAllowed");
    }
    let (code, _) = api
        .get("/apis/metrics.k8s.io/v1beta1/pods?watch=true")
        .await;
    assert_eq!(code, 405);
}
