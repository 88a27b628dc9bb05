//! Collections: list with selectors and paging, watch streams from the watch cache, and the
//! server-side Table and PartialObjectMetadata renderings `kubectl get` asks for.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::delete::{DeleteOptions, delete};
use super::object::ObjectRef;
use super::request::{ApiRequest, Representation};
use super::{ApiState, json_response};
use crate::error::ApiError;
use crate::storage::{ListOptions, Revision, StoreError, WatchEvent};
use crate::strategy::Strategy;
use crate::watchcache::{CacheEvent, EventType, decode};

/// Default watch lifetime when the client gives no timeout (Kubernetes picks 30–60 min).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often an idle watch with bookmarks enabled gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// A compiled filter for the objects a request selects.
pub struct Filter<'a> {
    namespace: Option<&'a str>,
    req: &'a ApiRequest,
    strategy: &'a dyn Strategy,
}

impl<'a> Filter<'a> {
    /// The filter of a list or watch request.
    pub fn new(req: &'a ApiRequest) -> Self {
        Self {
            namespace: req.namespace.as_deref(),
            req,
            strategy: req.storage.strategy(),
        }
    }

    /// Whether `obj` (storage form) is selected. Unsupported field selectors are a 400.
    pub fn matches(&self, obj: &Value) -> Result<bool, ApiError> {
        let meta = obj.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let ns = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(want) = self.namespace
            && ns != want
        {
            return Ok(false);
        }
        if let Some(l) = &self.req.query.labels
            && !l.matches_json(meta.and_then(|m| m.get("labels")))
        {
            return Ok(false);
        }
        if let Some(f) = &self.req.query.fields {
            let unsupported = std::cell::RefCell::new(None);
            let ok = f.matches(|field| match field {
                "metadata.name" => Some(name.to_string()),
                "metadata.namespace" => Some(ns.to_string()),
                other => {
                    let v = self.strategy.field(obj, other);
                    if v.is_none() {
                        *unsupported.borrow_mut() = Some(other.to_string());
                    }
                    v
                }
            });
            if let Some(field) = unsupported.into_inner() {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            return Ok(ok);
        }
        Ok(true)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: Revision,
    start: String,
}

fn encode_continue(rv: Revision, start: &str) -> String {
    let t = ContinueToken {
        rv,
        start: start.to_string(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&t).expect("token encodes"))
}

fn decode_continue(s: &str) -> Result<ContinueToken, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "continue key is not valid: incorrect encoded start resourceVersion",
            )
        })
}

fn expired_continue() -> ApiError {
    ApiError::gone(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
    )
}

/// Lists matching objects (storage form), paging through the store or reading the cache.
async fn collect(
    state: &ApiState,
    req: &ApiRequest,
) -> Result<(Vec<Value>, Revision, Option<String>), ApiError> {
    let s = req.storage.info;
    let filter = Filter::new(req);
    let prefix = match &req.namespace {
        Some(ns) => s.namespace_prefix(ns),
        None => s.key_prefix(),
    };
    let q = &req.query;
    let from_cache = q.continue_token.is_none() && q.resource_version.as_deref() == Some("0");
    if from_cache {
        let cache = state
            .caches
            .get(&s.key_prefix())
            .ok_or_else(|| ApiError::internal("no watch cache"))?;
        let (objs, rev) = cache.snapshot_prefix(&prefix).await;
        let mut out = Vec::new();
        for o in objs {
            if filter.matches(&o)? {
                out.push((*o).clone());
            }
        }
        return Ok((out, rev, None));
    }
    let (mut revision, mut start_after) = match &q.continue_token {
        Some(t) => {
            let t = decode_continue(t)?;
            (Some(t.rv), Some(t.start))
        }
        None => (None, None),
    };
    if revision.is_none() && q.resource_version_match.as_deref() == Some("Exact") {
        revision = q.resource_version.as_deref().and_then(|v| v.parse().ok());
    }
    let limit = q.limit;
    let mut out = Vec::new();
    loop {
        let want = limit.map(|l| l.saturating_sub(out.len()).max(1));
        let page = state
            .store
            .list(
                &prefix,
                ListOptions {
                    revision,
                    limit: want,
                    start_after: start_after.clone(),
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::Compacted { .. } if q.continue_token.is_some() => expired_continue(),
                e => ApiError::from_store(e, req.kind.info.group, req.kind.info.plural, ""),
            })?;
        revision = Some(page.revision);
        for kv in &page.items {
            let obj = decode(&kv.value, kv.mod_revision).map_err(ApiError::internal)?;
            if filter.matches(&obj)? {
                out.push(obj);
            }
        }
        start_after = page.items.last().map(|kv| kv.key.clone()).or(start_after);
        let full = limit.is_some_and(|l| out.len() >= l);
        if !page.more {
            return Ok((out, page.revision, None));
        }
        if full {
            let token = encode_continue(page.revision, start_after.as_deref().unwrap_or(""));
            return Ok((out, page.revision, Some(token)));
        }
    }
}

fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

fn columns_json(st: &dyn Strategy) -> Vec<Value> {
    st.columns()
        .iter()
        .map(|c| json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority}))
        .collect()
}

fn table_row(st: &dyn Strategy, obj: &Value, served: &Value, include: Option<&str>) -> Value {
    let object = match include {
        Some("None") => Value::Null,
        Some("Object") => served.clone(),
        _ => partial_metadata(obj),
    };
    json!({"cells": st.cells(obj), "object": object})
}

/// GET on a collection.
pub async fn list(state: &ApiState, req: &ApiRequest) -> Result<Response, ApiError> {
    let (objs, rev, cont) = collect(state, req).await?;
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    let body = match req.representation {
        Representation::Table => {
            let st = req.storage.strategy();
            let mut rows = Vec::with_capacity(objs.len());
            for o in &objs {
                let served = if req.query.include_object.as_deref() == Some("Object") {
                    req.to_served(o.clone())?
                } else {
                    Value::Null
                };
                rows.push(table_row(
                    st,
                    o,
                    &served,
                    req.query.include_object.as_deref(),
                ));
            }
            json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns_json(st), "rows": rows})
        }
        Representation::Metadata => {
            let items: Vec<Value> = objs.iter().map(partial_metadata).collect();
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items})
        }
        Representation::Object => {
            let mut items = Vec::with_capacity(objs.len());
            for o in objs {
                items.push(req.to_served(o)?);
            }
            json!({"kind": req.kind.info.list_kind(), "apiVersion": req.kind.info.api_version(), "metadata": meta, "items": items})
        }
    };
    Ok(json_response(200, &body))
}

/// Renders one watch event line for `req`'s representation, or `None` when filtered out.
struct Renderer<'a> {
    req: &'a ApiRequest,
    filter: Filter<'a>,
    first_table: bool,
}

impl Renderer<'_> {
    fn event(&mut self, ev: &CacheEvent) -> Result<Option<Bytes>, ApiError> {
        let now = self.filter.matches(&ev.object)?;
        let before = match (&ev.prev, ev.kind) {
            (Some(p), EventType::Modified) => self.filter.matches(p)?,
            _ => now,
        };
        let kind = match (ev.kind, before, now) {
            (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, false) => EventType::Deleted,
            (_, _, true) => ev.kind,
            (EventType::Deleted, true, _) => EventType::Deleted,
            _ => return Ok(None),
        };
        let obj = self.render((*ev.object).clone())?;
        Ok(Some(line(kind.as_str(), obj)))
    }

    fn render(&mut self, obj: Value) -> Result<Value, ApiError> {
        Ok(match self.req.representation {
            Representation::Object => self.req.to_served(obj)?,
            Representation::Metadata => partial_metadata(&obj),
            Representation::Table => {
                let st = self.filter.strategy;
                let served = if self.req.query.include_object.as_deref() == Some("Object") {
                    self.req.to_served(obj.clone())?
                } else {
                    Value::Null
                };
                let cols = if std::mem::replace(&mut self.first_table, false) {
                    columns_json(st)
                } else {
                    Vec::new()
                };
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(json!(""));
                json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv}, "columnDefinitions": cols, "rows": [table_row(st, &obj, &served, self.req.query.include_object.as_deref())]})
            }
        })
    }

    fn bookmark(&self, rev: Revision, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            "BOOKMARK",
            json!({"kind": self.req.kind.info.kind, "apiVersion": self.req.kind.info.api_version(), "metadata": meta}),
        )
    }
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut s =
        serde_json::to_vec(&json!({"type": kind, "object": object})).expect("event encodes");
    s.push(b'\n');
    Bytes::from(s)
}

fn gone_line(requested: Revision) -> Bytes {
    let status = ApiError::gone(format!("too old resource version: {requested}")).status();
    line("ERROR", status)
}

/// GET on a collection with `watch=true`: a stream of JSON lines.
pub async fn watch(state: &ApiState, req: ApiRequest) -> Result<Response, ApiError> {
    let s = req.storage.info;
    if req.query.send_initial_events == Some(true)
        && req.query.resource_version_match.as_deref() != Some("NotOlderThan")
    {
        return Err(ApiError::invalid(
            "",
            "ListOptions",
            "",
            &[skiff_api::validation::Cause::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )],
        ));
    }
    let cache = state
        .caches
        .get(&s.key_prefix())
        .ok_or_else(|| ApiError::internal("no watch cache"))?
        .clone();
    let from: Option<Revision> = match req.query.resource_version.as_deref() {
        None | Some("0") => None,
        Some(v) => Some(
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))?,
        ),
    };
    let from = if req.query.send_initial_events == Some(true) {
        None
    } else {
        from
    };
    // A fresh watch without sendInitialEvents and with an explicit RV starts after it.
    let sub = cache.subscribe(from, req.query.fields.as_ref()).await;
    let timeout = req
        .query
        .timeout_seconds
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let store = state.store.clone();
    let metrics = state.metrics.clone();
    let resource_name = req.kind.info.plural;
    tokio::spawn(async move {
        let _guard = metrics.watch_started(resource_name);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut r = Renderer {
            filter: Filter::new(&req),
            req: &req,
            first_table: true,
        };
        let send_initial_end = req.query.send_initial_events == Some(true);
        let mut last_rev: Revision;
        match sub {
            Some(mut sub) => {
                for ev in &sub.initial {
                    match r.event(ev) {
                        Ok(Some(b)) => {
                            if tx.send(Ok(b)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            let _ = tx.send(Ok(line("ERROR", e.status()))).await;
                            return;
                        }
                    }
                }
                last_rev = sub.after;
                if send_initial_end && tx.send(Ok(r.bookmark(last_rev, true))).await.is_err() {
                    return;
                }
                let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
                ticker.tick().await;
                loop {
                    tokio::select! {
                        _ = &mut deadline => return,
                        _ = tx.closed() => return,
                        _ = ticker.tick(), if req.query.allow_bookmarks => {
                            let rev = cache.revision().max(last_rev);
                            if tx.send(Ok(r.bookmark(rev, false))).await.is_err() { return; }
                        }
                        got = sub.live.recv() => match got {
                            Ok(ev) => {
                                if ev.revision <= sub.after { continue; }
                                last_rev = ev.revision;
                                match r.event(&ev) {
                                    Ok(Some(b)) => if tx.send(Ok(b)).await.is_err() { return; },
                                    Ok(None) => {}
                                    Err(e) => { let _ = tx.send(Ok(line("ERROR", e.status()))).await; return; }
                                }
                            }
                            // A watcher too slow for the live buffer ends; the client resumes
                            // from the last revision it saw.
                            Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                        }
                    }
                }
            }
            None => {
                // Older than the cache window: serve from the store's own history.
                let requested = from.unwrap_or(0);
                let prefix = match &req.namespace {
                    Some(ns) => s.namespace_prefix(ns),
                    None => s.key_prefix(),
                };
                let mut stream = match store.watch(&prefix, requested).await {
                    Ok(st) => st,
                    Err(StoreError::Compacted { .. }) => {
                        let _ = tx.send(Ok(gone_line(requested))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Ok(line("ERROR", ApiError::internal(e).status())))
                            .await;
                        return;
                    }
                };
                loop {
                    tokio::select! {
                        _ = &mut deadline => return,
                        _ = tx.closed() => return,
                        got = stream.next() => {
                            let ev = match got {
                                None => return,
                                Some(Err(StoreError::Compacted { .. })) => { let _ = tx.send(Ok(gone_line(requested))).await; return; }
                                Some(Err(e)) => { let _ = tx.send(Ok(line("ERROR", ApiError::internal(e).status()))).await; return; }
                                Some(Ok(ev)) => ev,
                            };
                            let Some(cev) = to_cache_event(ev) else { continue };
                            match r.event(&cev) {
                                Ok(Some(b)) => if tx.send(Ok(b)).await.is_err() { return; },
                                Ok(None) => {}
                                Err(e) => { let _ = tx.send(Ok(line("ERROR", e.status()))).await; return; }
                            }
                        }
                    }
                }
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(body)
        .expect("valid response"))
}

fn to_cache_event(ev: WatchEvent) -> Option<CacheEvent> {
    Some(match ev {
        WatchEvent::Put { kv, prev } => {
            let obj = Arc::new(decode(&kv.value, kv.mod_revision).ok()?);
            let prev = prev
                .and_then(|p| decode(&p.value, p.mod_revision).ok())
                .map(Arc::new);
            let kind = if prev.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            };
            CacheEvent {
                kind,
                object: obj,
                prev,
                revision: kv.mod_revision,
            }
        }
        WatchEvent::Delete { prev, revision } => {
            let obj = Arc::new(decode(&prev.value, revision).ok()?);
            CacheEvent {
                kind: EventType::Deleted,
                object: obj.clone(),
                prev: Some(obj),
                revision,
            }
        }
    })
}

/// Renders one object for a GET in the requested representation.
pub fn render_one(req: &ApiRequest, obj: Value) -> Result<Value, ApiError> {
    match req.representation {
        Representation::Object => req.to_served(obj),
        Representation::Metadata => Ok(partial_metadata(&obj)),
        Representation::Table => {
            let st = req.storage.strategy();
            let served = if req.query.include_object.as_deref() == Some("Object") {
                req.to_served(obj.clone())?
            } else {
                Value::Null
            };
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            Ok(
                json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv}, "columnDefinitions": columns_json(st), "rows": [table_row(st, &obj, &served, req.query.include_object.as_deref())]}),
            )
        }
    }
}

/// DELETE on a collection: deletes every selected object, returning the list of them.
pub async fn delete_collection(
    state: &ApiState,
    req: &ApiRequest,
    opts: &DeleteOptions,
) -> Result<Response, ApiError> {
    let (objs, rev, _) = collect(state, req).await?;
    let mut items = Vec::new();
    for o in objs {
        let name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ns = o
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let at = ObjectRef {
            kind: &req.kind,
            storage: &req.storage,
            namespace: ns.as_deref(),
            name: &name,
        };
        match delete(state, &at, opts).await {
            Ok((obj, _)) => items.push(req.to_served(obj)?),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({"kind": req.kind.info.list_kind(), "apiVersion": req.kind.info.api_version(), "metadata": {"resourceVersion": rev.to_string()}, "items": items});
    Ok(json_response(200, &body))
}
