//! `port-forward TYPE/NAME [LOCAL:]REMOTE...`: local ports that reach a pod's ports through
//! the API server (`pods/portforward`, the WebSocket channel protocol), as kubectl's. A
//! Service, Deployment, ReplicaSet or StatefulSet names one of its running pods, and a
//! Service's port is translated to the pod's target port (by number or by container port
//! name), as kubectl does. Each local connection gets its own forwarding session.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

use super::Ctx;

/// Flags of `port-forward`.
#[derive(clap::Args, Debug)]
pub struct PortForwardArgs {
    /// `POD`, `pod/NAME`, `svc/NAME`, `deploy/NAME`, `rs/NAME` or `sts/NAME`.
    pub target: String,
    /// `[LOCAL:]REMOTE` port pairs; `:REMOTE` or `0:REMOTE` picks a free local port.
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// Local addresses to listen on (comma-separated; `localhost` is 127.0.0.1).
    #[arg(long, default_value = "localhost", value_delimiter = ',')]
    pub address: Vec<String>,
}

/// A local port and the remote port (a number, or a Service port name) it forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Local port (0: any).
    pub local: u16,
    /// Remote port as written.
    pub remote: String,
}

/// Parses `[LOCAL:]REMOTE` as kubectl does: `8080`, `8080:80`, `:80`, `0:http`.
pub fn parse_port(spec: &str) -> Result<PortSpec> {
    let (local, remote) = match spec.split_once(':') {
        Some((l, r)) => (l, r),
        None => (spec, spec),
    };
    if remote.is_empty() {
        bail!("remote port must be > 0");
    }
    let local = if local.is_empty() {
        0
    } else {
        local
            .parse::<u16>()
            .with_context(|| format!("error parsing local port '{local}'"))?
    };
    if remote.chars().all(|c| c.is_ascii_digit()) && remote.parse::<u16>().is_err() {
        bail!("error parsing remote port '{remote}'");
    }
    if remote == "0" {
        bail!("remote port must be > 0");
    }
    // A bare name means the same port locally only for numbers.
    let local = if !spec.contains(':') && remote.parse::<u16>().is_err() {
        0
    } else {
        local
    };
    Ok(PortSpec {
        local,
        remote: remote.to_string(),
    })
}

/// The number a remote port names on `pod`: a number as is, or a container port's name.
fn container_port(pod: &Value, port: &str) -> Result<u16> {
    if let Ok(n) = port.parse::<u16>() {
        return Ok(n);
    }
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"].as_str() == Some(port))
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
        .with_context(|| {
            format!(
                "Pod '{}' does not have a named port '{port}'",
                pod["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
}

/// A Service port (number or name) translated to the pod port it targets.
fn service_target(svc: &Value, pod: &Value, port: &str) -> Result<u16> {
    let svc_name = svc["metadata"]["name"].as_str().unwrap_or_default();
    let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let found = ports.iter().find(|p| {
        p["name"].as_str() == Some(port)
            || p["port"].as_u64().map(|n| n.to_string()).as_deref() == Some(port)
    });
    let Some(sp) = found else {
        bail!("Service {svc_name} does not have a service port {port}");
    };
    match &sp["targetPort"] {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .context("targetPort out of range"),
        Value::String(name) => container_port(pod, name),
        _ => sp["port"]
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .context("service port out of range"),
    }
}

fn running(p: &Value) -> bool {
    p["status"]["phase"].as_str() == Some("Running") && p["metadata"]["deletionTimestamp"].is_null()
}

/// The pod a target names, with the object it came from when it was not a pod.
async fn resolve(ctx: &Ctx, target: &str) -> Result<(Value, Option<Value>)> {
    let (kind, name) = target.split_once('/').unwrap_or(("pod", target));
    let ns = &ctx.namespace;
    let get = |path: String| async move {
        let req = http::Request::get(path).body(Vec::new())?;
        let v: Value = ctx.client.request(req).await?;
        anyhow::Ok(v)
    };
    let path = match kind {
        "pod" | "pods" | "po" => {
            return Ok((
                get(format!("/api/v1/namespaces/{ns}/pods/{name}")).await?,
                None,
            ));
        }
        "svc" | "service" | "services" => format!("/api/v1/namespaces/{ns}/services/{name}"),
        "deploy" | "deployment" | "deployments" => {
            format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}")
        }
        "rs" | "replicaset" | "replicasets" => {
            format!("/apis/apps/v1/namespaces/{ns}/replicasets/{name}")
        }
        "sts" | "statefulset" | "statefulsets" => {
            format!("/apis/apps/v1/namespaces/{ns}/statefulsets/{name}")
        }
        other => bail!("cannot attach to {other}: not implemented"),
    };
    let owner = get(path).await?;
    let labels = if kind.starts_with("svc") || kind.starts_with("service") {
        owner["spec"]["selector"].clone()
    } else {
        owner["spec"]["selector"]["matchLabels"].clone()
    };
    let selector: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if selector.is_empty() {
        bail!("cannot attach to {kind}/{name}: it has no selector");
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&selector.join(",")))
        .await?;
    let pod = list
        .items
        .into_iter()
        .map(|p| serde_json::to_value(p).unwrap_or_default())
        .filter(running)
        .min_by_key(|p| {
            p["metadata"]["creationTimestamp"]
                .as_str()
                .map(str::to_string)
        })
        .with_context(|| format!("no running pod for {kind}/{name}"))?;
    Ok((pod, Some(owner)))
}

fn bind_addresses(names: &[String]) -> Result<Vec<IpAddr>> {
    names
        .iter()
        .map(|a| match a.as_str() {
            "localhost" => Ok(IpAddr::from([127, 0, 0, 1])),
            other => other
                .parse()
                .with_context(|| format!("{other} is not a valid IP")),
        })
        .collect()
}

/// Runs `port-forward` until interrupted.
pub async fn run(ctx: &Ctx, args: PortForwardArgs) -> Result<ExitCode> {
    let specs: Vec<PortSpec> = args
        .ports
        .iter()
        .map(|p| parse_port(p))
        .collect::<Result<_>>()?;
    let addresses = bind_addresses(&args.address)?;
    let (pod, owner) = resolve(ctx, &args.target).await?;
    if !running(&pod) {
        bail!(
            "unable to forward port because pod is not running. Current status={}",
            pod["status"]["phase"].as_str().unwrap_or("Unknown")
        );
    }
    let pod_name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let mut tasks = tokio::task::JoinSet::new();
    for spec in &specs {
        let remote = match &owner {
            Some(o) if o["kind"] == "Service" => service_target(o, &pod, &spec.remote)?,
            _ => container_port(&pod, &spec.remote)?,
        };
        // One local port for every address: the first bind picks it when asked for any.
        let mut local = spec.local;
        for ip in &addresses {
            let listener = tokio::net::TcpListener::bind(SocketAddr::new(*ip, local))
                .await
                .with_context(|| format!("unable to listen on port {local}"))?;
            let bound = listener.local_addr()?;
            local = bound.port();
            println!("Forwarding from {bound} -> {remote}");
            let (pods, pod_name) = (pods.clone(), pod_name.clone());
            tasks.spawn(accept(listener, pods, pod_name, remote));
        }
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(ExitCode::SUCCESS),
        Some(done) = tasks.join_next() => {
            done??;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    pods: Api<Pod>,
    pod: String,
    remote: u16,
) -> Result<()> {
    let local = listener.local_addr()?.port();
    loop {
        let (mut conn, _) = listener.accept().await?;
        println!("Handling connection for {local}");
        let (pods, pod) = (pods.clone(), pod.clone());
        tokio::spawn(async move {
            let result = async {
                let mut forwarder = pods.portforward(&pod, &[remote]).await?;
                let mut upstream = forwarder
                    .take_stream(remote)
                    .context("the forwarding session has no stream for the port")?;
                let error = forwarder.take_error(remote);
                tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
                drop(upstream);
                if let Some(error) = error
                    && let Some(message) = error.await
                {
                    bail!("{message}");
                }
                anyhow::Ok(())
            }
            .await;
            if let Err(e) = result {
                eprintln!(
                    "E port-forward: an error occurred forwarding {local} -> {remote}: {e:#}"
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ports_parse_as_kubectl_writes_them() {
        let p = |s| parse_port(s).unwrap();
        assert_eq!(
            p("8080"),
            PortSpec {
                local: 8080,
                remote: "8080".into()
            }
        );
        assert_eq!(
            p("9000:80"),
            PortSpec {
                local: 9000,
                remote: "80".into()
            }
        );
        assert_eq!(
            p(":80"),
            PortSpec {
                local: 0,
                remote: "80".into()
            }
        );
        assert_eq!(
            p("0:http"),
            PortSpec {
                local: 0,
                remote: "http".into()
            }
        );
        assert!(parse_port("70000:80").is_err());
        assert!(parse_port("80:").is_err());
        assert!(parse_port("1:0").is_err());
    }

    #[test]
    fn service_ports_translate_to_target_ports() {
        let pod = json!({"metadata": {"name": "web-1"}, "spec": {"containers": [
            {"name": "c", "ports": [{"name": "web", "containerPort": 8080}]}]}});
        let svc = json!({"kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "metrics", "port": 9100, "targetPort": 9101},
            {"name": "plain", "port": 7000}]}});
        assert_eq!(service_target(&svc, &pod, "http").unwrap(), 8080);
        assert_eq!(service_target(&svc, &pod, "80").unwrap(), 8080);
        assert_eq!(service_target(&svc, &pod, "9100").unwrap(), 9101);
        assert_eq!(service_target(&svc, &pod, "plain").unwrap(), 7000);
        let err = service_target(&svc, &pod, "81").unwrap_err().to_string();
        assert_eq!(err, "Service web does not have a service port 81");
        let err = container_port(&pod, "nope").unwrap_err().to_string();
        assert_eq!(err, "Pod 'web-1' does not have a named port 'nope'");
    }
}
