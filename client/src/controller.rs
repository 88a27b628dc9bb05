//! The wiring every kube-runtime controller repeats: run the reconciler until shutdown
//! (letting in-flight reconciles finish), with the error policy, draining the results.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use futures::StreamExt;
use kube::Resource;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use serde::de::DeserializeOwned;

use crate::Shutdown;

/// Runs `controller` with `reconcile` and `error_policy` until `shutdown`.
pub async fn drive<K, Ctx, ReconcileFut, E>(
    controller: Controller<K>,
    shutdown: &Shutdown,
    reconcile: impl FnMut(Arc<K>, Arc<Ctx>) -> ReconcileFut,
    error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action,
    ctx: Arc<Ctx>,
) where
    K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Debug + Eq + Hash + Clone + Unpin,
    ReconcileFut: Future<Output = Result<Action, E>> + Send + 'static,
    E: std::error::Error + Send + 'static,
    Ctx: Send + Sync + 'static,
{
    controller
        .graceful_shutdown_on(shutdown.signalled())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
