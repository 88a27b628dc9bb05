//! The built-in local provisioner (`skiff.io/local-path`, the class `local-path`): what
//! k3s's local-path-provisioner does, run by every node agent for its own node. Once the
//! scheduler has picked this node for a claim waiting for its first consumer (the claim's
//! `volume.kubernetes.io/selected-node`), it makes a directory under its root and a
//! PersistentVolume pre-bound to the claim and pinned to the node; the PV binder then binds
//! them. When such a volume is Released with reclaim policy Delete it removes the directory
//! and the volume. It also expands its volumes when a bound claim asks for more
//! (`resize.rs`), holding each directory to its size with a project quota where the
//! filesystem offers one (`skiff_runtime::quota`). Decisions are in `plan.rs` and `resize.rs`.

pub mod plan;
pub mod resize;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use skiff_client::controller::drive;
use skiff_client::{EventRecorder, ReadyGate, Shutdown, watched_store};

use plan::ClaimPlan;
use resize::ResizeStep;
use skiff_runtime::quota;

/// Annotation on a provisioned volume saying how its size is held to: `project-quota/<id>`
/// or `recorded` (the filesystem has no project quota).
pub const VOLUME_LIMIT: &str = "skiff.io/local-path-limit";

/// Errors of one reconcile (retried).
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// An API call failed.
    #[error("{action}: {source}")]
    Api {
        /// What was being done.
        action: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// A directory could not be made or removed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The local provisioner of one node.
pub struct LocalPathProvisioner {
    client: Client,
    node: String,
    root: PathBuf,
}

struct Ctx {
    client: Client,
    node: String,
    root: PathBuf,
    classes: Store<StorageClass>,
    classes_ready: ReadyGate,
    events: EventRecorder,
}

impl LocalPathProvisioner {
    /// A provisioner for `node` keeping its volumes under `root`.
    pub fn new(client: Client, node: String, root: PathBuf) -> Self {
        LocalPathProvisioner { client, node, root }
    }

    /// Provisions and reclaims until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        let (classes, classes_ready, class_events) = watched_store::<StorageClass>(&self.client);
        let ctx = Arc::new(Ctx {
            client: self.client.clone(),
            node: self.node,
            root: self.root,
            classes,
            classes_ready,
            events: EventRecorder::for_controller(self.client.clone(), "skiff.io/local-path"),
        });
        // The class watch only has to keep the store filled.
        let drain = {
            let stop = shutdown.clone();
            async move {
                let events = class_events.take_until(stop.signalled());
                events.for_each(|_| futures::future::ready(())).await;
            }
        };
        let claims = Controller::new(
            Api::<PersistentVolumeClaim>::all(self.client.clone()),
            watcher::Config::default(),
        );
        let volumes = Controller::new(
            Api::<PersistentVolume>::all(self.client.clone()),
            watcher::Config::default(),
        );
        tokio::join!(
            drain,
            drive(claims, &shutdown, provision, error_policy, ctx.clone()),
            drive(volumes, &shutdown, reclaim, error_policy, ctx),
        );
        Ok(())
    }
}

fn error_policy<K: Resource>(obj: Arc<K>, err: &ProvisionError, _: Arc<Ctx>) -> Action {
    tracing::warn!(object = %obj.meta().name.as_deref().unwrap_or(""), error = %err, "local-path provisioner");
    Action::requeue(Duration::from_secs(2))
}

fn api(action: String) -> impl FnOnce(kube::Error) -> ProvisionError {
    move |source| ProvisionError::Api { action, source }
}

async fn provision(
    pvc: Arc<PersistentVolumeClaim>,
    ctx: Arc<Ctx>,
) -> Result<Action, ProvisionError> {
    if ctx.classes_ready.wait().await.is_err() {
        return Ok(Action::await_change());
    }
    if let Some(volume) = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|v| !v.is_empty())
    {
        return expand(&pvc, volume, &ctx).await;
    }
    let class =
        skiff_api::storage::claim_class(&pvc).and_then(|c| ctx.classes.get(&ObjectRef::new(c)));
    let (name, dir) = match plan::plan_claim(&pvc, class.as_deref(), &ctx.node, &ctx.root) {
        ClaimPlan::Skip => return Ok(Action::await_change()),
        ClaimPlan::Fail(msg) => {
            ctx.events
                .warning(pvc.object_ref(&()), "ProvisioningFailed", msg);
            return Ok(Action::await_change());
        }
        ClaimPlan::Provision { name, dir } => (name, dir),
    };
    let Some(class) = class else {
        return Ok(Action::await_change());
    };
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    if volumes
        .get_opt(&name)
        .await
        .map_err(api(format!("reading volume {name}")))?
        .is_some()
    {
        return Ok(Action::await_change());
    }
    ctx.events.normal(
        pvc.object_ref(&()),
        "Provisioning",
        format!(
            "External provisioner is provisioning volume for claim \"{}/{}\"",
            pvc.namespace().unwrap_or_default(),
            pvc.name_any()
        ),
    );
    let io = |action| {
        let path = dir.display().to_string();
        move |source| ProvisionError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(&dir).map_err(io("creating"))?;
    // Any user of the pod may write, as k3s's provisioner leaves its directories.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
        .map_err(io("setting the mode of"))?;
    let mut pv = plan::volume_for(&pvc, &class, &ctx.node, &name, &dir);
    let size = pv
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map(resize::bytes)
        .unwrap_or(0);
    let held = quota::limit(&dir, &name, size).map_err(io("limiting the size of"))?;
    pv.annotations_mut()
        .insert(VOLUME_LIMIT.into(), held.describe());
    match volumes.create(&PostParams::default(), &pv).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(api(format!("creating volume {name}"))(e)),
    }
    ctx.events.normal(
        pvc.object_ref(&()),
        "ProvisioningSucceeded",
        format!("Successfully provisioned volume {name}"),
    );
    Ok(Action::await_change())
}

/// One step of expanding the volume `volume` bound to `pvc` (see `resize.rs`).
async fn expand(
    pvc: &PersistentVolumeClaim,
    volume: &str,
    ctx: &Ctx,
) -> Result<Action, ProvisionError> {
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let Some(pv) = volumes
        .get_opt(volume)
        .await
        .map_err(api(format!("reading volume {volume}")))?
    else {
        return Ok(Action::await_change());
    };
    let step = resize::plan_resize(pvc, &pv, &ctx.node, &ctx.root);
    let claim_ref = pvc.object_ref(&());
    match &step {
        ResizeStep::None => return Ok(Action::await_change()),
        ResizeStep::Start { .. } => ctx.events.normal(
            claim_ref.clone(),
            "Resizing",
            format!("External resizer is resizing volume {volume}"),
        ),
        ResizeStep::GrowVolume { size } => {
            let patch = serde_json::json!({"spec": {"capacity": {"storage": size}}});
            volumes
                .patch(volume, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api(format!("growing volume {volume}")))?;
            ctx.events.normal(
                claim_ref.clone(),
                "VolumeResizeSuccessful",
                "Resize volume succeeded".into(),
            );
        }
        ResizeStep::FinishOnNode { size, dir } => {
            let held = quota::limit(dir, volume, resize::bytes(size)).map_err(|source| {
                ProvisionError::Io {
                    action: "limiting the size of",
                    path: dir.display().to_string(),
                    source,
                }
            })?;
            let patch =
                serde_json::json!({"metadata": {"annotations": {VOLUME_LIMIT: held.describe()}}});
            volumes
                .patch(volume, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api(format!("annotating volume {volume}")))?;
            ctx.events.normal(
                claim_ref.clone(),
                "FileSystemResizeSuccessful",
                format!(
                    "MountVolume.NodeExpandVolume succeeded for volume \"{volume}\" {}",
                    ctx.node
                ),
            );
        }
    }
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    if let Some(patch) = resize::status_patch(pvc, &step, &now) {
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(ctx.client.clone(), &pvc.namespace().unwrap_or_default());
        claims
            .patch_status(
                &pvc.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(api(format!(
                "updating the status of claim {}",
                pvc.name_any()
            )))?;
    }
    Ok(Action::await_change())
}

async fn reclaim(pv: Arc<PersistentVolume>, ctx: Arc<Ctx>) -> Result<Action, ProvisionError> {
    let Some(dir) = plan::reclaim(&pv, &ctx.node, &ctx.root) else {
        return Ok(Action::await_change());
    };
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ProvisionError::Io {
                action: "removing",
                path: dir.display().to_string(),
                source,
            });
        }
    }
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    match volumes
        .delete(&pv.name_any(), &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(api(format!("deleting volume {}", pv.name_any()))(e)),
    }
    tracing::info!(volume = %pv.name_any(), dir = %dir.display(), "reclaimed a local volume");
    Ok(Action::await_change())
}
