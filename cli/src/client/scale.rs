//! `scale TYPE NAME --replicas=N`: a merge patch of the `scale` subresource, or, with a
//! `--current-replicas`/`--resource-version` precondition, a read and a PUT of the Scale.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::Ctx;
use super::patch::send_patch;
use super::resource;

/// Flags of `scale`.
#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// `TYPE NAME...` or `TYPE/NAME...`.
    pub args: Vec<String>,
    /// The new desired number of replicas.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub replicas: i64,
    /// Precondition: only scale if the current replica count is this.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub current_replicas: i64,
    /// Precondition: only scale if the resource version matches.
    #[arg(long)]
    pub resource_version: Option<String>,
}

/// kubectl's message when a precondition does not hold.
pub fn check_preconditions(
    scale: &Value,
    current_replicas: i64,
    resource_version: Option<&str>,
) -> Result<()> {
    if current_replicas >= 0 {
        let actual = scale["spec"]["replicas"].as_i64().unwrap_or(0);
        if actual != current_replicas {
            bail!("Expected replicas to be {current_replicas}, was {actual}");
        }
    }
    if let Some(rv) = resource_version.filter(|r| !r.is_empty()) {
        let actual = scale["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if actual != rv {
            bail!("Expected resource version to be {rv}, was {actual}");
        }
    }
    Ok(())
}

/// Runs `scale`.
pub async fn run(ctx: &Ctx, args: ScaleArgs) -> Result<ExitCode> {
    if args.replicas < 0 {
        bail!("--replicas=COUNT is required, and COUNT must be greater than or equal to 0");
    }
    let pairs = resource::split_args(&args.args)?;
    if pairs.iter().any(|(_, n)| n.is_none()) {
        bail!("resource(s) were provided, but no name was specified");
    }
    let precondition = args.current_replicas >= 0 || args.resource_version.is_some();
    for (t, name) in pairs {
        let name = name.unwrap_or_default();
        let res = resource::resolve(&ctx.client, &t).await?;
        let ns = res.namespaced.then_some(ctx.namespace.as_str());
        if precondition {
            let url = format!("{}/{name}/scale", res.collection_path(ns));
            let req = http::Request::get(&url)
                .header(http::header::ACCEPT, "application/json")
                .body(Vec::new())?;
            let text = ctx.client.request_text(req).await?;
            let mut scale: Value = serde_json::from_str(&text).context("decoding the Scale")?;
            check_preconditions(
                &scale,
                args.current_replicas,
                args.resource_version.as_deref(),
            )?;
            scale["spec"]["replicas"] = json!(args.replicas);
            let put = http::Request::put(&url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::ACCEPT, "application/json")
                .body(serde_json::to_vec(&scale)?)?;
            ctx.client.request_text(put).await?;
        } else {
            send_patch(
                &ctx.client,
                &res,
                ns,
                &name,
                Some("scale"),
                "application/merge-patch+json",
                &json!({"spec": {"replicas": args.replicas}}),
            )
            .await?;
        }
        println!("{}/{name} scaled", res.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions_read_like_kubectl() {
        let scale = json!({"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 3}});
        assert!(check_preconditions(&scale, 3, Some("7")).is_ok());
        assert!(check_preconditions(&scale, -1, None).is_ok());
        assert_eq!(
            check_preconditions(&scale, 2, None)
                .unwrap_err()
                .to_string(),
            "Expected replicas to be 2, was 3"
        );
        assert_eq!(
            check_preconditions(&scale, -1, Some("6"))
                .unwrap_err()
                .to_string(),
            "Expected resource version to be 6, was 7"
        );
    }
}
