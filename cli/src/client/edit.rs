//! `edit TYPE NAME`: the object as YAML in `$KUBE_EDITOR`/`$EDITOR`, the change sent back as
//! a patch computed from what was edited.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Ctx;
use super::patch::{one_target, send_patch};
use super::printer;
use super::three_way::{PatchKind, three_way};

const HEADER: &str = "# Please edit the object below. Lines beginning with a '#' will be ignored,\n\
# and an empty file will abort the edit. If an error occurs while saving this file will be\n\
# reopened with the relevant failures.\n#\n";

/// Flags of `edit`.
#[derive(clap::Args, Debug)]
pub struct EditArgs {
    /// `TYPE NAME` or `TYPE/NAME`.
    pub args: Vec<String>,
}

/// What the edited text asks for.
#[derive(Debug, PartialEq)]
pub enum Edited {
    /// The file was emptied.
    Empty,
    /// Nothing changed.
    Unchanged,
    /// The patch to send.
    Patch(Value),
}

/// Compares the edited text with the object it started from.
pub fn compare(original: &Value, text: &str, kind: PatchKind) -> Result<Edited> {
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    if body.trim().is_empty() {
        return Ok(Edited::Empty);
    }
    let edited = Value::deserialize(serde_yaml::Deserializer::from_str(&body))
        .context("the edited file is not valid YAML")?;
    if &edited == original {
        return Ok(Edited::Unchanged);
    }
    let patch = three_way(original, &edited, original, kind);
    if patch.as_object().is_some_and(Map::is_empty) {
        return Ok(Edited::Unchanged);
    }
    Ok(Edited::Patch(patch))
}

fn editor() -> String {
    ["KUBE_EDITOR", "EDITOR"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_string())
}

/// Runs `edit`.
pub async fn run(ctx: &Ctx, args: EditArgs) -> Result<ExitCode> {
    let (res, name) = one_target(ctx, &args.args).await?;
    let ns = res.namespaced.then_some(ctx.namespace.as_str());
    let original = serde_json::to_value(res.api(&ctx.client, ns).get(&name).await?)?;
    let path: PathBuf =
        std::env::temp_dir().join(format!("skiff-edit-{}-{name}.yaml", std::process::id()));
    std::fs::write(&path, format!("{HEADER}{}", printer::to_yaml(&original)?))?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{} \"$1\"", editor()))
        .arg("sh")
        .arg(&path)
        .status()
        .context("starting the editor")?;
    let text = std::fs::read_to_string(&path)?;
    if !status.success() {
        bail!(
            "the editor exited with {status}; your changes are in {}",
            path.display()
        );
    }
    let outcome = compare(&original, &text, res.patch_kind());
    match outcome {
        Ok(Edited::Empty) => {
            let _ = std::fs::remove_file(&path);
            eprintln!("Edit cancelled, saved file was empty.");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Edited::Unchanged) => {
            let _ = std::fs::remove_file(&path);
            eprintln!("Edit cancelled, no changes made.");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Edited::Patch(patch)) => {
            let ct = match res.patch_kind() {
                PatchKind::Strategic => "application/strategic-merge-patch+json",
                PatchKind::Merge => "application/merge-patch+json",
            };
            match send_patch(&ctx.client, &res, ns, &name, None, ct, &patch).await {
                Ok(_) => {
                    let _ = std::fs::remove_file(&path);
                    println!("{}/{} edited", res.display(), name);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!(
                        "A copy of your changes has been stored to \"{}\"",
                        path.display()
                    );
                    Err(e)
                }
            }
        }
        Err(e) => {
            eprintln!(
                "A copy of your changes has been stored to \"{}\"",
                path.display()
            );
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}})
    }

    #[test]
    fn untouched_file_is_unchanged() {
        let text = format!("{HEADER}{}", printer::to_yaml(&cm()).unwrap());
        assert_eq!(
            compare(&cm(), &text, PatchKind::Strategic).unwrap(),
            Edited::Unchanged
        );
        assert_eq!(
            compare(&cm(), "# only comments\n\n", PatchKind::Strategic).unwrap(),
            Edited::Empty
        );
    }

    #[test]
    fn edits_become_a_patch_with_deletions() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v2\n";
        let Edited::Patch(p) = compare(&cm(), text, PatchKind::Strategic).unwrap() else {
            panic!("expected a patch");
        };
        assert_eq!(
            p,
            json!({"metadata": {"labels": null}, "data": {"k": "v2"}})
        );
    }
}
