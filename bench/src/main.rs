//! `skiff-bench`: benchmarks that compare skiff against a reference measured in the same run
//! and write their figures into BENCHMARKS.md.

mod api;
mod report;
mod runtime;
mod stats;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "skiff-bench")]
struct Cli {
    /// Markdown file the figures go into.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// API create/get/list latency and throughput on both stores, against raw store
    /// operations, and server memory.
    Api {
        /// Sequential operations per latency figure.
        #[arg(long, default_value_t = 1000)]
        ops: usize,
        /// Concurrent clients for throughput.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Objects for the LIST and memory figures.
        #[arg(long, default_value_t = 10_000)]
        list_objects: usize,
        /// Backends to measure.
        #[arg(long, value_delimiter = ',', default_value = "embedded,etcd")]
        backends: Vec<String>,
    },
    /// Container create/start/wait/delete cycles against crun and runc, cold image pull,
    /// and idle shim memory.
    Runtime {
        /// Cycles per runtime.
        #[arg(long, default_value_t = 100)]
        cycles: usize,
        /// The `skiff` executable used as shim (default: the one beside this binary).
        #[arg(long)]
        skiff_bin: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.bench {
        Bench::Api {
            ops,
            clients,
            list_objects,
            backends,
        } => {
            let opts = api::ApiBenchOptions {
                ops,
                clients,
                list_objects,
            };
            let mut figures = Vec::new();
            for b in &backends {
                let name: &'static str = if b == "etcd" { "etcd" } else { "embedded" };
                eprintln!("measuring {name} ...");
                figures.push(api::run_backend(name, &opts).await?);
            }
            let body = api::render(&opts, &figures);
            println!("{body}");
            report::write_section(&cli.out, "API server (issue 2)", &body)?;
        }
        Bench::Runtime { cycles, skiff_bin } => {
            let opts = runtime::RuntimeBenchOptions {
                cycles,
                warmup: 5,
                skiff_bin: skiff_bin.unwrap_or_else(runtime::default_skiff_bin),
                pulls: 10,
                idle_shims: 10,
            };
            let body = runtime::run(&opts).await?;
            println!("{body}");
            report::write_section(&cli.out, "Container runtime (issue 3)", &body)?;
        }
    }
    Ok(())
}
