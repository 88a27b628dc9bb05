//! `skiff-bench`: benchmarks that compare skiff against a reference measured in the same run
//! and write their figures into BENCHMARKS.md.

mod api;
mod control_plane;
mod dns;
mod hpa;
mod jobs;
mod metrics_cost;
mod node;
mod podwatch;
mod procs;
mod report;
mod runtime;
mod services;
mod statefulset;
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
    /// Pod startup latency through a real server and agent against the runtime's bare
    /// create + start, and the agent's and shims' memory (needs root).
    Node {
        /// Pods per series (at once, and one after another).
        #[arg(long, default_value_t = 20)]
        pods: usize,
        /// Rounds of both series.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Bare runtime create + start cycles for the reference.
        #[arg(long, default_value_t = 50)]
        cycles: usize,
    },
    /// Scheduler throughput over hollow nodes against the API's create rate, a Deployment
    /// scale-up, and control-plane memory.
    ControlPlane {
        /// Hollow nodes.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Pods to schedule (and as many for the API reference).
        #[arg(long, default_value_t = 10_000)]
        pods: usize,
        /// Create requests in flight.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Replicas the Deployment is scaled to.
        #[arg(long, default_value_t = 1000)]
        replicas: i32,
    },
    /// HPA reaction: load start to the first scale decision and to the new replica
    /// Ready, at default and test settings, beside the Kubernetes default path.
    Hpa {
        /// Rounds per setting.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// What resource metrics cost: a real kubelet's collection with 100 pods, and the API
    /// server's memory and CPU for the metrics of 1,000 hollow nodes and 10,000 pods,
    /// beside metrics-server's published footprint (needs root).
    MetricsCost {
        /// Pods on the real node.
        #[arg(long, default_value_t = 100)]
        pods: usize,
        /// Collections asked of the real kubelet per endpoint.
        #[arg(long, default_value_t = 100)]
        collections: usize,
        /// Hollow nodes.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Pods on the hollow nodes.
        #[arg(long, default_value_t = 10_000)]
        hollow_pods: usize,
        /// Seconds of each CPU window.
        #[arg(long, default_value_t = 60)]
        window: u64,
    },
    /// A Job of many completions on hollow nodes against as many bare pods: time to
    /// finish and the controller-manager's CPU.
    Jobs {
        /// Completions (and bare pods).
        #[arg(long, default_value_t = 1000)]
        completions: usize,
        /// The Job's parallelism.
        #[arg(long, default_value_t = 50)]
        parallelism: usize,
        /// Hollow nodes.
        #[arg(long, default_value_t = 10)]
        nodes: usize,
    },
    /// A StatefulSet with volumes (OrderedReady and Parallel) beside a Deployment without,
    /// on a real server and agent: time to all Ready (needs root).
    Statefulset {
        /// Replicas of each set and of the Deployment.
        #[arg(long, default_value_t = 10)]
        replicas: usize,
        /// Rounds of each series.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// The cluster DNS under dnsperf beside dnsmasq serving the same records, both
    /// forwarding to an unbound on loopback (needs root, dnsperf, dnsmasq, unbound).
    Dns {
        /// Seconds per unthrottled dnsperf run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Alternating rounds per server and query kind.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Queries per second of the paced latency run.
        #[arg(long, default_value_t = 2000)]
        paced_qps: u32,
    },
    /// HTTP through a ClusterIP beside the pod IP (wrk), and API → kernel rule latency at
    /// 1,000 and 10,000 Services beside `nft -f` of the same change (needs root, wrk).
    Services {
        /// Seconds per wrk round.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// wrk rounds per target.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// wrk connections.
        #[arg(long, default_value_t = 8)]
        connections: u32,
        /// Table sizes for the rule-change figures.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        sizes: Vec<usize>,
        /// Changes per size.
        #[arg(long, default_value_t = 20)]
        changes: usize,
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
                skiff_bin: skiff_bin.unwrap_or_else(skiff_e2e::skiff_bin),
                pulls: 10,
                idle_shims: 10,
            };
            let body = runtime::run(&opts).await?;
            println!("{body}");
            report::write_section(&cli.out, "Container runtime (issue 3)", &body)?;
        }
        Bench::Node {
            pods,
            rounds,
            cycles,
        } => {
            let body = node::run(&node::NodeBenchOptions {
                pods,
                rounds: rounds.max(1),
                cycles,
            })
            .await?;
            println!("{body}");
            report::write_section(
                &cli.out,
                "Node agent: pod startup and memory (issue 4)",
                &body,
            )?;
        }
        Bench::ControlPlane {
            nodes,
            pods,
            clients,
            replicas,
        } => {
            let opts = control_plane::ControlPlaneOptions {
                nodes,
                pods,
                clients,
                replicas,
            };
            let body = control_plane::run(&opts).await?;
            println!("{body}");
            report::write_section(&cli.out, "Control plane at 1,000 nodes (issue 5)", &body)?;
        }
        Bench::Hpa { rounds } => {
            let body = hpa::run(&hpa::HpaBenchOptions {
                rounds: rounds.max(1),
            })
            .await?;
            println!("{body}");
            report::write_section(&cli.out, "HPA reaction (issue 11)", &body)?;
        }
        Bench::MetricsCost {
            pods,
            collections,
            nodes,
            hollow_pods,
            window,
        } => {
            let body = metrics_cost::run(&metrics_cost::MetricsCostOptions {
                pods,
                collections: collections.max(1),
                nodes,
                hollow_pods,
                window_s: window.max(1),
            })
            .await?;
            println!("{body}");
            report::write_section(&cli.out, "Metrics cost (issue 11)", &body)?;
        }
        Bench::Jobs {
            completions,
            parallelism,
            nodes,
        } => {
            let body = jobs::run(&jobs::JobsOptions {
                completions,
                parallelism,
                nodes,
            })
            .await?;
            println!("{body}");
            report::write_section(&cli.out, "Jobs (issue 12)", &body)?;
        }
        Bench::Statefulset { replicas, rounds } => {
            let body = statefulset::run(&statefulset::StatefulSetOptions {
                replicas,
                rounds: rounds.max(1),
            })
            .await?;
            println!("{body}");
            report::write_subsection(&cli.out, "Jobs (issue 12)", "StatefulSet startup", &body)?;
        }
        Bench::Dns {
            seconds,
            rounds,
            paced_qps,
        } => {
            let opts = dns::DnsBenchOptions {
                seconds,
                rounds,
                paced_qps,
            };
            let body = std::thread::spawn(move || dns::run(&opts))
                .join()
                .map_err(|_| anyhow::anyhow!("the DNS benchmark panicked"))??;
            println!("{body}");
            report::write_subsection(&cli.out, "Services (issue 10)", "Cluster DNS", &body)?;
        }
        Bench::Services {
            seconds,
            rounds,
            connections,
            sizes,
            changes,
        } => {
            let opts = services::ServicesBenchOptions {
                seconds,
                rounds,
                connections,
                sizes,
                changes,
            };
            // The e2e harness blocks and runs runtimes of its own: off this runtime.
            let body = std::thread::spawn(move || services::run(&opts))
                .join()
                .map_err(|_| anyhow::anyhow!("the services benchmark panicked"))??;
            println!("{body}");
            report::write_section(&cli.out, "Services (issue 10)", &body)?;
        }
    }
    Ok(())
}
