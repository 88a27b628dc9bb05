//! `rollout status|history|undo|restart|pause|resume TYPE NAME`: the subcommands, and the
//! small patches of restart, pause and resume.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::patch::{one_target, send_patch};
use super::resource::Res;
use super::{Ctx, rollout_history, rollout_status};

/// Flags of `rollout`.
#[derive(clap::Args, Debug)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
}

/// The `rollout` subcommands.
#[derive(clap::Subcommand, Debug)]
enum RolloutCommand {
    /// Show the status of the rollout.
    Status {
        /// `TYPE NAME` or `TYPE/NAME`.
        args: Vec<String>,
        /// Pin to a specific revision; fail if the rollout moves past it.
        #[arg(long, default_value_t = 0)]
        revision: i64,
        /// Watch the status until the rollout finishes.
        #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set)]
        watch: bool,
        /// How long to wait before giving up (e.g. 30s, 5m); 0 waits forever.
        #[arg(long)]
        timeout: Option<String>,
    },
    /// View rollout history.
    History {
        /// `TYPE NAME` or `TYPE/NAME`.
        args: Vec<String>,
        /// Show the details of this revision.
        #[arg(long, default_value_t = 0)]
        revision: i64,
    },
    /// Undo a previous rollout.
    Undo {
        /// `TYPE NAME` or `TYPE/NAME`.
        args: Vec<String>,
        /// The revision to roll back to; 0 means the previous one.
        #[arg(long, default_value_t = 0)]
        to_revision: i64,
    },
    /// Restart a resource: its pods are replaced by a rollout.
    Restart {
        /// `TYPE NAME` or `TYPE/NAME`.
        args: Vec<String>,
    },
    /// Mark the resource as paused.
    Pause {
        /// `TYPE NAME` or `TYPE/NAME`.
        args: Vec<String>,
    },
    /// Resume a paused resource.
    Resume {
        /// `TYPE NAME` or `TYPE/NAME`.
        args: Vec<String>,
    },
}

/// Parses a Go-style duration (`90s`, `5m`, `1h30m`, `500ms`) or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        bail!("invalid duration \"{text}\"");
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits]
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid duration \"{text}\""))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => bail!("invalid duration \"{text}\""),
        };
        rest = &rest[unit_len..];
        total += Duration::from_secs_f64(value * scale);
    }
    Ok(total)
}

/// Runs `rollout`.
pub async fn run(ctx: &Ctx, args: RolloutArgs) -> Result<ExitCode> {
    match args.command {
        RolloutCommand::Status {
            args,
            revision,
            watch,
            timeout,
        } => {
            let (res, name) = one_target(ctx, &args).await?;
            let timeout = timeout.as_deref().map(parse_duration).transpose()?;
            rollout_status::run(ctx, &res, &name, revision, watch, timeout).await?;
        }
        RolloutCommand::History { args, revision } => {
            let (res, name) = one_target(ctx, &args).await?;
            rollout_history::history(ctx, &res, &name, revision).await?;
        }
        RolloutCommand::Undo { args, to_revision } => {
            let (res, name) = one_target(ctx, &args).await?;
            rollout_history::undo(ctx, &res, &name, to_revision).await?;
        }
        RolloutCommand::Restart { args } => {
            let (res, name) = one_target(ctx, &args).await?;
            restart(ctx, &res, &name).await?;
        }
        RolloutCommand::Pause { args } => {
            let (res, name) = one_target(ctx, &args).await?;
            set_paused(ctx, &res, &name, true).await?;
        }
        RolloutCommand::Resume { args } => {
            let (res, name) = one_target(ctx, &args).await?;
            set_paused(ctx, &res, &name, false).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(ctx: &Ctx, res: &Res, name: &str) -> Result<Value> {
    Ok(serde_json::to_value(
        res.api(&ctx.client, Some(&ctx.namespace)).get(name).await?,
    )?)
}

async fn patch(ctx: &Ctx, res: &Res, name: &str, body: &Value) -> Result<()> {
    send_patch(
        &ctx.client,
        res,
        Some(&ctx.namespace),
        &format!("{name}?fieldManager=kubectl-rollout"),
        None,
        "application/strategic-merge-patch+json",
        body,
    )
    .await?;
    Ok(())
}

/// The local time as Go's RFC 3339 layout writes it (`Z` for UTC).
pub fn restarted_at(now: &jiff::Zoned) -> String {
    let text = now.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string();
    match text.strip_suffix("+00:00") {
        Some(base) => format!("{base}Z"),
        None => text,
    }
}

/// The strategic merge patch of `rollout restart`.
pub fn restart_patch(at: &str) -> Value {
    json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": at}}}}})
}

async fn restart(ctx: &Ctx, res: &Res, name: &str) -> Result<()> {
    if res.group != "apps"
        || !matches!(
            res.kind.as_str(),
            "Deployment" | "DaemonSet" | "StatefulSet"
        )
    {
        bail!("restarting is not supported");
    }
    let obj = get(ctx, res, name).await?;
    if res.kind == "Deployment" && obj["spec"]["paused"] == true {
        bail!(
            "{} {name:?} can't restart paused deployment (run rollout resume first)",
            res.plural_group()
        );
    }
    patch(
        ctx,
        res,
        name,
        &restart_patch(&restarted_at(&jiff::Zoned::now())),
    )
    .await?;
    println!("{}/{name} restarted", res.display());
    Ok(())
}

async fn set_paused(ctx: &Ctx, res: &Res, name: &str, paused: bool) -> Result<()> {
    let verb = if paused { "pausing" } else { "resuming" };
    if res.group != "apps" || res.kind != "Deployment" {
        bail!("{} {name:?} {verb} is not supported", res.plural_group());
    }
    let obj = get(ctx, res, name).await?;
    let now = obj["spec"]["paused"] == true;
    if now == paused {
        let state = if paused {
            "is already paused"
        } else {
            "is not paused"
        };
        bail!("{} {name:?} {state}", res.plural_group());
    }
    let value = if paused { json!(true) } else { Value::Null };
    patch(ctx, res, name, &json!({"spec": {"paused": value}})).await?;
    let done = if paused { "paused" } else { "resumed" };
    println!("{}/{name} {done}", res.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("12").unwrap(), Duration::from_secs(12));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn restart_stamp_uses_rfc3339() {
        let utc: jiff::Zoned = "2026-11-22T18:01:12+00:00[UTC]".parse().unwrap();
        assert_eq!(restarted_at(&utc), "2026-11-22T18:01:12Z");
        let paris: jiff::Zoned = "2026-11-22T19:01:12+01:00[Europe/Paris]".parse().unwrap();
        assert_eq!(restarted_at(&paris), "2026-11-22T19:01:12+01:00");
        assert_eq!(
            restart_patch("T")["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "T"
        );
    }
}

#[cfg(test)]
#[path = "rollout_live_tests.rs"]
mod live_tests;
