//! `patch TYPE NAME -p PATCH --type strategic|merge|json`, and the raw PATCH request the other
//! verbs share.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use kube::Client;
use serde::Deserialize;
use serde_json::Value;

use super::Ctx;
use super::resource::{self, Res};

/// Flags of `patch`.
#[derive(clap::Args, Debug)]
pub struct PatchArgs {
    /// `TYPE NAME` or `TYPE/NAME`.
    pub args: Vec<String>,
    /// The patch, as JSON or YAML.
    #[arg(short = 'p', long)]
    pub patch: Option<String>,
    /// A file holding the patch.
    #[arg(long)]
    pub patch_file: Option<String>,
    /// strategic, merge or json.
    #[arg(long = "type", default_value = "strategic")]
    pub patch_type: String,
    /// Patch this subresource (`status`, `scale`).
    #[arg(long)]
    pub subresource: Option<String>,
}

/// The media type of a patch type name as kubectl's `--type` spells it.
pub fn content_type(patch_type: &str) -> Result<&'static str> {
    Ok(match patch_type {
        "strategic" => "application/strategic-merge-patch+json",
        "merge" => "application/merge-patch+json",
        "json" => "application/json-patch+json",
        other => bail!("--type must be one of [json merge strategic], not \"{other}\""),
    })
}

/// Parses a patch written as JSON or YAML.
pub fn parse_patch(text: &str) -> Result<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    Value::deserialize(serde_yaml::Deserializer::from_str(text))
        .context("unable to parse the patch as JSON or YAML")
}

/// Sends one PATCH of the given media type and returns the object the server answers with.
pub async fn send_patch(
    client: &Client,
    res: &Res,
    namespace: Option<&str>,
    name: &str,
    subresource: Option<&str>,
    content_type: &str,
    body: &Value,
) -> Result<Value> {
    let mut url = format!("{}/{}", res.collection_path(namespace), name);
    if let Some(sub) = subresource {
        url = format!("{url}/{sub}");
    }
    let req = http::Request::patch(url)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::ACCEPT, "application/json")
        .body(serde_json::to_vec(body)?)?;
    let text = client.request_text(req).await?;
    Ok(serde_json::from_str(&text)?)
}

/// Parses `TYPE NAME` or `TYPE/NAME` naming exactly one object.
pub async fn one_target(ctx: &Ctx, args: &[String]) -> Result<(Res, String)> {
    let pairs = resource::split_args(args)?;
    let [(t, Some(name))] = pairs.as_slice() else {
        bail!("exactly one TYPE NAME (or TYPE/NAME) is required");
    };
    Ok((resource::resolve(&ctx.client, t).await?, name.clone()))
}

/// Runs `patch`.
pub async fn run(ctx: &Ctx, args: PatchArgs) -> Result<ExitCode> {
    let text = match (&args.patch, &args.patch_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?,
        (None, None) => {
            bail!("must specify --patch or --patch-file containing the contents of the patch")
        }
    };
    let ct = content_type(&args.patch_type)?;
    let body = parse_patch(&text)?;
    let (res, name) = one_target(ctx, &args.args).await?;
    let ns = res.namespaced.then_some(ctx.namespace.as_str());
    let before = res.api(&ctx.client, ns).get(&name).await?;
    let after = send_patch(
        &ctx.client,
        &res,
        ns,
        &name,
        args.subresource.as_deref(),
        ct,
        &body,
    )
    .await?;
    let unchanged = args.subresource.is_none()
        && before.metadata.resource_version.as_deref()
            == after["metadata"]["resourceVersion"].as_str();
    let suffix = if unchanged { " (no change)" } else { "" };
    println!("{}/{} patched{suffix}", res.display(), name);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_parse_from_json_or_yaml() {
        assert_eq!(
            parse_patch(r#"{"spec":{"replicas":3}}"#).unwrap()["spec"]["replicas"],
            3
        );
        assert_eq!(
            parse_patch("spec:\n  replicas: 4\n").unwrap()["spec"]["replicas"],
            4
        );
        let ops = parse_patch(r#"[{"op":"replace","path":"/spec/replicas","value":1}]"#).unwrap();
        assert!(ops.is_array());
    }

    #[test]
    fn patch_types_map_to_media_types() {
        assert_eq!(
            content_type("merge").unwrap(),
            "application/merge-patch+json"
        );
        assert_eq!(content_type("json").unwrap(), "application/json-patch+json");
        assert!(content_type("apply").is_err());
    }
}
