//! `apply -f` (client-side apply with kubectl's last-applied annotation, or `--server-side`)
//! and `create -f`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Map, Value};

use super::manifest::{self, Manifest};
use super::resource::{self, Res};
use super::three_way::{PatchKind, three_way};
use super::{Ctx, errors, printer};

/// The annotation kubectl keeps the last applied manifest in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Flags of `apply`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// Files, directories or `-` (stdin) holding the manifests.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Use server-side apply (`application/apply-patch+yaml`).
    #[arg(long)]
    pub server_side: bool,
    /// Field manager for server-side apply.
    #[arg(long, default_value = "kubectl")]
    pub field_manager: String,
    /// Take ownership of conflicting fields in server-side apply.
    #[arg(long)]
    pub force_conflicts: bool,
}

/// Flags of `create`.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Files, directories or `-` (stdin) holding the manifests.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

/// What apply did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Created,
    Configured,
    Unchanged,
    ServerSideApplied,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
            Outcome::ServerSideApplied => "serverside-applied",
        }
    }
}

/// Applies every manifest, printing one line per object; errors are printed and counted.
pub async fn run_apply(ctx: &Ctx, args: ApplyArgs) -> Result<ExitCode> {
    let manifests = manifest::read_all(&args.files)?;
    let mut failed = false;
    for m in manifests {
        match apply_one(ctx, &m, &args).await {
            Ok((res, name, outcome)) => println!("{}/{} {}", res.display(), name, outcome.word()),
            Err(e) => {
                eprintln!("{}", errors::format(&e));
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

/// Creates every manifest as written.
pub async fn run_create(ctx: &Ctx, args: CreateArgs) -> Result<ExitCode> {
    let manifests = manifest::read_all(&args.files)?;
    let mut failed = false;
    for m in manifests {
        let result = async {
            let (res, ns, obj) = prepare(ctx, &m).await?;
            let created = post(ctx, &res, ns.as_deref(), &obj, &m.source).await?;
            anyhow::Ok((res, manifest::name_of(&created).to_string()))
        }
        .await;
        match result {
            Ok((res, name)) => println!("{}/{} created", res.display(), name),
            Err(e) => {
                eprintln!("{}", errors::format(&e));
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

/// Resolves the manifest's type and fills in the namespace, as kubectl does before sending.
async fn prepare(ctx: &Ctx, m: &Manifest) -> Result<(Res, Option<String>, Value)> {
    let api_version = m.object["apiVersion"].as_str().unwrap_or_default();
    let kind = m.object["kind"].as_str().unwrap_or_default();
    let res = resource::for_manifest(&ctx.client, api_version, kind).await?;
    let mut obj = m.object.clone();
    let ns = if res.namespaced {
        if let Some(own) = manifest::namespace_of(&obj)
            && ctx.explicit_namespace
            && own != ctx.namespace
        {
            bail!(
                "the namespace from the provided object \"{own}\" does not match the namespace \"{}\". You must pass '--namespace={own}' to perform this operation.",
                ctx.namespace
            );
        }
        let ns = manifest::namespace_of(&obj)
            .unwrap_or(&ctx.namespace)
            .to_string();
        obj["metadata"]["namespace"] = Value::String(ns.clone());
        Some(ns)
    } else {
        None
    };
    if manifest::name_of(&obj).is_empty() && obj.pointer("/metadata/generateName").is_none() {
        bail!(
            "error when creating \"{}\": resource name may not be empty",
            m.source
        );
    }
    Ok((res, ns, obj))
}

async fn post(ctx: &Ctx, res: &Res, ns: Option<&str>, obj: &Value, source: &str) -> Result<Value> {
    let dynamic: DynamicObject =
        serde_json::from_value(obj.clone()).context("decoding manifest")?;
    let created = res
        .api(&ctx.client, ns)
        .create(&PostParams::default(), &dynamic)
        .await
        .map_err(|e| errors::with_prefix(e, &format!("error when creating \"{source}\": ")))?;
    Ok(serde_json::to_value(created)?)
}

pub(super) async fn apply_one(
    ctx: &Ctx,
    m: &Manifest,
    args: &ApplyArgs,
) -> Result<(Res, String, Outcome)> {
    let (res, ns, obj) = prepare(ctx, m).await?;
    let name = manifest::name_of(&obj).to_string();
    let api = res.api(&ctx.client, ns.as_deref());
    if args.server_side {
        let mut pp = PatchParams::apply(&args.field_manager);
        pp.force = args.force_conflicts;
        api.patch(&name, &pp, &Patch::Apply(&obj)).await?;
        return Ok((res, name, Outcome::ServerSideApplied));
    }
    let modified = with_last_applied(&obj)?;
    for _ in 0..5 {
        let live = match api.get(&name).await {
            Ok(live) => serde_json::to_value(live)?,
            Err(e) => {
                let e = anyhow::Error::new(e);
                if errors::is_not_found(&e) {
                    post(ctx, &res, ns.as_deref(), &modified, &m.source).await?;
                    return Ok((res, name, Outcome::Created));
                }
                return Err(e);
            }
        };
        let original = live
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LAST_APPLIED))
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .unwrap_or(Value::Null);
        let patch = three_way(&original, &modified, &live, res.patch_kind());
        if patch.as_object().is_some_and(Map::is_empty) {
            return Ok((res, name, Outcome::Unchanged));
        }
        let pp = PatchParams {
            field_manager: Some("kubectl-client-side-apply".into()),
            ..Default::default()
        };
        let sent = match res.patch_kind() {
            PatchKind::Strategic => api.patch(&name, &pp, &Patch::Strategic(&patch)).await,
            PatchKind::Merge => api.patch(&name, &pp, &Patch::Merge(&patch)).await,
        };
        match sent {
            Ok(_) => return Ok((res, name, Outcome::Configured)),
            Err(e) => {
                let e = errors::with_prefix(e, &format!("error when patching \"{}\": ", m.source));
                if !errors::is_conflict(&e) {
                    return Err(e);
                }
            }
        }
    }
    bail!(
        "applying {}/{}: gave up after repeated conflicts",
        res.display(),
        name
    )
}

/// The manifest with the last-applied annotation set to its own JSON, as kubectl sends it.
pub fn with_last_applied(obj: &Value) -> Result<Value> {
    let mut bare = obj.clone();
    let meta = bare
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .context("manifest has no metadata")?;
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(a) = annotations.as_object_mut() {
        a.remove(LAST_APPLIED);
    }
    let text = go_json(&bare)?;
    let mut out = bare;
    out["metadata"]["annotations"][LAST_APPLIED] = Value::String(text);
    Ok(out)
}

/// Compact JSON with sorted keys, HTML characters escaped and a final newline: what Go's
/// encoder writes, so kubectl and skiff leave byte-identical annotations.
pub fn go_json(v: &Value) -> Result<String> {
    let text = serde_json::to_string(&printer::sorted(v))?;
    Ok(printer::go_escape(&text) + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn annotation_matches_kubectl_bytes() {
        let obj = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "x", "namespace": "default"}, "data": {"cmd": "a && b"}});
        let out = with_last_applied(&obj).unwrap();
        assert_eq!(
            out["metadata"]["annotations"][LAST_APPLIED],
            "{\"apiVersion\":\"v1\",\"data\":{\"cmd\":\"a \\u0026\\u0026 b\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"x\",\"namespace\":\"default\"}}\n"
        );
    }

    #[test]
    fn reapplying_the_same_manifest_is_unchanged() {
        let obj = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "x", "namespace": "default", "labels": {"a": "1"}}, "data": {"k": "v"}});
        let modified = with_last_applied(&obj).unwrap();
        let mut live = modified.clone();
        live["metadata"]["uid"] = json!("u");
        live["metadata"]["resourceVersion"] = json!("7");
        let original: Value = serde_json::from_str(
            live["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        // Re-applying the very manifest that is live changes nothing.
        let again = with_last_applied(&obj).unwrap();
        assert_eq!(
            three_way(&original, &again, &live, PatchKind::Strategic),
            json!({})
        );
        // Dropping the label deletes it and refreshes the annotation.
        let mut edited = obj.clone();
        edited["metadata"].as_object_mut().unwrap().remove("labels");
        let patch = three_way(
            &original,
            &with_last_applied(&edited).unwrap(),
            &live,
            PatchKind::Strategic,
        );
        assert_eq!(patch["metadata"].get("labels"), Some(&Value::Null));
        assert!(
            patch["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .unwrap()
                .contains("\"data\"")
        );
    }
}
