//! `skiff runtime` debug commands (`run`, `ps`, `logs`, `exec`, `stop`, `rm`) over the
//! built-in runtime, and the hidden `skiff shim` entry point the runtime re-executes.

use std::io::{BufRead, BufReader, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use skiff_runtime::cgroups::Resources;
use skiff_runtime::container::{ExecRequest, ExecStdio, ProcessSpec, Status};
use skiff_runtime::image::{ImageStore, PullOptions};
use skiff_runtime::pod::{
    ContainerConfig, PodRuntime, PodSandboxConfig, RootfsSource, RuntimeConfig, SkiffRuntime,
    process_from_image,
};
use skiff_runtime::shim::log::{Stream, parse_record};

/// Arguments of `skiff runtime`.
#[derive(clap::Args)]
pub struct RuntimeArgs {
    /// State root of the runtime.
    #[arg(long, default_value = "/run/skiff", global = true)]
    root: PathBuf,
    /// Pod CIDR for sandboxes made by `run`.
    #[arg(long, default_value = "10.88.0.0/24", global = true)]
    pod_cidr: String,
    /// Node bridge.
    #[arg(long, default_value = "skiff0", global = true)]
    bridge: String,
    #[command(subcommand)]
    command: RuntimeCommand,
}

#[derive(clap::Subcommand)]
enum RuntimeCommand {
    /// Run a command in a new container in its own pod sandbox.
    Run(RunArgs),
    /// List containers.
    Ps {
        /// Include stopped containers.
        #[arg(short, long)]
        all: bool,
    },
    /// Print a container's log.
    Logs {
        /// Container id.
        id: String,
        /// Follow until the container stops.
        #[arg(short, long)]
        follow: bool,
    },
    /// Run a command in a running container.
    Exec {
        /// Allocate a TTY.
        #[arg(short, long)]
        tty: bool,
        /// Container id.
        id: String,
        /// Command and arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Stop a container (SIGTERM, grace, SIGKILL).
    Stop {
        /// Container id.
        id: String,
        /// Grace period in seconds.
        #[arg(short, long, default_value_t = 10)]
        time: u64,
    },
    /// Remove a container (and its sandbox once empty).
    Rm {
        /// Kill it first if running.
        #[arg(short, long)]
        force: bool,
        /// Container id.
        id: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Remove the container and its sandbox after it exits.
    #[arg(long)]
    rm: bool,
    /// Print the id and return instead of streaming output.
    #[arg(short, long)]
    detach: bool,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(long)]
    memory: Option<String>,
    /// CPU limit in cores (e.g. 0.5).
    #[arg(long)]
    cpus: Option<f64>,
    /// Container name.
    #[arg(long, default_value = "main")]
    name: String,
    /// Environment variables (KEY=value).
    #[arg(short, long)]
    env: Vec<String>,
    /// Working directory.
    #[arg(short, long, default_value = "/")]
    workdir: String,
    /// A root filesystem directory to run instead of an image.
    #[arg(long, conflicts_with = "image")]
    rootfs: Option<PathBuf>,
    /// Node root holding the image store (`<root>/images`).
    #[arg(long, default_value = skiff_runtime::image::DEFAULT_ROOT)]
    image_root: PathBuf,
    /// Image reference (pulled when missing).
    #[arg(required_unless_present = "rootfs")]
    image: Option<String>,
    /// Command and arguments (replace the image's cmd).
    #[arg(last = true)]
    cmd: Vec<String>,
}

/// Arguments of the shim.
#[derive(clap::Args)]
pub struct ShimArgs {
    /// State root of the runtime.
    #[arg(long)]
    root: PathBuf,
    /// Container id.
    #[arg(long)]
    id: String,
}

/// Runs a runtime debug command.
pub fn run(args: RuntimeArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the per-container shim.
pub fn run_shim(args: ShimArgs) -> ExitCode {
    ExitCode::from(skiff_runtime::shim::main(&args.root, &args.id) as u8)
}

fn runtime(args: &RuntimeArgs) -> anyhow::Result<SkiffRuntime> {
    let cidr = args.pod_cidr.parse().context("--pod-cidr")?;
    let mut cfg = RuntimeConfig::new(&args.root, cidr);
    cfg.network.bridge = args.bridge.clone();
    Ok(SkiffRuntime::new(cfg)?)
}

async fn dispatch(args: RuntimeArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime(&args)?;
    match args.command {
        RuntimeCommand::Run(run) => run_container(&rt, run).await,
        RuntimeCommand::Ps { all } => {
            println!(
                "{:<18} {:<10} {:<9} {:>5} {:>8}  CREATED",
                "CONTAINER ID", "NAME", "STATUS", "EXIT", "PID"
            );
            for c in rt.list_containers().await? {
                if !all && c.status == Status::Stopped {
                    continue;
                }
                let exit = c.exit_code.map(|e| e.to_string()).unwrap_or_default();
                let pid = c
                    .pid
                    .filter(|_| c.status != Status::Stopped)
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                println!(
                    "{:<18} {:<10} {:<9} {:>5} {:>8}  {}",
                    c.id, c.name, c.status, exit, pid, c.created_at
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::Logs { id, follow } => {
            stream_log(&rt, &id, follow).await?;
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::Exec { tty, id, cmd } => exec(&rt, &id, cmd, tty).await,
        RuntimeCommand::Stop { id, time } => {
            rt.stop_container(&id, Duration::from_secs(time)).await?;
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::Rm { force, id } => {
            let st = rt.container_status(&id).await?;
            if st.status != Status::Stopped && !force {
                bail!(
                    "container {id} is {}; stop it first or use --force",
                    st.status
                );
            }
            remove_with_sandbox(&rt, &id, &st.sandbox_id).await?;
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn remove_with_sandbox(rt: &SkiffRuntime, id: &str, sandbox: &str) -> anyhow::Result<()> {
    rt.remove_container(id).await?;
    let left = rt
        .list_containers()
        .await?
        .into_iter()
        .any(|c| c.sandbox_id == sandbox);
    if !left {
        rt.remove_pod_sandbox(sandbox).await?;
    }
    Ok(())
}

/// `64m`, `1g`, `512k`, `1000` → bytes.
fn parse_bytes(s: &str) -> anyhow::Result<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.trim_end_matches('b').chars().last() {
        Some('k') => (&s[..s.trim_end_matches('b').len() - 1], 1u64 << 10),
        Some('m') => (&s[..s.trim_end_matches('b').len() - 1], 1 << 20),
        Some('g') => (&s[..s.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (s.trim_end_matches('b'), 1),
    };
    let n: f64 = num.parse().with_context(|| format!("bad size {s:?}"))?;
    Ok((n * mult as f64) as u64)
}

async fn run_container(rt: &SkiffRuntime, args: RunArgs) -> anyhow::Result<ExitCode> {
    let memory = args.memory.as_deref().map(parse_bytes).transpose()?;
    let cpus = args.cpus.map(|c| (c * 1000.0) as u64);
    let (rootfs, process) = match (&args.rootfs, &args.image) {
        (Some(dir), _) => {
            if args.cmd.is_empty() {
                bail!("--rootfs needs a command after --");
            }
            let mut env = vec![format!(
                "PATH={}",
                skiff_runtime::container::spec::DEFAULT_PATH
            )];
            env.extend(args.env.iter().cloned());
            let process = ProcessSpec {
                args: args.cmd.clone(),
                env,
                cwd: args.workdir.clone(),
                ..Default::default()
            };
            (RootfsSource::Directory(dir.clone()), process)
        }
        (None, Some(reference)) => {
            let store = ImageStore::open(&args.image_root)?;
            let image = match store.resolve(reference) {
                Some(i) => i,
                None => store.pull(reference, &PullOptions::default()).await?,
            };
            // Like docker run: arguments after the image replace its cmd.
            let mut process =
                process_from_image(&image.config, &image.layers, &[], &args.cmd, &args.env);
            if args.workdir != "/" {
                process.cwd = args.workdir.clone();
            }
            (
                RootfsSource::Image {
                    layers: image.layers,
                },
                process,
            )
        }
        (None, None) => bail!("give an image or --rootfs"),
    };
    if process.args.is_empty() {
        bail!("no command: the image has no entrypoint or cmd and none was given");
    }
    let sandbox = rt
        .run_pod_sandbox(PodSandboxConfig {
            name: args.name.clone(),
            namespace: "runtime".into(),
            uid: args.name.clone(),
            ..Default::default()
        })
        .await?;
    let config = ContainerConfig {
        name: args.name.clone(),
        rootfs,
        process,
        mounts: vec![],
        resources: Resources {
            pids_limit: None,
            ..Resources::from_kubernetes(cpus, cpus, memory)
        },
        readonly_rootfs: false,
        log_path: None,
        add_capabilities: vec![],
        drop_capabilities: vec![],
        stdio: Default::default(),
    };
    let id = match rt.create_container(&sandbox, config).await {
        Ok(id) => id,
        Err(e) => {
            let _ = rt.remove_pod_sandbox(&sandbox).await;
            return Err(e.into());
        }
    };
    rt.start_container(&id).await?;
    if args.detach {
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    stream_log(rt, &id, true).await?;
    let status = rt.container_status(&id).await?;
    let code = status.exit_code.unwrap_or(255);
    if status.reason.as_deref() == Some("OOMKilled") {
        eprintln!("container {id} was OOM-killed");
    }
    if args.rm {
        remove_with_sandbox(rt, &id, &sandbox).await?;
    }
    Ok(ExitCode::from(code as u8))
}

/// Prints the CRI log decoded to stdout/stderr; with `follow`, until the container stops.
async fn stream_log(rt: &SkiffRuntime, id: &str, follow: bool) -> anyhow::Result<()> {
    let path = rt.log_path(id).await?;
    let mut pos = 0u64;
    loop {
        // Read the state first: lines written before the exit are then all in the file.
        let stopped = rt.container_status(id).await?.status == Status::Stopped;
        pos = print_from(&path, pos)?;
        if !follow || stopped {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn print_from(path: &Path, pos: u64) -> anyhow::Result<u64> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(pos);
    };
    f.seek(std::io::SeekFrom::Start(pos))?;
    let mut reader = BufReader::new(f);
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let mut consumed = pos;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        // An unterminated last line is still being written; read it next time.
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        consumed += n as u64;
        if let Some((_, stream, partial, text)) = parse_record(line.trim_end_matches('\n')) {
            let w: &mut dyn Write = if stream == Stream::Stdout {
                &mut out
            } else {
                &mut err
            };
            let _ = w.write_all(text.as_bytes());
            if !partial {
                let _ = w.write_all(b"\n");
            }
        }
    }
    let _ = out.flush();
    Ok(consumed)
}

fn dup(fd: impl AsFd) -> anyhow::Result<OwnedFd> {
    Ok(fd.as_fd().try_clone_to_owned()?)
}

async fn exec(
    rt: &SkiffRuntime,
    id: &str,
    cmd: Vec<String>,
    tty: bool,
) -> anyhow::Result<ExitCode> {
    let process = ProcessSpec {
        args: cmd,
        env: vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            "TERM=xterm".into(),
        ],
        cwd: "/".into(),
        ..Default::default()
    };
    if !tty {
        // The process gets our own stdio: no copying in between.
        let stdio = ExecStdio::Fds {
            stdin: Some(dup(std::io::stdin())?),
            stdout: dup(std::io::stdout())?,
            stderr: dup(std::io::stderr())?,
        };
        let code = rt.exec(id, ExecRequest { process, stdio }).await?;
        return Ok(ExitCode::from(code as u8));
    }
    let pty = nix::pty::openpty(None, None)?;
    if let Some((rows, cols)) = skiff_runtime::container::tty_size(&std::io::stdin()) {
        skiff_runtime::container::resize_tty(&pty.master, rows, cols)?;
    }
    let raw = RawMode::enter();
    let master_in = pty.master.try_clone()?;
    let mut master_out = std::fs::File::from(pty.master);
    std::thread::spawn(move || {
        let mut m = std::fs::File::from(master_in);
        let _ = std::io::copy(&mut std::io::stdin(), &mut m);
    });
    let copier = std::thread::spawn(move || {
        let _ = std::io::copy(&mut master_out, &mut std::io::stdout());
    });
    let code = rt
        .exec(
            id,
            ExecRequest {
                process,
                stdio: ExecStdio::Tty(pty.slave),
            },
        )
        .await?;
    let _ = copier.join();
    drop(raw);
    Ok(ExitCode::from(code as u8))
}

/// Puts the terminal on stdin into raw mode until dropped.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter() -> Self {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return Self(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        Self(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}
