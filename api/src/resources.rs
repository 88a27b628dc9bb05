//! The resource table: every kind the API server serves, with the facts discovery, routing,
//! storage keys and the CLI need about it.

/// One subresource of a resource (`pods/status`, `deployments/scale`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// Path segment after the object name: `status`, `scale`, `binding`, `log`, `exec`.
    pub name: &'static str,
    /// Kind of the object the subresource speaks (`Scale` for scale, the parent kind for status).
    pub kind: &'static str,
    /// Group of that kind when it differs from the parent's (`autoscaling` for scale).
    pub group: &'static str,
    /// Version of that kind when it differs from the parent's (`v1` for scale).
    pub version: &'static str,
    /// Verbs the subresource answers.
    pub verbs: &'static [&'static str],
}

/// A resource served by the API server at one group-version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Plural resource name used in URLs, e.g. `deployments`.
    pub plural: &'static str,
    /// Singular name, e.g. `deployment`.
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names for the CLI (`deploy`).
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Subresources served under `<plural>/<name>/<sub>`.
    pub subresources: &'static [Subresource],
    /// The group whose storage this version shares (same as `group` except for aliases such
    /// as events.k8s.io/v1 events stored with core events).
    pub storage_group: &'static str,
    /// Storage resource name (same as `plural` unless aliased).
    pub storage_plural: &'static str,
    /// The version objects are stored in; other versions are converted on the way in and out.
    pub storage_version: &'static str,
    /// Verbs the collection and its objects answer: [`RESOURCE_VERBS`] for stored kinds,
    /// `create` alone for reviews (SelfSubjectAccessReview), which are answered, not stored.
    pub verbs: &'static [&'static str],
}

/// Verbs every top-level resource answers.
pub const RESOURCE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

const fn status(kind: &'static str) -> Subresource {
    Subresource {
        name: "status",
        kind,
        group: "",
        version: "",
        verbs: STATUS_VERBS,
    }
}

const SCALE: Subresource = Subresource {
    name: "scale",
    kind: "Scale",
    group: "autoscaling",
    version: "v1",
    verbs: STATUS_VERBS,
};

const BINDING: Subresource = Subresource {
    name: "binding",
    kind: "Binding",
    group: "",
    version: "",
    verbs: &["create"],
};

const fn pod_stream(name: &'static str, kind: &'static str) -> Subresource {
    Subresource {
        name,
        kind,
        group: "",
        version: "",
        verbs: &["create", "get"],
    }
}

/// Pod subresources (log, exec, attach and port-forward are proxied to the node).
const POD_SUBS: &[Subresource] = &[
    status("Pod"),
    BINDING,
    Subresource {
        name: "eviction",
        kind: "Eviction",
        group: "policy",
        version: "v1",
        verbs: &["create"],
    },
    Subresource {
        name: "log",
        kind: "Pod",
        group: "",
        version: "",
        verbs: &["get"],
    },
    pod_stream("exec", "PodExecOptions"),
    pod_stream("attach", "PodAttachOptions"),
    pod_stream("portforward", "PodPortForwardOptions"),
];

const ALL: &[&str] = &["all"];

/// ServiceAccount subresources: `token` (a TokenRequest of authentication.k8s.io/v1).
const SERVICE_ACCOUNT_SUBS: &[Subresource] = &[Subresource {
    name: "token",
    kind: "TokenRequest",
    group: "authentication.k8s.io",
    version: "v1",
    verbs: &["create"],
}];

/// CertificateSigningRequest subresources: `status` (the signer's certificate) and
/// `approval` (the Approved/Denied conditions).
const CSR_SUBS: &[Subresource] = &[
    status("CertificateSigningRequest"),
    Subresource {
        name: "approval",
        kind: "CertificateSigningRequest",
        group: "",
        version: "",
        verbs: STATUS_VERBS,
    },
];

#[allow(clippy::too_many_arguments)]
const fn res(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [Subresource],
) -> ResourceInfo {
    ResourceInfo {
        group,
        version,
        kind,
        plural,
        singular,
        namespaced,
        short_names,
        categories,
        subresources,
        storage_group: group,
        storage_plural: plural,
        storage_version: version,
        verbs: RESOURCE_VERBS,
    }
}

/// The verbs of a review: created, answered, never stored.
pub const REVIEW_VERBS: &[&str] = &["create"];

/// A kind that is answered on create and never stored (access and identity reviews).
const fn review(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> ResourceInfo {
    ResourceInfo {
        verbs: REVIEW_VERBS,
        ..res(
            group,
            "v1",
            kind,
            plural,
            singular,
            namespaced,
            &[],
            &[],
            &[],
        )
    }
}

const RBAC: &str = "rbac.authorization.k8s.io";
const AUTHORIZATION: &str = "authorization.k8s.io";

/// Every resource the API server serves, in discovery order.
pub static RESOURCES: &[ResourceInfo] = &[
    res(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        false,
        &["ns"],
        &[],
        &[status("Namespace")],
    ),
    res("", "v1", "Pod", "pods", "pod", true, &["po"], ALL, POD_SUBS),
    res(
        "",
        "v1",
        "Service",
        "services",
        "service",
        true,
        &["svc"],
        ALL,
        &[status("Service")],
    ),
    res(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        true,
        &["ep"],
        &[],
        &[],
    ),
    res(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        false,
        &["no"],
        &[],
        &[status("Node")],
    ),
    res(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        &["cm"],
        &[],
        &[],
    ),
    res("", "v1", "Secret", "secrets", "secret", true, &[], &[], &[]),
    res(
        "",
        "v1",
        "Event",
        "events",
        "event",
        true,
        &["ev"],
        &[],
        &[],
    ),
    res(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
        &[],
        SERVICE_ACCOUNT_SUBS,
    ),
    res(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        "replicationcontroller",
        true,
        &["rc"],
        ALL,
        &[status("ReplicationController"), SCALE],
    ),
    res(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
        &["deploy"],
        ALL,
        &[status("Deployment"), SCALE],
    ),
    res(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        &["rs"],
        ALL,
        &[status("ReplicaSet"), SCALE],
    ),
    res(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        true,
        &["ds"],
        ALL,
        &[status("DaemonSet")],
    ),
    res(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        true,
        &["sts"],
        ALL,
        &[status("StatefulSet"), SCALE],
    ),
    res(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        true,
        &[],
        &[],
        &[],
    ),
    res(
        "batch",
        "v1",
        "Job",
        "jobs",
        "job",
        true,
        &[],
        ALL,
        &[status("Job")],
    ),
    res(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        true,
        &["cj"],
        ALL,
        &[status("CronJob")],
    ),
    res(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
        &["hpa"],
        ALL,
        &[status("HorizontalPodAutoscaler")],
    ),
    ResourceInfo {
        storage_version: "v2",
        ..res(
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            true,
            &["hpa"],
            ALL,
            &[status("HorizontalPodAutoscaler")],
        )
    },
    res(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        true,
        &[],
        &[],
        &[],
    ),
    res(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        &[],
        &[],
        &[],
    ),
    res(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        "certificatesigningrequest",
        false,
        &["csr"],
        &[],
        CSR_SUBS,
    ),
    res(
        "networking.k8s.io",
        "v1",
        "IPAddress",
        "ipaddresses",
        "ipaddress",
        false,
        &["ip"],
        &[],
        &[],
    ),
    res(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        true,
        &["pdb"],
        &[],
        &[status("PodDisruptionBudget")],
    ),
    res(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        false,
        &["pv"],
        &[],
        &[status("PersistentVolume")],
    ),
    res(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
        &["pvc"],
        &[],
        &[status("PersistentVolumeClaim")],
    ),
    res(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        "storageclass",
        false,
        &["sc"],
        &[],
        &[],
    ),
    res(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "customresourcedefinition",
        false,
        &["crd", "crds"],
        &["api-extensions"],
        &[status("CustomResourceDefinition")],
    ),
    res(
        RBAC,
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        false,
        &[],
        &[],
        &[],
    ),
    res(
        RBAC,
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
        &[],
        &[],
        &[],
    ),
    res(RBAC, "v1", "Role", "roles", "role", true, &[], &[], &[]),
    res(
        RBAC,
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
        &[],
        &[],
        &[],
    ),
    review(
        AUTHORIZATION,
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        false,
    ),
    review(
        AUTHORIZATION,
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        false,
    ),
    review(
        AUTHORIZATION,
        "SubjectAccessReview",
        "subjectaccessreviews",
        "subjectaccessreview",
        false,
    ),
    review(
        AUTHORIZATION,
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        true,
    ),
    review(
        "authentication.k8s.io",
        "SelfSubjectReview",
        "selfsubjectreviews",
        "selfsubjectreview",
        false,
    ),
    review(
        "authentication.k8s.io",
        "TokenReview",
        "tokenreviews",
        "tokenreview",
        false,
    ),
    ResourceInfo {
        storage_group: "",
        ..res(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            "event",
            true,
            &["ev"],
            &[],
            &[],
        )
    },
];

impl ResourceInfo {
    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        group_version(self.group, self.version)
    }

    /// The `<Kind>List` kind of a list of these objects.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Storage key prefix for all objects of this resource, ending in `/`.
    pub fn key_prefix(&self) -> String {
        if self.storage_group.is_empty() {
            format!("/registry/core/{}/", self.storage_plural)
        } else {
            format!("/registry/{}/{}/", self.storage_group, self.storage_plural)
        }
    }

    /// Storage key prefix for the objects of one namespace, ending in `/`.
    pub fn namespace_prefix(&self, namespace: &str) -> String {
        format!("{}{}/", self.key_prefix(), namespace)
    }

    /// Storage key of one object. Cluster-scoped objects ignore `namespace`.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{}/{}", self.key_prefix(), ns, name),
            _ => format!("{}{}", self.key_prefix(), name),
        }
    }

    /// The subresource of this name, if served.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether objects of this kind are stored (reviews are only answered).
    pub fn is_stored(&self) -> bool {
        self.verbs != REVIEW_VERBS
    }

    /// Whether this entry is the version objects are stored in (never, for reviews).
    pub fn is_storage_version(&self) -> bool {
        self.is_stored() && self.version == self.storage_version && self.group == self.storage_group
    }
}

/// `group/version`, or just `version` for the core group.
pub fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// Splits an `apiVersion` into group and version.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Looks up a resource by group, version and plural name.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks up a resource by `apiVersion` and kind, as a manifest names it.
pub fn find_by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let (group, version) = split_api_version(api_version);
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// Resolves what a user typed (`deploy`, `deployments`, `deployment`, `Deployment`,
/// `deployments.apps`) to the preferred version of a resource.
pub fn resolve(name: &str) -> Option<&'static ResourceInfo> {
    let lower = name.to_ascii_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b.to_string(), Some(g.to_string())),
        None => (lower.clone(), None),
    };
    RESOURCES.iter().find(|r| {
        group.as_deref().is_none_or(|g| r.group == g)
            && (r.plural == base
                || r.singular == base
                || r.kind.eq_ignore_ascii_case(&base)
                || r.short_names.contains(&base.as_str()))
    })
}

/// Every distinct (group, version) pair served, core first, in table order.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The preferred (first listed) version of a group.
pub fn preferred_version(group: &str) -> Option<&'static str> {
    RESOURCES
        .iter()
        .find(|r| r.group == group)
        .map(|r| r.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_registry_layout() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        assert_eq!(
            deploy.key(Some("default"), "web"),
            "/registry/apps/deployments/default/web"
        );
        let ns = find("", "v1", "namespaces").unwrap();
        assert_eq!(
            ns.key(None, "kube-system"),
            "/registry/core/namespaces/kube-system"
        );
    }

    #[test]
    fn aliases_share_storage() {
        let v1 = find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let v2 = find("autoscaling", "v2", "horizontalpodautoscalers").unwrap();
        assert_eq!(v1.key_prefix(), v2.key_prefix());
        assert!(!v1.is_storage_version());
        let ev = find("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(
            ev.key_prefix(),
            find("", "v1", "events").unwrap().key_prefix()
        );
    }

    #[test]
    fn resolves_what_users_type() {
        for n in [
            "deploy",
            "deployments",
            "deployment",
            "Deployment",
            "deployments.apps",
        ] {
            assert_eq!(resolve(n).unwrap().kind, "Deployment", "{n}");
        }
        assert_eq!(resolve("hpa").unwrap().version, "v2");
        assert!(resolve("nope").is_none());
    }
}
