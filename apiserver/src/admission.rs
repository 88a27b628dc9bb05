//! Validating admission that needs other objects than the one written, run as a write hook
//! once the object has passed validation: kube-apiserver's `PersistentVolumeClaimResize`
//! (`plugin/pkg/admission/storage/persistentvolume/resize`), which lets a claim's storage
//! request grow only when the claim is bound and its StorageClass allows volume expansion.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use skiff_api::quantity::Quantity;

use crate::error::ApiError;
use crate::handlers::hooks::{FinishWrite, NothingToFinish, WriteHook};
use crate::storage::Store;
use crate::watchcache::decode;

/// The beta annotation naming a claim's class, read before `spec.storageClassName`.
const BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// The PersistentVolumeClaimResize admission plugin.
pub struct ClaimResize {
    store: Arc<dyn Store>,
}

impl ClaimResize {
    /// The plugin reading StorageClasses from `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        ClaimResize { store }
    }

    async fn class_allows_expansion(&self, name: &str) -> bool {
        let Some(kind) = crate::registry::builtin().find("storage.k8s.io", "v1", "storageclasses")
        else {
            return false;
        };
        match self.store.get(&kind.info.key(None, name)).await {
            Ok(Some(kv)) => decode(&kv.value, kv.mod_revision)
                .ok()
                .and_then(|sc| sc.get("allowVolumeExpansion").and_then(Value::as_bool))
                .unwrap_or(false),
            _ => false,
        }
    }
}

/// `GetPersistentVolumeClaimClass`: the beta annotation, else `spec.storageClassName`.
fn claim_class(pvc: &Value) -> &str {
    pvc.pointer("/metadata/annotations")
        .and_then(|a| a.get(BETA_CLASS))
        .or_else(|| pvc.pointer("/spec/storageClassName"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn requested(pvc: &Value) -> Quantity {
    pvc.pointer("/spec/resources/requests/storage")
        .and_then(Value::as_str)
        .and_then(|s| Quantity::parse(s).ok())
        .unwrap_or_else(|| Quantity::parse("0").expect("zero parses"))
}

/// What the plugin decides about growing `old` to `new`, given whether the claim's class
/// allows expansion (`class_allows`, asked only when the answer depends on it).
pub async fn check_resize<F, Fut>(new: &Value, old: &Value, class_allows: F) -> Result<(), String>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    if requested(new) <= requested(old) {
        return Ok(());
    }
    if old.pointer("/status/phase").and_then(Value::as_str) != Some("Bound") {
        return Err("Only bound persistent volume claims can be expanded".into());
    }
    let (class, old_class) = (claim_class(new), claim_class(old));
    if class.is_empty() || class != old_class || !class_allows(class.to_string()).await {
        return Err("only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize".into());
    }
    Ok(())
}

#[async_trait]
impl WriteHook for ClaimResize {
    async fn begin_create(
        &self,
        _obj: &mut Value,
        _dry_run: bool,
    ) -> Result<Box<dyn FinishWrite>, ApiError> {
        Ok(Box::new(NothingToFinish))
    }

    async fn begin_update(
        &self,
        new: &mut Value,
        old: &Value,
        _dry_run: bool,
    ) -> Result<Box<dyn FinishWrite>, ApiError> {
        let name = old
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        match check_resize(new, old, |c| async move {
            self.class_allows_expansion(&c).await
        })
        .await
        {
            Ok(()) => Ok(Box::new(NothingToFinish)),
            Err(why) => Err(ApiError::forbidden(
                "",
                "persistentvolumeclaims",
                name,
                &why,
            )),
        }
    }

    async fn after_delete(&self, _obj: &Value) {}
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claim(size: &str, phase: &str, class: Option<&str>) -> Value {
        json!({"metadata": {"name": "data"},
            "spec": {"storageClassName": class, "resources": {"requests": {"storage": size}}},
            "status": {"phase": phase}})
    }

    async fn decide(new: &Value, old: &Value, allowed: bool) -> Result<(), String> {
        check_resize(new, old, |_| async move { allowed }).await
    }

    #[tokio::test]
    async fn only_bound_claims_of_an_expanding_class_grow() {
        let old = claim("1Gi", "Bound", Some("local-path"));
        let new = claim("2Gi", "Bound", Some("local-path"));
        assert_eq!(decide(&new, &old, true).await, Ok(()));
        let refused = "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize";
        assert_eq!(decide(&new, &old, false).await, Err(refused.into()));
        assert_eq!(
            decide(
                &claim("2Gi", "Bound", None),
                &claim("1Gi", "Bound", None),
                true
            )
            .await,
            Err(refused.into()),
            "a claim without a class"
        );
        assert_eq!(
            decide(&new, &claim("1Gi", "Pending", Some("local-path")), true).await,
            Err("Only bound persistent volume claims can be expanded".into())
        );
        // Equal (in other units) or smaller is not this plugin's business.
        assert_eq!(
            decide(&claim("1024Mi", "Bound", Some("x")), &old, false).await,
            Ok(())
        );
        assert_eq!(
            decide(&claim("1Mi", "Bound", Some("x")), &old, false).await,
            Ok(())
        );
    }
}
