//! `skiff server`: the control plane in one process.

use std::process::ExitCode;

/// Flags of `skiff server`.
#[derive(clap::Args)]
pub struct ServerArgs {}

/// Runs the server until interrupted.
pub fn run(_args: ServerArgs) -> ExitCode {
    ExitCode::FAILURE
}
