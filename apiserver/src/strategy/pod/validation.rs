//! Pod spec validation as `ValidatePodSpec` words it (containers, ports, env, resources,
//! volumes, policies) and the pod update rule that keeps a running pod's spec fixed.
//! Shared by pods (`spec`) and workload templates (`spec.template.spec`).

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use serde_json::{Value, json};
use skiff_api::quantity::Quantity;
use skiff_api::validation::{
    is_dns1123_label, is_env_var_name, is_valid_port_name, is_valid_port_num,
};

use crate::error::Cause;

const QUANTITY_FORMAT: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// `Not found: <value>` (FieldValueNotFound), which `Cause` has no constructor for.
pub(super) fn not_found(field: String, value: &str) -> Cause {
    Cause {
        reason: "FieldValueNotFound",
        field,
        message: format!(
            "Not found: {}",
            skiff_api::validation::render_value(&json!(value))
        ),
    }
}

/// Checks a required string field against a supported set.
fn check_enum(out: &mut Vec<Cause>, field: String, value: Option<&str>, supported: &[&str]) {
    match value {
        None | Some("") => out.push(Cause::required(field)),
        Some(v) if !supported.contains(&v) => {
            out.push(Cause::not_supported(field, &json!(v), supported))
        }
        _ => {}
    }
}

/// Validates a pod spec at `path` (`spec` for pods, `spec.template.spec` for templates).
pub(in crate::strategy) fn validate_pod_spec(
    spec: &PodSpec,
    path: &str,
    _is_pod: bool,
) -> Vec<Cause> {
    let mut out = Vec::new();
    let volumes = validate_volumes(spec, path, &mut out);
    if spec.containers.is_empty() {
        out.push(Cause::required(format!("{path}.containers")));
    }
    let mut names = HashSet::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        validate_container(
            c,
            &format!("{path}.initContainers[{i}]"),
            &volumes,
            &mut names,
            &mut out,
        );
    }
    for (i, c) in spec.containers.iter().enumerate() {
        validate_container(
            c,
            &format!("{path}.containers[{i}]"),
            &volumes,
            &mut names,
            &mut out,
        );
    }
    check_enum(
        &mut out,
        format!("{path}.restartPolicy"),
        spec.restart_policy.as_deref(),
        &["Always", "OnFailure", "Never"],
    );
    check_enum(
        &mut out,
        format!("{path}.dnsPolicy"),
        spec.dns_policy.as_deref(),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    );
    if let Some(v) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&v)
    {
        out.push(Cause::invalid(
            format!("{path}.activeDeadlineSeconds"),
            &json!(v),
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    out
}

/// Volume sources in the order `validateVolumeSource` checks them: (JSON key, the field
/// name its error carries — Kubernetes spells a few differently, typo included).
const VOLUME_SOURCES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

/// One volume's source: exactly one type, and the required names of the kinds the
/// kubelet mounts.
fn validate_volume_source(v: &Value, path: &str, out: &mut Vec<Cause>) {
    let mut count = 0;
    for (key, field) in VOLUME_SOURCES {
        let Some(src) = v.get(*key).filter(|s| !s.is_null()) else {
            continue;
        };
        if count > 0 {
            out.push(Cause::forbidden(
                format!("{path}.{field}"),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let required = match *key {
            "hostPath" => Some("path"),
            "secret" => Some("secretName"),
            "configMap" => Some("name"),
            "persistentVolumeClaim" => Some("claimName"),
            _ => None,
        };
        if let Some(r) = required
            && src.get(r).and_then(Value::as_str).is_none_or(str::is_empty)
        {
            out.push(Cause::required(format!("{path}.{field}.{r}")));
        }
    }
    if count == 0 {
        out.push(Cause::required_detail(path, "must specify a volume type"));
    }
}

/// Validates volume names and sources; returns the names of the valid volumes (mounts of
/// an invalid one are reported as not found, as Kubernetes does).
fn validate_volumes(spec: &PodSpec, path: &str, out: &mut Vec<Cause>) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let mut errs = Vec::new();
        validate_volume_source(&to_json(v), &format!("{path}.volumes[{i}]"), &mut errs);
        let field = format!("{path}.volumes[{i}].name");
        if v.name.is_empty() {
            errs.push(Cause::required(field));
        } else {
            for msg in is_dns1123_label(&v.name) {
                errs.push(Cause::invalid(field.clone(), &json!(v.name), msg));
            }
            if names.contains(&v.name) {
                errs.push(Cause::duplicate(field, &json!(v.name)));
            }
        }
        if errs.is_empty() {
            names.insert(v.name.clone());
        }
        out.extend(errs);
    }
    names
}

/// A probe names exactly one handler; liveness and startup probes succeed once.
fn validate_probe(p: Option<&Probe>, path: &str, single_success: bool, out: &mut Vec<Cause>) {
    let Some(p) = p else { return };
    let handlers = [
        p.exec.is_some(),
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.grpc.is_some(),
    ]
    .into_iter()
    .filter(|h| *h)
    .count();
    match handlers {
        0 => out.push(Cause::required_detail(path, "must specify a handler type")),
        1 => {}
        _ => out.push(Cause::forbidden(
            path,
            "may not specify more than 1 handler type",
        )),
    }
    for (name, v) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if let Some(v) = v.filter(|v| *v < 0) {
            out.push(Cause::invalid(
                format!("{path}.{name}"),
                &json!(v),
                "must be greater than or equal to 0",
            ));
        }
    }
    if single_success && let Some(v) = p.success_threshold.filter(|v| *v != 1) {
        out.push(Cause::invalid(
            format!("{path}.successThreshold"),
            &json!(v),
            "must be 1",
        ));
    }
}

fn validate_container(
    c: &Container,
    path: &str,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    out: &mut Vec<Cause>,
) {
    if c.name.is_empty() {
        out.push(Cause::required(format!("{path}.name")));
    } else {
        for msg in is_dns1123_label(&c.name) {
            out.push(Cause::invalid(format!("{path}.name"), &json!(c.name), msg));
        }
        if !names.insert(c.name.clone()) {
            out.push(Cause::duplicate(format!("{path}.name"), &json!(c.name)));
        }
    }
    match c.image.as_deref() {
        None | Some("") => out.push(Cause::required(format!("{path}.image"))),
        Some(img) if img.trim() != img => out.push(Cause::invalid(
            format!("{path}.image"),
            &json!(img),
            "must not have leading or trailing whitespace",
        )),
        _ => {}
    }
    check_enum(
        out,
        format!("{path}.imagePullPolicy"),
        c.image_pull_policy.as_deref(),
        &["Always", "IfNotPresent", "Never"],
    );
    check_enum(
        out,
        format!("{path}.terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        &["File", "FallbackToLogsOnError"],
    );
    validate_ports(c, path, out);
    validate_probe(
        c.liveness_probe.as_ref(),
        &format!("{path}.livenessProbe"),
        true,
        out,
    );
    validate_probe(
        c.readiness_probe.as_ref(),
        &format!("{path}.readinessProbe"),
        false,
        out,
    );
    validate_probe(
        c.startup_probe.as_ref(),
        &format!("{path}.startupProbe"),
        true,
        out,
    );
    let is_init = path.contains(".initContainers[");
    match c.restart_policy.as_deref() {
        None => {}
        Some(_) if !is_init => out.push(Cause::forbidden(
            format!("{path}.restartPolicy"),
            "may not be set for non-init containers",
        )),
        Some("Always") => {}
        Some(other) => out.push(Cause::not_supported(
            format!("{path}.restartPolicy"),
            &json!(other),
            &["Always"],
        )),
    }
    for (i, e) in c.env.iter().flatten().enumerate() {
        let field = format!("{path}.env[{i}].name");
        if e.name.is_empty() {
            out.push(Cause::required(field));
        } else {
            for msg in is_env_var_name(&e.name) {
                out.push(Cause::invalid(field.clone(), &json!(e.name), msg));
            }
        }
    }
    if let Some(r) = &c.resources {
        validate_resources(r, &format!("{path}.resources"), out);
    }
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let field = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            out.push(Cause::required(format!("{field}.name")));
        } else if !volumes.contains(&m.name) {
            out.push(not_found(format!("{field}.name"), &m.name));
        }
        if m.mount_path.is_empty() {
            out.push(Cause::required(format!("{field}.mountPath")));
        }
    }
}

fn validate_ports(c: &Container, path: &str, out: &mut Vec<Cause>) {
    let mut names = HashSet::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let at = format!("{path}.ports[{i}]");
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    out.push(Cause::invalid(format!("{at}.name"), &json!(name), msg));
                }
            } else if !names.insert(name.to_string()) {
                out.push(Cause::duplicate(format!("{at}.name"), &json!(name)));
            }
        }
        if p.container_port == 0 {
            out.push(Cause::required(format!("{at}.containerPort")));
        } else {
            for msg in is_valid_port_num(i64::from(p.container_port)) {
                out.push(Cause::invalid(
                    format!("{at}.containerPort"),
                    &json!(p.container_port),
                    msg,
                ));
            }
        }
        if let Some(hp) = p.host_port.filter(|h| *h != 0) {
            for msg in is_valid_port_num(i64::from(hp)) {
                out.push(Cause::invalid(format!("{at}.hostPort"), &json!(hp), msg));
            }
        }
        check_enum(
            out,
            format!("{at}.protocol"),
            p.protocol.as_deref(),
            &["SCTP", "TCP", "UDP"],
        );
    }
}

/// Parses every quantity of a resource list, reporting malformed and negative ones.
fn parse_list(
    list: Option<&BTreeMap<String, K8sQuantity>>,
    path: &str,
    out: &mut Vec<Cause>,
) -> BTreeMap<String, (String, i128)> {
    let mut parsed = BTreeMap::new();
    for (name, q) in list.into_iter().flatten() {
        let field = format!("{path}[{name}]");
        match Quantity::parse(&q.0) {
            Err(_) => out.push(Cause::invalid(field, &json!(q.0), QUANTITY_FORMAT)),
            Ok(v) if v.is_negative() => out.push(Cause::invalid(
                field,
                &json!(q.0),
                "must be greater than or equal to 0",
            )),
            Ok(v) => {
                parsed.insert(name.clone(), (q.0.clone(), v.milli_value()));
            }
        }
    }
    parsed
}

/// Quantities well-formed and non-negative, requests no larger than limits.
pub(super) fn validate_resources(r: &ResourceRequirements, path: &str, out: &mut Vec<Cause>) {
    let limits = parse_list(r.limits.as_ref(), &format!("{path}.limits"), out);
    let requests = parse_list(r.requests.as_ref(), &format!("{path}.requests"), out);
    for (name, (text, req)) in &requests {
        if let Some((limit_text, limit)) = limits.get(name)
            && req > limit
        {
            out.push(Cause::invalid(
                format!("{path}.requests"),
                &json!(text),
                format!("must be less than or equal to {name} limit of {limit_text}"),
            ));
        }
    }
}

const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// The pod update rule: only images, activeDeadlineSeconds, added tolerations, removed
/// scheduling gates and a negative grace period raised to 1 may change.
pub(super) fn validate_pod_spec_update(new: &PodSpec, old: &PodSpec) -> Vec<Cause> {
    let mut munged = new.clone();
    if munged.containers.len() == old.containers.len() {
        for (n, o) in munged.containers.iter_mut().zip(&old.containers) {
            n.image.clone_from(&o.image);
        }
    }
    if let (Some(n), Some(o)) = (
        munged.init_containers.as_mut(),
        old.init_containers.as_ref(),
    ) && n.len() == o.len()
    {
        for (n, o) in n.iter_mut().zip(o) {
            n.image.clone_from(&o.image);
        }
    }
    munged.active_deadline_seconds = old.active_deadline_seconds;
    let old_tol = old.tolerations.clone().unwrap_or_default();
    let new_tol = munged.tolerations.clone().unwrap_or_default();
    if old_tol.iter().all(|t| new_tol.contains(t)) {
        munged.tolerations.clone_from(&old.tolerations);
    }
    let old_gates = old.scheduling_gates.clone().unwrap_or_default();
    if munged
        .scheduling_gates
        .iter()
        .flatten()
        .all(|g| old_gates.contains(g))
    {
        munged.scheduling_gates.clone_from(&old.scheduling_gates);
    }
    if old.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    let (n, o) = (
        serde_json::to_value(&munged).unwrap_or_default(),
        serde_json::to_value(old).unwrap_or_default(),
    );
    if n == o {
        return Vec::new();
    }
    let changed: Vec<String> = match (n.as_object(), o.as_object()) {
        (Some(n), Some(o)) => {
            let mut keys: Vec<&String> = n.keys().chain(o.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| n.get(*k) != o.get(*k))
                .map(|k| format!("spec.{k}"))
                .collect()
        }
        _ => Vec::new(),
    };
    vec![Cause::forbidden(
        "spec",
        format!("{POD_UPDATE_FORBIDDEN}\nchanged: {}", changed.join(", ")),
    )]
}

/// A typed value as JSON, for causes that quote it.
pub(in crate::strategy) fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::Strategy;
    use crate::strategy::pod::PodStrategy;

    fn pod(spec: Value) -> Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec});
        PodStrategy.default(&mut p);
        p
    }

    fn causes(spec: Value) -> Vec<Cause> {
        PodStrategy.validate(&pod(spec))
    }

    fn fields(c: &[Cause]) -> Vec<&str> {
        c.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn a_valid_pod_has_no_causes() {
        let c = causes(json!({
            "containers": [{"name": "web", "image": "nginx", "ports": [{"name": "http", "containerPort": 80}],
                "env": [{"name": "A", "value": "1"}],
                "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": "64Mi"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data"}]
        }));
        assert!(c.is_empty(), "{c:?}");
    }

    #[test]
    fn containers_are_required() {
        let c = causes(json!({"containers": []}));
        assert_eq!(fields(&c), ["spec.containers"]);
        assert_eq!(c[0].message, "Required value");
    }

    #[test]
    fn container_names_and_images() {
        let c = causes(
            json!({"containers": [{"name": "Web", "image": "x"}, {"name": "a", "image": ""}, {"name": "a", "image": "y"}]}),
        );
        assert_eq!(
            fields(&c),
            [
                "spec.containers[0].name",
                "spec.containers[1].image",
                "spec.containers[2].name"
            ]
        );
        assert!(
            c[0].message
                .starts_with("Invalid value: \"Web\": a lowercase RFC 1123 label"),
            "{}",
            c[0].message
        );
        assert_eq!(c[1].message, "Required value");
        assert_eq!(c[2].message, "Duplicate value: \"a\"");
    }

    #[test]
    fn ports_env_and_policies() {
        let c = causes(json!({
            "restartPolicy": "Sometimes", "dnsPolicy": "Weird",
            "containers": [{"name": "a", "image": "x", "imagePullPolicy": "Maybe",
                "ports": [{"containerPort": 70000}, {"containerPort": 80, "protocol": "HTTP"}],
                "env": [{"name": "1BAD"}]}]
        }));
        assert_eq!(
            fields(&c),
            [
                "spec.containers[0].imagePullPolicy",
                "spec.containers[0].ports[0].containerPort",
                "spec.containers[0].ports[1].protocol",
                "spec.containers[0].env[0].name",
                "spec.restartPolicy",
                "spec.dnsPolicy",
            ]
        );
        assert_eq!(
            c[0].message,
            "Unsupported value: \"Maybe\": supported values: \"Always\", \"IfNotPresent\", \"Never\""
        );
        assert_eq!(
            c[1].message,
            "Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            c[4].message,
            "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn resources_must_parse_and_requests_fit_limits() {
        let c = causes(json!({"containers": [{"name": "a", "image": "x",
            "resources": {"requests": {"cpu": "2", "memory": "lots"}, "limits": {"cpu": "1"}}}]}));
        assert_eq!(
            fields(&c),
            [
                "spec.containers[0].resources.requests[memory]",
                "spec.containers[0].resources.requests"
            ]
        );
        assert_eq!(
            c[1].message,
            "Invalid value: \"2\": must be less than or equal to cpu limit of 1"
        );
        let neg = causes(
            json!({"containers": [{"name": "a", "image": "x", "resources": {"limits": {"cpu": "-1"}}}]}),
        );
        assert!(
            neg.iter()
                .any(|c| c.field == "spec.containers[0].resources.limits[cpu]"
                    && c.message.ends_with("must be greater than or equal to 0")),
            "{neg:?}"
        );
    }

    #[test]
    fn probes_and_container_restart_policy() {
        let c = causes(
            json!({"containers": [{"name": "a", "image": "x", "restartPolicy": "Always",
            "livenessProbe": {"successThreshold": 2, "httpGet": {"port": 80}},
            "readinessProbe": {"periodSeconds": 5}}]}),
        );
        assert_eq!(
            fields(&c),
            [
                "spec.containers[0].livenessProbe.successThreshold",
                "spec.containers[0].readinessProbe",
                "spec.containers[0].restartPolicy",
            ]
        );
        assert_eq!(c[0].message, "Invalid value: 2: must be 1");
        assert_eq!(c[1].message, "Required value: must specify a handler type");
        let sidecar = causes(
            json!({"initContainers": [{"name": "s", "image": "x", "restartPolicy": "Always"}],
            "containers": [{"name": "a", "image": "x"}]}),
        );
        assert!(sidecar.is_empty(), "{sidecar:?}");
    }

    #[test]
    fn volumes_unique_and_mounts_resolve() {
        let c = causes(
            json!({"containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}],
            "volumes": [{"name": "v"}, {"name": "v"}]}),
        );
        assert_eq!(
            fields(&c),
            [
                "spec.volumes[1].name",
                "spec.containers[0].volumeMounts[0].name"
            ]
        );
        assert_eq!(c[1].reason, "FieldValueNotFound");
        assert_eq!(c[1].message, "Not found: \"nope\"");
    }

    #[test]
    fn a_volume_has_exactly_one_source_with_its_name() {
        let c = causes(json!({
            "containers": [{"name": "a", "image": "x",
                "volumeMounts": [{"name": "two", "mountPath": "/x"}]}],
            "volumes": [
                {"name": "two", "emptyDir": {}, "hostPath": {"path": "/tmp"}},
                {"name": "cm", "configMap": {}},
                {"name": "s", "secret": {}},
                {"name": "h", "hostPath": {"path": ""}}
            ]
        }));
        assert_eq!(
            fields(&c),
            [
                "spec.volumes[0].hostPath",
                "spec.volumes[1].configMap.name",
                "spec.volumes[2].secret.secretName",
                "spec.volumes[3].hostPath.path",
                "spec.containers[0].volumeMounts[0].name"
            ]
        );
        assert_eq!(c[0].reason, "FieldValueForbidden");
        assert_eq!(
            c[0].message,
            "Forbidden: may not specify more than 1 volume type"
        );
        assert_eq!(c[1].message, "Required value");
        // Without the defaulter a volume with no source at all names none.
        let mut out = Vec::new();
        validate_volume_source(&json!({"name": "v"}), "spec.volumes[0]", &mut out);
        assert_eq!(out[0].field, "spec.volumes[0]");
        assert_eq!(out[0].message, "Required value: must specify a volume type");
    }

    #[test]
    fn pod_updates_allow_only_images_and_friends() {
        let old = pod(json!({"containers": [{"name": "a", "image": "x:1"}]}));
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("x:2");
        new["spec"]["activeDeadlineSeconds"] = json!(100);
        assert!(PodStrategy.validate_update(&new, &old).is_empty());
        new["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
        let c = PodStrategy.validate_update(&new, &old);
        assert_eq!(fields(&c), ["spec"]);
        assert!(c[0].message.starts_with(
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
        ));
        assert!(c[0].message.contains("spec.containers"), "{}", c[0].message);
    }
}
