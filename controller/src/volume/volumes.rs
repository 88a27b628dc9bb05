//! One PersistentVolume: its phase from its claimRef (Available, Bound, Released), the
//! reclaim policy once its claim is gone (Retain keeps it Released; Delete leaves a
//! provisioned volume to its provisioner and fails others; Recycle is not supported, as
//! in current Kubernetes), and the pv-protection finalizer once it is not Bound.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Patch;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use skiff_api::storage::{PROVISIONED_BY, PV_PROTECTION};

use super::{BinderContext, remove_finalizer};
use crate::error::{Error, Result, not_found};

/// What the volume's phase should be and why.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Nothing to change.
    Keep,
    /// Write this phase (with a message for Failed).
    Phase(&'static str, Option<String>),
}

/// The phase rule, given whether the claim the claimRef names still exists (with the
/// same uid when the reference has one).
pub(super) fn verdict(pv: &PersistentVolume, claim_exists: bool) -> Verdict {
    let phase = pv
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    let spec = pv.spec.clone().unwrap_or_default();
    let want = |p: &'static str| {
        if phase == p {
            Verdict::Keep
        } else {
            Verdict::Phase(p, None)
        }
    };
    let Some(r) = spec.claim_ref.as_ref() else {
        return want("Available");
    };
    let has_uid = r.uid.as_deref().is_some_and(|u| !u.is_empty());
    if claim_exists {
        return if has_uid {
            want("Bound")
        } else {
            want("Available")
        };
    }
    if !has_uid {
        // Pre-bound to a claim that does not exist yet.
        return want("Available");
    }
    match phase {
        "Failed" => Verdict::Keep,
        "Released" => match spec.persistent_volume_reclaim_policy.as_deref() {
            Some("Delete") if pv.annotations().contains_key(PROVISIONED_BY) => Verdict::Keep,
            Some("Delete") => Verdict::Phase(
                "Failed",
                Some(format!(
                    "error getting deleter volume plugin for volume \"{}\": no deletable volume plugin matched",
                    pv.name_any()
                )),
            ),
            Some("Recycle") => Verdict::Phase(
                "Failed",
                Some(format!(
                    "error getting recycler volume plugin for volume \"{}\": no recyclable volume plugin matched",
                    pv.name_any()
                )),
            ),
            _ => Verdict::Keep,
        },
        _ => Verdict::Phase("Released", None),
    }
}

pub(super) async fn reconcile(
    pv: Arc<PersistentVolume>,
    ctx: Arc<BinderContext>,
) -> Result<Action> {
    if !ctx.synced().await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let name = pv.name_any();
    let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let phase = pv
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    if pv.metadata.deletion_timestamp.is_some() {
        if phase != "Bound" {
            remove_finalizer(&api, pv.as_ref(), PV_PROTECTION).await?;
            return Ok(Action::await_change());
        }
    }
    let claim_exists = match pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
        None => false,
        Some(r) => {
            let (ns, cname) = (
                r.namespace.clone().unwrap_or_default(),
                r.name.clone().unwrap_or_default(),
            );
            let uid_ok = |c: &PersistentVolumeClaim| {
                r.uid
                    .as_deref()
                    .is_none_or(|u| u.is_empty() || Some(u) == c.metadata.uid.as_deref())
            };
            match ctx.claims.get(&ObjectRef::new(&cname).within(&ns)) {
                Some(c) => uid_ok(&c),
                // The cache may not have seen a new claim yet: ask before releasing.
                None => match Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns)
                    .get_opt(&cname)
                    .await
                    .map_err(Error::api(&name))?
                {
                    Some(c) => uid_ok(&c),
                    None => false,
                },
            }
        }
    };
    if let Verdict::Phase(p, message) = verdict(&pv, claim_exists) {
        let patch = json!({"status": {"phase": p, "message": message,
            "reason": message.as_ref().map(|_| "VolumeFailedDelete")}});
        match api
            .patch_status(&name, &crate::patch_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(Error::api(&name)(e)),
        }
        if let Some(m) = message {
            ctx.events
                .warning(pv.object_ref(&()), "VolumeFailedDelete", m);
        }
    }
    Ok(Action::requeue(Duration::from_secs(60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(claim_ref: serde_json::Value, phase: &str, policy: &str) -> PersistentVolume {
        serde_json::from_value(json!({"metadata": {"name": "pv"}, "spec": {
            "claimRef": claim_ref, "persistentVolumeReclaimPolicy": policy,
            "capacity": {"storage": "1Gi"}}, "status": {"phase": phase}}))
        .unwrap()
    }

    #[test]
    fn phases_follow_the_claim() {
        let bound = json!({"namespace": "ns", "name": "c", "uid": "u"});
        assert_eq!(
            verdict(&pv(json!(null), "Pending", "Retain"), false),
            Verdict::Phase("Available", None)
        );
        assert_eq!(
            verdict(&pv(bound.clone(), "Available", "Retain"), true),
            Verdict::Phase("Bound", None)
        );
        assert_eq!(
            verdict(&pv(bound.clone(), "Bound", "Retain"), false),
            Verdict::Phase("Released", None)
        );
        assert_eq!(
            verdict(&pv(bound.clone(), "Released", "Retain"), false),
            Verdict::Keep
        );
        assert!(matches!(
            verdict(&pv(bound.clone(), "Released", "Delete"), false),
            Verdict::Phase("Failed", Some(_))
        ));
        let pre = json!({"namespace": "ns", "name": "c"});
        assert_eq!(
            verdict(&pv(pre, "Pending", "Retain"), false),
            Verdict::Phase("Available", None)
        );
    }
}
