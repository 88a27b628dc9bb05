//! One PersistentVolumeClaim: protection, the default class, binding to a matching or
//! pre-bound volume, asking the class's provisioner, and the claim's status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{ListParams, Patch};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use skiff_api::storage::{
    BIND_COMPLETED, BOUND_BY_CONTROLLER, PVC_PROTECTION, SELECTED_NODE, STORAGE_PROVISIONER,
    STORAGE_PROVISIONER_BETA, claim_class, is_default_class,
};

use super::{BinderContext, remove_finalizer};
use crate::error::{Error, Result, not_found};
use skiff_api::storage::matching::{NodeFacts, find_volume, is_pre_bound_to};

fn in_use_by(pod: &Pod, ns: &str, claim: &str) -> bool {
    let terminated = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    !terminated
        && pod.namespace().as_deref() == Some(ns)
        && pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .any(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == claim)
            })
}

pub(super) async fn reconcile(
    pvc: Arc<PersistentVolumeClaim>,
    ctx: Arc<BinderContext>,
) -> Result<Action> {
    if !ctx.synced().await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let ns = pvc.namespace().unwrap_or_default();
    let name = pvc.name_any();
    let key = format!("{ns}/{name}");
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);

    if pvc.metadata.deletion_timestamp.is_some() {
        // The pvc-protection rule: the finalizer goes once no pod that is not finished
        // uses the claim; the cache may lag, so a live list confirms.
        if ctx.pods.state().iter().any(|p| in_use_by(p, &ns, &name)) {
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
        let live = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .map_err(Error::api(&key))?;
        if live.items.iter().any(|p| in_use_by(p, &ns, &name)) {
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
        remove_finalizer(&api, pvc.as_ref(), PVC_PROTECTION).await?;
        return Ok(Action::await_change());
    }

    let spec = pvc.spec.clone().unwrap_or_default();
    let volume_name = spec.volume_name.clone().filter(|v| !v.is_empty());
    if volume_name.is_none() && claim_class(&pvc).is_none() {
        // Retroactive default class assignment (Kubernetes' PV controller does it for
        // claims created before a default class existed, and the admission plugin at
        // create; here the controller does both).
        let mut defaults: Vec<_> = ctx
            .classes
            .state()
            .into_iter()
            .filter(|c| is_default_class(c.metadata.annotations.as_ref()))
            .collect();
        defaults.sort_by_key(|c| std::cmp::Reverse(c.metadata.creation_timestamp.clone()));
        if let Some(class) = defaults.first() {
            let patch = json!({"spec": {"storageClassName": class.name_any()}});
            api.patch(&name, &crate::patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(Error::api(&key))?;
            return Ok(Action::await_change());
        }
    }

    let volumes: Vec<PersistentVolume> = ctx
        .volumes
        .state()
        .iter()
        .map(|v| v.as_ref().clone())
        .collect();
    let bound_volume = match &volume_name {
        Some(v) => volumes.iter().find(|pv| pv.name_any() == *v).cloned(),
        None => None,
    };
    if let Some(v) = &volume_name {
        let Some(pv) = bound_volume else {
            if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") {
                set_phase(&api, &name, "Lost", None).await?;
                ctx.events.warning(
                    pvc.object_ref(&()),
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!".into(),
                );
            }
            return Ok(Action::requeue(Duration::from_secs(30)));
        };
        let claimed = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        match claimed {
            Some(_) if !is_pre_bound_to(&pv, &pvc) => {
                ctx.events.warning(
                    pvc.object_ref(&()),
                    "FailedBinding",
                    format!("volume \"{v}\" already bound to a different claim."),
                );
                return Ok(Action::requeue(Duration::from_secs(30)));
            }
            _ => {
                bind(&ctx, &pvc, &pv).await?;
                return Ok(Action::requeue(Duration::from_secs(300)));
            }
        }
    }

    let class_name = claim_class(&pvc).unwrap_or("").to_string();
    let class = (!class_name.is_empty())
        .then(|| ctx.class(&class_name))
        .flatten();
    let waits = class
        .as_ref()
        .and_then(|c| c.volume_binding_mode.as_deref())
        == Some("WaitForFirstConsumer");
    let annotations = pvc.metadata.annotations.clone().unwrap_or_default();
    let selected = annotations.get(SELECTED_NODE).cloned();
    if waits && selected.is_none() {
        ctx.events.normal(
            pvc.object_ref(&()),
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding".into(),
        );
        return Ok(Action::await_change());
    }
    let node = selected
        .as_deref()
        .and_then(|n| ctx.nodes.get(&ObjectRef::new(n)));
    let empty = BTreeMap::new();
    let facts = selected.as_deref().map(|n| NodeFacts {
        name: n,
        labels: node
            .as_ref()
            .and_then(|n| n.metadata.labels.as_ref())
            .unwrap_or(&empty),
    });
    if let Some(pv) = find_volume(&pvc, &volumes, facts.as_ref()) {
        bind(&ctx, &pvc, pv).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }
    match class {
        Some(c) if c.provisioner != "kubernetes.io/no-provisioner" => {
            if annotations.get(STORAGE_PROVISIONER) != Some(&c.provisioner) {
                let patch = json!({"metadata": {"annotations": {
                    STORAGE_PROVISIONER: c.provisioner, STORAGE_PROVISIONER_BETA: c.provisioner}}});
                api.patch(&name, &crate::patch_params(), &Patch::Merge(&patch))
                    .await
                    .map_err(Error::api(&key))?;
                ctx.events.normal(
                    pvc.object_ref(&()),
                    "ExternalProvisioning",
                    format!("Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.", c.provisioner),
                );
            }
        }
        Some(_) => ctx.events.normal(
            pvc.object_ref(&()),
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set".into(),
        ),
        None if !class_name.is_empty() => ctx.events.warning(
            pvc.object_ref(&()),
            "ProvisioningFailed",
            format!("storageclass.storage.k8s.io \"{class_name}\" not found"),
        ),
        None => ctx.events.normal(
            pvc.object_ref(&()),
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set".into(),
        ),
    }
    Ok(Action::requeue(Duration::from_secs(15)))
}

async fn set_phase(
    api: &Api<PersistentVolumeClaim>,
    name: &str,
    phase: &str,
    extra: Option<serde_json::Value>,
) -> Result<()> {
    let mut status = extra.unwrap_or_else(|| json!({}));
    status["phase"] = json!(phase);
    match api
        .patch_status(
            name,
            &crate::patch_params(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if not_found(&e) => Ok(()),
        Err(e) => Err(Error::api(name)(e)),
    }
}

/// Writes both sides of a binding: the volume's claimRef and Bound phase, then the
/// claim's volumeName, annotations and Bound status (access modes from the volume, and
/// its capacity when the claim becomes Bound). Each write is skipped when already in place.
async fn bind(
    ctx: &BinderContext,
    pvc: &PersistentVolumeClaim,
    pv: &PersistentVolume,
) -> Result<()> {
    let ns = pvc.namespace().unwrap_or_default();
    let name = pvc.name_any();
    let pv_name = pv.name_any();
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let vspec = pv.spec.clone().unwrap_or_default();
    let full_ref = vspec
        .claim_ref
        .as_ref()
        .is_some_and(|r| r.uid.as_deref() == pvc.metadata.uid.as_deref());
    if !full_ref {
        let mut patch = json!({"spec": {"claimRef": {
            "kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns, "name": name,
            "uid": pvc.metadata.uid, "resourceVersion": pvc.metadata.resource_version}}});
        if vspec.claim_ref.is_none() {
            patch["metadata"] = json!({"annotations": {BOUND_BY_CONTROLLER: "yes"}});
        }
        pvs.patch(&pv_name, &crate::patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(Error::api(&pv_name))?;
    }
    if pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
        pvs.patch_status(
            &pv_name,
            &crate::patch_params(),
            &Patch::Merge(&json!({"status": {"phase": "Bound"}})),
        )
        .await
        .map_err(Error::api(&pv_name))?;
    }
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let annotations = pvc.metadata.annotations.clone().unwrap_or_default();
    let spec = pvc.spec.clone().unwrap_or_default();
    if spec.volume_name.as_deref() != Some(pv_name.as_str())
        || !annotations.contains_key(BIND_COMPLETED)
    {
        let mut meta = json!({BIND_COMPLETED: "yes"});
        if spec.volume_name.as_deref().is_none_or(str::is_empty) {
            meta[BOUND_BY_CONTROLLER] = json!("yes");
        }
        let patch = json!({"metadata": {"annotations": meta}, "spec": {"volumeName": pv_name}});
        api.patch(&name, &crate::patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(Error::api(format!("{ns}/{name}")))?;
    }
    let status = pvc.status.clone().unwrap_or_default();
    // The capacity is copied only as the claim becomes Bound, as Kubernetes' binder does:
    // afterwards a resize owns it (the volume may have grown before its filesystem did).
    if status.phase.as_deref() != Some("Bound") || status.access_modes != vspec.access_modes {
        let mut extra = json!({"accessModes": vspec.access_modes});
        if status.phase.as_deref() != Some("Bound") {
            extra["capacity"] = json!(vspec.capacity);
        }
        set_phase(&api, &name, "Bound", Some(extra)).await?;
    }
    Ok(())
}
