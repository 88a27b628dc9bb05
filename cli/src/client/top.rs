//! `top nodes|pods`: CPU and memory from `metrics.k8s.io`, printed in kubectl top's
//! columns (millicores and Mi, node percentages of allocatable).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use skiff_api::quantity::Quantity;

use super::Ctx;
use super::tabwriter::tabwrite;

/// Flags of `top`.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// `nodes` (`node`, `no`) or `pods` (`pod`, `po`), then an optional name.
    pub args: Vec<String>,
    /// Label selector to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Pods of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// One line per container.
    #[arg(long)]
    pub containers: bool,
    /// Leave out the header line.
    #[arg(long)]
    pub no_headers: bool,
}

fn quantity(v: &Value) -> Quantity {
    v.as_str()
        .and_then(|s| Quantity::parse(s).ok())
        .unwrap_or_else(|| Quantity::from_milli(0))
}

fn cpu_cell(q: &Quantity) -> String {
    format!("{}m", q.milli_value())
}

fn memory_cell(q: &Quantity) -> String {
    format!("{}Mi", q.value() / (1024 * 1024))
}

async fn get(ctx: &Ctx, path: &str) -> Result<Value> {
    let req = http::Request::get(path).body(Vec::new())?;
    ctx.client.request::<Value>(req).await.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 404 || s.code == 503 => {
            anyhow::anyhow!("Metrics API not available: {}", s.message)
        }
        e => e.into(),
    })
}

fn query(selector: Option<&str>) -> String {
    match selector {
        Some(s) => format!(
            "?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("labelSelector", s)
                .finish()
        ),
        None => String::new(),
    }
}

fn items(v: Value) -> Vec<Value> {
    match v["items"].as_array() {
        Some(items) => items.clone(),
        None if v.is_object() => vec![v],
        None => Vec::new(),
    }
}

async fn nodes(ctx: &Ctx, args: &TopArgs, name: Option<&str>) -> Result<String> {
    let path = match name {
        Some(n) => format!("/apis/metrics.k8s.io/v1beta1/nodes/{n}"),
        None => format!(
            "/apis/metrics.k8s.io/v1beta1/nodes{}",
            query(args.selector.as_deref())
        ),
    };
    let metrics = items(get(ctx, &path).await?);
    let nodes = ctx
        .client
        .request::<Value>(http::Request::get("/api/v1/nodes").body(Vec::new())?)
        .await?;
    let mut out = String::new();
    if !args.no_headers {
        out.push_str("NAME\tCPU(cores)\tCPU(%)\tMEMORY(bytes)\tMEMORY(%)\n");
    }
    for m in &metrics {
        let name = m["metadata"]["name"].as_str().unwrap_or_default();
        let (cpu, mem) = (
            quantity(&m["usage"]["cpu"]),
            quantity(&m["usage"]["memory"]),
        );
        let node = nodes["items"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["metadata"]["name"] == name));
        let pct = |used: i128, resource: &str, milli: bool| {
            let alloc = node
                .map(|n| quantity(&n["status"]["allocatable"][resource]))
                .map(|q| if milli { q.milli_value() } else { q.value() })
                .unwrap_or(0);
            if alloc > 0 {
                format!("{}%", used * 100 / alloc)
            } else {
                "<unknown>".to_string()
            }
        };
        out.push_str(&format!(
            "{name}\t{}\t{}\t{}\t{}\n",
            cpu_cell(&cpu),
            pct(cpu.milli_value(), "cpu", true),
            memory_cell(&mem),
            pct(mem.value(), "memory", false)
        ));
    }
    if metrics.is_empty() {
        bail!("metrics not available yet");
    }
    Ok(out)
}

async fn pods(ctx: &Ctx, args: &TopArgs, name: Option<&str>) -> Result<String> {
    let base = "/apis/metrics.k8s.io/v1beta1";
    let ns = &ctx.namespace;
    let path = match (name, args.all_namespaces) {
        (Some(n), _) => format!("{base}/namespaces/{ns}/pods/{n}"),
        (None, true) => format!("{base}/pods{}", query(args.selector.as_deref())),
        (None, false) => format!(
            "{base}/namespaces/{ns}/pods{}",
            query(args.selector.as_deref())
        ),
    };
    let metrics = items(get(ctx, &path).await?);
    if metrics.is_empty() {
        if args.all_namespaces {
            bail!("No resources found");
        }
        bail!("No resources found in {ns} namespace.");
    }
    let all = args.all_namespaces && name.is_none();
    let mut out = String::new();
    if !args.no_headers {
        if all {
            out.push_str("NAMESPACE\t");
        }
        out.push_str(if args.containers {
            "POD\tNAME\tCPU(cores)\tMEMORY(bytes)\n"
        } else {
            "NAME\tCPU(cores)\tMEMORY(bytes)\n"
        });
    }
    for m in &metrics {
        let pod = m["metadata"]["name"].as_str().unwrap_or_default();
        let prefix = if all {
            format!(
                "{}\t",
                m["metadata"]["namespace"].as_str().unwrap_or_default()
            )
        } else {
            String::new()
        };
        let containers = m["containers"].as_array().cloned().unwrap_or_default();
        if args.containers {
            for c in &containers {
                out.push_str(&format!(
                    "{prefix}{pod}\t{}\t{}\t{}\n",
                    c["name"].as_str().unwrap_or_default(),
                    cpu_cell(&quantity(&c["usage"]["cpu"])),
                    memory_cell(&quantity(&c["usage"]["memory"]))
                ));
            }
        } else {
            let cpu: i128 = containers
                .iter()
                .map(|c| quantity(&c["usage"]["cpu"]).nano_value())
                .sum();
            let mem: i128 = containers
                .iter()
                .map(|c| quantity(&c["usage"]["memory"]).value())
                .sum();
            out.push_str(&format!(
                "{prefix}{pod}\t{}m\t{}Mi\n",
                cpu / 1_000_000,
                mem / (1024 * 1024)
            ));
        }
    }
    Ok(out)
}

/// Runs `top`.
pub async fn run(ctx: &Ctx, args: TopArgs) -> Result<ExitCode> {
    let (kind, name) = match args.args.as_slice() {
        [kind] => (kind.as_str(), None),
        [kind, name] => (kind.as_str(), Some(name.as_str())),
        _ => bail!("usage: skiff top (nodes|pods) [NAME] [-l SELECTOR] [-A] [--containers]"),
    };
    let text = match kind {
        "node" | "nodes" | "no" => nodes(ctx, &args, name).await,
        "pod" | "pods" | "po" => pods(ctx, &args, name).await,
        other => bail!("unknown command \"{other}\" for \"skiff top\": use nodes or pods"),
    }
    .context("top")?;
    print!("{}", tabwrite(&text, 3));
    Ok(ExitCode::SUCCESS)
}
