//! `skiff image`: pull, import, list and remove images in the node's store.

use std::process::ExitCode;

/// Arguments of `skiff image`.
#[derive(clap::Args)]
pub struct ImageArgs {}

/// Runs an image command.
pub fn run(_args: ImageArgs) -> ExitCode {
    ExitCode::FAILURE
}
