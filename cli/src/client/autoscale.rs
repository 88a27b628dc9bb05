//! `autoscale TYPE NAME --max=N [--min=N] [--cpu-percent=N]`: creates an autoscaling/v2
//! HorizontalPodAutoscaler for a scalable workload, as `kubectl autoscale` does.

use std::process::ExitCode;

use anyhow::{Result, bail};
use kube::api::PostParams;
use serde_json::{Value, json};

use super::Ctx;
use super::resource;

/// Flags of `autoscale`.
#[derive(clap::Args, Debug)]
pub struct AutoscaleArgs {
    /// `TYPE NAME` or `TYPE/NAME` of a Deployment, ReplicaSet, StatefulSet or
    /// ReplicationController.
    pub args: Vec<String>,
    /// The lower limit for the number of pods (unset: the server's default of 1).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub min: i32,
    /// The upper limit for the number of pods (required).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub max: i32,
    /// The target average CPU utilization over all the pods, percent of request (unset:
    /// the server's default of 80 %).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub cpu_percent: i32,
    /// The name of the autoscaler (default: the target's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Only print the object that would be sent (`client`) or send it as a dry run
    /// (`server`).
    #[arg(long, default_value = "none")]
    pub dry_run: String,
}

const SCALABLE: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "ReplicationController",
];

/// kubectl's checks on the bounds.
pub fn check_bounds(min: i32, max: i32) -> Result<()> {
    if max < 1 {
        bail!("--max=MAXPODS is required and must be at least 1, max: {max}");
    }
    if max < min {
        bail!("--max=MAXPODS must be larger or equal to --min=MINPODS, max: {max}, min: {min}");
    }
    Ok(())
}

/// The HorizontalPodAutoscaler `kubectl autoscale` sends.
pub fn hpa_for(
    name: &str,
    api_version: &str,
    kind: &str,
    target: &str,
    args: &AutoscaleArgs,
) -> Value {
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": target},
        "maxReplicas": args.max,
    });
    if args.min > 0 {
        spec["minReplicas"] = json!(args.min);
    }
    if args.cpu_percent >= 0 {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": args.cpu_percent}}}]);
    }
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Runs `autoscale`.
pub async fn run(ctx: &Ctx, args: AutoscaleArgs) -> Result<ExitCode> {
    check_bounds(args.min, args.max)?;
    let pairs = resource::split_args(&args.args)?;
    if pairs.is_empty() {
        bail!("required resource not specified");
    }
    if pairs.iter().any(|(_, n)| n.is_none()) {
        bail!("resource(s) were provided, but no name was specified");
    }
    let hpa_res = resource::resolve(&ctx.client, "horizontalpodautoscalers.autoscaling").await?;
    for (t, target) in pairs {
        let target = target.unwrap_or_default();
        let res = resource::resolve(&ctx.client, &t).await?;
        if !SCALABLE.contains(&res.kind.as_str()) {
            bail!("cannot autoscale a {}: not a scalable resource", res.kind);
        }
        // The target must exist, as kubectl reads it before creating the autoscaler.
        res.api(&ctx.client, Some(&ctx.namespace))
            .get(&target)
            .await?;
        let name = args.name.clone().unwrap_or_else(|| target.clone());
        let body = hpa_for(&name, &res.api_version(), &res.kind, &target, &args);
        match args.dry_run.as_str() {
            "client" => {
                println!("horizontalpodautoscaler.autoscaling/{name} autoscaled (dry run)");
                continue;
            }
            "none" | "server" => {}
            other => bail!(
                "Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
            ),
        }
        let obj: kube::api::DynamicObject = serde_json::from_value(body)?;
        let pp = PostParams {
            dry_run: args.dry_run == "server",
            ..Default::default()
        };
        hpa_res
            .api(&ctx.client, Some(&ctx.namespace))
            .create(&pp, &obj)
            .await?;
        let suffix = if pp.dry_run { " (server dry run)" } else { "" };
        println!("horizontalpodautoscaler.autoscaling/{name} autoscaled{suffix}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(min: i32, max: i32, cpu: i32) -> AutoscaleArgs {
        AutoscaleArgs {
            args: vec!["deploy/web".into()],
            min,
            max,
            cpu_percent: cpu,
            name: None,
            dry_run: "none".into(),
        }
    }

    #[test]
    fn bounds_read_like_kubectl() {
        assert_eq!(
            check_bounds(-1, -1).unwrap_err().to_string(),
            "--max=MAXPODS is required and must be at least 1, max: -1"
        );
        assert_eq!(
            check_bounds(5, 2).unwrap_err().to_string(),
            "--max=MAXPODS must be larger or equal to --min=MINPODS, max: 2, min: 5"
        );
        assert!(check_bounds(1, 5).is_ok());
    }

    #[test]
    fn the_autoscaler_sent() {
        let h = hpa_for("web", "apps/v1", "Deployment", "web", &args(1, 5, 50));
        assert_eq!(h["spec"]["minReplicas"], 1);
        assert_eq!(h["spec"]["maxReplicas"], 5);
        assert_eq!(
            h["spec"]["metrics"][0]["resource"]["target"],
            json!({"type": "Utilization", "averageUtilization": 50})
        );
        assert_eq!(h["spec"]["scaleTargetRef"]["kind"], "Deployment");
        let bare = hpa_for("web", "apps/v1", "Deployment", "web", &args(-1, 3, -1));
        assert!(bare["spec"].get("minReplicas").is_none());
        assert!(bare["spec"].get("metrics").is_none());
    }
}
