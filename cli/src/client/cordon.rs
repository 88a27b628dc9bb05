//! `cordon` and `uncordon NODE...`: `spec.unschedulable` through a strategic merge patch.

use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::Ctx;
use super::patch::send_patch;
use super::resource::{self, Res};

/// Flags of `cordon` and `uncordon`.
#[derive(clap::Args, Debug)]
pub struct CordonArgs {
    /// Node names.
    pub nodes: Vec<String>,
    /// Select nodes by label instead of by name.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

fn nodes_res() -> Res {
    resource::resolve_local("nodes").expect("nodes are built in")
}

/// Sets `spec.unschedulable` on one node, printing kubectl's line; returns whether it
/// changed anything.
pub async fn set_unschedulable(ctx: &Ctx, node: &Value, desired: bool) -> Result<()> {
    let res = nodes_res();
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    let word = if desired { "cordoned" } else { "uncordoned" };
    if (node["spec"]["unschedulable"] == true) == desired {
        println!("node/{name} already {word}");
        return Ok(());
    }
    let value = if desired { json!(true) } else { Value::Null };
    send_patch(
        &ctx.client,
        &res,
        None,
        name,
        None,
        "application/strategic-merge-patch+json",
        &json!({"spec": {"unschedulable": value}}),
    )
    .await?;
    println!("node/{name} {word}");
    Ok(())
}

/// The nodes named, or selected by label.
pub async fn select_nodes(
    ctx: &Ctx,
    names: &[String],
    selector: Option<&str>,
) -> Result<Vec<Value>> {
    let api = nodes_res().api(&ctx.client, None);
    if let Some(sel) = selector {
        let list = api
            .list(&kube::api::ListParams::default().labels(sel))
            .await?;
        return list
            .items
            .iter()
            .map(|n| Ok(serde_json::to_value(n)?))
            .collect();
    }
    if names.is_empty() {
        bail!("resource(s) were provided, but no name was specified");
    }
    let mut out = Vec::new();
    for n in names {
        let n = n
            .strip_prefix("node/")
            .or(n.strip_prefix("nodes/"))
            .unwrap_or(n);
        out.push(serde_json::to_value(api.get(n).await?)?);
    }
    Ok(out)
}

/// Runs `cordon` (`desired == true`) or `uncordon`.
pub async fn run(ctx: &Ctx, args: CordonArgs, desired: bool) -> Result<ExitCode> {
    for node in select_nodes(ctx, &args.nodes, args.selector.as_deref()).await? {
        set_unschedulable(ctx, &node, desired).await?;
    }
    Ok(ExitCode::SUCCESS)
}
