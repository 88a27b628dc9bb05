//! The apiextensions controllers inside each API server: from the CRDs in the watch cache it
//! writes the NamesAccepted and Established conditions, serves every established CRD's
//! versions (a new registry swapped in whole, with a watch cache per new storage prefix), and
//! finishes a CRD's deletion by removing its objects and then its cleanup finalizer. Every
//! server on one store runs it; writes are conditional, so they agree.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::{CLEANUP_FINALIZER, definition, names};
use crate::handlers::ApiState;
use crate::handlers::object::{ObjectRef, now};
use crate::handlers::update::{UpdateScope, update};
use crate::registry::Kind;
use crate::storage::{ListOptions, Revision};
use crate::watchcache::{WatchCache, object_revision};

/// How often the CRDs are looked at again without a change (missed events, failed writes).
const RESYNC: Duration = Duration::from_secs(5);

/// Runs until the task is aborted.
pub async fn run(state: ApiState) {
    let crd_kind = state
        .kinds
        .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("CustomResourceDefinitions are served")
        .clone();
    let cache = state
        .caches
        .get(&crd_kind.info.key_prefix())
        .expect("CustomResourceDefinitions have a watch cache");
    let mut served: Vec<(String, Revision)> = Vec::new();
    loop {
        let Some(sub) = cache.subscribe(None, None).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut live = sub.live;
        loop {
            sync(&state, &crd_kind, &cache, &mut served).await;
            let closed = tokio::select! {
                r = live.recv() => matches!(r, Err(RecvError::Closed)),
                _ = tokio::time::sleep(RESYNC) => false,
            };
            if closed {
                break;
            }
            // One sync covers a burst of changes.
            while live.try_recv().is_ok() {}
        }
    }
}

async fn sync(
    state: &ApiState,
    crd_kind: &Arc<Kind>,
    cache: &WatchCache,
    served: &mut Vec<(String, Revision)>,
) {
    let (objs, _) = cache.snapshot().await;
    let crds: Vec<&Value> = objs.iter().map(|o| o.as_ref()).collect();
    let now = now();
    for crd in &crds {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if crd.pointer("/metadata/deletionTimestamp").is_some() {
            if let Err(e) = finish_deletion(state, crd_kind, crd).await {
                tracing::warn!(crd = %name, error = %e, "removing a deleted CRD's objects");
            }
            continue;
        }
        if let Some(status) = names::plan_status(crd, &crds, &now) {
            let mut obj = (*crd).clone();
            obj["status"] = status;
            let at = ObjectRef::new(&state.kinds, crd_kind, None, name);
            let current = Some(((*crd).clone(), object_revision(crd)));
            if let Err(e) = update(state, &at, obj, UpdateScope::Status, false, current, None).await
                && e.code != 409
            {
                tracing::warn!(crd = %name, error = %e.message, "writing CRD status");
            }
        }
    }
    let live: Vec<&Value> = crds
        .iter()
        .copied()
        .filter(|c| c.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|c| definition::condition_true(c, "Established"))
        .collect();
    let fingerprint: Vec<(String, Revision)> = live
        .iter()
        .map(|c| {
            let name = c.pointer("/metadata/name").and_then(Value::as_str);
            (name.unwrap_or("").to_string(), object_revision(c))
        })
        .collect();
    if fingerprint == *served {
        return;
    }
    let extra: Vec<Kind> = live.iter().flat_map(|c| definition::entries(c)).collect();
    for k in &extra {
        state.caches.ensure(&k.info.key_prefix());
    }
    state.serve(crate::registry::builtin().extended(extra));
    *served = fingerprint;
}

/// Deletes every object of a CRD being deleted, then drops its cleanup finalizer (which lets
/// the CRD go).
async fn finish_deletion(
    state: &ApiState,
    crd_kind: &Arc<Kind>,
    crd: &Value,
) -> Result<(), crate::error::ApiError> {
    let finalizers: Vec<Value> = crd
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
        return Ok(());
    }
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    let prefix = format!("/registry/{group}/{plural}/");
    let internal = crate::error::ApiError::internal;
    let page = state
        .store
        .list(&prefix, ListOptions::default())
        .await
        .map_err(internal)?;
    for kv in page.items {
        match state.store.delete(&kv.key, None).await {
            Ok(_) | Err(crate::storage::StoreError::NotFound { .. }) => {}
            Err(e) => return Err(internal(e)),
        }
    }
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut obj = crd.clone();
    obj["metadata"]["finalizers"] = Value::Array(
        finalizers
            .into_iter()
            .filter(|f| f != CLEANUP_FINALIZER)
            .collect(),
    );
    let at = ObjectRef::new(&state.kinds, crd_kind, None, name);
    let current = Some((crd.clone(), object_revision(crd)));
    match update(state, &at, obj, UpdateScope::Main, false, current, None).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 || e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
