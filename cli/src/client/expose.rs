//! `expose TYPE NAME --port=N [--target-port] [--type] [--name]`: a Service for a pod,
//! Service, ReplicationController, Deployment or ReplicaSet, with its selector and ports
//! taken from the object as kubectl's `expose` takes them.

use std::process::ExitCode;

use anyhow::{Result, bail};
use kube::api::{DynamicObject, PostParams};
use serde_json::{Map, Value, json};

use super::resource;
use super::{Ctx, errors};

/// Flags of `expose`.
#[derive(clap::Args, Debug)]
pub struct ExposeArgs {
    /// `TYPE NAME` or `TYPE/NAME`.
    pub args: Vec<String>,
    /// The port the Service serves on (default: the ports of the exposed object).
    #[arg(long)]
    pub port: Option<String>,
    /// The container port (number or name) the Service sends traffic to (default: the port).
    #[arg(long)]
    pub target_port: Option<String>,
    /// The protocol of the ports (TCP, UDP, SCTP; default: the container ports' own, else TCP).
    #[arg(long)]
    pub protocol: Option<String>,
    /// The Service type: ClusterIP, NodePort, LoadBalancer or ExternalName.
    #[arg(long = "type")]
    pub type_: Option<String>,
    /// The Service's name (default: the exposed object's).
    #[arg(long)]
    pub name: Option<String>,
    /// A label selector for the Service (default: the exposed object's selector).
    #[arg(long)]
    pub selector: Option<String>,
    /// Labels for the Service (default: the exposed object's labels).
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// A fixed cluster IP, or `None` for a headless Service.
    #[arg(long)]
    pub cluster_ip: Option<String>,
    /// `None` or `ClientIP`.
    #[arg(long)]
    pub session_affinity: Option<String>,
    /// The address to ask a load balancer for.
    #[arg(long = "load-balancer-ip")]
    pub load_balancer_ip: Option<String>,
}

/// Runs `expose`.
pub async fn run(ctx: &Ctx, args: ExposeArgs) -> Result<ExitCode> {
    let pairs = resource::split_args(&args.args)?;
    let [(t, Some(name))] = pairs.as_slice() else {
        bail!("You must provide the resource name to expose");
    };
    let res = resource::resolve(&ctx.client, t).await?;
    let api = res.api(
        &ctx.client,
        res.namespaced.then_some(ctx.namespace.as_str()),
    );
    let obj = api
        .get(name)
        .await
        .map_err(|e| errors::with_prefix(e, ""))?;
    let obj = serde_json::to_value(&obj)?;
    let svc = service_for(&res.kind, &obj, &args)?;
    let services = resource::resolve(&ctx.client, "services").await?;
    let created = services
        .api(&ctx.client, Some(&ctx.namespace))
        .create(
            &PostParams::default(),
            &serde_json::from_value::<DynamicObject>(svc)?,
        )
        .await
        .map_err(|e| errors::with_prefix(e, ""))?;
    println!(
        "service/{} exposed",
        created.metadata.name.unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// The selector of an exposable object, as kubectl introspects it.
fn selector_of(kind: &str, obj: &Value) -> Result<Map<String, Value>> {
    let sel = match kind {
        "Pod" => &obj["metadata"]["labels"],
        "Service" | "ReplicationController" => &obj["spec"]["selector"],
        "Deployment" | "ReplicaSet" => {
            let s = &obj["spec"]["selector"];
            if s["matchExpressions"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
            {
                bail!(
                    "couldn't convert expressions - \"{}\" to map-based selector format",
                    serde_json::to_string(&s["matchExpressions"])?
                );
            }
            &s["matchLabels"]
        }
        other => bail!("cannot expose a {other}"),
    };
    match sel.as_object() {
        Some(m) if !m.is_empty() => Ok(m.clone()),
        _ => bail!(
            "couldn't retrieve selectors via --selector flag or introspection: the {} has no selector",
            kind.to_ascii_lowercase()
        ),
    }
}

/// The container (or Service) ports of an exposable object, as (port, name, protocol).
fn ports_of(kind: &str, obj: &Value) -> Vec<(i64, Option<String>, Option<String>)> {
    let one = |p: &Value, key: &str| {
        p[key].as_i64().map(|n| {
            let text = |k: &str| p[k].as_str().map(str::to_string);
            (n, text("name"), text("protocol"))
        })
    };
    let containers = match kind {
        "Service" => {
            return obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| one(p, "port"))
                .collect();
        }
        "Pod" => &obj["spec"]["containers"],
        _ => &obj["spec"]["template"]["spec"]["containers"],
    };
    containers
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .filter_map(|p| one(p, "containerPort"))
        .collect()
}

fn parse_map(text: &str, what: &str) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("invalid {what} spec: {pair}");
        };
        out.insert(k.trim().to_string(), json!(v.trim()));
    }
    Ok(out)
}

fn int_or_string(s: &str) -> Value {
    s.parse::<i64>().map_or_else(|_| json!(s), |n| json!(n))
}

/// The Service `expose` creates for `obj` (of `kind`).
pub fn service_for(kind: &str, obj: &Value, args: &ExposeArgs) -> Result<Value> {
    let selector = match &args.selector {
        Some(s) => parse_map(s, "selector")?,
        None => selector_of(kind, obj)?,
    };
    let found: Vec<(i64, Option<String>, Option<String>)> = match &args.port {
        Some(p) => {
            let Ok(n) = p.parse::<i64>() else {
                bail!("invalid port: {p}");
            };
            vec![(n, None, None)]
        }
        None => ports_of(kind, obj),
    };
    if found.is_empty() && args.type_.as_deref() != Some("ExternalName") {
        bail!("couldn't find port via --port flag or introspection");
    }
    let many = found.len() > 1;
    let ports: Vec<Value> = found
        .iter()
        .enumerate()
        .map(|(i, (port, name, proto))| {
            let mut p = Map::new();
            if many {
                let n = name.clone().unwrap_or_else(|| format!("port-{}", i + 1));
                p.insert("name".into(), json!(n));
            }
            let protocol = args.protocol.clone().or(proto.clone());
            p.insert(
                "protocol".into(),
                json!(protocol.as_deref().unwrap_or("TCP")),
            );
            p.insert("port".into(), json!(port));
            let target = args
                .target_port
                .as_deref()
                .map_or_else(|| json!(port), int_or_string);
            p.insert("targetPort".into(), target);
            Value::Object(p)
        })
        .collect();
    let labels = match &args.labels {
        Some(l) => Value::Object(parse_map(l, "label")?),
        None => obj["metadata"]["labels"].clone(),
    };
    let name = args
        .name
        .clone()
        .or_else(|| obj["metadata"]["name"].as_str().map(str::to_string))
        .unwrap_or_default();
    let mut spec = Map::new();
    spec.insert("ports".into(), Value::Array(ports));
    spec.insert("selector".into(), Value::Object(selector));
    let optional = [
        ("type", &args.type_),
        ("clusterIP", &args.cluster_ip),
        ("sessionAffinity", &args.session_affinity),
        ("loadBalancerIP", &args.load_balancer_ip),
    ];
    for (key, v) in optional {
        if let Some(v) = v {
            spec.insert(key.into(), json!(v));
        }
    }
    let mut meta = json!({"name": name});
    if labels.as_object().is_some_and(|m| !m.is_empty()) {
        meta["labels"] = labels;
    }
    Ok(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ExposeArgs,
    }

    fn args(line: &[&str]) -> ExposeArgs {
        Cli::parse_from(std::iter::once("expose").chain(line.iter().copied())).args
    }

    fn web() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [
                    {"name": "a", "ports": [{"containerPort": 8080, "name": "http"}]},
                    {"name": "b", "ports": [{"containerPort": 9090, "protocol": "UDP"}]}
                ]}}
            }
        })
    }

    #[test]
    fn a_deployment_is_exposed_with_its_selector_and_the_given_port() {
        let a = args(&[
            "deploy",
            "web",
            "--port",
            "80",
            "--target-port",
            "http",
            "--type",
            "NodePort",
        ]);
        let svc = service_for("Deployment", &web(), &a).unwrap();
        assert_eq!(
            svc["metadata"],
            json!({"name": "web", "labels": {"app": "web"}})
        );
        assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(svc["spec"]["type"], "NodePort");
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"protocol": "TCP", "port": 80, "targetPort": "http"}])
        );
    }

    #[test]
    fn without_a_port_the_container_ports_are_exposed_and_named() {
        let svc = service_for("Deployment", &web(), &args(&["deploy", "web"])).unwrap();
        assert_eq!(
            svc["spec"]["ports"],
            json!([
                {"name": "http", "protocol": "TCP", "port": 8080, "targetPort": 8080},
                {"name": "port-2", "protocol": "UDP", "port": 9090, "targetPort": 9090}
            ])
        );
    }

    #[test]
    fn objects_without_selector_or_ports_are_refused_as_kubectl_refuses_them() {
        let mut d = web();
        d["spec"]["selector"] = json!({"matchExpressions": [{"key": "a", "operator": "Exists"}]});
        let err = service_for("Deployment", &d, &args(&["deploy", "web"])).unwrap_err();
        assert!(
            err.to_string().starts_with("couldn't convert expressions"),
            "{err}"
        );
        let pod = json!({"metadata": {"name": "p", "labels": {"run": "p"}}, "spec": {"containers": [{"name": "c"}]}});
        let err = service_for("Pod", &pod, &args(&["pod", "p"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "couldn't find port via --port flag or introspection"
        );
        let svc = service_for(
            "Pod",
            &pod,
            &args(&["pod", "p", "--port", "80", "--name", "q"]),
        )
        .unwrap();
        assert_eq!(svc["metadata"]["name"], "q");
        assert_eq!(svc["spec"]["selector"], json!({"run": "p"}));
    }
}
