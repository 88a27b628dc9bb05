//! End-to-end test harness: starts real `skiff server` processes (embedded store or a real
//! etcd on loopback), and runs the `skiff` CLI, the real `kubectl` and the Python client
//! against them as a user would. Every process started here is stopped by PID on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod workload;

/// The `skiff` binary built beside the test executable (`target/<profile>/skiff`).
pub fn skiff_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> directory");
    let bin = dir.join("skiff");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p skiff-cli)",
        bin.display()
    );
    bin
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A free TCP port on loopback (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process that is killed (by its PID) and reaped when dropped.
pub struct Proc {
    child: Option<Child>,
    name: String,
}

impl Proc {
    /// Wraps a started child.
    pub fn new(name: &str, child: Child) -> Self {
        Self {
            child: Some(child),
            name: name.into(),
        }
    }

    /// The PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM, waits up to `grace`, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM to our own child, by its PID.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let end = Instant::now() + grace;
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.is_some() {
            eprintln!("stopping {} (pid {})", self.name, self.pid());
        }
        self.kill9();
    }
}

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
}

impl Cluster {
    /// Starts a server on `backend` and waits until it serves.
    pub fn start(backend: Backend) -> Result<Self> {
        let etcd = match backend {
            Backend::Embedded => None,
            Backend::Etcd => Some(Etcd::start()?),
        };
        let etcd_endpoint = etcd.as_ref().map(|e| e.endpoint.clone());
        Self::start_on(etcd, etcd_endpoint)
    }

    /// Starts a second server on this cluster's etcd, with its own data directory (CA,
    /// tokens, admin kubeconfig) and port, as a highly available control plane runs.
    pub fn start_peer(&self) -> Result<Self> {
        let endpoint = self
            .etcd_endpoint
            .clone()
            .context("a peer server needs an etcd cluster")?;
        Self::start_on(None, Some(endpoint))
    }

    fn start_on(etcd: Option<Etcd>, etcd_endpoint: Option<String>) -> Result<Self> {
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
        };
        c.launch()?;
        Ok(c)
    }

    /// The data directory passed to the server.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn launch(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))?;
        let mut cmd = Command::new(skiff_bin());
        // Tests give their nodes pod CIDRs that cannot overlap with other tests' nodes on
        // this host, so node IPAM (which would hand out 10.244.0.0/24 in every test) is off.
        cmd.args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
            .arg("--allocate-node-cidrs=false")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--secure-port", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(e) = &self.etcd_endpoint {
            cmd.args(["--etcd-endpoints", e]);
        }
        let child = cmd.spawn().context("starting skiff server")?;
        self.server = Some(Proc::new("skiff server", child));
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
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.server_log());
        }
    }
}

fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    use std::io::Write;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn command");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("command output")
}

/// Stdout of a command that must succeed.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr of a command that must fail.
pub fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "command unexpectedly succeeded:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `f` every 50 ms until it returns `Some` or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Cluster {
    /// A `kube` client authenticated with the admin kubeconfig.
    pub async fn client(&self) -> Result<kube::Client> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?;
        Ok(kube::Client::try_from(cfg)?)
    }

    /// A raw HTTPS request with the admin token (or `token` when given, `Some("")` for none).
    /// Returns status code and body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Result<(u16, serde_json::Value)> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let mut cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?;
        if let Some(t) = token {
            cfg.auth_info.token = if t.is_empty() {
                None
            } else {
                Some(t.to_string().into())
            };
        }
        let client = kube::Client::try_from(cfg)?;
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(body)?;
        let resp = client.send(req.map(kube::client::Body::from)).await?;
        let status = resp.status().as_u16();
        let bytes = http_body_util_collect(resp.into_body()).await?;
        let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
        Ok((status, v))
    }
}

async fn http_body_util_collect(body: kube::client::Body) -> Result<Vec<u8>> {
    use http_body_util::BodyExt;
    Ok(body.collect().await?.to_bytes().to_vec())
}

/// Hollow nodes (the kubelet with its fake runtime: pods "run" instantly) hosted on a thread
/// of the test process, joined to a cluster. Stopped on drop.
pub struct HollowNodes {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `count` hollow nodes named `<prefix>-<i>` and waits until they are Ready.
    pub fn hollow_nodes(&self, count: usize, prefix: &str) -> Result<HollowNodes> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().to_path_buf();
        let kubeconfig = self.kubeconfig.clone();
        let prefix = prefix.to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
                let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .expect("config");
                let client_for =
                    move |_: &str| kube::Client::try_from(cfg.clone()).expect("client");
                let _ = skiff_kubelet::run_hollow_nodes(count, client_for, &prefix, root, async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        let nodes = HollowNodes {
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        };
        let ready = eventually(Duration::from_secs(60), || {
            let out = self.kubectl(&["get", "nodes", "--no-headers"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let n = text
                .lines()
                .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
                .count();
            (n >= count).then_some(())
        });
        if ready.is_none() {
            bail!("hollow nodes did not become Ready");
        }
        Ok(nodes)
    }
}

impl Drop for HollowNodes {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A `skiff agent` process (real runtime) joined to a [`Cluster`], isolated from other
/// test nodes by its own root and state directories, bridge, nftables table, cgroup
/// subtree, pod CIDR and kubelet port. Dropping it stops the agent and removes every
/// container, mount, cgroup, link and table it left.
pub struct Node {
    /// Node name.
    pub name: String,
    /// Kubelet root (images, pod volumes, root filesystems).
    pub root_dir: PathBuf,
    /// Runtime state root.
    pub state_dir: PathBuf,
    /// Port of the node's HTTPS server.
    pub kubelet_port: u16,
    /// Pod CIDR set on the Node.
    pub cidr: String,
    /// Node bridge.
    pub bridge: String,
    /// nftables table.
    pub nft_table: String,
    /// cgroup subtree.
    pub cgroup_subtree: String,
    kubeconfig: PathBuf,
    tls_dir: PathBuf,
    /// (server URL, join token) for an agent that joins as a separate machine.
    join: Option<(String, String)>,
    dir: tempfile::TempDir,
    agent: Option<Proc>,
}

/// A tag unique among concurrently running test nodes (bridge names stay ≤ 15 bytes).
fn node_tag(n: u8) -> String {
    format!("{:x}{n:x}", std::process::id() % 0xfffff)
}

/// Whether node tests can run here (root and a static busybox).
pub fn can_run_nodes() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        && Path::new("/bin/busybox").exists()
}

impl Cluster {
    /// Starts a `skiff agent` named `name` with pod CIDR `10.<b>.<n>.0/24` (`n` tells the
    /// nodes of one test process apart), waits until its Node is Ready, and side-loads
    /// busybox as `busybox:1.36`.
    pub fn start_node(&self, name: &str, n: u8) -> Result<Node> {
        self.start_agent(name, n, None)
    }

    /// Starts an agent (joined with `join` = (server URL, token) when given, else with the
    /// admin kubeconfig and the CA directory) and waits until its Node is Ready.
    fn start_agent(&self, name: &str, n: u8, join: Option<(String, String)>) -> Result<Node> {
        let tag = node_tag(n);
        let b = 200 + (std::process::id() % 50) as u8;
        let dir = tempfile::tempdir()?;
        let mut node = Node {
            name: name.into(),
            root_dir: dir.path().join("root"),
            state_dir: dir.path().join("state"),
            kubelet_port: free_port(),
            cidr: format!("10.{b}.{n}.0/24"),
            bridge: format!("skn{tag}"),
            nft_table: format!("skiff_n{tag}"),
            cgroup_subtree: format!("skiff-e2e-{tag}"),
            kubeconfig: self.kubeconfig.clone(),
            tls_dir: self.data_dir().join("tls"),
            join,
            dir,
            agent: None,
        };
        node.import_rootfs(&busybox_rootfs(node.dir.path())?, "busybox:1.36")?;
        node.launch()?;
        // The test server allocates no node CIDRs (see `launch`), so the test assigns one
        // that no other test's node uses.
        let patch = format!(r#"{{"spec":{{"podCIDR":"{}"}}}}"#, node.cidr);
        let patched = eventually(Duration::from_secs(20), || {
            self.kubectl(&["patch", "node", name, "-p", &patch])
                .status
                .success()
                .then_some(())
        });
        if patched.is_none() {
            bail!("node {name} did not register: {}", node.log());
        }
        node.wait_ready(self)?;
        Ok(node)
    }
}

impl Node {
    fn launch(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))?;
        let mut cmd = Command::new(skiff_bin());
        cmd.arg("agent");
        match &self.join {
            // As a separate machine joins: no CA key, only the (public) CA certificate.
            Some((server, token)) => cmd
                .args(["--server", server, "--token", token])
                .arg("--ca-file")
                .arg(self.tls_dir.join("ca.crt")),
            None => cmd
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .arg("--tls-dir")
                .arg(&self.tls_dir),
        };
        let child = cmd
            .args(["--node-name", &self.name, "--node-ip", "127.0.0.1"])
            .args(["--kubelet-port", &self.kubelet_port.to_string()])
            .arg("--root-dir")
            .arg(&self.root_dir)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--bridge", &self.bridge, "--nft-table", &self.nft_table])
            .args(["--cgroup-subtree", &self.cgroup_subtree])
            .args(["--log-level", "info,skiff_kubelet=debug"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting skiff agent")?;
        self.agent = Some(Proc::new("skiff agent", child));
        Ok(())
    }

    fn wait_ready(&mut self, cluster: &Cluster) -> Result<()> {
        let ready = eventually(Duration::from_secs(30), || {
            let out = cluster.kubectl(&[
                "get",
                "node",
                &self.name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            (String::from_utf8_lossy(&out.stdout) == "True").then_some(())
        });
        if ready.is_none() {
            bail!("node {} did not become Ready: {}", self.name, self.log());
        }
        Ok(())
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// The agent's PID.
    pub fn pid(&self) -> u32 {
        self.agent.as_ref().map(Proc::pid).unwrap_or(0)
    }

    /// `kill -9` of the agent (its containers keep running).
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.agent.take() {
            p.kill9();
        }
    }

    /// Starts the agent again over the same directories and waits until it is Ready.
    pub fn restart(&mut self, cluster: &Cluster) -> Result<()> {
        self.kill9();
        self.launch()?;
        self.wait_ready(cluster)
    }

    /// `skiff image import --rootfs FILE NAME --root <node root>`.
    pub fn import_rootfs(&self, tarball: &Path, name: &str) -> Result<()> {
        let out = Command::new(skiff_bin())
            .args(["image", "import", "--rootfs"])
            .arg(tarball)
            .arg(name)
            .arg("--root")
            .arg(&self.root_dir)
            .output()?;
        if !out.status.success() {
            bail!(
                "image import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// A runtime over this node's state (for looking at containers from the host, and
    /// for cleanup).
    pub fn runtime(&self) -> Result<skiff_runtime::pod::SkiffRuntime> {
        let mut rc = skiff_runtime::pod::RuntimeConfig::new(&self.state_dir, self.cidr.parse()?);
        rc.network.bridge = self.bridge.clone();
        rc.network.nft_table = self.nft_table.clone();
        rc.cgroup_subtree = Some(self.cgroup_subtree.clone());
        rc.shim = skiff_runtime::container::ShimCommand {
            program: skiff_bin(),
            env: vec![],
        };
        Ok(skiff_runtime::pod::SkiffRuntime::new(rc)?)
    }

    /// The host PID of a container (by its `skiff://<id>` container id).
    pub fn container_pid(&self, container_id: &str) -> Option<i32> {
        use skiff_runtime::pod::PodRuntime;
        let id = container_id
            .strip_prefix("skiff://")
            .unwrap_or(container_id);
        let rt = self.runtime().ok()?;
        block_on(async { rt.container_status(id).await.ok()?.pid })
    }

    fn cleanup(&mut self) {
        self.kill9();
        let rt = self.runtime().ok();
        block_on(skiff_runtime::testkit::tear_down_node(
            rt.as_ref(),
            &self.root_dir,
            &self.cgroup_subtree,
        ));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- agent {} log ---\n{}", self.name, self.log());
        }
        self.cleanup();
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// A root-filesystem tarball of Debian's static busybox with its applet links, an
/// `/etc/passwd`, and `/www/index.html` ("hello from skiff").
pub fn busybox_rootfs(dir: &Path) -> Result<PathBuf> {
    let root = dir.join("bbroot");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy("/bin/busybox", bin.join("busybox"))?;
    let list = Command::new("/bin/busybox").arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet))?;
        }
    }
    for d in ["etc", "tmp", "proc", "sys", "dev", "root", "www"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    std::fs::write(root.join("www/index.html"), "hello from skiff\n")?;
    let tar = dir.join("busybox.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()?;
    if !st.success() {
        bail!("tar of the busybox root failed");
    }
    std::fs::remove_dir_all(&root)?;
    Ok(tar)
}

impl Cluster {
    /// A pod as JSON (`kubectl get pod NAME -o json`), `None` when it is not there.
    pub fn pod_json(&self, name: &str) -> Option<serde_json::Value> {
        let out = self.kubectl(&["get", "pod", name, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
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
}

/// `s` quoted for sh.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The status of container `name` in a pod's JSON (`Null` when it has none).
pub fn container_status<'a>(pod: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

/// The status (`True`/`False`) of a pod condition in a pod's JSON.
pub fn pod_condition<'a>(pod: &'a serde_json::Value, kind: &str) -> &'a str {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == kind))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
}

impl Cluster {
    /// The node join token the server wrote to `<data-dir>/tokens.json`.
    pub fn join_token(&self) -> Result<String> {
        let text = std::fs::read_to_string(self.data_dir().join("tokens.json"))?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        v["nodeJoin"]
            .as_str()
            .map(str::to_string)
            .context("tokens.json has no nodeJoin token")
    }

    /// Starts a `skiff agent` the way a separate machine joins: `--server` and the join
    /// `--token`, with only the cluster CA certificate (`--ca-file`, public) and no CA key,
    /// so its node server certificate must come through a CertificateSigningRequest.
    /// Otherwise like [`Cluster::start_node`]; waits until the Node is Ready.
    pub fn start_remote_node(&self, name: &str, n: u8) -> Result<Node> {
        let server = format!("https://127.0.0.1:{}", self.port);
        self.start_agent(name, n, Some((server, self.join_token()?)))
    }
}
