//! `version`: the client's version and the server's `/version`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::{Ctx, printer};

/// Flags of `version`.
#[derive(clap::Args, Debug)]
pub struct VersionArgs {
    /// Print only the client version (no server needed).
    #[arg(long)]
    pub client: bool,
    /// Output format: yaml or json.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

fn client_info() -> Value {
    let version = env!("CARGO_PKG_VERSION");
    let mut parts = version.split('.');
    json!({
        "major": parts.next().unwrap_or("0"),
        "minor": parts.next().unwrap_or("0"),
        "gitVersion": format!("v{version}"),
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

fn print(doc: &Value, output: Option<&str>) -> Result<()> {
    match output {
        None => {
            println!(
                "Client Version: {}",
                doc["clientVersion"]["gitVersion"]
                    .as_str()
                    .unwrap_or_default()
            );
            if let Some(s) = doc.get("serverVersion") {
                println!(
                    "Server Version: {}",
                    s["gitVersion"].as_str().unwrap_or_default()
                );
            }
        }
        Some("json") => print!("{}", printer::to_json(doc)?),
        Some("yaml") => print!("{}", printer::to_yaml(doc)?),
        Some(o) => bail!("--output must be 'yaml' or 'json', not \"{o}\""),
    }
    Ok(())
}

/// `version --client`: no connection needed.
pub fn run_client_only(args: &VersionArgs) -> Result<ExitCode> {
    print(
        &json!({"clientVersion": client_info()}),
        args.output.as_deref(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `version`, asking the server for its `/version`.
pub async fn run(ctx: &Ctx, args: VersionArgs) -> Result<ExitCode> {
    let server = ctx.client.apiserver_version().await?;
    let doc =
        json!({"clientVersion": client_info(), "serverVersion": serde_json::to_value(server)?});
    print(&doc, args.output.as_deref())?;
    Ok(ExitCode::SUCCESS)
}
