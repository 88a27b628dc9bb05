//! The ServiceAccounts controller: every namespace has a `default` ServiceAccount, made when
//! the namespace appears and again whenever it is deleted, as kube-controller-manager's
//! `serviceaccount` controller does. Pods that name no ServiceAccount run as it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use skiff_client::controller::drive;
use skiff_client::watched_store;

use crate::Shutdown;
use crate::error::{Error, Result};
use crate::metrics::timed;

/// The ServiceAccount every namespace gets.
pub const DEFAULT: &str = "default";

/// What the reconciler shares between calls.
pub struct ServiceAccountsContext {
    client: Client,
    accounts: Store<ServiceAccount>,
}

/// Whether `ns` should get a `default` ServiceAccount now (it is not going away).
pub fn wants_default(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<ServiceAccountsContext>) -> Result<Action> {
    let name = ns.name_any();
    if !wants_default(&ns) {
        return Ok(Action::await_change());
    }
    let have = ObjectRef::<ServiceAccount>::new(DEFAULT).within(&name);
    if ctx.accounts.get(&have).is_some() {
        return Ok(Action::await_change());
    }
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            namespace: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => tracing::info!(namespace = %name, "created the default service account"),
        // Already there (the cache lags), or the namespace began terminating meanwhile.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => {}
        Err(e) => return Err(Error::api(format!("{name}/{DEFAULT}"))(e)),
    }
    Ok(Action::await_change())
}

fn error_policy(ns: Arc<Namespace>, err: &Error, _ctx: Arc<ServiceAccountsContext>) -> Action {
    tracing::warn!(namespace = %ns.name_any(), error = %err, "default service account failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the controller until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let (accounts, _ready, account_events) = watched_store::<ServiceAccount>(&client);
    let controller = Controller::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches_stream(account_events, |sa: ServiceAccount| {
        (sa.name_any() == DEFAULT).then(|| ObjectRef::new(&sa.namespace().unwrap_or_default()))
    });
    let ctx = Arc::new(ServiceAccountsContext { client, accounts });
    let timed_reconcile = |obj, ctx| timed("serviceaccount", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminating_namespaces_get_no_default_account() {
        let mut ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "a"}})).unwrap();
        assert!(wants_default(&ns));
        ns.status = Some(k8s_openapi::api::core::v1::NamespaceStatus {
            phase: Some("Terminating".into()),
            ..Default::default()
        });
        assert!(!wants_default(&ns));
    }
}
