//! kubectl-like client verbs over the `kube` crate.

mod api_resources;
mod apply;
mod autoscale;
mod cordon;
mod create;
mod delete;
mod describe;
mod describe_kinds;
mod describe_pod;
mod drain;
mod edit;
mod errors;
mod exec;
mod expose;
mod get;
mod kubeconfig;
mod label;
#[cfg(test)]
mod live_tests;
mod logs;
mod manifest;
#[cfg(test)]
mod mock_tests;
mod patch;
mod port_forward;
mod printer;
mod resource;
pub(crate) mod rollout;
mod rollout_history;
mod rollout_status;
mod scale;
mod tabwriter;
mod three_way;
mod top;
mod version;
mod wait;
mod yaml_out;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Flags shared by every client verb.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace for this request (default: the context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

/// The client verbs.
#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// Apply a configuration to resources from files or stdin (client-side apply).
    Apply(apply::ApplyArgs),
    /// Create resources from files or stdin, or a Job or CronJob from flags.
    Create(create::CreateArgs),
    /// Display one or many resources.
    Get(get::GetArgs),
    /// Show details of a resource and its events.
    Describe(describe::DescribeArgs),
    /// Delete resources by file, type and name, or selector.
    Delete(delete::DeleteArgs),
    /// Edit a resource in $EDITOR.
    Edit(edit::EditArgs),
    /// Update fields of a resource with a patch.
    Patch(patch::PatchArgs),
    /// Update the labels on a resource.
    Label(label::LabelArgs),
    /// Update the annotations on a resource.
    Annotate(label::LabelArgs),
    /// Set a new size for a Deployment, ReplicaSet or StatefulSet.
    Scale(scale::ScaleArgs),
    /// Manage the rollout of a Deployment or DaemonSet.
    Rollout(rollout::RolloutArgs),
    /// Create a HorizontalPodAutoscaler for a Deployment, ReplicaSet or StatefulSet.
    Autoscale(autoscale::AutoscaleArgs),
    /// Mark nodes as unschedulable.
    Cordon(cordon::CordonArgs),
    /// Mark nodes as schedulable.
    Uncordon(cordon::CordonArgs),
    /// Print the logs of a container in a pod.
    Logs(logs::LogsArgs),
    /// Execute a command in a container.
    Exec(exec::ExecArgs),
    /// Forward one or more local ports to a pod.
    PortForward(port_forward::PortForwardArgs),
    /// Drain a node in preparation for maintenance.
    Drain(drain::DrainArgs),
    /// Print the resource types the server serves.
    ApiResources(api_resources::ApiResourcesArgs),
    /// Print the client and server versions.
    Version(version::VersionArgs),
    /// Expose a pod, Service, Deployment, ReplicaSet or ReplicationController as a new Service.
    Expose(expose::ExposeArgs),
    /// Show CPU and memory use of nodes or pods (metrics.k8s.io).
    Top(top::TopArgs),
    /// Wait for a condition on resources, or for their deletion.
    Wait(wait::WaitArgs),
    /// Make kubeconfigs: `create --user NAME [--group G]` issues a user's client certificate.
    Kubeconfig(kubeconfig::KubeconfigArgs),
}

/// A connected client with the namespace requests default to.
pub struct Ctx {
    /// The API client.
    pub client: Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// Whether `-n` was given (manifests naming another namespace are then refused).
    pub explicit_namespace: bool,
}

/// Runs a client verb.
pub fn run(globals: GlobalArgs, cmd: ClientCommand) -> ExitCode {
    // Both ring and aws-lc may be linked; rustls needs one chosen before any TLS happens.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(globals, cmd)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", errors::format(&e));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(globals: GlobalArgs, cmd: ClientCommand) -> Result<ExitCode> {
    if let ClientCommand::Version(args) = &cmd
        && args.client
    {
        return version::run_client_only(args);
    }
    let ctx = connect(&globals).await?;
    match cmd {
        ClientCommand::Apply(a) => apply::run_apply(&ctx, a).await,
        ClientCommand::Create(a) => create::run(&ctx, a).await,
        ClientCommand::Get(a) => get::run(&ctx, a).await,
        ClientCommand::Describe(a) => describe::run(&ctx, a).await,
        ClientCommand::Delete(a) => delete::run(&ctx, a).await,
        ClientCommand::Edit(a) => edit::run(&ctx, a).await,
        ClientCommand::Patch(a) => patch::run(&ctx, a).await,
        ClientCommand::Label(a) => label::run(&ctx, a, label::Field::Labels).await,
        ClientCommand::Annotate(a) => label::run(&ctx, a, label::Field::Annotations).await,
        ClientCommand::Scale(a) => scale::run(&ctx, a).await,
        ClientCommand::Top(a) => top::run(&ctx, a).await,
        ClientCommand::Rollout(a) => rollout::run(&ctx, a).await,
        ClientCommand::Autoscale(a) => autoscale::run(&ctx, a).await,
        ClientCommand::Cordon(a) => cordon::run(&ctx, a, true).await,
        ClientCommand::Uncordon(a) => cordon::run(&ctx, a, false).await,
        ClientCommand::Logs(a) => logs::run(&ctx, a).await,
        ClientCommand::Exec(a) => exec::run(&ctx, a).await,
        ClientCommand::PortForward(a) => port_forward::run(&ctx, a).await,
        ClientCommand::Drain(a) => drain::run(&ctx, a).await,
        ClientCommand::ApiResources(a) => api_resources::run(&ctx, a).await,
        ClientCommand::Version(a) => version::run(&ctx, a).await,
        ClientCommand::Expose(a) => expose::run(&ctx, a).await,
        ClientCommand::Wait(a) => wait::run(&ctx, a).await,
        ClientCommand::Kubeconfig(a) => kubeconfig::run(&ctx, &globals, a).await,
    }
}

/// Builds the client from `--kubeconfig`, else $KUBECONFIG, else ~/.kube/config.
async fn connect(globals: &GlobalArgs) -> Result<Ctx> {
    let config = load_config(globals).await?;
    let namespace = globals
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config)?;
    Ok(Ctx {
        client,
        namespace,
        explicit_namespace: globals.namespace.is_some(),
    })
}

/// The client configuration from `--kubeconfig`, else $KUBECONFIG, else ~/.kube/config.
async fn load_config(globals: &GlobalArgs) -> Result<kube::Config> {
    let opts = KubeConfigOptions {
        context: globals.context.clone(),
        cluster: None,
        user: None,
    };
    Ok(match &globals.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &opts).await?
        }
        None => kube::Config::from_kubeconfig(&opts)
            .await
            .context("no usable kubeconfig (set --kubeconfig or $KUBECONFIG)")?,
    })
}
