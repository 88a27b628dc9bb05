//! Namespace deletion: once a namespace is Terminating, every object in it is deleted and
//! then the namespace itself goes. Runs inside the API server until the controller-manager's
//! namespace controller takes it over; resumed at start for namespaces left Terminating.

use std::time::Duration;

use serde_json::Value;

use super::ApiState;
use super::delete::{DeleteOptions, delete};
use super::object::ObjectRef;
use crate::storage::{ListOptions, StoreError};

/// Starts the deletion of the contents of namespace `name`, then of the namespace.
pub fn spawn_finalizer(state: ApiState, name: String) {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match finalize(&state, &name).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(namespace = %name, error = %e, "namespace cleanup failed; retrying")
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });
}

/// One pass: deletes what remains; returns true once the namespace is gone.
async fn finalize(state: &ApiState, name: &str) -> Result<bool, StoreError> {
    let mut remaining = 0;
    for k in state
        .kinds
        .iter()
        .filter(|k| k.info.namespaced && k.info.is_storage_version())
    {
        let prefix = k.info.namespace_prefix(name);
        let list = state.store.list(&prefix, ListOptions::default()).await?;
        for kv in list.items {
            remaining += 1;
            let obj_name = kv.key.rsplit('/').next().unwrap_or("").to_string();
            let at = ObjectRef {
                kind: k,
                storage: k,
                namespace: Some(name),
                name: &obj_name,
            };
            if let Err(e) = delete(state, &at, &DeleteOptions::default()).await
                && e.code != 404
            {
                tracing::debug!(namespace = %name, object = %obj_name, error = %e, "delete during namespace cleanup");
            }
        }
    }
    if remaining > 0 {
        return Ok(false);
    }
    let nsr = state
        .kinds
        .find("", "v1", "namespaces")
        .expect("namespaces are served")
        .info;
    let key = nsr.key(None, name);
    match state.store.get(&key).await? {
        None => Ok(true),
        Some(kv) => match state.store.delete(&key, Some(kv.mod_revision)).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        },
    }
}

/// Resumes cleanup for every namespace left Terminating by an earlier run.
pub async fn resume_finalizers(state: &ApiState) -> Result<(), StoreError> {
    let nsr = state
        .kinds
        .find("", "v1", "namespaces")
        .expect("namespaces are served")
        .info;
    let list = state
        .store
        .list(&nsr.key_prefix(), ListOptions::default())
        .await?;
    for kv in list.items {
        let v: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
        if v.pointer("/metadata/deletionTimestamp").is_some() {
            let name = v
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            spawn_finalizer(state.clone(), name);
        }
    }
    Ok(())
}
