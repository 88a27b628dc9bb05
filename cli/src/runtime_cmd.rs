//! `skiff runtime` debug commands and the hidden `skiff shim` entry point.

use std::process::ExitCode;

/// Arguments of `skiff runtime`.
#[derive(clap::Args)]
pub struct RuntimeArgs {}

/// Arguments of the shim.
#[derive(clap::Args)]
pub struct ShimArgs {}

/// Runs a runtime debug command.
pub fn run(_args: RuntimeArgs) -> ExitCode {
    ExitCode::FAILURE
}

/// Runs the per-container shim.
pub fn run_shim(_args: ShimArgs) -> ExitCode {
    ExitCode::FAILURE
}
