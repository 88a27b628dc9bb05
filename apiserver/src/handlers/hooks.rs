//! Work a kind's storage does around the generic writes, as kube-apiserver's registry
//! decorators (`BeginCreate`, `BeginUpdate`, `AfterDelete`) do: a Service's addresses are
//! allocated once the object has passed validation, given back if the store write then
//! fails, and released once the object is gone. The generic handlers call the hook of the
//! kind being written, if it has one; they name no kind.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::ApiError;
use crate::registry::Kind;

/// What a begun write does once the store has answered.
#[async_trait]
pub trait FinishWrite: Send {
    /// `committed`: the object was stored (keep what was allocated, release what the
    /// update gave up); otherwise undo what the write allocated.
    async fn finish(self: Box<Self>, committed: bool);
}

/// A begun write with nothing to finish.
pub struct NothingToFinish;

#[async_trait]
impl FinishWrite for NothingToFinish {
    async fn finish(self: Box<Self>, _committed: bool) {}
}

/// Storage decorations of one kind.
#[async_trait]
pub trait WriteHook: Send + Sync {
    /// Called on a validated new object (storage form) before it is stored; may fill
    /// fields (allocated addresses). With `dry_run` nothing may be kept.
    async fn begin_create(
        &self,
        obj: &mut Value,
        dry_run: bool,
    ) -> Result<Box<dyn FinishWrite>, ApiError>;

    /// Called on a validated update before it is stored.
    async fn begin_update(
        &self,
        new: &mut Value,
        old: &Value,
        dry_run: bool,
    ) -> Result<Box<dyn FinishWrite>, ApiError>;

    /// Called once an object is gone from the store.
    async fn after_delete(&self, obj: &Value);
}

/// The hooks of the kinds that have one, by storage group and storage plural.
#[derive(Default, Clone)]
pub struct WriteHooks {
    by_kind: HashMap<(&'static str, &'static str), Arc<dyn WriteHook>>,
}

impl WriteHooks {
    /// Sets the hook of the kind stored as `group`/`plural`.
    pub fn insert(&mut self, group: &'static str, plural: &'static str, hook: Arc<dyn WriteHook>) {
        self.by_kind.insert((group, plural), hook);
    }

    /// The hook of a (storage) kind.
    pub fn of(&self, kind: &Kind) -> Option<&Arc<dyn WriteHook>> {
        self.by_kind
            .get(&(kind.info.storage_group, kind.info.storage_plural))
    }

    /// Begins a create of `obj` of `kind`.
    pub async fn begin_create(
        &self,
        kind: &Kind,
        obj: &mut Value,
        dry_run: bool,
    ) -> Result<Box<dyn FinishWrite>, ApiError> {
        match self.of(kind) {
            Some(h) => h.begin_create(obj, dry_run).await,
            None => Ok(Box::new(NothingToFinish)),
        }
    }

    /// Begins an update of `old` to `new` of `kind`.
    pub async fn begin_update(
        &self,
        kind: &Kind,
        new: &mut Value,
        old: &Value,
        dry_run: bool,
    ) -> Result<Box<dyn FinishWrite>, ApiError> {
        match self.of(kind) {
            Some(h) => h.begin_update(new, old, dry_run).await,
            None => Ok(Box::new(NothingToFinish)),
        }
    }

    /// Tells the kind's hook that `obj` is gone.
    pub async fn after_delete(&self, kind: &Kind, obj: &Value) {
        if let Some(h) = self.of(kind) {
            h.after_delete(obj).await;
        }
    }
}
