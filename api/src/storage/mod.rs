//! The names persistent storage is wired by — the annotations and finalizers the
//! apiserver, the PV binder, the scheduler, the local provisioner and the kubelet agree
//! on — and the built-in local class.

pub mod matching;

/// The built-in StorageClass backed by node-local directories.
pub const LOCAL_PATH_CLASS: &str = "local-path";
/// The provisioner name of the built-in local class.
pub const LOCAL_PATH_PROVISIONER: &str = "skiff.io/local-path";
/// Marks the StorageClass claims without a class get.
pub const IS_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// The beta spelling of [`IS_DEFAULT_CLASS`], still honoured by Kubernetes.
pub const IS_DEFAULT_CLASS_BETA: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// Set by the scheduler on a WaitForFirstConsumer claim: the node its first pod goes to.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Set by the binder on a claim it wants a provisioner to serve.
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The beta spelling of [`STORAGE_PROVISIONER`].
pub const STORAGE_PROVISIONER_BETA: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// Set by the binder on a claim once both sides of the binding are written.
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set by the binder on whichever side it bound (rather than the user).
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// Set by a provisioner on the volumes it created.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// Keeps a claim while a pod uses it.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// Keeps a volume while it is bound.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";
/// The label a provisioner puts on a local volume's node affinity.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Whether a class's annotations make it the default class.
pub fn is_default_class(annotations: Option<&std::collections::BTreeMap<String, String>>) -> bool {
    annotations.is_some_and(|a| {
        [IS_DEFAULT_CLASS, IS_DEFAULT_CLASS_BETA]
            .iter()
            .any(|k| a.get(*k).is_some_and(|v| v == "true"))
    })
}

/// Whether a PersistentVolume may be used on a node: its required node affinity (if
/// any) matches the node's name and labels (the scheduler's VolumeBinding rule, also
/// applied by the binder for WaitForFirstConsumer claims).
pub fn volume_fits_node(
    pv: &k8s_openapi::api::core::v1::PersistentVolume,
    node_name: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    match pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    {
        Some(sel) => {
            crate::scheduling::node_affinity::node_selector_matches(sel, node_name, labels)
        }
        None => true,
    }
}

/// The storage class a claim asks for: `spec.storageClassName`, or the beta annotation;
/// `None` when it names none (the default class then applies).
pub fn claim_class(pvc: &k8s_openapi::api::core::v1::PersistentVolumeClaim) -> Option<&str> {
    if let Some(c) = pvc
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
    {
        return Some(c);
    }
    pvc.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .map(String::as_str)
}
