//! The verbs against the real API router (`skiff_apiserver::handlers::router`) over plain
//! HTTP on 127.0.0.1, backed by a small in-memory `Store` written for these tests.
//!
//! `dev_server` (ignored) keeps such a server running and writes a kubeconfig, so the built
//! binary and the real kubectl can be tried against the handlers by hand:
//! `SKIFF_DEV_KUBECONFIG=/tmp/k cargo test -p skiff-cli dev_server -- --ignored`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Value, json};
use skiff_apiserver::handlers::{ApiState, router};
use skiff_apiserver::storage::{
    KeyValue, ListOptions, ListResult, Revision, Store, StoreError, WatchEvent, WatchStream,
};
use tokio::sync::broadcast;

use super::Ctx;
use super::apply::{self, ApplyArgs, Outcome};
use super::manifest;

/// An in-memory store with a full change log, enough for the handlers' reads, writes and watches.
struct MemStore {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<WatchEvent>,
}

#[derive(Default)]
struct Inner {
    rev: Revision,
    data: BTreeMap<String, KeyValue>,
    log: Vec<WatchEvent>,
}

impl MemStore {
    fn new() -> Self {
        MemStore {
            inner: Mutex::default(),
            tx: broadcast::channel(4096).0,
        }
    }

    fn record(&self, inner: &mut Inner, ev: WatchEvent) {
        inner.log.push(ev.clone());
        let _ = self.tx.send(ev);
    }
}

#[async_trait]
impl Store for MemStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.inner.lock().unwrap().data.get(key).cloned())
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult, StoreError> {
        let inner = self.inner.lock().unwrap();
        let mut items: Vec<KeyValue> = inner
            .data
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| opts.start_after.as_ref().is_none_or(|s| *k > s))
            .map(|(_, v)| v.clone())
            .collect();
        let more = opts.limit.is_some_and(|l| items.len() > l);
        if let Some(l) = opts.limit {
            items.truncate(l);
        }
        Ok(ListResult {
            items,
            revision: opts.revision.unwrap_or(inner.rev),
            more,
        })
    }

    async fn count(&self, prefix: &str) -> Result<usize, StoreError> {
        Ok(self
            .inner
            .lock()
            .unwrap()
            .data
            .keys()
            .filter(|k| k.starts_with(prefix))
            .count())
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let mut inner = self.inner.lock().unwrap();
        if inner.data.contains_key(key) {
            return Err(StoreError::AlreadyExists { key: key.into() });
        }
        inner.rev += 1;
        let kv = KeyValue {
            key: key.into(),
            value,
            create_revision: inner.rev,
            mod_revision: inner.rev,
        };
        inner.data.insert(key.into(), kv.clone());
        let rev = inner.rev;
        self.record(&mut inner, WatchEvent::Put { kv, prev: None });
        Ok(rev)
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let mut inner = self.inner.lock().unwrap();
        let Some(prev) = inner.data.get(key).cloned() else {
            return Err(StoreError::NotFound { key: key.into() });
        };
        if prev.mod_revision != expected {
            return Err(StoreError::Conflict {
                key: key.into(),
                expected,
                current: Box::new(prev),
            });
        }
        inner.rev += 1;
        let kv = KeyValue {
            key: key.into(),
            value,
            create_revision: prev.create_revision,
            mod_revision: inner.rev,
        };
        inner.data.insert(key.into(), kv.clone());
        let rev = inner.rev;
        self.record(
            &mut inner,
            WatchEvent::Put {
                kv,
                prev: Some(prev),
            },
        );
        Ok(rev)
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError> {
        let mut inner = self.inner.lock().unwrap();
        let Some(prev) = inner.data.get(key).cloned() else {
            return Err(StoreError::NotFound { key: key.into() });
        };
        if expected.is_some_and(|e| e != prev.mod_revision) {
            return Err(StoreError::Conflict {
                key: key.into(),
                expected: expected.unwrap_or(0),
                current: Box::new(prev),
            });
        }
        inner.rev += 1;
        inner.data.remove(key);
        let rev = inner.rev;
        self.record(
            &mut inner,
            WatchEvent::Delete {
                prev: prev.clone(),
                revision: rev,
            },
        );
        Ok((rev, prev))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let inner = self.inner.lock().unwrap();
        let start = if after == 0 { inner.rev } else { after };
        let history: Vec<_> = inner
            .log
            .iter()
            .filter(|e| e.revision() > start && e.key().starts_with(prefix))
            .cloned()
            .collect();
        let last = history.last().map(WatchEvent::revision).unwrap_or(start);
        let rx = self.tx.subscribe();
        drop(inner);
        let prefix = prefix.to_string();
        let live = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => return Some((ev, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .filter(move |e| {
            futures::future::ready(e.revision() > last && e.key().starts_with(&prefix))
        });
        Ok(Box::pin(futures::stream::iter(history).chain(live).map(Ok)))
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.inner.lock().unwrap().rev)
    }

    async fn compact(&self, _revision: Revision) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Serves the real router on 127.0.0.1; returns a connected client context and the address.
async fn start() -> (Ctx, std::net::SocketAddr) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = ApiState::new(Arc::new(MemStore::new()), &addr.to_string());
    skiff_apiserver::server::bootstrap(&state).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    (
        Ctx {
            client,
            namespace: "default".into(),
            explicit_namespace: false,
        },
        addr,
    )
}

fn apply_args() -> ApplyArgs {
    ApplyArgs {
        files: vec![],
        server_side: false,
        field_manager: "kubectl".into(),
        force_conflicts: false,
    }
}

fn web() -> Vec<manifest::Manifest> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/examples/web.yaml"
    );
    manifest::read_all(&[path.to_string()]).unwrap()
}

async fn get_json(ctx: &Ctx, path: &str, accept: &str) -> Value {
    let req = http::Request::get(path)
        .header("accept", accept)
        .body(vec![])
        .unwrap();
    serde_json::from_str(&ctx.client.request_text(req).await.unwrap()).unwrap()
}

#[tokio::test]
async fn web_example_applies_reapplies_and_reconfigures() {
    let (ctx, _) = start().await;
    for m in web() {
        let (_, _, outcome) = apply::apply_one(&ctx, &m, &apply_args()).await.unwrap();
        assert_eq!(outcome, Outcome::Created, "{}", m.object["kind"]);
    }
    for m in web() {
        let (res, name, outcome) = apply::apply_one(&ctx, &m, &apply_args()).await.unwrap();
        assert_eq!(outcome, Outcome::Unchanged, "{}/{name}", res.display());
    }
    // Drop the readiness probe and add an env var: the server merges the container by name.
    let mut deploy = web()
        .into_iter()
        .find(|m| m.object["kind"] == "Deployment")
        .unwrap();
    let c = &mut deploy.object["spec"]["template"]["spec"]["containers"][0];
    c.as_object_mut().unwrap().remove("readinessProbe");
    c["env"] = json!([{"name": "EXTRA", "value": "1"}]);
    let (_, _, outcome) = apply::apply_one(&ctx, &deploy, &apply_args())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Configured);
    let live = get_json(
        &ctx,
        "/apis/apps/v1/namespaces/default/deployments/web",
        "application/json",
    )
    .await;
    let c = &live["spec"]["template"]["spec"]["containers"][0];
    assert!(c.get("readinessProbe").is_none(), "{c}");
    assert_eq!(c["env"], json!([{"name": "EXTRA", "value": "1"}]));
    assert_eq!(c["image"], "busybox:1.36");
    let (_, _, outcome) = apply::apply_one(&ctx, &deploy, &apply_args())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Unchanged);
}

#[tokio::test]
async fn tables_from_the_server_print_like_kubectl() {
    let (ctx, _) = start().await;
    for m in web() {
        apply::apply_one(&ctx, &m, &apply_args()).await.unwrap();
    }
    let table = get_json(
        &ctx,
        "/api/v1/namespaces/default/services",
        super::get::TABLE_ACCEPT,
    )
    .await;
    assert_eq!(table["kind"], "Table", "{table}");
    let rows = super::printer::table_rows(&table, &super::printer::TableOptions::default());
    assert_eq!(rows[0][0], "NAME");
    assert!(rows.iter().any(|r| r[0] == "web"), "{rows:?}");
    let text = super::printer::align(&rows);
    assert!(text.lines().all(|l| !l.ends_with(' ')), "{text}");
}

#[tokio::test]
async fn invalid_objects_read_like_kubectl() {
    let (ctx, _) = start().await;
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bad\nspec:\n  replicas: -1\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec:\n      containers:\n      - name: c\n";
    let m = manifest::parse(text, "bad.yaml").unwrap().remove(0);
    let err = apply::apply_one(&ctx, &m, &apply_args()).await.unwrap_err();
    let msg = super::errors::format(&err);
    assert!(
        msg.starts_with("The Deployment \"bad\" is invalid: "),
        "{msg}"
    );
    assert!(msg.contains("spec.replicas"), "{msg}");
}

#[tokio::test]
#[ignore = "a development server; run by hand"]
async fn dev_server() {
    let (_, addr) = start().await;
    let path = std::env::var("SKIFF_DEV_KUBECONFIG")
        .unwrap_or_else(|_| "/tmp/skiff-dev.kubeconfig".into());
    let kc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dev\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: dev\n  context:\n    cluster: dev\n    user: dev\ncurrent-context: dev\nusers:\n- name: dev\n  user: {{}}\n"
    );
    std::fs::write(&path, kc).unwrap();
    eprintln!("serving on http://{addr}; KUBECONFIG={path}");
    let secs = std::env::var("SKIFF_DEV_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
}

#[tokio::test]
async fn patch_label_and_delete_change_the_server_state() {
    let (ctx, _) = start().await;
    for m in web() {
        apply::apply_one(&ctx, &m, &apply_args()).await.unwrap();
    }
    let words = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (kind, body) in [
        ("strategic", r#"{"spec":{"replicas":3}}"#),
        ("merge", r#"{"metadata":{"labels":{"x":"1"}}}"#),
        (
            "json",
            r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
        ),
    ] {
        let args = super::patch::PatchArgs {
            args: words(&["deploy", "web"]),
            patch: Some(body.into()),
            patch_file: None,
            patch_type: kind.into(),
            subresource: None,
        };
        super::patch::run(&ctx, args).await.unwrap();
    }
    let live = get_json(
        &ctx,
        "/apis/apps/v1/namespaces/default/deployments/web",
        "application/json",
    )
    .await;
    assert_eq!(live["spec"]["replicas"], 4);
    assert_eq!(live["metadata"]["labels"]["x"], "1");

    let label = |items: &[&str], overwrite| super::label::LabelArgs {
        args: words(items),
        overwrite,
    };
    let refused = super::label::run(
        &ctx,
        label(&["deploy/web", "x=2"], false),
        super::label::Field::Labels,
    )
    .await;
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("--overwrite is false")
    );
    super::label::run(
        &ctx,
        label(&["deploy/web", "x=2", "app-"], true),
        super::label::Field::Labels,
    )
    .await
    .unwrap();
    let live = get_json(
        &ctx,
        "/apis/apps/v1/namespaces/default/deployments/web",
        "application/json",
    )
    .await;
    assert_eq!(live["metadata"]["labels"], json!({"x": "2"}));

    let del = super::delete::DeleteArgs {
        args: vec![],
        files: vec![
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../manifests/examples/web.yaml"
            )
            .to_string(),
        ],
        selector: None,
        all: false,
        all_namespaces: false,
        cascade: "background".into(),
        grace_period: -1,
        wait: true,
        timeout: "10s".into(),
        ignore_not_found: false,
    };
    assert_eq!(
        super::delete::run(&ctx, del).await.unwrap(),
        std::process::ExitCode::SUCCESS
    );
    let req = http::Request::get("/api/v1/namespaces/default/services/web")
        .body(vec![])
        .unwrap();
    let err = anyhow::Error::new(ctx.client.request_text(req).await.unwrap_err());
    assert!(super::errors::is_not_found(&err));
}
