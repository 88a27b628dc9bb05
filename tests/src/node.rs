//! Real nodes: a `skiff agent` (real runtime) per node, isolated from every other agent on
//! the host by its own root and state directories, bridge, nftables table, cgroup subtree,
//! pod CIDR and kubelet port ([`AgentHost`], which the node benchmark uses too), with
//! busybox imported; dropping a [`Node`] removes everything its agent left.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::process::{Proc, free_port, skiff_bin};
use crate::{Cluster, eventually};

/// What one agent is called on the host and where it keeps its state.
pub struct AgentHost {
    /// Node name.
    pub name: String,
    /// Kubelet root (images, pod volumes, root filesystems).
    pub root_dir: PathBuf,
    /// Runtime state root.
    pub state_dir: PathBuf,
    /// Port of the node's HTTPS server.
    pub kubelet_port: u16,
    /// Node bridge.
    pub bridge: String,
    /// nftables table.
    pub nft_table: String,
    /// cgroup subtree.
    pub cgroup_subtree: String,
}

/// How an agent authenticates to the API server.
#[derive(Debug, Clone)]
pub enum AgentCredentials {
    /// The admin kubeconfig and the server's TLS directory (CA key included), as an agent
    /// beside its server runs.
    Admin {
        /// The admin kubeconfig.
        kubeconfig: PathBuf,
        /// The server's `<data-dir>/tls`.
        tls_dir: PathBuf,
    },
    /// As a separate machine joins: the server URL and join token, and only the (public)
    /// CA certificate, so its serving certificate comes through a CertificateSigningRequest.
    Join {
        /// `https://HOST:PORT`.
        server: String,
        /// The node join token.
        token: String,
        /// The cluster CA certificate.
        ca_file: PathBuf,
    },
}

impl AgentHost {
    /// `skiff agent` arguments for this host; the caller appends its own (`--log-level`,
    /// `--max-pods`).
    pub fn agent_args(&self, credentials: &AgentCredentials) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["agent".into()];
        match credentials {
            AgentCredentials::Admin {
                kubeconfig,
                tls_dir,
            } => args.extend([
                "--kubeconfig".into(),
                kubeconfig.into(),
                "--tls-dir".into(),
                tls_dir.into(),
            ]),
            AgentCredentials::Join {
                server,
                token,
                ca_file,
            } => args.extend([
                "--server".into(),
                server.into(),
                "--token".into(),
                token.into(),
                "--ca-file".into(),
                ca_file.into(),
            ]),
        }
        let flags: [(&str, OsString); 10] = [
            ("--node-name", (&self.name).into()),
            ("--node-ip", "127.0.0.1".into()),
            ("--kubelet-port", self.kubelet_port.to_string().into()),
            ("--root-dir", (&self.root_dir).into()),
            ("--state-dir", (&self.state_dir).into()),
            ("--bridge", (&self.bridge).into()),
            ("--nft-table", (&self.nft_table).into()),
            ("--cgroup-subtree", (&self.cgroup_subtree).into()),
            // Its own service proxy table, dropping only an address range of its own, so
            // agents of parallel tests do not drop each other's Service addresses.
            ("--proxy-table", self.proxy_table().into()),
            ("--service-cidr", self.proxy_drop_range().into()),
        ];
        for (flag, value) in flags {
            args.extend([flag.into(), value]);
        }
        args
    }

    /// A single address (in 198.18.0.0/15, which no test's Service uses) that this host's
    /// service proxy drops as its unheld service range; tests of the datapath pass their
    /// own `--service-cidr` after these arguments.
    pub fn proxy_drop_range(&self) -> String {
        let h = self
            .nft_table
            .bytes()
            .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
        format!(
            "198.{}.{}.{}/32",
            18 + (h >> 16 & 1),
            h >> 8 & 0xff,
            h & 0xff
        )
    }

    /// `skiff image import --rootfs TARBALL NAME --root <root dir>`.
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

    /// A runtime over this host's state with pod CIDR `cidr` (for looking at containers
    /// from the host, and for cleanup).
    pub fn runtime(&self, cidr: &str) -> Result<skiff_runtime::pod::SkiffRuntime> {
        let mut rc = skiff_runtime::pod::RuntimeConfig::new(&self.state_dir, cidr.parse()?);
        rc.network.bridge = self.bridge.clone();
        rc.network.nft_table = self.nft_table.clone();
        rc.cgroup_subtree = Some(self.cgroup_subtree.clone());
        rc.shim = skiff_runtime::container::ShimCommand {
            program: skiff_bin(),
            env: vec![],
        };
        Ok(skiff_runtime::pod::SkiffRuntime::new(rc)?)
    }

    /// Removes what the (stopped) agent left: every sandbox and container, the bridge and
    /// nftables table (when the pod CIDR is known), mounts under the root, the cgroup subtree.
    pub async fn tear_down(&self, cidr: Option<&str>) {
        let rt = cidr.and_then(|c| self.runtime(c).ok());
        skiff_runtime::testkit::tear_down_node(rt.as_ref(), &self.root_dir, &self.cgroup_subtree)
            .await;
        // The service proxy's table outlives its agent by design (a restarted agent keeps
        // Service traffic flowing); the test removes it. Missing is fine.
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", &self.proxy_table()])
            .stderr(std::process::Stdio::null())
            .status();
    }

    /// The service proxy's nftables table of this host.
    pub fn proxy_table(&self) -> String {
        format!("{}_svc", self.nft_table)
    }
}

/// A `skiff agent` process joined to a [`Cluster`] on its own [`AgentHost`] (its fields
/// are reached through the node: `node.name`, `node.root_dir`). Dropping it stops the agent
/// and removes every container, mount, cgroup, link and table it left.
pub struct Node {
    /// Where the agent runs.
    pub host: AgentHost,
    /// Pod CIDR set on the Node.
    pub cidr: String,
    credentials: AgentCredentials,
    extra: Vec<OsString>,
    dir: tempfile::TempDir,
    agent: Option<Proc>,
}

impl std::ops::Deref for Node {
    type Target = AgentHost;
    fn deref(&self) -> &AgentHost {
        &self.host
    }
}

/// A tag unique among concurrently running test nodes (bridge names stay ≤ 15 bytes).
fn node_tag(n: u8) -> String {
    format!("{:x}{n:x}", std::process::id() % 0xfffff)
}

/// The second octet of this test process's pod CIDRs (10.200-249.x.0/24): one that no
/// other test process running now holds, kept by a lock on a file named after it for as
/// long as this process lives.
fn pod_cidr_octet() -> u8 {
    static OCTET: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *OCTET.get_or_init(|| {
        let dir = std::env::temp_dir().join("skiff-e2e-pod-cidrs");
        let _ = std::fs::create_dir_all(&dir);
        let start = std::process::id() % 50;
        for i in 0..50 {
            let b = 200 + ((start + i) % 50) as u8;
            if let Ok(f) = std::fs::File::create(dir.join(b.to_string())) {
                if f.try_lock().is_ok() {
                    // Held (and released by the kernel) until this process exits.
                    std::mem::forget(f);
                    return b;
                }
            }
        }
        200 + start as u8
    })
}

/// Whether node tests can run here (root and a static busybox).
pub fn can_run_nodes() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        && Path::new("/bin/busybox").exists()
}

/// A root-filesystem tarball of Debian's static busybox with its applet links, an
/// `/etc/passwd`, and `/www/index.html` ("hello from skiff").
pub fn busybox_rootfs(dir: &Path) -> Result<PathBuf> {
    Ok(skiff_runtime::testkit::busybox_tarball(dir))
}

impl Cluster {
    /// Starts a `skiff agent` named `name` with pod CIDR `10.<b>.<n>.0/24` (`n` tells the
    /// nodes of one test process apart), waits until its Node is Ready, and side-loads
    /// busybox as `busybox:1.36`.
    pub fn start_node(&self, name: &str, n: u8) -> Result<Node> {
        self.start_node_with_args(name, n, &[])
    }

    /// [`Cluster::start_node`] with more `skiff agent` flags (`--dns-upstream ...`).
    pub fn start_node_with_args(&self, name: &str, n: u8, extra: &[&str]) -> Result<Node> {
        let credentials = AgentCredentials::Admin {
            kubeconfig: self.kubeconfig.clone(),
            tls_dir: self.data_dir().join("tls"),
        };
        self.start_agent(name, n, credentials, extra)
    }

    /// The pod CIDR [`Cluster::start_node`] gives node `n` of this test process.
    pub fn node_pod_cidr(n: u8) -> String {
        format!("10.{}.{n}.0/24", pod_cidr_octet())
    }

    /// Starts a `skiff agent` the way a separate machine joins: `--server` and the join
    /// `--token`, with only the cluster CA certificate (`--ca-file`, public) and no CA key,
    /// so its node server certificate must come through a CertificateSigningRequest.
    /// Otherwise like [`Cluster::start_node`]; waits until the Node is Ready.
    pub fn start_remote_node(&self, name: &str, n: u8) -> Result<Node> {
        let credentials = AgentCredentials::Join {
            server: format!("https://127.0.0.1:{}", self.port),
            token: self.join_token()?,
            ca_file: self.data_dir().join("tls").join("ca.crt"),
        };
        self.start_agent(name, n, credentials, &[])
    }

    /// Starts an agent with `credentials` and waits until its Node is Ready.
    fn start_agent(
        &self,
        name: &str,
        n: u8,
        credentials: AgentCredentials,
        extra: &[&str],
    ) -> Result<Node> {
        let tag = node_tag(n);
        let dir = tempfile::tempdir()?;
        let mut node = Node {
            host: AgentHost {
                name: name.into(),
                root_dir: dir.path().join("root"),
                state_dir: dir.path().join("state"),
                kubelet_port: free_port(),
                bridge: format!("skn{tag}"),
                nft_table: format!("skiff_n{tag}"),
                cgroup_subtree: format!("skiff-e2e-{tag}"),
            },
            cidr: Cluster::node_pod_cidr(n),
            credentials,
            extra: extra.iter().map(Into::into).collect(),
            dir,
            agent: None,
        };
        node.import_rootfs(&busybox_rootfs(node.dir.path())?, "busybox:1.36")?;
        node.launch()?;
        // The test server allocates no node CIDRs (see `Cluster::launch`), so the test
        // assigns one that no other test's node uses.
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
        let mut args = self.host.agent_args(&self.credentials);
        args.extend(["--log-level".into(), "info,skiff_kubelet=debug".into()]);
        args.extend(self.extra.iter().cloned());
        let log = self.dir.path().join("agent.log");
        self.agent = Some(Proc::spawn_skiff("skiff agent", args, &log)?);
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

    /// A runtime over this node's state (for looking at containers from the host).
    pub fn runtime(&self) -> Result<skiff_runtime::pod::SkiffRuntime> {
        self.host.runtime(&self.cidr)
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
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- agent {} log ---\n{}", self.name, self.log());
        }
        self.kill9();
        block_on(self.host.tear_down(Some(&self.cidr)));
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}
