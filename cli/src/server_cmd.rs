//! `skiff server`: the control plane in one process (API server today; the scheduler,
//! controllers and the node agent join it as they land).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use skiff_apiserver::server::{self, ServerConfig};

/// Flags of `skiff server`.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Directory for the embedded store, credentials and kubeconfigs.
    #[arg(long, default_value = "/var/lib/skiff")]
    data_dir: PathBuf,
    /// Comma-separated etcd endpoints (http://127.0.0.1:2379,...); the embedded store when absent.
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Address to serve the API on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// TLS port of the API.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Do not run a node agent in this process.
    #[arg(long)]
    disable_agent: bool,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `skiff_apiserver=debug`.
    #[arg(long, env = "SKIFF_LOG", default_value = "info")]
    log_level: String,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServerArgs) -> ExitCode {
    crate::init_logging(&args.log_level);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.disable_agent {
        tracing::warn!(
            "this build has no node agent yet; serving the control plane only (as with --disable-agent)"
        );
    }
    let cfg = ServerConfig {
        data_dir: args.data_dir,
        etcd_endpoints: args.etcd_endpoints,
        bind_address: args.bind_address,
        secure_port: args.secure_port,
    };
    let result = rt.block_on(server::run(cfg, shutdown_signal(), |running| {
        eprintln!(
            "skiff API server listening on https://{}",
            running.local_addr
        );
        eprintln!("  export KUBECONFIG={}", running.admin_kubeconfig.display());
        eprintln!("  skiff get nodes   # or: kubectl get all -A");
        eprintln!("  join token for agents is stored in the data directory (tokens.json)");
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}
