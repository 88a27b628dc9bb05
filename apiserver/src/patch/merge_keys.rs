//! The strategic-merge schema: which lists merge (and by which key) and which are replaced,
//! decided from a field's name and the path of field names above it.
//!
//! Kubernetes reads `patchStrategy`/`patchMergeKey` struct tags of the built-in types; skiff
//! keeps the same facts as a table. Field names alone are ambiguous (`ports` is keyed by
//! `containerPort` in a container and by `port` in a Service spec), so each rule may look at
//! the parent path. Lists not named here have no merge strategy and are replaced whole, as
//! Kubernetes does for `tolerations`, `args`, `command`, `envFrom`, ...

/// How a list field combines with the list of the same name in a patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// No merge strategy: the patch's list replaces the original.
    Replace,
    /// `patchStrategy:"merge"` on a list of scalars: union of both lists.
    MergePrimitive,
    /// `patchStrategy:"merge"` with `patchMergeKey`: items with equal keys merge.
    MergeByKey(&'static str),
}

/// Container lists of a pod spec; their items hold `ports`, `env`, `volumeMounts`, ...
const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// The strategy of the list `field` found in the map at `parent` (field names from the
/// object root, list indices left out: `spec.template.spec.containers` for a Deployment's
/// containers, so a container's `env` has parent `[spec, template, spec, containers]`).
pub fn list_strategy<S: AsRef<str>>(parent: &[S], field: &str) -> ListStrategy {
    use ListStrategy::{MergeByKey, MergePrimitive, Replace};
    let last = parent.last().map(AsRef::as_ref);
    let in_container = last.is_some_and(|l| CONTAINER_LISTS.contains(&l));
    let at_root_field = |name: &str| parent.len() == 1 && parent[0].as_ref() == name;
    match field {
        "containers" | "initContainers" | "ephemeralContainers" => MergeByKey("name"),
        "imagePullSecrets" | "volumes" | "schedulingGates" => MergeByKey("name"),
        "resourceClaims" if last == Some("spec") => MergeByKey("name"),
        "hostAliases" => MergeByKey("ip"),
        "topologySpreadConstraints" => MergeByKey("topologyKey"),
        "env" if in_container => MergeByKey("name"),
        "volumeMounts" if in_container => MergeByKey("mountPath"),
        "volumeDevices" if in_container => MergeByKey("devicePath"),
        "ports" if in_container => MergeByKey("containerPort"),
        // Service spec; EndpointSlice, Endpoints and NetworkPolicy ports sit elsewhere and
        // are atomic lists.
        "ports" if at_root_field("spec") => MergeByKey("port"),
        "conditions" => MergeByKey("type"),
        "ownerReferences" if last == Some("metadata") => MergeByKey("uid"),
        "finalizers" if last == Some("metadata") => MergePrimitive,
        "podIPs" | "hostIPs" if at_root_field("status") => MergeByKey("ip"),
        // Node status addresses and Node spec pod CIDRs.
        "addresses" if at_root_field("status") => MergeByKey("type"),
        "podCIDRs" if at_root_field("spec") => MergePrimitive,
        // ServiceAccount.secrets.
        "secrets" if parent.is_empty() => MergeByKey("name"),
        _ => Replace,
    }
}

#[cfg(test)]
mod tests {
    use super::ListStrategy::{MergeByKey, MergePrimitive, Replace};
    use super::*;

    #[test]
    fn table_decides_by_name_and_context() {
        let pod_container = ["spec", "containers"];
        let deploy_container = ["spec", "template", "spec", "containers"];
        let cases: &[(&[&str], &str, ListStrategy)] = &[
            (&["spec"], "containers", MergeByKey("name")),
            (
                &["spec", "template", "spec"],
                "initContainers",
                MergeByKey("name"),
            ),
            (&["spec"], "ephemeralContainers", MergeByKey("name")),
            (&pod_container, "env", MergeByKey("name")),
            (&deploy_container, "env", MergeByKey("name")),
            (&pod_container, "ports", MergeByKey("containerPort")),
            (
                &["spec", "template", "spec", "initContainers"],
                "ports",
                MergeByKey("containerPort"),
            ),
            (&["spec"], "ports", MergeByKey("port")),
            (&["subsets"], "ports", Replace),
            (&["spec", "ingress"], "ports", Replace),
            (&deploy_container, "volumeMounts", MergeByKey("mountPath")),
            (&deploy_container, "volumeDevices", MergeByKey("devicePath")),
            (&deploy_container, "envFrom", Replace),
            (&deploy_container, "args", Replace),
            (&deploy_container, "command", Replace),
            (&["spec"], "volumes", MergeByKey("name")),
            (&["spec"], "imagePullSecrets", MergeByKey("name")),
            (&["spec"], "tolerations", Replace),
            (&["spec"], "hostAliases", MergeByKey("ip")),
            (
                &["spec"],
                "topologySpreadConstraints",
                MergeByKey("topologyKey"),
            ),
            (&["status"], "conditions", MergeByKey("type")),
            (&["metadata"], "ownerReferences", MergeByKey("uid")),
            (&["metadata"], "finalizers", MergePrimitive),
            // Namespace spec.finalizers has no strategy.
            (&["spec"], "finalizers", Replace),
            (&[], "secrets", MergeByKey("name")),
            (&["status"], "addresses", MergeByKey("type")),
            (&["spec"], "podCIDRs", MergePrimitive),
        ];
        for (parent, field, want) in cases {
            assert_eq!(
                list_strategy(parent, field),
                *want,
                "{}.{field}",
                parent.join(".")
            );
        }
    }
}
