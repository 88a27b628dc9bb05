//! `create -f FILE`, and the generators `create job NAME --image=IMG [-- CMD...]`,
//! `create job NAME --from=cronjob/X` and `create cronjob NAME --image=IMG --schedule=S`,
//! building the objects as kubectl's `create job` and `create cronjob` build them.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Result, bail};
use kube::api::{DynamicObject, PostParams};
use serde_json::{Value, json};

use super::apply;
use super::resource;
use super::{Ctx, errors};

/// The annotation kubectl puts on a Job made from a CronJob by hand.
pub const INSTANTIATE: &str = "cronjob.kubernetes.io/instantiate";

/// Flags of `create`: a generator, or manifests with `-f`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CreateArgs {
    /// What to create from flags instead of from files.
    #[command(subcommand)]
    pub generator: Option<Generator>,
    /// Files, directories or `-` (stdin) holding the manifests.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
}

/// The objects `create` can make from flags.
#[derive(clap::Subcommand, Debug)]
pub enum Generator {
    /// Create a Job that runs IMAGE (with the command after `--`), or a Job from a CronJob.
    Job(JobArgs),
    /// Create a CronJob that runs IMAGE on a schedule.
    #[command(alias = "cj")]
    Cronjob(CronJobArgs),
}

/// Flags of `create job`.
#[derive(clap::Args, Debug)]
pub struct JobArgs {
    /// The Job's name.
    pub name: String,
    /// The image of the Job's container.
    #[arg(long)]
    pub image: Option<String>,
    /// `cronjob/NAME`: copy that CronJob's job template.
    #[arg(long)]
    pub from: Option<String>,
    /// The container's command (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Flags of `create cronjob`.
#[derive(clap::Args, Debug)]
pub struct CronJobArgs {
    /// The CronJob's name.
    pub name: String,
    /// The image of the Job's container.
    #[arg(long)]
    pub image: Option<String>,
    /// A cron schedule, e.g. `*/1 * * * *`.
    #[arg(long)]
    pub schedule: Option<String>,
    /// The pods' restart policy: OnFailure (default) or Never.
    #[arg(long)]
    pub restart: Option<String>,
    /// The container's command (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Runs `create`.
pub async fn run(ctx: &Ctx, args: CreateArgs) -> Result<ExitCode> {
    let obj = match args.generator {
        None if args.files.is_empty() => {
            bail!("must specify one of -f and -k, or a resource to create (job, cronjob)")
        }
        None => return apply::run_create(ctx, apply::CreateArgs { files: args.files }).await,
        Some(Generator::Job(a)) => match (&a.image, &a.from) {
            (Some(_), Some(_)) | (None, None) => {
                bail!("either --image or --from must be specified")
            }
            (None, Some(_)) if !a.command.is_empty() => {
                bail!("cannot specify --from and command")
            }
            (Some(image), None) => job(&a.name, image, &a.command),
            (None, Some(from)) => {
                let cronjob = fetch_cronjob(ctx, from).await?;
                job_from_cronjob(&a.name, &cronjob)?
            }
        },
        Some(Generator::Cronjob(a)) => {
            let Some(image) = &a.image else {
                bail!("--image must be specified");
            };
            let Some(schedule) = &a.schedule else {
                bail!("--schedule must be specified");
            };
            let restart = a.restart.as_deref().unwrap_or("OnFailure");
            cronjob(&a.name, image, schedule, restart, &a.command)
        }
    };
    let kind = obj["kind"].as_str().unwrap_or_default();
    let res = resource::for_manifest(&ctx.client, "batch/v1", kind).await?;
    let created = res
        .api(&ctx.client, Some(&ctx.namespace))
        .create(
            &PostParams::default(),
            &serde_json::from_value::<DynamicObject>(obj)?,
        )
        .await
        .map_err(|e| errors::with_prefix(e, ""))?;
    println!(
        "{}/{} created",
        res.display(),
        created.metadata.name.unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// `cronjob/NAME` (or `cronjobs/`, `cj/`, `cronjob.batch/`) fetched from the server.
async fn fetch_cronjob(ctx: &Ctx, from: &str) -> Result<Value> {
    let Some((kind, name)) = from.split_once('/') else {
        bail!("from must be an existing cronjob: {from}");
    };
    if ![
        "cronjob",
        "cronjobs",
        "cj",
        "cronjob.batch",
        "cronjobs.batch",
    ]
    .contains(&kind)
    {
        bail!("from must be an existing cronjob: {from}");
    }
    let res = resource::resolve(&ctx.client, "cronjobs").await?;
    let obj = res
        .api(&ctx.client, Some(&ctx.namespace))
        .get(name)
        .await
        .map_err(|e| errors::with_prefix(e, ""))?;
    Ok(serde_json::to_value(obj)?)
}

/// The container kubectl's generators make: named after the object, the command after `--`.
fn container(name: &str, image: &str, command: &[String]) -> Value {
    let mut c = json!({"name": name, "image": image, "resources": {}});
    if !command.is_empty() {
        c["command"] = json!(command);
    }
    c
}

/// The Job `create job NAME --image=IMG -- CMD...` makes (restartPolicy Never).
pub fn job(name: &str, image: &str, command: &[String]) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"metadata": {}, "spec": {
            "containers": [container(name, image, command)],
            "restartPolicy": "Never",
        }}},
    })
}

/// The CronJob `create cronjob` makes; its job template is named after it.
pub fn cronjob(
    name: &str,
    image: &str,
    schedule: &str,
    restart: &str,
    command: &[String],
) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {
                "metadata": {"name": name},
                "spec": {"template": {"metadata": {}, "spec": {
                    "containers": [container(name, image, command)],
                    "restartPolicy": restart,
                }}},
            },
        },
    })
}

/// The Job `create job NAME --from=cronjob/X` makes: the CronJob's job template with its
/// labels and annotations, `cronjob.kubernetes.io/instantiate: manual`, and the CronJob as
/// controller owner.
pub fn job_from_cronjob(name: &str, cronjob: &Value) -> Result<Value> {
    let template = &cronjob["spec"]["jobTemplate"];
    let (Some(cj_name), Some(uid)) = (
        cronjob["metadata"]["name"].as_str(),
        cronjob["metadata"]["uid"].as_str(),
    ) else {
        bail!("the cronjob has no name or uid");
    };
    let mut annotations: BTreeMap<String, Value> = BTreeMap::new();
    annotations.insert(INSTANTIATE.into(), json!("manual"));
    if let Some(a) = template["metadata"]["annotations"].as_object() {
        annotations.extend(a.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let mut metadata = json!({
        "name": name,
        "annotations": annotations,
        "ownerReferences": [{
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": cj_name,
            "uid": uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if let Some(l) = template["metadata"]["labels"].as_object() {
        metadata["labels"] = json!(l);
    }
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": template["spec"].clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        create: CreateArgs,
    }

    #[test]
    fn job_flags_and_command_after_the_dashes() {
        let cli = Cli::parse_from([
            "x",
            "job",
            "hello",
            "--image=busybox",
            "--",
            "echo",
            "hi",
            "--there",
        ]);
        let Some(Generator::Job(a)) = cli.create.generator else {
            panic!("not a job");
        };
        assert_eq!(a.command, ["echo", "hi", "--there"]);
        let j = job(&a.name, a.image.as_deref().unwrap(), &a.command);
        let c = &j["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["name"], "hello");
        assert_eq!(c["image"], "busybox");
        assert_eq!(c["command"], json!(["echo", "hi", "--there"]));
        assert!(c.get("args").is_none());
        assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
        let cli = Cli::parse_from(["x", "-f", "a.yaml"]);
        assert!(cli.create.generator.is_none());
        assert_eq!(cli.create.files, ["a.yaml"]);
    }

    #[test]
    fn cronjob_carries_schedule_restart_and_template_name() {
        let cli = Cli::parse_from([
            "x",
            "cj",
            "tick",
            "--image=busybox",
            "--schedule=*/1 * * * *",
            "--restart=Never",
        ]);
        let Some(Generator::Cronjob(a)) = cli.create.generator else {
            panic!("not a cronjob");
        };
        let cj = cronjob(
            &a.name,
            a.image.as_deref().unwrap(),
            a.schedule.as_deref().unwrap(),
            a.restart.as_deref().unwrap(),
            &a.command,
        );
        assert_eq!(cj["spec"]["schedule"], "*/1 * * * *");
        assert_eq!(cj["spec"]["jobTemplate"]["metadata"]["name"], "tick");
        let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert!(pod["containers"][0].get("command").is_none());
    }

    #[test]
    fn a_job_from_a_cronjob_is_owned_and_annotated_manual() {
        let cj = json!({"metadata": {"name": "tick", "uid": "u-1"},
            "spec": {"jobTemplate": {
                "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
                "spec": {"backoffLimit": 2, "template": {"spec": {"containers": []}}}}}});
        let j = job_from_cronjob("manual-1", &cj).unwrap();
        assert_eq!(j["metadata"]["name"], "manual-1");
        assert_eq!(j["metadata"]["annotations"][INSTANTIATE], "manual");
        assert_eq!(j["metadata"]["annotations"]["note"], "x");
        assert_eq!(j["metadata"]["labels"]["team"], "a");
        let owner = &j["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "CronJob");
        assert_eq!(owner["uid"], "u-1");
        assert_eq!(owner["controller"], true);
        assert_eq!(j["spec"]["backoffLimit"], 2);
        assert!(job_from_cronjob("m", &json!({"metadata": {}})).is_err());
    }
}
