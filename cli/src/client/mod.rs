//! kubectl-like client verbs over the `kube` crate.

use std::process::ExitCode;

/// Flags shared by every client verb.
#[derive(clap::Args)]
pub struct GlobalArgs {}

/// The client verbs.
#[derive(clap::Subcommand)]
pub enum ClientCommand {
    /// Print the client and server versions.
    Version,
}

/// Runs a client verb.
pub fn run(_globals: GlobalArgs, _cmd: ClientCommand) -> ExitCode {
    ExitCode::FAILURE
}
