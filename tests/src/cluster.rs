//! The control plane a test runs against: a `skiff server --disable-agent` process on the
//! embedded store or on a real etcd, started, `kill -9`ed and restarted over the same data,
//! a second server on the same etcd, and the `skiff` CLI and `kubectl` pointed at it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{Proc, free_port, run, skiff_bin};

/// A real etcd on loopback in its own data directory (the store's own test launcher, which
/// checks that the etcd answering is the one it started).
pub struct Etcd {
    /// Client URL.
    pub endpoint: String,
    _server: skiff_apiserver::storage::etcd_server::EtcdServer,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts etcd and waits until it answers.
    pub fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("etcd");
        // Its own thread and runtime, so callers inside an async test can use it too.
        let server = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(skiff_apiserver::storage::etcd_server::EtcdServer::start(
                &data,
            ))
            .map_err(anyhow::Error::from)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("etcd launcher panicked"))??;
        Ok(Self {
            endpoint: server.endpoint().to_string(),
            _server: server,
            _dir: dir,
        })
    }
}

/// Which store a cluster uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite store.
    Embedded,
    /// A real etcd started for the cluster.
    Etcd,
}

/// A `skiff server --disable-agent` process with its own data directory and port.
pub struct Cluster {
    /// Data directory (holds admin.kubeconfig).
    pub dir: tempfile::TempDir,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The HTTPS port.
    pub port: u16,
    /// kubectl's cache directory for this cluster.
    pub kube_cache: PathBuf,
    server: Option<Proc>,
    _etcd: Option<Etcd>,
    /// The etcd this server uses (its own, or a peer's).
    etcd_endpoint: Option<String>,
    /// Flags added to `skiff server`'s (e.g. controller timings).
    extra_args: Vec<String>,
}

impl Cluster {
    /// Starts a server on `backend` and waits until it serves.
    pub fn start(backend: Backend) -> Result<Self> {
        let etcd = match backend {
            Backend::Embedded => None,
            Backend::Etcd => Some(Etcd::start()?),
        };
        let etcd_endpoint = etcd.as_ref().map(|e| e.endpoint.clone());
        Self::start_on(etcd, etcd_endpoint, &[])
    }

    /// Starts a server on the embedded store with `extra` flags added to its own.
    pub fn start_with_args(extra: &[&str]) -> Result<Self> {
        Self::start_on(None, None, extra)
    }

    /// Starts a second server on this cluster's etcd, with its own data directory (CA,
    /// tokens, admin kubeconfig) and port, as a highly available control plane runs.
    pub fn start_peer(&self) -> Result<Self> {
        let endpoint = self
            .etcd_endpoint
            .clone()
            .context("a peer server needs an etcd cluster")?;
        Self::start_on(None, Some(endpoint), &[])
    }

    fn start_on(etcd: Option<Etcd>, etcd_endpoint: Option<String>, extra: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let kube_cache = dir.path().join("kube-cache");
        let mut c = Self {
            kubeconfig: dir.path().join("data").join("admin.kubeconfig"),
            dir,
            port: free_port(),
            kube_cache,
            server: None,
            _etcd: etcd,
            etcd_endpoint,
            extra_args: extra.iter().map(|a| a.to_string()).collect(),
        };
        c.launch()?;
        Ok(c)
    }

    /// The data directory passed to the server.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn launch(&mut self) -> Result<()> {
        let mut args: Vec<std::ffi::OsString> =
            ["server", "--disable-agent"].map(Into::into).into();
        // Loopback unless the test binds elsewhere (a test host's address, so pods reach the
        // API server through the `kubernetes` Service, whose endpoints may not be loopback).
        if !self.extra_args.iter().any(|a| a == "--bind-address") {
            args.extend(["--bind-address".into(), "127.0.0.1".into()]);
        }
        // Tests give their nodes pod CIDRs that cannot overlap with other tests' nodes on
        // this host, so node IPAM (which would hand out 10.244.0.0/24 in every test) is off.
        args.push("--allocate-node-cidrs=false".into());
        args.extend(["--data-dir".into(), self.data_dir().into()]);
        args.extend(["--secure-port".into(), self.port.to_string().into()]);
        // metrics.k8s.io collected every second, so `kubectl top` and autoscalers react in
        // test time (metrics-server's default is 15 s).
        args.extend(["--metric-resolution".into(), "1s".into()]);
        if let Some(e) = &self.etcd_endpoint {
            args.extend(["--etcd-endpoints".into(), e.into()]);
        }
        args.extend(self.extra_args.iter().map(Into::into));
        let log = self.dir.path().join("server.log");
        self.server = Some(Proc::spawn_skiff("skiff server", args, &log)?);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.kubeconfig.exists() {
                let out = self.kubectl(&["get", "--raw", "/api/v1/namespaces/default"]);
                if out.status.success() {
                    return Ok(());
                }
            }
            if self.server.as_mut().is_none_or(Proc::exited) {
                bail!("skiff server exited: {}", self.server_log());
            }
            if Instant::now() > deadline {
                bail!("skiff server did not become ready: {}", self.server_log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `kill -9` of the server.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.server.take() {
            p.kill9();
        }
    }

    /// Starts the server again on the same data directory, port and store.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.launch()
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.server.as_ref().map(Proc::pid).unwrap_or(0)
    }

    /// Runs the `skiff` CLI against this cluster.
    pub fn skiff(&self, args: &[&str]) -> Output {
        self.skiff_stdin(args, None)
    }

    /// Runs the `skiff` CLI with `stdin` as input.
    pub fn skiff_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run(
            Command::new(skiff_bin())
                .args(args)
                .env("KUBECONFIG", &self.kubeconfig),
            stdin,
        )
    }

    /// Runs the real kubectl against this cluster (discovery cache in the cluster's dir).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Runs kubectl with `stdin` as input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run(
            Command::new("kubectl")
                .arg("--cache-dir")
                .arg(&self.kube_cache)
                .args(args)
                .env("KUBECONFIG", &self.kubeconfig),
            stdin,
        )
    }

    /// Runs `program args` (kubectl or the skiff CLI, with this cluster's kubeconfig)
    /// under a pseudo-terminal made by util-linux `script`, feeding it `input`; returns
    /// what the terminal showed. For `exec -it`, which needs a terminal on stdin.
    pub fn in_terminal(&self, program: &Path, args: &[&str], input: &str) -> Output {
        let mut line = shell_quote(&program.display().to_string());
        if program == Path::new("kubectl") {
            line.push_str(" --cache-dir ");
            line.push_str(&shell_quote(&self.kube_cache.display().to_string()));
        }
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        run(
            Command::new("script")
                .args(["-qec", &line, "/dev/null"])
                .env("KUBECONFIG", &self.kubeconfig),
            Some(input),
        )
    }

    /// A pod as JSON (`kubectl get pod NAME -o json`), `None` when it is not there.
    pub fn pod_json(&self, name: &str) -> Option<serde_json::Value> {
        let out = self.kubectl(&["get", "pod", name, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// The node join token the server wrote to `<data-dir>/tokens.json`.
    pub fn join_token(&self) -> Result<String> {
        let text = std::fs::read_to_string(self.data_dir().join("tokens.json"))?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        v["nodeJoin"]
            .as_str()
            .map(str::to_string)
            .context("tokens.json has no nodeJoin token")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.server_log());
        }
    }
}

/// `s` quoted for sh.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
