//! The PersistentVolume binder (`persistentvolume-binder`): binds claims to volumes
//! (statically by size, access modes, class and selector; `volumeName` and claimRef
//! pre-binding; WaitForFirstConsumer claims once the scheduler picked a node), asks the
//! class's provisioner for a volume when none fits, assigns the default class to claims
//! naming none, keeps both phases (Pending, Available, Bound, Released, Failed, Lost),
//! reclaims released volumes, and lifts the `kubernetes.io/pvc-protection` and
//! `kubernetes.io/pv-protection` finalizers once nothing uses the object.
//!
//! Two reconcilers share the stores: `claims.rs` (one PersistentVolumeClaim) and
//! `volumes.rs` (one PersistentVolume); the matching rule is `matching.rs`.

mod claims;
mod volumes;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use skiff_client::controller::drive;
use skiff_client::{EventRecorder, ReadyGate, watched_store};

use crate::Shutdown;
use crate::error::{Error, Result};
use crate::metrics::timed;

/// What both reconcilers share.
pub struct BinderContext {
    client: Client,
    volumes: Store<PersistentVolume>,
    claims: Store<PersistentVolumeClaim>,
    pods: Store<Pod>,
    classes: Store<StorageClass>,
    nodes: Store<Node>,
    ready: Vec<ReadyGate>,
    events: EventRecorder,
}

impl BinderContext {
    async fn synced(&self) -> bool {
        for g in &self.ready {
            if g.wait().await.is_err() {
                return false;
            }
        }
        true
    }

    fn class(&self, name: &str) -> Option<Arc<StorageClass>> {
        self.classes.get(&ObjectRef::new(name))
    }
}

/// Removes `finalizer` from an object, guarded by its resourceVersion.
async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = obj.meta().finalizers.clone().unwrap_or_default();
    if !list.iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let rest: Vec<&String> = list.iter().filter(|f| *f != finalizer).collect();
    let patch = serde_json::json!({"metadata": {
        "resourceVersion": obj.meta().resource_version, "finalizers": rest}});
    match api
        .patch(
            &obj.name_any(),
            &crate::patch_params(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if crate::error::not_found(&e) => Ok(()),
        Err(e) => Err(Error::api(obj.name_any())(e)),
    }
}

fn error_policy<K: kube::Resource>(obj: Arc<K>, err: &Error, _ctx: Arc<BinderContext>) -> Action {
    tracing::warn!(object = %obj.meta().name.as_deref().unwrap_or(""), error = %err, "persistentvolume-binder reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// The claims a pod's volumes name (for protection and WaitForFirstConsumer).
fn claims_of_pod(pod: &Pod) -> Vec<ObjectRef<PersistentVolumeClaim>> {
    let ns = pod.namespace().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| ObjectRef::new(&c.claim_name).within(&ns))
        .collect()
}

/// Runs the binder until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let (volumes, volumes_ready, volume_events) = watched_store::<PersistentVolume>(&client);
    let (pods, pods_ready, pod_events) = watched_store::<Pod>(&client);
    let (classes, classes_ready, class_events) = watched_store::<StorageClass>(&client);
    let (nodes, nodes_ready, node_events) = watched_store::<Node>(&client);
    let (claims, claims_ready, claim_events) = watched_store::<PersistentVolumeClaim>(&client);
    // Claim events reach both reconcilers. The reflector has applied each one to `claims`
    // before it is seen here, so a volume reconciled for a deleted claim finds it gone
    // (two watches would race: the volume could look at a store still holding the claim
    // and wait a whole requeue period before it is Released).
    let (claim_tx, claim_rx) = futures::channel::mpsc::unbounded::<PersistentVolumeClaim>();
    let claim_events = futures::StreamExt::inspect(claim_events, move |ev| {
        if let Ok(pvc) = ev {
            let _ = claim_tx.unbounded_send(pvc.clone());
        }
    });
    let claim_controller = Controller::for_stream(claim_events, claims.clone());
    let ctx = Arc::new(BinderContext {
        client: client.clone(),
        volumes,
        claims: claims.clone(),
        pods,
        classes,
        nodes,
        ready: vec![
            volumes_ready,
            pods_ready,
            classes_ready,
            nodes_ready,
            claims_ready,
        ],
        events: EventRecorder::for_controller(client.clone(), "persistentvolume-controller"),
    });
    // Volume events reach the claim they name; claim events reach the volumes that name
    // them (through `claim_rx`).
    let (volume_tx, volume_rx) = futures::channel::mpsc::unbounded::<PersistentVolume>();
    let volume_events = futures::StreamExt::inspect(volume_events, move |ev| {
        if let Ok(pv) = ev {
            let _ = volume_tx.unbounded_send(pv.clone());
        }
    });
    let claims_for_classes = claims.clone();
    let claim_controller = claim_controller
        .watches_stream(volume_events, |pv: PersistentVolume| {
            pv.spec
                .and_then(|s| s.claim_ref)
                .and_then(|r| {
                    Some(ObjectRef::new(r.name.as_deref()?).within(r.namespace.as_deref()?))
                })
                .into_iter()
                .collect::<Vec<_>>()
        })
        .watches_stream(pod_events, |pod: Pod| claims_of_pod(&pod))
        .watches_stream(class_events, move |_sc: StorageClass| {
            // A new or changed class can serve every claim still waiting.
            claims_for_classes
                .state()
                .iter()
                .filter(|c| {
                    c.spec
                        .as_ref()
                        .and_then(|s| s.volume_name.as_ref())
                        .is_none()
                })
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(node_events, |_n: Node| {
            Vec::<ObjectRef<PersistentVolumeClaim>>::new()
        });

    let volume_controller = Controller::for_stream(
        futures::StreamExt::map(volume_rx, Ok::<_, watcher::Error>),
        ctx.volumes.clone(),
    );
    let volumes_store = ctx.volumes.clone();
    let volume_controller = volume_controller.watches_stream(
        futures::StreamExt::map(claim_rx, Ok::<_, watcher::Error>),
        move |pvc: PersistentVolumeClaim| {
            // The volume the claim names, and any volume whose claimRef names it.
            let mut out: Vec<ObjectRef<PersistentVolume>> = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.clone())
                .map(|v| ObjectRef::new(&v))
                .into_iter()
                .collect();
            for pv in volumes_store.state() {
                if pv
                    .spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .is_some_and(|r| {
                        r.name == pvc.metadata.name && r.namespace == pvc.metadata.namespace
                    })
                {
                    out.push(ObjectRef::from_obj(pv.as_ref()));
                }
            }
            out
        },
    );
    let claim_reconcile = |obj, ctx| timed("persistentvolume-binder", claims::reconcile(obj, ctx));
    let volume_reconcile =
        |obj, ctx| timed("persistentvolume-binder", volumes::reconcile(obj, ctx));
    tokio::join!(
        drive(
            claim_controller,
            &shutdown,
            claim_reconcile,
            error_policy,
            ctx.clone()
        ),
        drive(
            volume_controller,
            &shutdown,
            volume_reconcile,
            error_policy,
            ctx
        ),
    );
    Ok(())
}
