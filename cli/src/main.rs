//! The `skiff` binary: the server, the node-side commands, and kubectl-like client verbs.

mod agent_cmd;
mod client;
mod hpa_flags;
mod image_cmd;
mod node_lifecycle_flags;
mod runtime_cmd;
mod server_cmd;

use clap::{Parser, Subcommand};

/// skiff: a Kubernetes-compatible container orchestrator in one binary.
#[derive(Parser)]
#[command(name = "skiff", version, about)]
struct Cli {
    #[command(flatten)]
    globals: client::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (apiserver, scheduler, controllers) and, unless disabled, an agent.
    Server(server_cmd::ServerArgs),
    /// Join this machine to a cluster as a node.
    Agent(agent_cmd::AgentArgs),
    /// Run many hollow (fake-runtime) nodes in one process, for scale tests.
    HollowNodes(agent_cmd::HollowNodesArgs),
    /// Manage the node's image store.
    Image(image_cmd::ImageArgs),
    /// Debug front end of the built-in container runtime.
    Runtime(runtime_cmd::RuntimeArgs),
    /// Per-container monitor process (internal).
    #[command(hide = true)]
    Shim(runtime_cmd::ShimArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
}

/// Sets up `tracing` output on stderr with an env-filter directive.
pub(crate) fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> std::process::ExitCode {
    // kube and our server both link rustls; pick one crypto provider for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => server_cmd::run(args),
        Command::Agent(args) => agent_cmd::run_agent(args),
        Command::HollowNodes(args) => agent_cmd::run_hollow_nodes(args),
        Command::Image(args) => image_cmd::run(args),
        Command::Runtime(args) => runtime_cmd::run(args),
        Command::Shim(args) => runtime_cmd::run_shim(args),
        Command::Client(cmd) => client::run(cli.globals, cmd),
    }
}
