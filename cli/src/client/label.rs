//! `label` and `annotate`: `key=value` sets, `key-` removes, `--overwrite` is needed to change
//! an existing value, sent as a JSON merge patch of `metadata.labels`/`metadata.annotations`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use super::Ctx;
use super::patch::{one_target, send_patch};

/// Which metadata map the verb edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `metadata.labels`.
    Labels,
    /// `metadata.annotations`.
    Annotations,
}

impl Field {
    fn key(self) -> &'static str {
        match self {
            Field::Labels => "labels",
            Field::Annotations => "annotations",
        }
    }
    fn noun(self) -> &'static str {
        match self {
            Field::Labels => "label",
            Field::Annotations => "annotation",
        }
    }
    fn done(self) -> &'static str {
        match self {
            Field::Labels => "labeled",
            Field::Annotations => "annotated",
        }
    }
}

/// Flags of `label` and `annotate`.
#[derive(clap::Args, Debug)]
pub struct LabelArgs {
    /// `TYPE NAME` or `TYPE/NAME`, then `key=value` and `key-` items.
    pub args: Vec<String>,
    /// Allow changing a key that already has a value.
    #[arg(long)]
    pub overwrite: bool,
}

/// One requested change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `key=value`.
    Set(String, String),
    /// `key-`.
    Remove(String),
}

/// Splits arguments into the object's words and the changes.
pub fn split(args: &[String]) -> Result<(Vec<String>, Vec<Change>)> {
    let mut target = Vec::new();
    let mut changes = Vec::new();
    for a in args {
        if let Some((k, v)) = a.split_once('=') {
            if k.is_empty() {
                bail!("invalid label spec: {a}");
            }
            changes.push(Change::Set(k.to_string(), v.to_string()));
        } else if let Some(k) = a.strip_suffix('-') {
            changes.push(Change::Remove(k.to_string()));
        } else if changes.is_empty() {
            target.push(a.clone());
        } else {
            bail!("all resources must be specified before label changes: {a}");
        }
    }
    if changes.is_empty() {
        bail!("at least one label update is required");
    }
    Ok((target, changes))
}

/// The merge patch for `changes` against the current map; `Err` names a refused overwrite.
pub fn plan(
    current: &Value,
    changes: &[Change],
    overwrite: bool,
    field: Field,
) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for c in changes {
        match c {
            Change::Set(k, v) => match current.get(k).and_then(Value::as_str) {
                Some(old) if old == v => {}
                Some(old) if !overwrite => {
                    bail!("'{k}' already has a value ({old}), and --overwrite is false")
                }
                _ => {
                    out.insert(k.clone(), Value::String(v.clone()));
                }
            },
            Change::Remove(k) => {
                if current.get(k).is_some() {
                    out.insert(k.clone(), Value::Null);
                } else {
                    eprintln!("{} \"{k}\" not found.", field.noun());
                }
            }
        }
    }
    Ok(out)
}

/// Runs `label` or `annotate`.
pub async fn run(ctx: &Ctx, args: LabelArgs, field: Field) -> Result<ExitCode> {
    let (target, changes) = split(&args.args)?;
    let (res, name) = one_target(ctx, &target).await?;
    let ns = res.namespaced.then_some(ctx.namespace.as_str());
    let live = serde_json::to_value(res.api(&ctx.client, ns).get(&name).await?)?;
    let current = &live["metadata"][field.key()];
    let changes = plan(current, &changes, args.overwrite, field)?;
    if changes.is_empty() && field == Field::Labels {
        println!("{}/{} not {}", res.display(), name, field.done());
        return Ok(ExitCode::SUCCESS);
    }
    if !changes.is_empty() {
        let body = json!({"metadata": {field.key(): changes}});
        send_patch(
            &ctx.client,
            &res,
            ns,
            &name,
            None,
            "application/merge-patch+json",
            &body,
        )
        .await?;
    }
    println!("{}/{} {}", res.display(), name, field.done());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_split_into_target_and_changes() {
        let (t, c) = split(&args(&["deploy", "web", "app=x", "tier-"])).unwrap();
        assert_eq!(t, ["deploy", "web"]);
        assert_eq!(
            c,
            [
                Change::Set("app".into(), "x".into()),
                Change::Remove("tier".into())
            ]
        );
        assert!(split(&args(&["deploy", "web"])).is_err());
    }

    #[test]
    fn overwrite_is_required_to_change_a_value() {
        let current = json!({"app": "web", "tier": "front"});
        let changes = [Change::Set("app".into(), "api".into())];
        let err = plan(&current, &changes, false, Field::Labels).unwrap_err();
        assert_eq!(
            err.to_string(),
            "'app' already has a value (web), and --overwrite is false"
        );
        let ok = plan(&current, &changes, true, Field::Labels).unwrap();
        assert_eq!(Value::Object(ok), json!({"app": "api"}));
    }

    #[test]
    fn same_value_and_removals() {
        let current = json!({"app": "web", "tier": "front"});
        let changes = [
            Change::Set("app".into(), "web".into()),
            Change::Remove("tier".into()),
            Change::Remove("absent".into()),
        ];
        let out = plan(&current, &changes, false, Field::Labels).unwrap();
        assert_eq!(Value::Object(out), json!({"tier": null}));
    }
}
