//! The garbage collector: deletes objects whose owners are all gone (background deletion),
//! deletes the dependents of an owner held by the `foregroundDeletion` finalizer before
//! releasing it, and strips the ownerReference from dependents of an owner held by the
//! `orphan` finalizer. It sees every kind of the resource table through metadata-only
//! watches and rebuilds the ownership graph from those caches on each pass.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PartialObjectMeta, Patch,
    Preconditions, PropagationPolicy,
};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use skiff_api::resources::{self, RESOURCES, ResourceInfo};

use crate::Shutdown;
use crate::error::{Error, Result, not_found};

/// The finalizer that makes an owner wait for its dependents.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer that makes an owner release its dependents instead of deleting them.
pub const ORPHAN: &str = "orphan";

/// How often the ownership graph is walked.
const PASS_INTERVAL: Duration = Duration::from_millis(500);

type Meta = PartialObjectMeta<DynamicObject>;

/// One watched kind: how to reach it and what the watch shows of it.
struct Kind {
    info: &'static ResourceInfo,
    resource: ApiResource,
    store: Store<Meta>,
}

/// One object in the graph.
struct Node<'a> {
    kind: &'a Kind,
    meta: Arc<Meta>,
}

impl Node<'_> {
    fn uid(&self) -> &str {
        self.meta.metadata.uid.as_deref().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.meta.metadata.name.as_deref().unwrap_or("")
    }
    fn namespace(&self) -> Option<&str> {
        self.meta.metadata.namespace.as_deref()
    }
    fn key(&self) -> String {
        format!(
            "{} {}/{}",
            self.kind.info.kind,
            self.namespace().unwrap_or(""),
            self.name()
        )
    }
    fn has_finalizer(&self, f: &str) -> bool {
        self.meta
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|x| x == f)
    }
    fn deleting(&self) -> bool {
        self.meta.metadata.deletion_timestamp.is_some()
    }
}

/// The garbage collector's caches.
pub struct GarbageCollector {
    client: Client,
    kinds: Vec<Kind>,
}

fn api_for(
    client: &Client,
    resource: &ApiResource,
    namespaced: bool,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match (namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, resource),
        _ => Api::all_with(client.clone(), resource),
    }
}

impl GarbageCollector {
    /// Starts metadata watches over every stored kind (events excepted: nothing owns them).
    fn start(client: Client, shutdown: &Shutdown) -> GarbageCollector {
        let mut kinds = Vec::new();
        for info in RESOURCES
            .iter()
            .filter(|r| r.is_storage_version() && r.kind != "Event")
        {
            let gvk = GroupVersionKind::gvk(info.group, info.version, info.kind);
            let resource = ApiResource::from_gvk_with_plural(&gvk, info.plural);
            let writer = reflector::store::Writer::new(resource.clone());
            let store = writer.as_reader();
            let api: Api<Meta> = Api::all_with(client.clone(), &resource);
            let stream = reflector::reflector(
                writer,
                watcher(api, watcher::Config::default()).default_backoff(),
            );
            let stop = shutdown.signalled();
            tokio::spawn(async move {
                let drain = stream.for_each(|_| futures::future::ready(()));
                tokio::select! { _ = drain => {}, _ = stop => {} }
            });
            kinds.push(Kind {
                info,
                resource,
                store,
            });
        }
        GarbageCollector { client, kinds }
    }

    /// One walk over the graph.
    async fn pass(&self) -> Result<()> {
        let mut nodes: Vec<Node> = Vec::new();
        for k in &self.kinds {
            if k.store.wait_until_ready().await.is_err() {
                return Ok(());
            }
            nodes.extend(
                k.store
                    .state()
                    .into_iter()
                    .map(|meta| Node { kind: k, meta }),
            );
        }
        let by_uid: HashMap<&str, &Node> = nodes.iter().map(|n| (n.uid(), n)).collect();
        let mut dependents: HashMap<&str, Vec<&Node>> = HashMap::new();
        for n in &nodes {
            for r in n.meta.metadata.owner_references.iter().flatten() {
                dependents.entry(r.uid.as_str()).or_default().push(n);
            }
        }

        for owner in nodes.iter().filter(|n| n.deleting()) {
            let deps = dependents
                .get(owner.uid())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if owner.has_finalizer(ORPHAN) {
                self.orphan(owner, deps).await?;
            } else if owner.has_finalizer(FOREGROUND) {
                self.foreground(owner, deps).await?;
            }
        }

        for n in nodes.iter().filter(|n| !n.deleting()) {
            let refs = n.meta.metadata.owner_references.clone().unwrap_or_default();
            if refs.is_empty() || refs.iter().any(|r| by_uid.contains_key(r.uid.as_str())) {
                continue;
            }
            // Every owner looks gone; a live read rules out a cache that is merely behind.
            let mut all_gone = true;
            for r in &refs {
                if !self.owner_absent(n, r).await? {
                    all_gone = false;
                }
            }
            if all_gone {
                self.delete(n, PropagationPolicy::Background).await?;
            }
        }
        Ok(())
    }

    /// Whether the owner `r` of `dependent` no longer exists (or is a different object).
    async fn owner_absent(
        &self,
        dependent: &Node<'_>,
        r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Result<bool> {
        let Some(info) = resources::find_by_kind(&r.api_version, &r.kind) else {
            return Ok(false);
        };
        let gvk = GroupVersionKind::gvk(info.group, info.version, info.kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, info.plural);
        let api = api_for(
            &self.client,
            &resource,
            info.namespaced,
            dependent.namespace(),
        );
        match api.get_metadata_opt(&r.name).await {
            Ok(None) => Ok(true),
            Ok(Some(o)) => Ok(o.metadata.uid.as_deref() != Some(r.uid.as_str())),
            Err(e) => Err(Error::api(dependent.key())(e)),
        }
    }

    async fn delete(&self, n: &Node<'_>, policy: PropagationPolicy) -> Result<()> {
        let api = api_for(
            &self.client,
            &n.kind.resource,
            n.kind.info.namespaced,
            n.namespace(),
        );
        let dp = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(n.uid().to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(n.name(), &dp).await {
            Ok(_) => {
                tracing::info!(object = %n.key(), "garbage collected");
                Ok(())
            }
            Err(e) if not_found(&e) || crate::error::conflict(&e) => Ok(()),
            Err(e) => Err(Error::api(n.key())(e)),
        }
    }

    /// Deletes the dependents of a foreground-deleted owner; once no blocking dependent is
    /// left, removes the owner's `foregroundDeletion` finalizer.
    async fn foreground(&self, owner: &Node<'_>, deps: &[&Node<'_>]) -> Result<()> {
        for d in deps.iter().filter(|d| !d.deleting()) {
            self.delete(d, PropagationPolicy::Foreground).await?;
        }
        let blocking = deps.iter().any(|d| {
            d.meta
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == owner.uid() && r.block_owner_deletion == Some(true))
        });
        if !blocking {
            self.remove_finalizer(owner, FOREGROUND).await?;
        }
        Ok(())
    }

    /// Strips the owner's reference from each dependent, then its `orphan` finalizer.
    async fn orphan(&self, owner: &Node<'_>, deps: &[&Node<'_>]) -> Result<()> {
        for d in deps {
            let refs: Vec<_> = d
                .meta
                .metadata
                .owner_references
                .iter()
                .flatten()
                .filter(|r| r.uid != owner.uid())
                .cloned()
                .collect();
            let api = api_for(
                &self.client,
                &d.kind.resource,
                d.kind.info.namespaced,
                d.namespace(),
            );
            let patch = json!({"metadata": {"uid": d.uid(), "ownerReferences": refs}});
            match api
                .patch(d.name(), &crate::patch_params(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(e) if not_found(&e) || crate::error::conflict(&e) => {}
                Err(e) => return Err(Error::api(d.key())(e)),
            }
        }
        self.remove_finalizer(owner, ORPHAN).await
    }

    async fn remove_finalizer(&self, n: &Node<'_>, finalizer: &str) -> Result<()> {
        let rest: Vec<&String> = n
            .meta
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != finalizer)
            .collect();
        let api = api_for(
            &self.client,
            &n.kind.resource,
            n.kind.info.namespaced,
            n.namespace(),
        );
        let patch = json!({"metadata": {"resourceVersion": n.meta.metadata.resource_version, "finalizers": rest}});
        match api
            .patch(n.name(), &crate::patch_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(object = %n.key(), finalizer, "removed finalizer");
                Ok(())
            }
            Err(e) if not_found(&e) || crate::error::conflict(&e) => Ok(()),
            Err(e) => Err(Error::api(n.key())(e)),
        }
    }
}

/// Runs the garbage collector until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let gc = GarbageCollector::start(client, &shutdown);
    while !shutdown.is_signalled() {
        if let Err(e) = crate::metrics::timed("garbagecollector", gc.pass()).await {
            tracing::warn!(error = %e, "garbage collection pass failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(PASS_INTERVAL) => {}
            _ = shutdown.signalled() => {}
        }
    }
    Ok(())
}
