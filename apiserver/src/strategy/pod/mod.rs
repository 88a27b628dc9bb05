//! Pods: defaulting as `SetDefaults_Pod`/`SetDefaults_PodSpec` and the admission plugins
//! that shape every new pod (Priority, DefaultTolerationSeconds), the pod table and field
//! selectors. Pod-spec defaulting here is shared with the workload kinds' templates.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, HTTPGetAction, Lifecycle, LifecycleHandler, Pod, PodIP, PodSpec, PodStatus, Probe,
    Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::table::{AGE, NAME, col, wide};
pub(super) mod status;
pub(super) mod validation;

use super::{Column, Strategy, decode, decode_for_validation, encode};
use crate::error::Cause;

/// Strategy for core/v1 pods.
pub struct PodStrategy;

/// Mode Kubernetes gives projected files when none is set (0644).
const DEFAULT_MODE: i32 = 420;

/// Whether the image reference carries the `latest` tag, explicitly or by omission, as
/// `parsers.ParseImageName` decides it (a digest without a tag has no tag).
fn is_latest(image: &str) -> bool {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => digest.is_none(),
    }
}

fn default_http_get(h: &mut Option<HTTPGetAction>) {
    if let Some(h) = h {
        h.path.get_or_insert_with(|| "/".into());
        h.scheme.get_or_insert_with(|| "HTTP".into());
    }
}

fn default_probe(p: &mut Option<Probe>) {
    if let Some(p) = p {
        p.timeout_seconds.get_or_insert(1);
        p.period_seconds.get_or_insert(10);
        p.success_threshold.get_or_insert(1);
        p.failure_threshold.get_or_insert(3);
        default_http_get(&mut p.http_get);
    }
}

fn default_lifecycle(l: &mut Option<Lifecycle>) {
    if let Some(l) = l {
        for h in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
            let h: &mut LifecycleHandler = h;
            default_http_get(&mut h.http_get);
        }
    }
}

/// `SetDefaults_Container` plus the defaults of what a container holds.
fn default_container(c: &mut Container) {
    // ResourceRequirements is a plain struct in Kubernetes' v1 types: always present.
    c.resources.get_or_insert_with(Default::default);
    if c.image_pull_policy.as_deref().unwrap_or("").is_empty() {
        let latest = is_latest(c.image.as_deref().unwrap_or(""));
        c.image_pull_policy = Some(if latest { "Always" } else { "IfNotPresent" }.into());
    }
    if c.termination_message_path
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        c.termination_message_path = Some("/dev/termination-log".into());
    }
    if c.termination_message_policy
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        c.termination_message_policy = Some("File".into());
    }
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            f.api_version.get_or_insert_with(|| "v1".into());
        }
    }
    default_probe(&mut c.liveness_probe);
    default_probe(&mut c.readiness_probe);
    default_probe(&mut c.startup_probe);
    default_lifecycle(&mut c.lifecycle);
}

/// `SetDefaults_Volume` and the defaults of each volume source.
fn default_volume(v: &mut Volume) {
    let only_name = serde_json::to_value(&*v)
        .ok()
        .and_then(|j| j.as_object().map(|m| m.len() <= 1))
        .unwrap_or(false);
    if only_name {
        v.empty_dir = Some(Default::default());
    }
    if let Some(s) = v.secret.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(c) = v.config_map.as_mut() {
        c.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(p) = v.projected.as_mut() {
        p.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(d) = v.downward_api.as_mut() {
        d.default_mode.get_or_insert(DEFAULT_MODE);
        for item in d.items.iter_mut().flatten() {
            if let Some(f) = item.field_ref.as_mut() {
                f.api_version.get_or_insert_with(|| "v1".into());
            }
        }
    }
    if let Some(h) = v.host_path.as_mut() {
        h.type_.get_or_insert_with(String::new);
    }
}

/// `SetDefaults_PodSpec` and everything nested in a pod spec; applied to pods and to
/// the pod templates of workloads.
pub(super) fn default_pod_spec(spec: &mut PodSpec) {
    if spec.dns_policy.as_deref().unwrap_or("").is_empty() {
        spec.dns_policy = Some("ClusterFirst".into());
    }
    if spec.restart_policy.as_deref().unwrap_or("").is_empty() {
        spec.restart_policy = Some("Always".into());
    }
    spec.security_context.get_or_insert_with(Default::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    if spec.scheduler_name.as_deref().unwrap_or("").is_empty() {
        spec.scheduler_name = Some("default-scheduler".into());
    }
    if spec.host_network == Some(true) {
        // Host-network pods listen on the node: the host port is the container port.
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            for p in c.ports.iter_mut().flatten() {
                if p.host_port.unwrap_or(0) == 0 {
                    p.host_port = Some(p.container_port);
                }
            }
        }
    }
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(c);
    }
    // `serviceAccount` is the deprecated alias of `serviceAccountName`; the v1 conversion
    // reads the old one when the new one is empty and always writes both.
    if spec
        .service_account_name
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        spec.service_account_name = spec.service_account.clone().filter(|s| !s.is_empty());
    }
    if spec.service_account_name.is_some() {
        spec.service_account.clone_from(&spec.service_account_name);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

/// Pod-only defaults (`SetDefaults_Pod`): requests defaulted from limits, service links
/// on; plus the status IP lists kept in step with the single-IP fields.
fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        if let Some(res) = c.resources.as_mut()
            && let Some(limits) = res.limits.clone()
        {
            let requests = res.requests.get_or_insert_with(Default::default);
            for (k, v) in limits {
                requests.entry(k).or_insert(v);
            }
        }
    }
    spec.enable_service_links.get_or_insert(true);
    default_pod_spec(spec);
    if let Some(status) = pod.status.as_mut() {
        sync_ips(status);
    }
}

/// `podIP`/`podIPs` and `hostIP`/`hostIPs` describe the same addresses; whichever a
/// client set fills the other, as the v1 conversion does.
fn sync_ips(status: &mut PodStatus) {
    match (&status.pod_ip, &status.pod_ips) {
        (Some(ip), None) if !ip.is_empty() => status.pod_ips = Some(vec![PodIP { ip: ip.clone() }]),
        (None, Some(ips)) if !ips.is_empty() => status.pod_ip = Some(ips[0].ip.clone()),
        _ => {}
    }
    match (&status.host_ip, &status.host_ips) {
        (Some(ip), None) if !ip.is_empty() => {
            status.host_ips = Some(vec![k8s_openapi::api::core::v1::HostIP { ip: ip.clone() }])
        }
        (None, Some(ips)) if !ips.is_empty() => status.host_ip = Some(ips[0].ip.clone()),
        _ => {}
    }
}

/// The DefaultTolerationSeconds admission plugin: pods tolerate a not-ready or
/// unreachable node for 300s unless they say otherwise.
fn add_default_tolerations(spec: &mut PodSpec) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let covered = tolerations.iter().any(|t| {
            let effect_ok = matches!(t.effect.as_deref(), None | Some("") | Some("NoExecute"));
            let key_ok = t.key.as_deref() == Some(key)
                || (t.key.as_deref().unwrap_or("").is_empty()
                    && t.operator.as_deref() == Some("Exists"));
            effect_ok && key_ok
        });
        if !covered {
            tolerations.push(Toleration {
                effect: Some("NoExecute".into()),
                key: Some(key.into()),
                operator: Some("Exists".into()),
                toleration_seconds: Some(300),
                value: None,
            });
        }
    }
}

/// How long deleting `obj` waits for its kubelet: a pod bound to a node and not yet finished
/// gets the requested grace period, else its `terminationGracePeriodSeconds` (30 by default);
/// any other pod goes at once. `requested` is the client's `gracePeriodSeconds`, or, for a pod
/// already being deleted, its `deletionGracePeriodSeconds`.
fn graceful_period(obj: &Value, requested: Option<i64>) -> i64 {
    let bound = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !bound || finished {
        return 0;
    }
    requested
        .unwrap_or_else(|| {
            obj.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30)
        })
        .max(0)
}

impl Strategy for PodStrategy {
    fn graceful_delete(&self, obj: &Value, requested: Option<i64>) -> i64 {
        graceful_period(obj, requested)
    }

    fn default(&self, obj: &mut Value) {
        super::with_typed::<Pod>(obj, default_pod);
    }

    fn prepare_create(&self, obj: &mut Value) {
        let Some(mut pod) = decode::<Pod>(obj) else {
            return;
        };
        let spec = pod.spec.get_or_insert_with(Default::default);
        // The Priority admission plugin: no priority class means priority 0.
        if spec.priority_class_name.as_deref().unwrap_or("").is_empty() {
            spec.priority.get_or_insert(0);
        }
        spec.preemption_policy
            .get_or_insert_with(|| "PreemptLowerPriority".into());
        add_default_tolerations(spec);
        // The ServiceAccount admission plugin: pods run as `default` unless told otherwise.
        if spec
            .service_account_name
            .as_deref()
            .unwrap_or("")
            .is_empty()
        {
            spec.service_account_name = Some("default".into());
            spec.service_account = Some("default".into());
        }
        let qos = status::qos_class(spec);
        pod.status = Some(PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some(qos.into()),
            ..Default::default()
        });
        encode(&pod, obj);
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        // The Priority admission plugin keeps what it set on create when an update (e.g.
        // a replace from the original manifest) leaves the fields out.
        for field in ["priority", "preemptionPolicy"] {
            if new.pointer(&format!("/spec/{field}")).is_none()
                && let Some(v) = old.pointer(&format!("/spec/{field}")).cloned()
                && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
            {
                spec.insert(field.into(), v);
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        match decode_for_validation::<Pod>(obj) {
            Ok(pod) => validation::validate_pod_spec(&pod.spec.unwrap_or_default(), "spec", true),
            Err(causes) => causes,
        }
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        match (decode::<Pod>(new), decode::<Pod>(old)) {
            (Some(n), Some(o)) => validation::validate_pod_spec_update(
                &n.spec.unwrap_or_default(),
                &o.spec.unwrap_or_default(),
            ),
            _ => Vec::new(),
        }
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Ready",
                "string",
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            wide("IP", "string", "The IP address assigned to the pod"),
            wide("Node", "string", "The node that the pod is assigned to"),
            wide(
                "Nominated Node",
                "string",
                "The node that the pod is nominated to run on",
            ),
            wide(
                "Readiness Gates",
                "string",
                "The readiness gates for this pod",
            ),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        pod_cells(obj, Timestamp::now())
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        match path {
            "spec.nodeName"
            | "spec.restartPolicy"
            | "spec.schedulerName"
            | "spec.serviceAccountName"
            | "status.phase"
            | "status.nominatedNodeName" => super::select(obj, path),
            "spec.hostNetwork" => Some(
                obj.pointer("/spec/hostNetwork")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .to_string(),
            ),
            "status.podIP" => Some(
                obj.pointer("/status/podIPs/0/ip")
                    .or_else(|| obj.pointer("/status/podIP"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            _ => None,
        }
    }
}

/// The pod row at `now`.
fn pod_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let pod: Pod = decode(obj).unwrap_or_default();
    let row = status::summarize(&pod, now);
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let meta: &ObjectMeta = &pod.metadata;
    let or_none = |s: Option<String>| {
        s.filter(|s| !s.is_empty())
            .unwrap_or_else(|| "<none>".into())
    };
    let ip = status
        .pod_ips
        .as_ref()
        .and_then(|i| i.first())
        .map(|i| i.ip.clone())
        .or(status.pod_ip.clone());
    let gates = match spec.readiness_gates.as_deref() {
        Some(g) if !g.is_empty() => {
            let conds = status.conditions.clone().unwrap_or_default();
            let ok = g
                .iter()
                .filter(|gate| {
                    conds
                        .iter()
                        .find(|c| c.type_ == gate.condition_type)
                        .is_some_and(|c| c.status == "True")
                })
                .count();
            format!("{ok}/{}", g.len())
        }
        _ => "<none>".into(),
    };
    vec![
        json!(meta.name.clone().unwrap_or_default()),
        json!(format!("{}/{}", row.ready, row.total)),
        json!(row.reason),
        json!(row.restarts),
        super::table::age(obj, now),
        json!(or_none(ip)),
        json!(or_none(spec.node_name.clone())),
        json!(or_none(status.nominated_node_name.clone())),
        json!(gates),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}
        })
    }

    #[test]
    fn defaults_a_minimal_pod_like_kubernetes() {
        let mut pod = minimal();
        PodStrategy.default(&mut pod);
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["resources"], json!({}));
        assert_eq!(pod["apiVersion"], "v1");
        assert_eq!(pod["kind"], "Pod");
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert!(is_latest("nginx"));
        assert!(is_latest("nginx:latest"));
        assert!(is_latest("localhost:5000/nginx"));
        assert!(!is_latest("localhost:5000/nginx:1.25"));
        assert!(!is_latest("nginx@sha256:abcd"));
        assert!(!is_latest("nginx:1.25"));
    }

    #[test]
    fn defaults_probes_ports_volumes_and_requests() {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {
                "containers": [{
                    "name": "c", "image": "nginx:1.25",
                    "ports": [{"containerPort": 80}],
                    "livenessProbe": {"httpGet": {"port": 80}},
                    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}
                }],
                "volumes": [{"name": "a"}, {"name": "b", "configMap": {"name": "x"}}, {"name": "s", "secret": {"secretName": "x"}}]
            }
        });
        PodStrategy.default(&mut pod);
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        let probe = &c["livenessProbe"];
        assert_eq!(probe["timeoutSeconds"], 1);
        assert_eq!(probe["periodSeconds"], 10);
        assert_eq!(probe["successThreshold"], 1);
        assert_eq!(probe["failureThreshold"], 3);
        assert_eq!(probe["httpGet"]["scheme"], "HTTP");
        assert_eq!(probe["httpGet"]["path"], "/");
        assert_eq!(
            c["resources"]["requests"],
            json!({"cpu": "500m", "memory": "1Gi"})
        );
        let vols = &pod["spec"]["volumes"];
        assert_eq!(vols[0]["emptyDir"], json!({}));
        assert_eq!(vols[1]["configMap"]["defaultMode"], 420);
        assert_eq!(vols[2]["secret"]["defaultMode"], 420);
    }

    #[test]
    fn prepare_create_sets_pending_status_priority_and_tolerations() {
        let mut pod = minimal();
        PodStrategy.default(&mut pod);
        PodStrategy.prepare_create(&mut pod);
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
        assert_eq!(pod["spec"]["priority"], 0);
        assert_eq!(pod["spec"]["preemptionPolicy"], "PreemptLowerPriority");
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert_eq!(pod["spec"]["serviceAccount"], "default");
        let tol = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tol.len(), 2);
        assert_eq!(tol[0]["key"], "node.kubernetes.io/not-ready");
        assert_eq!(tol[1]["tolerationSeconds"], 300);
    }

    #[test]
    fn updates_keep_admission_priority() {
        let mut old = minimal();
        PodStrategy.default(&mut old);
        PodStrategy.prepare_create(&mut old);
        let mut new = minimal();
        PodStrategy.default(&mut new);
        PodStrategy.prepare_update(&mut new, &old);
        assert_eq!(new["spec"]["priority"], 0);
        assert_eq!(new["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    }

    #[test]
    fn selectable_fields() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}]}});
        assert_eq!(
            PodStrategy.field(&pod, "spec.nodeName").as_deref(),
            Some("n1")
        );
        assert_eq!(
            PodStrategy.field(&pod, "status.phase").as_deref(),
            Some("Running")
        );
        assert_eq!(
            PodStrategy.field(&pod, "status.podIP").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            PodStrategy
                .field(&pod, "spec.serviceAccountName")
                .as_deref(),
            Some("")
        );
        assert_eq!(PodStrategy.field(&pod, "spec.bogus"), None);
    }

    #[test]
    fn running_pod_with_one_restart() {
        let now: Timestamp = "2024-01-01T01:00:00Z".parse().unwrap();
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
            "status": {
                "phase": "Running", "podIP": "10.244.0.7", "podIPs": [{"ip": "10.244.0.7"}],
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {"name": "a", "image": "x", "imageID": "", "ready": true, "restartCount": 1,
                     "state": {"running": {"startedAt": "2024-01-01T00:55:00Z"}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:55:00Z"}}},
                    {"name": "b", "image": "y", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"waiting": {"reason": "ContainerCreating"}}}
                ]
            }
        });
        let cells = pod_cells(&pod, now);
        assert_eq!(
            cells,
            vec![
                json!("web"),
                json!("1/2"),
                json!("ContainerCreating"),
                json!("1 (5m ago)"),
                json!("60m"),
                json!("10.244.0.7"),
                json!("node-1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        assert_eq!(PodStrategy.columns().len(), cells.len());
    }

    #[test]
    fn bound_running_pods_wait_for_their_kubelet() {
        let pod = |node: &str, phase: &str| json!({"spec": {"nodeName": node, "terminationGracePeriodSeconds": 10}, "status": {"phase": phase}});
        let st = PodStrategy;
        assert_eq!(st.graceful_delete(&pod("n1", "Running"), None), 10);
        assert_eq!(st.graceful_delete(&pod("n1", "Running"), Some(3)), 3);
        assert_eq!(st.graceful_delete(&pod("n1", "Running"), Some(-1)), 0);
        assert_eq!(
            st.graceful_delete(&json!({"spec": {"nodeName": "n1"}}), None),
            30
        );
        assert_eq!(st.graceful_delete(&pod("", "Pending"), None), 0);
        assert_eq!(st.graceful_delete(&pod("n1", "Succeeded"), None), 0);
        assert_eq!(st.graceful_delete(&pod("n1", "Failed"), Some(5)), 0);
    }
}
