//! `delete`: by file, `type/name`, `TYPE NAME...`, `-l` or `--all`, with cascade and grace
//! period, waiting for the objects to be gone unless `--wait=false`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::api::{DeleteParams, ListParams, PropagationPolicy};

use super::resource::{self, Res};
use super::{Ctx, errors, manifest};

/// Flags of `delete`.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// `TYPE NAME...`, `TYPE/NAME...` or `TYPE` with `-l`/`--all`.
    pub args: Vec<String>,
    /// Files, directories or `-` naming the objects to delete.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Delete the objects matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete every object of the types.
    #[arg(long)]
    pub all: bool,
    /// With `-l`/`--all`, across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// background, foreground or orphan.
    #[arg(long, default_value = "background")]
    pub cascade: String,
    /// Seconds the objects get to terminate (-1: the object's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Wait for the objects to be gone before returning.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub wait: bool,
    /// How long to wait, e.g. `30s` (0: a week).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Treat objects that are already gone as success.
    #[arg(long)]
    pub ignore_not_found: bool,
}

struct Target {
    res: Res,
    namespace: Option<String>,
    name: String,
}

/// Runs `delete`.
pub async fn run(ctx: &Ctx, args: DeleteArgs) -> Result<ExitCode> {
    let policy = match args.cascade.as_str() {
        "background" | "true" => PropagationPolicy::Background,
        "foreground" => PropagationPolicy::Foreground,
        "orphan" | "false" => PropagationPolicy::Orphan,
        other => bail!(
            "invalid cascade value ({other}). Must be \"background\", \"foreground\", or \"orphan\""
        ),
    };
    let timeout = parse_duration(&args.timeout)?;
    let targets = targets(ctx, &args).await?;
    let dp = DeleteParams {
        propagation_policy: Some(policy),
        grace_period_seconds: u32::try_from(args.grace_period).ok(),
        ..Default::default()
    };
    let mut failed = false;
    let mut deleted: Vec<(&Target, Option<String>)> = Vec::new();
    for t in &targets {
        let api = t.res.api(&ctx.client, t.namespace.as_deref());
        match api.delete(&t.name, &dp).await {
            Ok(answer) => {
                let uid = answer.left().and_then(|o| o.metadata.uid);
                println!("{} \"{}\" deleted", t.res.display(), t.name);
                deleted.push((t, uid));
            }
            Err(e) => {
                let e = anyhow::Error::new(e);
                if errors::is_not_found(&e) && args.ignore_not_found {
                    continue;
                }
                eprintln!("{}", errors::format(&e));
                failed = true;
            }
        }
    }
    if args.wait {
        let deadline = Instant::now() + timeout.unwrap_or(Duration::from_secs(7 * 24 * 3600));
        for (t, uid) in deleted {
            if !wait_gone(ctx, t, uid.as_deref(), deadline).await? {
                eprintln!(
                    "error: timed out waiting for the condition on {}/{}",
                    t.res.plural_group(),
                    t.name
                );
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn targets(ctx: &Ctx, args: &DeleteArgs) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    if !args.files.is_empty() {
        for m in manifest::read_all(&args.files)? {
            let api_version = m.object["apiVersion"].as_str().unwrap_or_default();
            let kind = m.object["kind"].as_str().unwrap_or_default();
            let res = resource::for_manifest(&ctx.client, api_version, kind).await?;
            let namespace = res.namespaced.then(|| {
                manifest::namespace_of(&m.object)
                    .unwrap_or(&ctx.namespace)
                    .to_string()
            });
            out.push(Target {
                res,
                namespace,
                name: manifest::name_of(&m.object).to_string(),
            });
        }
        return Ok(out);
    }
    if args.args.is_empty() {
        bail!("You must provide one or more resources by argument or filename.");
    }
    for (t, name) in resource::split_args(&args.args)? {
        let res = resource::resolve(&ctx.client, &t).await?;
        match name {
            Some(name) => {
                let namespace = res.namespaced.then(|| ctx.namespace.clone());
                out.push(Target {
                    res,
                    namespace,
                    name,
                });
            }
            None => {
                if args.selector.is_none() && !args.all {
                    bail!("resource(s) were provided, but no name was specified");
                }
                let ns = (!args.all_namespaces).then_some(ctx.namespace.as_str());
                let lp = ListParams {
                    label_selector: args.selector.clone(),
                    ..Default::default()
                };
                for o in res.api(&ctx.client, ns).list(&lp).await?.items {
                    out.push(Target {
                        res: res.clone(),
                        namespace: o.metadata.namespace.clone(),
                        name: o.metadata.name.clone().unwrap_or_default(),
                    });
                }
            }
        }
    }
    if out.is_empty() {
        eprintln!("No resources found");
    }
    Ok(out)
}

/// Polls until the object (of this uid, when known) is gone; false on timeout.
async fn wait_gone(ctx: &Ctx, t: &Target, uid: Option<&str>, deadline: Instant) -> Result<bool> {
    let api = t.res.api(&ctx.client, t.namespace.as_deref());
    loop {
        match api.get_opt(&t.name).await? {
            None => return Ok(true),
            Some(o) if uid.is_some() && o.metadata.uid.as_deref() != uid => return Ok(true),
            Some(_) => {}
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `30s`, `2m`, `1h`, plain seconds; `0`/`0s` means no limit.
pub fn parse_duration(text: &str) -> Result<Option<Duration>> {
    let (num, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid duration \"{text}\""))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("invalid duration \"{text}\""),
    };
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("0s").unwrap(), None);
        assert_eq!(
            parse_duration("30s").unwrap(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_duration("2m").unwrap(),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_duration("5").unwrap(), Some(Duration::from_secs(5)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
    }
}
