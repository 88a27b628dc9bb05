//! From a Kubernetes container to a runtime [`ContainerConfig`]: command and args over the
//! image's entrypoint and cmd, `$(VAR)` expansion, env and envFrom resolution, resources,
//! security context and volume mounts; plus the pod-level cgroup limits.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Pod, ResourceFieldSelector, ResourceRequirements, Secret,
};
use kube::Api;
use skiff_api::quantity::Quantity;
use skiff_runtime::cgroups::Resources;
use skiff_runtime::container::{MountKind, MountSpec, ProcessSpec, User};
use skiff_runtime::image::ImageConfig;
use skiff_runtime::pod::{ContainerConfig, RootfsSource};

/// Why a container config could not be built (`CreateContainerConfigError`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Whether the pod mounts claim volume `name` read-only (`persistentVolumeClaim.readOnly`).
fn claim_read_only(pod: &Pod, name: &str) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter(|v| v.name == name)
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .any(|c| c.read_only == Some(true))
}

/// What building a container config needs besides the pod and container.
pub struct BuildContext<'a> {
    /// API client for configMaps and secrets.
    pub client: &'a kube::Client,
    /// The pod.
    pub pod: &'a Pod,
    /// The pod's IP.
    pub pod_ip: Option<String>,
    /// The node's IP.
    pub host_ip: String,
    /// The image's config.
    pub image: &'a ImageConfig,
    /// The image's unpacked layers, lowest first; the runtime overlays them into the
    /// container's root filesystem.
    pub layers: &'a [PathBuf],
    /// Volume name → host path.
    pub volumes: &'a BTreeMap<String, PathBuf>,
    /// Whether privileged containers are allowed.
    pub allow_privileged: bool,
    /// The node's allocatable CPU cores and memory (for resourceFieldRef without limits).
    pub node_cpu_memory: (u64, u64),
}

fn quantity(r: Option<&ResourceRequirements>, which: &str, res: &str) -> Option<Quantity> {
    let r = r?;
    let m = if which == "limits" {
        r.limits.as_ref()
    } else {
        r.requests.as_ref()
    }?;
    m.get(res).and_then(|q| Quantity::parse(&q.0).ok())
}

/// CPU request and limit in millicores, memory request and limit in bytes.
pub fn container_resources(c: &Container) -> (Option<u64>, Option<u64>, Option<u64>, Option<u64>) {
    let r = c.resources.as_ref();
    let milli = |q: Option<Quantity>| q.map(|q| q.milli_value().max(0) as u64);
    let bytes = |q: Option<Quantity>| q.map(|q| q.value().max(0) as u64);
    let cpu_lim = milli(quantity(r, "limits", "cpu"));
    let mem_lim = bytes(quantity(r, "limits", "memory"));
    (
        milli(quantity(r, "requests", "cpu")).or(cpu_lim),
        cpu_lim,
        bytes(quantity(r, "requests", "memory")).or(mem_lim),
        mem_lim,
    )
}

/// Pod-level cgroup limits: the sums, when every app container has the limit.
pub fn pod_resources(pod: &Pod) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let rs: Vec<_> = spec.containers.iter().map(container_resources).collect();
    type Four = (Option<u64>, Option<u64>, Option<u64>, Option<u64>);
    let sum =
        |f: fn(&Four) -> Option<u64>| rs.iter().map(f).try_fold(0u64, |acc, v| v.map(|v| acc + v));
    let mut r = Resources::from_kubernetes(sum(|r| r.0), sum(|r| r.1), sum(|r| r.3));
    r.restrict_devices = false;
    r
}

/// The value of a `fieldRef` path.
pub fn field_value(pod: &Pod, path: &str) -> Option<String> {
    let m = &pod.metadata;
    let lookup = |map: Option<&BTreeMap<String, String>>, rest: &str| {
        let key = rest.strip_prefix("['")?.strip_suffix("']")?;
        map.and_then(|m| m.get(key).cloned())
            .or(Some(String::new()))
    };
    let status = pod.status.as_ref();
    match path {
        "metadata.name" => m.name.clone(),
        "metadata.namespace" => m.namespace.clone(),
        "metadata.uid" => m.uid.clone(),
        "spec.nodeName" => pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone()),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()),
        "status.podIPs" => status.and_then(|s| {
            s.pod_ips.as_ref().map(|ips| {
                ips.iter()
                    .map(|i| i.ip.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
        }),
        p if p.starts_with("metadata.labels") => lookup(m.labels.as_ref(), &p[15..]),
        p if p.starts_with("metadata.annotations") => lookup(m.annotations.as_ref(), &p[20..]),
        _ => None,
    }
}

/// The value of a `resourceFieldRef` (limits default to the node's allocatable).
pub fn resource_value(pod: &Pod, rf: &ResourceFieldSelector) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let c = match &rf.container_name {
        Some(n) => spec.containers.iter().find(|c| &c.name == n)?,
        None => spec.containers.first()?,
    };
    resource_value_of(c, rf, (0, 0))
}

fn resource_value_of(
    c: &Container,
    rf: &ResourceFieldSelector,
    node: (u64, u64),
) -> Option<String> {
    let (cr, cl, mr, ml) = container_resources(c);
    let divisor = rf
        .divisor
        .as_ref()
        .and_then(|d| Quantity::parse(&d.0).ok())
        .map(|q| q.nano_value())
        .filter(|d| *d > 0)
        .unwrap_or(1_000_000_000);
    // Values as nano-units, divided and rounded up as Kubernetes does.
    let nanos: i128 = match rf.resource.as_str() {
        "limits.cpu" => cl.unwrap_or(node.0 * 1000) as i128 * 1_000_000,
        "requests.cpu" => cr.unwrap_or(0) as i128 * 1_000_000,
        "limits.memory" => ml.unwrap_or(node.1) as i128 * 1_000_000_000,
        "requests.memory" => mr.unwrap_or(0) as i128 * 1_000_000_000,
        _ => return None,
    };
    Some(((nanos + divisor - 1) / divisor).to_string())
}

/// Expands `$(VAR)` from `env`; `$$` escapes; unknown references stay as written.
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Kubernetes' command rules: command replaces the entrypoint (and drops the image cmd);
/// args replace the cmd.
pub fn command_line(
    c: &Container,
    image: &ImageConfig,
    env: &BTreeMap<String, String>,
) -> Vec<String> {
    let command = c.command.clone().unwrap_or_default();
    let args = c.args.clone().unwrap_or_default();
    let (cmd, args) = match (command.is_empty(), args.is_empty()) {
        (true, true) => (image.entrypoint.clone(), image.cmd.clone()),
        (true, false) => (image.entrypoint.clone(), args),
        (false, true) => (command, Vec::new()),
        (false, false) => (command, args),
    };
    cmd.iter()
        .chain(args.iter())
        .map(|a| expand(a, env))
        .collect()
}

async fn config_map(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<ConfigMap>, ConfigError> {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| ConfigError(format!("reading configmap \"{name}\": {e}")))
}

async fn secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<Secret>, ConfigError> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| ConfigError(format!("reading secret \"{name}\": {e}")))
}

fn secret_map(s: Secret) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = s
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    m.extend(s.string_data.unwrap_or_default());
    m
}

fn valid_env_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The container's environment (envFrom, then env; later entries win), in order.
pub async fn resolve_env(
    ctx: &BuildContext<'_>,
    c: &Container,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(e) = env.iter_mut().find(|(n, _)| *n == k) {
            e.1 = v;
        } else {
            env.push((k, v));
        }
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(r) = &from.config_map_ref {
            match config_map(ctx.client, ns, &r.name).await? {
                Some(cm) => cm.data.unwrap_or_default(),
                None if r.optional == Some(true) => continue,
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        } else if let Some(r) = &from.secret_ref {
            match secret(ctx.client, ns, &r.name).await? {
                Some(s) => secret_map(s),
                None if r.optional == Some(true) => continue,
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        } else {
            continue;
        };
        for (k, v) in data {
            let k = format!("{prefix}{k}");
            if valid_env_name(&k) {
                set(&mut env, k, v);
            }
        }
    }
    for e in c.env.iter().flatten() {
        let current: BTreeMap<String, String> = env.iter().cloned().collect();
        let value = if let Some(v) = &e.value {
            expand(v, &current)
        } else if let Some(src) = &e.value_from {
            if let Some(r) = &src.config_map_key_ref {
                let cm = config_map(ctx.client, ns, &r.name).await?;
                match cm.and_then(|cm| cm.data.and_then(|d| d.get(&r.key).cloned())) {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in ConfigMap {ns}/{}",
                            r.key, r.name
                        )));
                    }
                }
            } else if let Some(r) = &src.secret_key_ref {
                let s = secret(ctx.client, ns, &r.name).await?;
                match s.and_then(|s| secret_map(s).remove(&r.key)) {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in Secret {ns}/{}",
                            r.key, r.name
                        )));
                    }
                }
            } else if let Some(f) = &src.field_ref {
                match f.field_path.as_str() {
                    "status.podIP" => ctx.pod_ip.clone().unwrap_or_default(),
                    "status.podIPs" => ctx.pod_ip.clone().unwrap_or_default(),
                    "status.hostIP" | "status.hostIPs" => ctx.host_ip.clone(),
                    p => field_value(ctx.pod, p)
                        .ok_or_else(|| ConfigError(format!("unsupported fieldRef {p}")))?,
                }
            } else if let Some(rf) = &src.resource_field_ref {
                resource_value_of(c, rf, ctx.node_cpu_memory).unwrap_or_default()
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut env, e.name.clone(), value);
    }
    Ok(env)
}

/// Looks a user or group name up in the container's `/etc/passwd` or `/etc/group`: the
/// topmost layer holding the file is what the container's overlay shows.
fn lookup_id(layers: &[PathBuf], file: &str, name: &str) -> Option<u32> {
    let text = layers
        .iter()
        .rev()
        .find_map(|l| std::fs::read_to_string(l.join("etc").join(file)).ok())?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
    })
}

fn image_user(layers: &[PathBuf], user: &str) -> (Option<u32>, Option<u32>) {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let uid = u.parse().ok().or_else(|| lookup_id(layers, "passwd", u));
    let gid = g.and_then(|g| g.parse().ok().or_else(|| lookup_id(layers, "group", g)));
    (uid, gid)
}

/// Builds the runtime config of container `c`.
pub async fn build(ctx: &BuildContext<'_>, c: &Container) -> Result<ContainerConfig, ConfigError> {
    let pod_sc = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.as_ref();
    if sc.and_then(|s| s.privileged) == Some(true) && !ctx.allow_privileged {
        return Err(ConfigError(format!(
            "container {} is privileged, but privileged containers are not allowed on this node",
            c.name
        )));
    }
    let env = resolve_env(ctx, c).await?;
    let mut env_map: BTreeMap<String, String> = BTreeMap::new();
    let mut full_env: Vec<String> = Vec::new();
    for kv in &ctx.image.env {
        if let Some((k, v)) = kv.split_once('=') {
            env_map.insert(k.into(), v.into());
        }
    }
    for (k, v) in &env {
        env_map.insert(k.clone(), v.clone());
    }
    for kv in &ctx.image.env {
        if let Some((k, _)) = kv.split_once('=')
            && !env.iter().any(|(n, _)| n == k)
        {
            full_env.push(kv.clone());
        }
    }
    full_env.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    if !env_map.contains_key("HOSTNAME") {
        let host = ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.hostname.clone())
            .or_else(|| ctx.pod.metadata.name.clone())
            .unwrap_or_default();
        full_env.push(format!("HOSTNAME={host}"));
    }
    let args = command_line(c, ctx.image, &env_map);
    if args.is_empty() {
        return Err(ConfigError(format!(
            "container {}: no command specified",
            c.name
        )));
    }

    let (img_uid, img_gid) = ctx
        .image
        .user
        .as_deref()
        .filter(|u| !u.is_empty())
        .map_or((None, None), |u| image_user(ctx.layers, u));
    let uid = sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|s| s.run_as_user))
        .map(|u| u as u32)
        .or(img_uid)
        .unwrap_or(0);
    let gid = sc
        .and_then(|s| s.run_as_group)
        .or(pod_sc.and_then(|s| s.run_as_group))
        .map(|g| g as u32)
        .or(img_gid)
        .unwrap_or(0);
    if sc
        .and_then(|s| s.run_as_non_root)
        .or(pod_sc.and_then(|s| s.run_as_non_root))
        == Some(true)
        && uid == 0
    {
        return Err(ConfigError(
            "container has runAsNonRoot and image will run as root".into(),
        ));
    }
    let mut additional_gids: Vec<u32> = pod_sc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|g| g as u32)
        .collect();
    if let Some(fs) = pod_sc.and_then(|s| s.fs_group) {
        additional_gids.push(fs as u32);
    }

    let mut mounts = Vec::new();
    for vm in c.volume_mounts.iter().flatten() {
        let Some(src) = ctx.volumes.get(&vm.name) else {
            return Err(ConfigError(format!(
                "volume mount {} refers to an unknown volume",
                vm.name
            )));
        };
        let mut source = src.clone();
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sub.split('/').any(|p| p == "..") || sub.starts_with('/') {
                return Err(ConfigError(format!("invalid subPath {sub:?}")));
            }
            source = source.join(sub);
            if !source.exists() {
                std::fs::create_dir_all(&source)
                    .map_err(|e| ConfigError(format!("creating subPath {sub}: {e}")))?;
            }
        }
        mounts.push(MountSpec {
            destination: PathBuf::from(&vm.mount_path),
            kind: MountKind::Bind {
                source,
                readonly: vm.read_only.unwrap_or(false) || claim_read_only(ctx.pod, &vm.name),
            },
        });
    }

    let (cr, cl, _mr, ml) = container_resources(c);
    let privileged = sc.and_then(|s| s.privileged) == Some(true);
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let cap_name = |c: &String| {
        if c.eq_ignore_ascii_case("ALL") || c.starts_with("CAP_") {
            c.clone()
        } else {
            format!("CAP_{c}")
        }
    };
    let mut add: Vec<String> = caps
        .and_then(|c| c.add.as_ref())
        .map(|v| v.iter().map(cap_name).collect())
        .unwrap_or_default();
    let drop: Vec<String> = caps
        .and_then(|c| c.drop.as_ref())
        .map(|v| v.iter().map(cap_name).collect())
        .unwrap_or_default();
    if privileged {
        add = vec!["ALL".into()];
    }
    let mut resources = Resources::from_kubernetes(cr, cl, ml);
    resources.restrict_devices = !privileged;
    Ok(ContainerConfig {
        name: c.name.clone(),
        rootfs: RootfsSource::Image {
            layers: ctx.layers.to_vec(),
        },
        process: ProcessSpec {
            args,
            env: full_env,
            cwd: c
                .working_dir
                .clone()
                .or(ctx.image.working_dir.clone())
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into()),
            user: User {
                uid,
                gid,
                additional_gids,
            },
            rlimits: Vec::new(),
        },
        mounts,
        resources,
        readonly_rootfs: sc.and_then(|s| s.read_only_root_filesystem) == Some(true),
        log_path: None,
        add_capabilities: add,
        drop_capabilities: if privileged { Vec::new() } else { drop },
        stdio: skiff_runtime::container::StdioSpec {
            stdin: c.stdin == Some(true),
            stdin_once: c.stdin_once == Some(true),
            tty: c.tty == Some(true),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn command_rules_follow_kubernetes() {
        let img = ImageConfig {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["c1".into()],
            ..Default::default()
        };
        let env = BTreeMap::from([("X".to_string(), "1".to_string())]);
        let c = |v| command_line(&container(v), &img, &env);
        assert_eq!(c(serde_json::json!({"name": "a"})), ["/ep", "c1"]);
        assert_eq!(
            c(serde_json::json!({"name": "a", "args": ["a$(X)"]})),
            ["/ep", "a1"]
        );
        assert_eq!(
            c(serde_json::json!({"name": "a", "command": ["/bin/x"]})),
            ["/bin/x"]
        );
        assert_eq!(
            c(serde_json::json!({"name": "a", "command": ["/bin/x"], "args": ["$$(X)", "$(Y)"]})),
            ["/bin/x", "$(X)", "$(Y)"]
        );
    }

    #[test]
    fn resource_field_refs_round_up() {
        let c = container(
            serde_json::json!({"name": "a", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}}),
        );
        let rf = |res: &str, div: Option<&str>| ResourceFieldSelector {
            resource: res.into(),
            divisor: div.map(|d| k8s_openapi::apimachinery::pkg::api::resource::Quantity(d.into())),
            container_name: None,
        };
        assert_eq!(
            resource_value_of(&c, &rf("limits.cpu", None), (4, 0)).unwrap(),
            "1"
        );
        assert_eq!(
            resource_value_of(&c, &rf("limits.cpu", Some("1m")), (4, 0)).unwrap(),
            "250"
        );
        assert_eq!(
            resource_value_of(&c, &rf("limits.memory", Some("1Mi")), (4, 0)).unwrap(),
            "64"
        );
    }
}
