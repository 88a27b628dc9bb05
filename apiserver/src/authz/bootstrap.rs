//! The default RBAC policy the API server bootstraps, as Kubernetes bootstraps it
//! (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy`): the user-facing roles
//! (`cluster-admin`, `admin`, `edit`, `view` and their `system:aggregate-to-*` parts),
//! the roles of the system components and their bindings, and the namespaced roles of
//! `kube-system` and `kube-public`. Names and rules are the API contract users rely on, so
//! they follow Kubernetes' exactly; as Kubernetes renders them, every list in a rule is
//! sorted and free of duplicates.
//!
//! One addition is skiff's own: `system:skiff:node-agent`, what a node agent needs while it
//! still works with the join token (see [`skiff_node_agent`]).
//!
//! The per-controller roles (`system:controller:*` cluster roles) are not part of this
//! policy: skiff's controllers run inside the control plane under their own identity.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

const API_VERSION: &str = "rbac.authorization.k8s.io/v1";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
/// Every verb of a resource (read and write).
const READ_WRITE: &[&str] = skiff_api::resources::RESOURCE_VERBS;
const EVENT_WRITE: &[&str] = &["create", "patch", "update"];
/// Events are written through both the core and the events.k8s.io API.
const EVENT_GROUPS: &[&str] = &["", "events.k8s.io"];

const CORE: &[&str] = &[""];
const APPS: &[&str] = &["apps"];
const EXTENSIONS: &[&str] = &["extensions"];
const BATCH: &[&str] = &["batch"];
const AUTOSCALING: &[&str] = &["autoscaling"];
const POLICY: &[&str] = &["policy"];
const NETWORKING: &[&str] = &["networking.k8s.io"];
const DISCOVERY: &[&str] = &["discovery.k8s.io"];
const COORDINATION: &[&str] = &["coordination.k8s.io"];
const STORAGE: &[&str] = &["storage.k8s.io"];
const CERTIFICATES: &[&str] = &["certificates.k8s.io"];
const AUTHENTICATION: &[&str] = &["authentication.k8s.io"];
const AUTHORIZATION: &[&str] = &["authorization.k8s.io"];
const RBAC: &[&str] = &[RBAC_GROUP];

/// A sorted list without duplicates, as Kubernetes' rule builder stores each field.
fn set(items: &[&str]) -> Vec<String> {
    let set: BTreeSet<&str> = items.iter().copied().collect();
    set.into_iter().map(String::from).collect()
}

/// A rule granting `verbs` on `resources` of `groups`.
fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"apiGroups": set(groups), "resources": set(resources), "verbs": set(verbs)})
}

/// A rule granting `verbs` on the objects named `names` only.
fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    let mut r = rule(verbs, groups, resources);
    r["resourceNames"] = json!(set(names));
    r
}

/// A rule granting `verbs` on non-resource URLs.
fn urls(verbs: &[&str], paths: &[&str]) -> Value {
    json!({"nonResourceURLs": set(paths), "verbs": set(verbs)})
}

fn events_rule() -> Value {
    rule(EVENT_WRITE, EVENT_GROUPS, &["events"])
}

fn metadata(name: &str, namespace: Option<&str>, labels: &[(&str, &str)]) -> Value {
    let mut all = Map::new();
    all.insert("kubernetes.io/bootstrapping".into(), "rbac-defaults".into());
    for (k, v) in labels {
        all.insert((*k).into(), (*v).into());
    }
    let mut meta = json!({
        "name": name,
        "labels": all,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    });
    if let Some(ns) = namespace {
        meta["namespace"] = ns.into();
    }
    meta
}

fn labelled_cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "ClusterRole",
        "metadata": metadata(name, None, labels),
        "rules": rules,
    })
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    labelled_cluster_role(name, &[], rules)
}

/// A role whose rules the aggregation controller gathers from the cluster roles labelled
/// `aggregate_from: "true"`; stored with no rules of its own.
fn aggregated(name: &str, aggregate_from: &str, labels: &[(&str, &str)]) -> Value {
    let mut role = labelled_cluster_role(name, labels, Vec::new());
    role["aggregationRule"] =
        json!({"clusterRoleSelectors": [{"matchLabels": {aggregate_from: "true"}}]});
    role
}

fn role(namespace: &str, name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "Role",
        "metadata": metadata(name, Some(namespace), &[]),
        "rules": rules,
    })
}

fn group(name: &str) -> Value {
    json!({"apiGroup": RBAC_GROUP, "kind": "Group", "name": name})
}

fn user(name: &str) -> Value {
    json!({"apiGroup": RBAC_GROUP, "kind": "User", "name": name})
}

fn service_account(namespace: &str, name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
}

fn binding(
    kind: &str,
    meta: Value,
    role_kind: &str,
    role_name: &str,
    subjects: Vec<Value>,
) -> Value {
    let mut b = json!({
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role_name},
    });
    // As Kubernetes stores a binding without subjects (system:node): no field at all.
    if !subjects.is_empty() {
        b["subjects"] = Value::Array(subjects);
    }
    b
}

fn cluster_role_binding(name: &str, role_name: &str, subjects: Vec<Value>) -> Value {
    binding(
        "ClusterRoleBinding",
        metadata(name, None, &[]),
        "ClusterRole",
        role_name,
        subjects,
    )
}

fn role_binding(namespace: &str, name: &str, role_name: &str, subjects: Vec<Value>) -> Value {
    binding(
        "RoleBinding",
        metadata(name, Some(namespace), &[]),
        "Role",
        role_name,
        subjects,
    )
}

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let mut roles = vec![
        cluster_role(
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated("admin", AGGREGATE_TO_ADMIN, &[]),
        aggregated("edit", AGGREGATE_TO_EDIT, &[(AGGREGATE_TO_ADMIN, "true")]),
        aggregated("view", AGGREGATE_TO_VIEW, &[(AGGREGATE_TO_EDIT, "true")]),
        labelled_cluster_role(
            "system:aggregate-to-admin",
            &[(AGGREGATE_TO_ADMIN, "true")],
            aggregate_to_admin(),
        ),
        labelled_cluster_role(
            "system:aggregate-to-edit",
            &[(AGGREGATE_TO_EDIT, "true")],
            aggregate_to_edit(),
        ),
        labelled_cluster_role(
            "system:aggregate-to-view",
            &[(AGGREGATE_TO_VIEW, "true")],
            aggregate_to_view(),
        ),
        cluster_role(
            "system:auth-delegator",
            vec![
                rule(&["create"], AUTHENTICATION, &["tokenreviews"]),
                rule(&["create"], AUTHORIZATION, &["subjectaccessreviews"]),
            ],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                rule(
                    &["create"],
                    AUTHORIZATION,
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(&["create"], AUTHENTICATION, &["selfsubjectreviews"]),
            ],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![rule(
                &["create"],
                CERTIFICATES,
                &["certificatesigningrequests/nodeclient"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![rule(
                &["create"],
                CERTIFICATES,
                &["certificatesigningrequests/selfnodeclient"],
            )],
        ),
        cluster_role(
            "system:discovery",
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:heapster",
            vec![
                rule(READ, CORE, &["events", "namespaces", "nodes", "pods"]),
                rule(READ, EXTENSIONS, &["deployments"]),
            ],
        ),
        cluster_role(
            "system:kube-aggregator",
            vec![rule(READ, CORE, &["endpoints", "services"])],
        ),
        cluster_role("system:kube-controller-manager", kube_controller_manager()),
        cluster_role(
            "system:kube-dns",
            vec![rule(&["list", "watch"], CORE, &["endpoints", "services"])],
        ),
        cluster_role("system:kube-scheduler", kube_scheduler()),
        cluster_role(
            "system:kubelet-api-admin",
            vec![
                rule(READ, CORE, &["nodes"]),
                rule(&["proxy"], CORE, &["nodes"]),
                rule(
                    &["*"],
                    CORE,
                    &["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"],
                ),
            ],
        ),
        cluster_role(
            "system:monitoring",
            vec![urls(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
        ),
        cluster_role("system:node", node()),
        cluster_role(
            "system:node-bootstrapper",
            vec![rule(
                &["create", "get", "list", "watch"],
                CERTIFICATES,
                &["certificatesigningrequests"],
            )],
        ),
        cluster_role(
            "system:node-problem-detector",
            vec![
                rule(&["get"], CORE, &["nodes"]),
                rule(&["patch"], CORE, &["nodes/status"]),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:node-proxier",
            vec![
                rule(&["list", "watch"], CORE, &["endpoints", "services"]),
                rule(READ, CORE, &["nodes"]),
                events_rule(),
                rule(&["list", "watch"], DISCOVERY, &["endpointslices"]),
            ],
        ),
        cluster_role(
            "system:persistent-volume-provisioner",
            vec![
                rule(
                    &["create", "delete", "get", "list", "watch"],
                    CORE,
                    &["persistentvolumes"],
                ),
                rule(
                    &["get", "list", "update", "watch"],
                    CORE,
                    &["persistentvolumeclaims"],
                ),
                rule(READ, STORAGE, &["storageclasses"]),
                rule(&["watch"], CORE, &["events"]),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            vec![urls(
                &["get"],
                &["/.well-known/openid-configuration", "/openid/v1/jwks"],
            )],
        ),
        cluster_role(
            "system:volume-scheduler",
            vec![
                rule(
                    &["get", "list", "patch", "update", "watch"],
                    CORE,
                    &["persistentvolumes"],
                ),
                rule(READ, STORAGE, &["storageclasses"]),
                rule(
                    &["get", "list", "patch", "update", "watch"],
                    CORE,
                    &["persistentvolumeclaims"],
                ),
            ],
        ),
        cluster_role("system:skiff:node-agent", skiff_node_agent()),
    ];
    for signer in [
        "kube-apiserver-client",
        "kube-apiserver-client-kubelet",
        "kubelet-serving",
        "legacy-unknown",
    ] {
        roles.push(cluster_role(
            &format!("system:certificates.k8s.io:{signer}-approver"),
            vec![named(
                &["approve"],
                CERTIFICATES,
                &["signers"],
                &[&format!("kubernetes.io/{signer}")],
            )],
        ));
    }
    roles
}

fn aggregate_to_admin() -> Vec<Value> {
    vec![
        rule(&["create"], AUTHORIZATION, &["localsubjectaccessreviews"]),
        rule(READ_WRITE, RBAC, &["rolebindings", "roles"]),
    ]
}

fn aggregate_to_edit() -> Vec<Value> {
    vec![
        rule(
            READ,
            CORE,
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
        ),
        rule(&["impersonate"], CORE, &["serviceaccounts"]),
        rule(
            WRITE,
            CORE,
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
            ],
        ),
        rule(&["create"], CORE, &["pods/eviction"]),
        rule(
            WRITE,
            CORE,
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
        ),
        rule(&["create"], CORE, &["serviceaccounts/token"]),
        rule(
            WRITE,
            APPS,
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
        ),
        rule(WRITE, AUTOSCALING, &["horizontalpodautoscalers"]),
        rule(WRITE, BATCH, &["cronjobs", "jobs"]),
        rule(
            WRITE,
            EXTENSIONS,
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "ingresses",
                "networkpolicies",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale",
            ],
        ),
        rule(WRITE, POLICY, &["poddisruptionbudgets"]),
        rule(WRITE, NETWORKING, &["ingresses", "networkpolicies"]),
        rule(READ_WRITE, COORDINATION, &["leases"]),
    ]
}

fn aggregate_to_view() -> Vec<Value> {
    vec![
        rule(
            READ,
            CORE,
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
        ),
        rule(
            READ,
            CORE,
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
        ),
        rule(READ, CORE, &["namespaces"]),
        rule(READ, DISCOVERY, &["endpointslices"]),
        rule(
            READ,
            APPS,
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
        ),
        rule(
            READ,
            AUTOSCALING,
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        rule(
            READ,
            BATCH,
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
        ),
        rule(
            READ,
            EXTENSIONS,
            &[
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "ingresses",
                "ingresses/status",
                "networkpolicies",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "replicationcontrollers/scale",
            ],
        ),
        rule(
            READ,
            POLICY,
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        rule(
            READ,
            NETWORKING,
            &["ingresses", "ingresses/status", "networkpolicies"],
        ),
    ]
}

/// The rules both leader-elected components start with: events, and their own lease.
fn leader_elected(lease: &str) -> Vec<Value> {
    vec![
        events_rule(),
        rule(&["create"], COORDINATION, &["leases"]),
        named(&["get", "update"], COORDINATION, &["leases"], &[lease]),
    ]
}

fn kube_controller_manager() -> Vec<Value> {
    let mut rules = leader_elected("kube-controller-manager");
    rules.extend([
        rule(&["create"], CORE, &["secrets", "serviceaccounts"]),
        rule(&["delete"], CORE, &["secrets"]),
        rule(
            &["get"],
            CORE,
            &["configmaps", "namespaces", "secrets", "serviceaccounts"],
        ),
        rule(&["update"], CORE, &["secrets", "serviceaccounts"]),
        rule(&["create"], AUTHENTICATION, &["tokenreviews"]),
        rule(&["create"], AUTHORIZATION, &["subjectaccessreviews"]),
        rule(&["list", "watch"], &["*"], &["*"]),
        rule(&["create"], CORE, &["serviceaccounts/token"]),
    ]);
    rules
}

fn kube_scheduler() -> Vec<Value> {
    let mut rules = leader_elected("kube-scheduler");
    rules.extend([
        rule(READ, CORE, &["nodes"]),
        rule(&["delete", "get", "list", "watch"], CORE, &["pods"]),
        rule(&["create"], CORE, &["bindings", "pods/binding"]),
        rule(&["patch", "update"], CORE, &["pods/status"]),
        rule(READ, CORE, &["replicationcontrollers", "services"]),
        rule(READ, &["apps", "extensions"], &["replicasets"]),
        rule(READ, APPS, &["statefulsets"]),
        rule(READ, POLICY, &["poddisruptionbudgets"]),
        rule(READ, CORE, &["persistentvolumeclaims", "persistentvolumes"]),
        rule(&["create"], AUTHENTICATION, &["tokenreviews"]),
        rule(&["create"], AUTHORIZATION, &["subjectaccessreviews"]),
        rule(READ, STORAGE, &["csinodes"]),
        rule(READ, CORE, &["namespaces"]),
        rule(READ, STORAGE, &["csidrivers"]),
        rule(READ, STORAGE, &["csistoragecapacities"]),
    ]);
    rules
}

fn node() -> Vec<Value> {
    vec![
        rule(&["create"], AUTHENTICATION, &["tokenreviews"]),
        rule(
            &["create"],
            AUTHORIZATION,
            &["localsubjectaccessreviews", "subjectaccessreviews"],
        ),
        rule(READ, CORE, &["services"]),
        rule(&["create", "get", "list", "watch"], CORE, &["nodes"]),
        rule(&["patch", "update"], CORE, &["nodes/status"]),
        rule(&["patch", "update"], CORE, &["nodes"]),
        rule(EVENT_WRITE, CORE, &["events"]),
        rule(READ, CORE, &["pods"]),
        rule(&["create", "delete"], CORE, &["pods"]),
        rule(&["patch", "update"], CORE, &["pods/status"]),
        rule(&["create"], CORE, &["pods/eviction"]),
        rule(READ, CORE, &["configmaps", "secrets"]),
        rule(
            &["get"],
            CORE,
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        rule(&["get"], CORE, &["endpoints"]),
        rule(
            &["create", "get", "list", "watch"],
            CERTIFICATES,
            &["certificatesigningrequests"],
        ),
        rule(
            &["create", "delete", "get", "patch", "update"],
            COORDINATION,
            &["leases"],
        ),
        rule(&["get"], STORAGE, &["volumeattachments"]),
        rule(&["create"], CORE, &["serviceaccounts/token"]),
        rule(
            &["get", "patch", "update"],
            CORE,
            &["persistentvolumeclaims/status"],
        ),
        rule(READ, STORAGE, &["csidrivers"]),
        rule(
            &["create", "delete", "get", "patch", "update"],
            STORAGE,
            &["csinodes"],
        ),
        rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
    ]
}

/// skiff's own role (not in Kubernetes): a skiff node agent works with the cluster's join
/// token, as user `system:bootstrap:node` in group `system:bootstrappers`, for all of its
/// API work; it does not yet move to a node certificate (which `system:node` and the node
/// authorizer would cover). These are exactly the calls the agent's components make:
///
/// | group               | resource                        | verbs                | called from |
/// |---------------------|---------------------------------|----------------------|-------------|
/// | ""                  | nodes                           | create, get, patch   | kubelet/src/node.rs (register, status_loop, lease_loop, wait_pod_cidr) |
/// | ""                  | nodes/status                    | patch                | kubelet/src/node.rs (write_status) |
/// | coordination.k8s.io | leases (kube-node-lease)        | create, get, patch   | kubelet/src/node.rs (renew_lease) |
/// | ""                  | pods                            | list, watch          | kubelet/src/lib.rs (watch_pods), proxy/src/dns/watch.rs (cluster DNS) |
/// | ""                  | pods                            | delete               | kubelet/src/worker/teardown.rs (final delete) |
/// | ""                  | pods/status                     | patch                | kubelet/src/worker/report.rs, kubelet/src/lib.rs (reject) |
/// | ""                  | events                          | create               | kubelet/src/events.rs → client/src/events.rs (core/v1 recorder) |
/// | events.k8s.io       | events                          | create, patch        | kubelet/src/local_path/mod.rs → client/src/events.rs (events/v1 recorder, series patched) |
/// | ""                  | configmaps                      | get                  | kubelet/src/volumes.rs, kubelet/src/podspec.rs |
/// | ""                  | secrets                         | get                  | kubelet/src/volumes.rs, kubelet/src/podspec.rs |
/// | ""                  | persistentvolumeclaims          | get                  | kubelet/src/volumes.rs (claim_path) |
/// | ""                  | persistentvolumeclaims          | list, watch          | kubelet/src/local_path/mod.rs (provisioner) |
/// | ""                  | persistentvolumeclaims/status   | patch                | kubelet/src/local_path/mod.rs (resize) |
/// | ""                  | persistentvolumes               | get                  | kubelet/src/volumes.rs, kubelet/src/local_path/mod.rs |
/// | ""                  | persistentvolumes               | create, delete, patch, list, watch | kubelet/src/local_path/mod.rs (provision, reclaim) |
/// | storage.k8s.io      | storageclasses                  | list, watch          | kubelet/src/local_path/mod.rs (class store) |
/// | ""                  | services                        | list, watch          | proxy/src/run.rs (service proxy), proxy/src/dns/watch.rs |
/// | discovery.k8s.io    | endpointslices                  | list, watch          | proxy/src/run.rs, proxy/src/dns/watch.rs |
/// | certificates.k8s.io | certificatesigningrequests      | create, get          | kubelet/src/server/serving_csr.rs (serving certificate) |
fn skiff_node_agent() -> Vec<Value> {
    vec![
        rule(&["create", "get", "patch"], CORE, &["nodes"]),
        rule(&["patch"], CORE, &["nodes/status"]),
        rule(&["create", "get", "patch"], COORDINATION, &["leases"]),
        rule(&["delete", "list", "watch"], CORE, &["pods"]),
        rule(&["patch"], CORE, &["pods/status"]),
        rule(&["create"], CORE, &["events"]),
        rule(&["create", "patch"], &["events.k8s.io"], &["events"]),
        rule(&["get"], CORE, &["configmaps", "secrets"]),
        rule(&["get", "list", "watch"], CORE, &["persistentvolumeclaims"]),
        rule(&["patch"], CORE, &["persistentvolumeclaims/status"]),
        rule(
            &["create", "delete", "get", "list", "patch", "watch"],
            CORE,
            &["persistentvolumes"],
        ),
        rule(&["list", "watch"], STORAGE, &["storageclasses"]),
        rule(&["list", "watch"], CORE, &["services"]),
        rule(&["list", "watch"], DISCOVERY, &["endpointslices"]),
        rule(
            &["create", "get"],
            CERTIFICATES,
            &["certificatesigningrequests"],
        ),
    ]
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    let everyone = || vec![group("system:authenticated")];
    vec![
        cluster_role_binding(
            "cluster-admin",
            "cluster-admin",
            vec![group("system:masters")],
        ),
        cluster_role_binding("system:basic-user", "system:basic-user", everyone()),
        cluster_role_binding("system:discovery", "system:discovery", everyone()),
        cluster_role_binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
        cluster_role_binding(
            "system:kube-dns",
            "system:kube-dns",
            vec![service_account("kube-system", "kube-dns")],
        ),
        cluster_role_binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            vec![user("system:kube-scheduler")],
        ),
        cluster_role_binding(
            "system:monitoring",
            "system:monitoring",
            vec![group("system:monitoring")],
        ),
        // As Kubernetes: nodes are authorized by the node authorizer, the binding is kept
        // with no subjects.
        cluster_role_binding("system:node", "system:node", Vec::new()),
        cluster_role_binding(
            "system:node-proxier",
            "system:node-proxier",
            vec![user("system:kube-proxy")],
        ),
        cluster_role_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![
                group("system:authenticated"),
                group("system:unauthenticated"),
            ],
        ),
        cluster_role_binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            vec![group("system:serviceaccounts")],
        ),
        cluster_role_binding(
            "system:volume-scheduler",
            "system:volume-scheduler",
            vec![user("system:kube-scheduler")],
        ),
        // What kubeadm binds for nodes joining with a bootstrap token.
        cluster_role_binding(
            "system:node-bootstrapper",
            "system:node-bootstrapper",
            vec![group("system:bootstrappers")],
        ),
        // skiff's own: node agents work with the join token (see skiff_node_agent).
        cluster_role_binding(
            "system:skiff:node-agent",
            "system:skiff:node-agent",
            vec![group("system:bootstrappers")],
        ),
    ]
}

/// The default Roles of `kube-system` and `kube-public`.
pub fn roles() -> Vec<Value> {
    let leader_locking = || {
        vec![
            rule(
                &["create", "get", "list", "update", "watch"],
                COORDINATION,
                &["leases"],
            ),
            rule(
                &["create", "get", "list", "update", "watch"],
                COORDINATION,
                &["leasecandidates"],
            ),
        ]
    };
    vec![
        role(
            "kube-public",
            "system:controller:bootstrap-signer",
            vec![
                rule(READ, CORE, &["configmaps"]),
                named(&["update"], CORE, &["configmaps"], &["cluster-info"]),
                events_rule(),
            ],
        ),
        role(
            "kube-system",
            "extension-apiserver-authentication-reader",
            vec![named(
                READ,
                CORE,
                &["configmaps"],
                &["extension-apiserver-authentication"],
            )],
        ),
        role(
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            leader_locking(),
        ),
        role(
            "kube-system",
            "system::leader-locking-kube-scheduler",
            leader_locking(),
        ),
        role(
            "kube-system",
            "system:controller:bootstrap-signer",
            vec![rule(READ, CORE, &["secrets"])],
        ),
        role(
            "kube-system",
            "system:controller:token-cleaner",
            vec![
                rule(&["delete", "get", "list", "watch"], CORE, &["secrets"]),
                events_rule(),
            ],
        ),
    ]
}

/// The default RoleBindings of `kube-system` and `kube-public`.
pub fn role_bindings() -> Vec<Value> {
    let bootstrap_signer = || vec![service_account("kube-system", "bootstrap-signer")];
    vec![
        role_binding(
            "kube-public",
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            bootstrap_signer(),
        ),
        role_binding(
            "kube-system",
            "system::extension-apiserver-authentication-reader",
            "extension-apiserver-authentication-reader",
            vec![
                user("system:kube-controller-manager"),
                user("system:kube-scheduler"),
            ],
        ),
        role_binding(
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            "system::leader-locking-kube-controller-manager",
            vec![
                user("system:kube-controller-manager"),
                service_account("kube-system", "kube-controller-manager"),
                service_account("kube-system", "leader-election-controller"),
            ],
        ),
        role_binding(
            "kube-system",
            "system::leader-locking-kube-scheduler",
            "system::leader-locking-kube-scheduler",
            vec![
                user("system:kube-scheduler"),
                service_account("kube-system", "kube-scheduler"),
            ],
        ),
        role_binding(
            "kube-system",
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            bootstrap_signer(),
        ),
        role_binding(
            "kube-system",
            "system:controller:token-cleaner",
            "system:controller:token-cleaner",
            vec![service_account("kube-system", "token-cleaner")],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::{
        ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding,
    };
    use std::collections::{BTreeMap, HashSet};

    fn typed<T: serde::de::DeserializeOwned>(objects: Vec<Value>) -> Vec<T> {
        objects
            .into_iter()
            .map(|o| {
                let name = o["metadata"]["name"].clone();
                serde_json::from_value(o).unwrap_or_else(|e| panic!("{name}: {e}"))
            })
            .collect()
    }

    fn cluster_role_map() -> BTreeMap<String, ClusterRole> {
        typed::<ClusterRole>(cluster_roles())
            .into_iter()
            .map(|r| (r.metadata.name.clone().unwrap(), r))
            .collect()
    }

    /// The rules of `name` once the aggregation controller has filled the aggregated
    /// roles: its own and those of every role its selectors match, recursively.
    fn effective(roles: &BTreeMap<String, ClusterRole>, name: &str, depth: u32) -> Vec<PolicyRule> {
        assert!(depth < 8, "aggregation cycle through {name}");
        let role = &roles[name];
        let mut rules = role.rules.clone().unwrap_or_default();
        let selectors = role
            .aggregation_rule
            .iter()
            .flat_map(|a| a.cluster_role_selectors.iter().flatten());
        for sel in selectors {
            let want = sel.match_labels.clone().unwrap_or_default();
            for (other, r) in roles {
                let labels = r.metadata.labels.clone().unwrap_or_default();
                if want.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                    rules.extend(effective(roles, other, depth + 1));
                }
            }
        }
        rules
    }

    fn has(list: &Option<Vec<String>>, want: &str) -> bool {
        list.iter().flatten().any(|x| x == "*" || x == want)
    }

    /// Whether `rules` allow `verb` on every object of `group`/`resource`.
    fn allows(rules: &[PolicyRule], verb: &str, group: &str, resource: &str) -> bool {
        rules.iter().any(|r| {
            r.verbs.iter().any(|v| v == "*" || v == verb)
                && has(&r.api_groups, group)
                && has(&r.resources, resource)
                && r.resource_names.as_ref().is_none_or(|n| n.is_empty())
        })
    }

    fn can(role: &str, verb: &str, group: &str, resource: &str) -> bool {
        let roles = cluster_role_map();
        allows(&effective(&roles, role, 0), verb, group, resource)
    }

    #[test]
    fn every_object_is_a_valid_rbac_object() {
        let cr: Vec<ClusterRole> = typed(cluster_roles());
        let crb: Vec<ClusterRoleBinding> = typed(cluster_role_bindings());
        let r: Vec<Role> = typed(roles());
        let rb: Vec<RoleBinding> = typed(role_bindings());
        let metas = cr
            .iter()
            .map(|o| &o.metadata)
            .chain(crb.iter().map(|o| &o.metadata))
            .chain(r.iter().map(|o| &o.metadata))
            .chain(rb.iter().map(|o| &o.metadata));
        for m in metas {
            let name = m.name.as_deref().unwrap();
            let labels = m.labels.clone().unwrap_or_default();
            assert_eq!(
                labels["kubernetes.io/bootstrapping"], "rbac-defaults",
                "{name}"
            );
            let ann = m.annotations.clone().unwrap_or_default();
            assert_eq!(
                ann["rbac.authorization.kubernetes.io/autoupdate"], "true",
                "{name}"
            );
        }
        for o in r
            .iter()
            .map(|o| &o.metadata)
            .chain(rb.iter().map(|o| &o.metadata))
        {
            assert!(matches!(
                o.namespace.as_deref(),
                Some("kube-system" | "kube-public")
            ));
        }
        for o in cluster_roles().iter().chain(&cluster_role_bindings()) {
            assert_eq!(o["apiVersion"], API_VERSION);
            assert!(o["metadata"].get("namespace").is_none());
        }
    }

    #[test]
    fn names_are_unique() {
        let mut seen = HashSet::new();
        for o in cluster_roles() {
            assert!(
                seen.insert(o["metadata"]["name"].to_string()),
                "{}",
                o["metadata"]["name"]
            );
        }
        seen.clear();
        for o in cluster_role_bindings() {
            assert!(
                seen.insert(o["metadata"]["name"].to_string()),
                "{}",
                o["metadata"]["name"]
            );
        }
        for objects in [roles(), role_bindings()] {
            let mut seen = HashSet::new();
            for o in objects {
                let key = (
                    o["metadata"]["namespace"].to_string(),
                    o["metadata"]["name"].to_string(),
                );
                assert!(seen.insert(key.clone()), "{key:?}");
            }
        }
    }

    #[test]
    fn every_binding_names_an_existing_role() {
        let cluster = cluster_role_map();
        for b in typed::<ClusterRoleBinding>(cluster_role_bindings()) {
            assert_eq!(b.role_ref.kind, "ClusterRole");
            assert_eq!(b.role_ref.api_group, RBAC_GROUP);
            assert!(
                cluster.contains_key(&b.role_ref.name),
                "{}",
                b.role_ref.name
            );
        }
        let namespaced: HashSet<(String, String)> = typed::<Role>(roles())
            .into_iter()
            .map(|r| (r.metadata.namespace.unwrap(), r.metadata.name.unwrap()))
            .collect();
        for b in typed::<RoleBinding>(role_bindings()) {
            let key = (
                b.metadata.namespace.clone().unwrap(),
                b.role_ref.name.clone(),
            );
            let found = match b.role_ref.kind.as_str() {
                "Role" => namespaced.contains(&key),
                "ClusterRole" => cluster.contains_key(&b.role_ref.name),
                k => panic!("roleRef kind {k}"),
            };
            assert!(found, "{key:?}");
        }
    }

    #[test]
    fn the_required_roles_and_bindings_are_there() {
        let roles = cluster_role_map();
        for name in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:aggregate-to-admin",
            "system:aggregate-to-edit",
            "system:aggregate-to-view",
            "system:basic-user",
            "system:discovery",
            "system:public-info-viewer",
            "system:monitoring",
            "system:node-bootstrapper",
            "system:node",
            "system:node-proxier",
            "system:kube-scheduler",
            "system:volume-scheduler",
            "system:kube-controller-manager",
            "system:kube-dns",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "system:certificates.k8s.io:kube-apiserver-client-approver",
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            "system:certificates.k8s.io:kubelet-serving-approver",
            "system:certificates.k8s.io:legacy-unknown-approver",
            "system:auth-delegator",
            "system:heapster",
            "system:kubelet-api-admin",
            "system:persistent-volume-provisioner",
            "system:service-account-issuer-discovery",
            "system:skiff:node-agent",
        ] {
            assert!(roles.contains_key(name), "{name}");
        }
        let subjects: BTreeMap<String, Vec<(String, String)>> =
            typed::<ClusterRoleBinding>(cluster_role_bindings())
                .into_iter()
                .map(|b| {
                    let s = b.subjects.unwrap_or_default();
                    let s = s.into_iter().map(|s| (s.kind, s.name)).collect();
                    (b.metadata.name.unwrap(), s)
                })
                .collect();
        let g = |n: &str| ("Group".to_string(), n.to_string());
        let u = |n: &str| ("User".to_string(), n.to_string());
        assert_eq!(subjects["cluster-admin"], [g("system:masters")]);
        assert_eq!(subjects["system:basic-user"], [g("system:authenticated")]);
        assert_eq!(subjects["system:discovery"], [g("system:authenticated")]);
        assert_eq!(
            subjects["system:public-info-viewer"],
            [g("system:authenticated"), g("system:unauthenticated")]
        );
        assert_eq!(
            subjects["system:kube-scheduler"],
            [u("system:kube-scheduler")]
        );
        assert_eq!(
            subjects["system:volume-scheduler"],
            [u("system:kube-scheduler")]
        );
        assert_eq!(
            subjects["system:kube-controller-manager"],
            [u("system:kube-controller-manager")]
        );
        assert_eq!(subjects["system:node-proxier"], [u("system:kube-proxy")]);
        assert_eq!(
            subjects["system:kube-dns"],
            [("ServiceAccount".into(), "kube-dns".into())]
        );
        assert_eq!(
            subjects["system:service-account-issuer-discovery"],
            [g("system:serviceaccounts")]
        );
        assert_eq!(subjects["system:monitoring"], [g("system:monitoring")]);
        assert!(subjects["system:node"].is_empty());
        assert_eq!(
            subjects["system:node-bootstrapper"],
            [g("system:bootstrappers")]
        );
        assert_eq!(
            subjects["system:skiff:node-agent"],
            [g("system:bootstrappers")]
        );
    }

    #[test]
    fn the_user_facing_roles_are_aggregated_and_stored_empty() {
        let roles = cluster_role_map();
        for (name, label) in [
            ("admin", AGGREGATE_TO_ADMIN),
            ("edit", AGGREGATE_TO_EDIT),
            ("view", AGGREGATE_TO_VIEW),
        ] {
            let r = &roles[name];
            assert_eq!(r.rules.as_deref(), Some(&[][..]), "{name}");
            let sel = &r.aggregation_rule.as_ref().unwrap().cluster_role_selectors;
            let labels = sel.as_ref().unwrap()[0].match_labels.clone().unwrap();
            assert_eq!(
                labels,
                BTreeMap::from([(label.to_string(), "true".to_string())])
            );
        }
        let label = |n: &str, l: &str| {
            roles[n]
                .metadata
                .labels
                .as_ref()
                .unwrap()
                .get(l)
                .map(String::as_str)
                == Some("true")
        };
        assert!(label("edit", AGGREGATE_TO_ADMIN));
        assert!(label("view", AGGREGATE_TO_EDIT));
        assert!(label("system:aggregate-to-view", AGGREGATE_TO_VIEW));
    }

    #[test]
    fn spot_checks_against_kubernetes() {
        assert!(can("view", "get", "", "pods"));
        assert!(can("view", "watch", "apps", "deployments"));
        assert!(!can("view", "get", "", "secrets"));
        assert!(!can("view", "create", "", "pods"));
        assert!(!can("view", "get", "rbac.authorization.k8s.io", "roles"));
        assert!(can("edit", "create", "apps", "deployments"));
        assert!(can("edit", "get", "", "secrets"));
        assert!(can("edit", "create", "", "pods/exec"));
        assert!(can("edit", "list", "", "pods"), "edit includes view");
        assert!(!can(
            "edit",
            "create",
            "rbac.authorization.k8s.io",
            "rolebindings"
        ));
        assert!(can(
            "admin",
            "create",
            "rbac.authorization.k8s.io",
            "rolebindings"
        ));
        assert!(
            can("admin", "delete", "apps", "statefulsets"),
            "admin includes edit"
        );
        assert!(can("admin", "get", "", "pods/log"), "admin includes view");
        assert!(!can("admin", "create", "", "nodes"));
        assert!(can(
            "cluster-admin",
            "escalate",
            "rbac.authorization.k8s.io",
            "clusterroles"
        ));
        assert!(can(
            "system:node-bootstrapper",
            "create",
            "certificates.k8s.io",
            "certificatesigningrequests"
        ));
        assert!(!can(
            "system:node-bootstrapper",
            "delete",
            "certificates.k8s.io",
            "certificatesigningrequests"
        ));
        assert!(can("system:kube-scheduler", "create", "", "pods/binding"));
        assert!(can(
            "system:kube-controller-manager",
            "watch",
            "apps",
            "replicasets"
        ));
        assert!(can("system:node", "patch", "", "nodes/status"));
        assert!(!can("system:node", "patch", "", "nodes/proxy"));
        // A resourceNames rule grants only the named objects.
        assert!(!can(
            "system:certificates.k8s.io:kubelet-serving-approver",
            "approve",
            "certificates.k8s.io",
            "signers"
        ));
        let roles = cluster_role_map();
        let approver = &roles["system:certificates.k8s.io:kubelet-serving-approver"];
        assert_eq!(
            approver.rules.as_ref().unwrap()[0]
                .resource_names
                .as_deref(),
            Some(&["kubernetes.io/kubelet-serving".to_string()][..])
        );
        let discovery = &roles["system:discovery"].rules.as_ref().unwrap()[0];
        assert!(has(&discovery.non_resource_urls, "/apis/*"));
        assert!(!has(
            &roles["system:public-info-viewer"].rules.as_ref().unwrap()[0].non_resource_urls,
            "/api"
        ));
    }

    #[test]
    fn rule_lists_are_sorted_as_kubernetes_renders_them() {
        for o in cluster_roles().into_iter().chain(roles()) {
            for r in o["rules"].as_array().unwrap() {
                for field in [
                    "apiGroups",
                    "resources",
                    "verbs",
                    "resourceNames",
                    "nonResourceURLs",
                ] {
                    let Some(list) = r.get(field) else { continue };
                    let list: Vec<&str> = list
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap())
                        .collect();
                    let mut sorted = list.clone();
                    sorted.sort();
                    sorted.dedup();
                    assert_eq!(list, sorted, "{} {field}", o["metadata"]["name"]);
                }
            }
        }
    }

    #[test]
    fn the_node_agent_has_what_the_agent_calls_and_no_more() {
        let agent = |verb: &str, group: &str, resource: &str| {
            can("system:skiff:node-agent", verb, group, resource)
        };
        assert!(agent("create", "", "nodes"));
        assert!(agent("patch", "", "nodes/status"));
        assert!(agent("patch", "coordination.k8s.io", "leases"));
        assert!(agent("watch", "", "pods") && agent("list", "", "pods"));
        assert!(agent("patch", "", "pods/status"));
        assert!(agent("create", "", "events"));
        assert!(agent("patch", "events.k8s.io", "events"));
        assert!(agent("list", "discovery.k8s.io", "endpointslices"));
        assert!(agent(
            "create",
            "certificates.k8s.io",
            "certificatesigningrequests"
        ));
        assert!(!agent("create", "", "pods"));
        assert!(!agent("list", "", "secrets"));
        assert!(!agent("delete", "", "nodes"));
        assert!(!agent(
            "update",
            "certificates.k8s.io",
            "certificatesigningrequests/approval"
        ));
        // Every list in the role also has watch, and the other way round.
        for r in &cluster_role_map()["system:skiff:node-agent"]
            .rules
            .clone()
            .unwrap()
        {
            let v = |x: &str| r.verbs.iter().any(|y| y == x);
            assert_eq!(v("list"), v("watch"), "{:?}", r.resources);
        }
    }
}
