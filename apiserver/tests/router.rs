//! Handler tests through the router, without a socket: the generic object rules, selectors,
//! paging, subresources, finalizers, tables and watches, on the embedded store.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use skiff_apiserver::handlers::{ApiState, router};
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

    async fn call(&self, method: &str, path: &str, ct: &str, body: Value) -> (StatusCode, Value) {
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        self.send(
            Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", ct)
                .body(body)
                .unwrap(),
        )
        .await
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, "application/json", body).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, "application/json", Value::Null)
            .await
    }

    /// Opens a watch and returns a stream of decoded events.
    async fn watch(
        &self,
        path: &str,
    ) -> std::pin::Pin<Box<dyn futures::Stream<Item = Value> + Send>> {
        let resp = router(self.state.clone())
            .oneshot(Request::builder().uri(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let stream = resp.into_body().into_data_stream();
        Box::pin(stream.flat_map(|chunk| {
            let chunk = chunk.unwrap();
            let lines: Vec<Value> = chunk
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect();
            futures::stream::iter(lines)
        }))
    }
}

async fn next(s: &mut (impl futures::Stream<Item = Value> + Unpin)) -> Value {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("watch event in time")
        .expect("stream open")
}

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}})
}

#[tokio::test]
async fn create_get_list_with_selectors_and_paging() {
    let api = Api::new().await;
    for (i, tier) in ["web", "web", "db", "db", "web"].iter().enumerate() {
        let (code, obj) = api
            .post(CMS, cm(&format!("c{i}"), json!({"tier": tier})))
            .await;
        assert_eq!(code, 201, "{obj}");
        assert!(
            obj["metadata"]["uid"].is_string() && obj["metadata"]["creationTimestamp"].is_string()
        );
        assert!(
            obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
                > 0
        );
    }
    let (code, generated) = api
        .post(CMS, json!({"metadata": {"generateName": "gen-"}}))
        .await;
    assert_eq!(code, 201);
    let name = generated["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let (_, list) = api.get(&format!("{CMS}?labelSelector=tier%3Dweb")).await;
    assert_eq!(list["kind"], "ConfigMapList");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c0", "c1", "c4"]);
    let (_, list) = api
        .get(&format!("{CMS}?labelSelector=tier+notin+(web),tier"))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (code, err) = api.get(&format!("{CMS}?labelSelector=tier%3D%3D%3D")).await;
    assert_eq!(code, 400, "{err}");

    // Paging returns every object once, in order, with a consistent resourceVersion.
    let mut seen = Vec::new();
    let mut cont = String::new();
    loop {
        let (_, page) = api.get(&format!("{CMS}?limit=2&continue={cont}")).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(c) => cont = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);

    // All-namespaces path and field selectors.
    let (_, all) = api
        .get("/api/v1/configmaps?fieldSelector=metadata.name%3Dc2")
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    let (code, _) = api.get("/api/v1/configmaps?fieldSelector=data.k%3Dv").await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn updates_follow_kubernetes_object_rules() {
    let api = Api::new().await;
    let (_, d) = api.post(DEPLOYS, deployment("web")).await;
    assert_eq!(d["metadata"]["generation"], 1);
    assert!(
        d.get("status").is_none() || d["status"].as_object().is_some_and(|s| s.is_empty()),
        "{d}"
    );

    // A label change keeps the generation; a spec change bumps it.
    let (code, d2) = api
        .call(
            "PATCH",
            &format!("{DEPLOYS}/web"),
            "application/merge-patch+json",
            json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .await;
    assert_eq!(code, 200, "{d2}");
    assert_eq!(d2["metadata"]["generation"], 1);
    let (_, d3) = api
        .call(
            "PATCH",
            &format!("{DEPLOYS}/web"),
            "application/strategic-merge-patch+json",
            json!({"spec": {"replicas": 3}}),
        )
        .await;
    assert_eq!(d3["metadata"]["generation"], 2);
    assert_eq!(d3["metadata"]["uid"], d["metadata"]["uid"]);

    // Status only through /status; the main resource ignores status, /status ignores spec.
    let mut with_status = d3.clone();
    with_status["status"] = json!({"replicas": 7});
    with_status["spec"]["replicas"] = json!(9);
    let (_, after) = api
        .call(
            "PUT",
            &format!("{DEPLOYS}/web/status"),
            "application/json",
            with_status.clone(),
        )
        .await;
    assert_eq!(after["status"]["replicas"], 7);
    assert_eq!(after["spec"]["replicas"], 3);
    let mut main = after.clone();
    main["status"] = json!({"replicas": 1});
    let (_, after2) = api
        .call("PUT", &format!("{DEPLOYS}/web"), "application/json", main)
        .await;
    assert_eq!(after2["status"]["replicas"], 7);

    // Stale resourceVersion → 409; immutable selector → 422.
    let (code, err) = api
        .call(
            "PUT",
            &format!("{DEPLOYS}/web"),
            "application/json",
            d3.clone(),
        )
        .await;
    assert_eq!(
        (code, err["reason"].as_str()),
        (StatusCode::CONFLICT, Some("Conflict")),
        "{err}"
    );
    let (code, err) = api.call("PATCH", &format!("{DEPLOYS}/web"), "application/merge-patch+json", json!({"spec": {"selector": {"matchLabels": {"app": "other"}}, "template": {"metadata": {"labels": {"app": "other"}}}}})).await;
    assert_eq!(code, 422, "{err}");

    // An identical update writes nothing.
    let (_, cur) = api.get(&format!("{DEPLOYS}/web")).await;
    let (_, same) = api
        .call(
            "PUT",
            &format!("{DEPLOYS}/web"),
            "application/json",
            cur.clone(),
        )
        .await;
    assert_eq!(
        same["metadata"]["resourceVersion"],
        cur["metadata"]["resourceVersion"]
    );

    // Scale subresource.
    let (_, scale) = api.get(&format!("{DEPLOYS}/web/scale")).await;
    assert_eq!(
        (
            scale["kind"].as_str(),
            scale["apiVersion"].as_str(),
            &scale["spec"]["replicas"]
        ),
        (Some("Scale"), Some("autoscaling/v1"), &json!(3))
    );
    assert_eq!(scale["status"]["selector"], "app=web");
    let (code, _) = api
        .call(
            "PATCH",
            &format!("{DEPLOYS}/web/scale"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": 5}}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        api.get(&format!("{DEPLOYS}/web")).await.1["spec"]["replicas"],
        5
    );
    let (code, _) = api
        .call(
            "PATCH",
            &format!("{DEPLOYS}/web/scale"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": -1}}),
        )
        .await;
    assert_eq!(code, 422);

    // Unsupported patch type → 415.
    let (code, _) = api
        .call("PATCH", &format!("{DEPLOYS}/web"), "text/plain", json!({}))
        .await;
    assert_eq!(code, 415);

    // Server-side apply creates when absent and merges when present.
    let (code, _) = api
        .call(
            "PATCH",
            &format!("{DEPLOYS}/applied?fieldManager=t"),
            "application/apply-patch+yaml",
            deployment("applied"),
        )
        .await;
    assert_eq!(code, 201);
    let (code, applied) = api.call("PATCH", &format!("{DEPLOYS}/applied?fieldManager=u"), "application/apply-patch+yaml", json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "applied", "labels": {"a": "b"}}})).await;
    assert_eq!(code, 200);
    assert_eq!(
        applied["spec"]["replicas"], 2,
        "another manager's apply keeps fields it does not mention"
    );
    assert_eq!(applied["metadata"]["labels"]["a"], "b");
    // The same manager dropping a field removes it (replicas then defaults to 1).
    let mut dropped = deployment("applied");
    dropped["spec"].as_object_mut().unwrap().remove("replicas");
    let (code, applied) = api
        .call(
            "PATCH",
            &format!("{DEPLOYS}/applied?fieldManager=t"),
            "application/apply-patch+yaml",
            dropped,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(applied["spec"]["replicas"], 1, "{applied}");
    assert_eq!(applied["metadata"]["labels"]["a"], "b", "u's label stays");
    let mut managers: Vec<&str> = applied["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    managers.sort();
    assert_eq!(managers, ["t", "u"]);
}

#[tokio::test]
async fn binding_finalizers_and_deletion() {
    let api = Api::new().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (code, created) = api.post("/api/v1/namespaces/default/pods", pod).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["status"]["phase"], "Pending");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    let (code, _) = api
        .post("/api/v1/namespaces/default/pods/p/binding", binding.clone())
        .await;
    assert_eq!(code, 201);
    let (_, bound) = api.get("/api/v1/namespaces/default/pods/p").await;
    assert_eq!(bound["spec"]["nodeName"], "n1");
    assert!(
        bound["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "PodScheduled" && c["status"] == "True")
    );
    let (code, _) = api
        .post("/api/v1/namespaces/default/pods/p/binding", binding)
        .await;
    assert_eq!(code, 409);

    // A bound pod is deleted gracefully: it stays with a deletionTimestamp for its kubelet.
    let (code, deleting) = api
        .call(
            "DELETE",
            "/api/v1/namespaces/default/pods/p",
            "application/json",
            Value::Null,
        )
        .await;
    assert_eq!(code, 202);
    assert_eq!(deleting["metadata"]["deletionGracePeriodSeconds"], 30);
    let (code, _) = api
        .call(
            "DELETE",
            "/api/v1/namespaces/default/pods/p",
            "application/json",
            json!({"gracePeriodSeconds": 0}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(api.get("/api/v1/namespaces/default/pods/p").await.0, 404);

    // Finalizers hold an object until they are removed.
    let (_, _) = api
        .post(
            CMS,
            json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
        )
        .await;
    let (code, held) = api
        .call(
            "DELETE",
            &format!("{CMS}/held"),
            "application/json",
            Value::Null,
        )
        .await;
    assert_eq!(code, 202);
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    let (code, err) = api
        .call(
            "PATCH",
            &format!("{CMS}/held"),
            "application/merge-patch+json",
            json!({"metadata": {"finalizers": ["example.com/hold", "new"]}}),
        )
        .await;
    assert_eq!(code, 422, "{err}");
    let (code, _) = api
        .call(
            "PATCH",
            &format!("{CMS}/held"),
            "application/merge-patch+json",
            json!({"metadata": {"finalizers": null}}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(api.get(&format!("{CMS}/held")).await.0, 404);

    // Foreground and Orphan deletion leave the owner to the garbage collector.
    api.post(DEPLOYS, deployment("fg")).await;
    let (code, fg) = api
        .call(
            "DELETE",
            &format!("{DEPLOYS}/fg"),
            "application/json",
            json!({"propagationPolicy": "Foreground"}),
        )
        .await;
    assert_eq!(code, 202);
    assert_eq!(fg["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    api.post(DEPLOYS, deployment("or")).await;
    let (_, or) = api
        .call(
            "DELETE",
            &format!("{DEPLOYS}/or?propagationPolicy=Orphan"),
            "application/json",
            Value::Null,
        )
        .await;
    assert_eq!(or["metadata"]["finalizers"], json!(["orphan"]));
    let (code, _) = api
        .call(
            "DELETE",
            &format!("{DEPLOYS}/or?propagationPolicy=Sideways"),
            "application/json",
            Value::Null,
        )
        .await;
    assert_eq!(code, 422);

    // dryRun stores nothing; deletecollection removes what matches.
    let (code, _) = api
        .post(&format!("{CMS}?dryRun=All"), cm("dry", json!({})))
        .await;
    assert_eq!(code, 201);
    assert_eq!(api.get(&format!("{CMS}/dry")).await.0, 404);
    for n in ["a", "b"] {
        api.post(CMS, cm(n, json!({"sweep": "yes"}))).await;
    }
    let (code, gone) = api
        .call(
            "DELETE",
            &format!("{CMS}?labelSelector=sweep"),
            "application/json",
            Value::Null,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(gone["items"].as_array().unwrap().len(), 2);

    // Namespaced creates need their namespace.
    let (code, err) = api
        .post("/api/v1/namespaces/missing/configmaps", cm("x", json!({})))
        .await;
    assert_eq!(
        (code.as_u16(), err["message"].as_str()),
        (404, Some("namespaces \"missing\" not found"))
    );
}

#[tokio::test]
async fn tables_and_metadata_representations() {
    let api = Api::new().await;
    api.post(DEPLOYS, deployment("web")).await;
    let req = Request::builder()
        .uri(DEPLOYS)
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Body::empty())
        .unwrap();
    let (_, table) = api.send(req).await;
    assert_eq!(table["kind"], "Table");
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        &cols[..5],
        ["Name", "Ready", "Up-to-date", "Available", "Age"]
    );
    assert_eq!(table["rows"][0]["cells"][0], "web");
    assert_eq!(table["rows"][0]["cells"][1], "0/2");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let req = Request::builder()
        .uri(DEPLOYS)
        .header(
            "accept",
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
        )
        .body(Body::empty())
        .unwrap();
    let (_, meta) = api.send(req).await;
    assert_eq!(meta["kind"], "PartialObjectMetadataList");
    assert!(meta["items"][0].get("spec").is_none());
}

#[tokio::test]
async fn watches_from_now_from_a_revision_and_too_old() {
    let api = Api::new().await;
    let (_, first) = api.post(CMS, cm("w1", json!({"w": "1"}))).await;
    let rv1 = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    // resourceVersion=0: synthetic ADDED for what exists, then live events.
    let mut w = api
        .watch(&format!(
            "{CMS}?watch=true&resourceVersion=0&labelSelector=w"
        ))
        .await;
    let ev = next(&mut w).await;
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("w1"))
    );
    api.post(CMS, cm("w2", json!({"w": "2"}))).await;
    let ev = next(&mut w).await;
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("w2"))
    );
    // Leaving the selector is a DELETED for this watcher.
    api.call(
        "PATCH",
        &format!("{CMS}/w2"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": null}}),
    )
    .await;
    let ev = next(&mut w).await;
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), Some("w2"))
    );
    api.call(
        "DELETE",
        &format!("{CMS}/w1"),
        "application/json",
        Value::Null,
    )
    .await;
    let ev = next(&mut w).await;
    assert_eq!(ev["type"], "DELETED");

    // From a revision: replays what happened after it.
    let mut w = api
        .watch(&format!("{CMS}?watch=true&resourceVersion={rv1}"))
        .await;
    let mut replay = Vec::new();
    for _ in 0..3 {
        let ev = next(&mut w).await;
        replay.push(format!(
            "{} {}",
            ev["type"].as_str().unwrap(),
            ev["object"]["metadata"]["name"].as_str().unwrap()
        ));
    }
    assert_eq!(replay, ["ADDED w2", "MODIFIED w2", "DELETED w1"]);

    // sendInitialEvents: ADDED for each object, then the initial-events-end bookmark.
    let mut w = api.watch(&format!("{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")).await;
    let ev = next(&mut w).await;
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("w2"))
    );
    let ev = next(&mut w).await;
    assert_eq!(ev["type"], "BOOKMARK");
    assert_eq!(
        ev["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let (code, _) = api
        .get(&format!("{CMS}?watch=true&sendInitialEvents=true"))
        .await;
    assert_eq!(
        code, 422,
        "sendInitialEvents without NotOlderThan is refused"
    );

    // Older than the watch cache's window and compacted in the store: HTTP 200, then an
    // ERROR event carrying a 410 Status. (A fresh server's cache starts at the current
    // revision, so revision 1 is outside it.)
    let rev = api.state.store.current_revision().await.unwrap();
    api.state.store.compact(rev).await.unwrap();
    let fresh = Api {
        state: ApiState::new(api.state.store.clone(), "127.0.0.1:6443"),
        _dir: tempfile::tempdir().unwrap(),
    };
    let mut w = fresh
        .watch(&format!("{CMS}?watch=true&resourceVersion=1"))
        .await;
    let ev = next(&mut w).await;
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
}

#[tokio::test]
async fn pod_disruption_budgets_are_served() {
    let api = Api::new().await;
    const PDBS: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}});
    let (code, created) = api.post(PDBS, pdb).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created.get("status").is_none(), "{created}");

    let (code, list) = api.get(PDBS).await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "PodDisruptionBudgetList");
    assert_eq!(list["items"][0]["spec"]["minAvailable"], 2);

    let req = Request::builder()
        .uri(format!("{PDBS}/web"))
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Body::empty())
        .unwrap();
    let (code, table) = api.send(req).await;
    assert_eq!(code, 200);
    assert_eq!(table["kind"], "Table");
    let headers: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        headers,
        [
            "Name",
            "Min Available",
            "Max Unavailable",
            "Allowed Disruptions",
            "Age"
        ]
    );
    let cells = &table["rows"][0]["cells"];
    assert_eq!(
        (&cells[0], &cells[1], &cells[2], &cells[3]),
        (&json!("web"), &json!("2"), &json!("N/A"), &json!(0))
    );

    let bad = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "bad"},
        "spec": {"minAvailable": 1, "maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
    let (code, status) = api.post(PDBS, bad).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Invalid");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("PodDisruptionBudget \"bad\" is invalid: spec: Invalid value: ")
            && message.ends_with(": minAvailable and maxUnavailable cannot be both set"),
        "{message}"
    );
    assert_eq!(status["details"]["kind"], "PodDisruptionBudget");
    assert_eq!(status["details"]["group"], "policy");
    assert_eq!(status["details"]["causes"][0]["field"], "spec");
    assert_eq!(api.get(&format!("{PDBS}/bad")).await.0, 404);
}

#[tokio::test]
async fn endpoint_slices_are_served_and_validated() {
    let api = Api::new().await;
    const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
    let es = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abcde", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": 8080}]});
    let (code, created) = api.post(SLICES, es.clone()).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["ports"][0]["protocol"], "TCP");
    assert_eq!(created["metadata"]["generation"], 1);

    let mut changed = created.clone();
    changed["addressType"] = json!("IPv6");
    changed["endpoints"] = json!([{"addresses": ["fd00::5"]}]);
    let (code, status) = api
        .call(
            "PUT",
            &format!("{SLICES}/web-abcde"),
            "application/json",
            changed,
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], "addressType");
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "Invalid value: \"IPv6\": field is immutable"
    );

    let req = Request::builder()
        .uri(format!("{SLICES}/web-abcde"))
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Body::empty())
        .unwrap();
    let (code, table) = api.send(req).await;
    assert_eq!(code, 200);
    let cells = &table["rows"][0]["cells"];
    assert_eq!(
        (&cells[0], &cells[1], &cells[2], &cells[3]),
        (
            &json!("web-abcde"),
            &json!("IPv4"),
            &json!("8080"),
            &json!("10.244.0.5")
        )
    );

    let mut bad = es;
    bad["metadata"]["name"] = json!("bad");
    bad["addressType"] = json!("IPv4");
    bad["endpoints"] = json!([{"addresses": ["127.0.0.1"]}]);
    let (code, status) = api.post(SLICES, bad).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "endpoints[0].addresses[0]"
    );
    assert_eq!(api.get(&format!("{SLICES}/bad")).await.0, 404);

    let (code, status) = api
        .post(
            "/api/v1/namespaces/default/endpoints",
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
                "subsets": [{"ports": [{"port": 80}]}]}),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "Endpoints \"web\" is invalid: subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`"
    );
}
