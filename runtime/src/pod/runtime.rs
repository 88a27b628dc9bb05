//! [`SkiffRuntime`]: the real [`PodRuntime`] on this machine. Blocking work (forks,
//! netlink threads, file I/O) runs on tokio's blocking pool; all state is on disk, so a
//! fresh instance over the same root adopts every live sandbox and container.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;

use super::sandbox::{SandboxRecord, SandboxState};
use super::{
    ContainerConfig, ContainerStatus, PodRuntime, PodSandboxConfig, Result, RootfsSource,
    RuntimeError, SandboxStatus,
};
use crate::cgroups::{self, CgroupConfig, CgroupLayout, CgroupStats};
use crate::container::{
    AttachSession, Container, ContainerRoot, ContainerSpec, ExecOutput, ExecRequest, MountKind,
    MountSpec, NamespaceSpec, ProcessSpec, ShimCommand,
};
use crate::network::{NetworkConfig, PodNetwork};

/// Annotation naming a container's sandbox.
pub const SANDBOX_ANNOTATION: &str = "io.skiff.sandbox-id";
/// Annotation naming a container within its pod.
pub const NAME_ANNOTATION: &str = "io.skiff.container-name";

/// Settings of a node runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// State root (`/run/skiff`): `containers/`, `sandboxes/`.
    pub root: PathBuf,
    /// Pod networking.
    pub network: NetworkConfig,
    /// Name of the cgroup subtree under the agent's own cgroup; `None` disables cgroups.
    pub cgroup_subtree: Option<String>,
    /// How shims start.
    pub shim: ShimCommand,
    /// Where containers' overlay root filesystems (and so their writes) live, one
    /// directory per container; `None` keeps them beside the container state in `root`.
    /// The agent points it at its on-disk root, as the state root is usually a tmpfs.
    pub rootfs_root: Option<PathBuf>,
}

impl RuntimeConfig {
    /// Defaults under `root` for a node with pod CIDR `cidr`.
    pub fn new(root: impl Into<PathBuf>, cidr: ipnet::Ipv4Net) -> Self {
        let root = root.into();
        Self {
            network: NetworkConfig::new(cidr, &root),
            root,
            cgroup_subtree: Some("skiff".into()),
            shim: ShimCommand::current_exe(),
            rootfs_root: None,
        }
    }
}

struct Inner {
    containers: ContainerRoot,
    rootfs_root: Option<PathBuf>,
    sandboxes: PathBuf,
    network: PodNetwork,
    cgroups: Option<CgroupLayout>,
}

/// The node's runtime.
#[derive(Clone)]
pub struct SkiffRuntime {
    inner: Arc<Inner>,
}

fn new_id(seed: &str) -> String {
    let now = jiff::Timestamp::now().as_nanosecond();
    let h = sha2::Sha256::digest(format!("{seed}/{now}/{}", std::process::id()).as_bytes());
    hex::encode(&h[..8])
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(RuntimeError::Invalid(format!("runtime task failed: {e}"))))
}

impl SkiffRuntime {
    /// A runtime over `config`; detects the cgroup layout once.
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        let cgroups = match &config.cgroup_subtree {
            Some(sub) => Some(CgroupLayout::detect(sub)?),
            None => None,
        };
        let inner = Inner {
            containers: ContainerRoot {
                dir: config.root.join("containers"),
                shim: config.shim.clone(),
            },
            rootfs_root: config.rootfs_root.clone(),
            sandboxes: config.root.join("sandboxes"),
            network: PodNetwork::new(config.network.clone()),
            cgroups,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The container root (for debug tools).
    pub fn containers(&self) -> &ContainerRoot {
        &self.inner.containers
    }

    /// The pod network (for node teardown in tests).
    pub fn network(&self) -> &PodNetwork {
        &self.inner.network
    }

    /// The cgroup of a sandbox-relative path.
    fn cgroup(&self, rel: &str) -> CgroupConfig {
        self.inner
            .cgroups
            .as_ref()
            .map_or(CgroupConfig::None, |l| l.config_for(rel))
    }
}

impl Inner {
    fn sandbox_dir(&self, id: &str) -> Result<PathBuf> {
        crate::container::validate_id(id)?;
        Ok(self.sandboxes.join(id))
    }

    fn load_sandbox(&self, id: &str) -> Result<SandboxRecord> {
        SandboxRecord::load(&self.sandbox_dir(id)?, id)
    }

    fn load_container(&self, id: &str) -> Result<Container> {
        Container::load(&self.containers, id).map_err(|e| match e {
            crate::container::ContainerError::NotFound(id) => RuntimeError::NotFound {
                kind: "container",
                id,
            },
            e => e.into(),
        })
    }

    fn containers_of(&self, sandbox: &str) -> Result<Vec<Container>> {
        Ok(self
            .containers
            .list()?
            .into_iter()
            .filter(|c| {
                c.spec
                    .annotations
                    .get(SANDBOX_ANNOTATION)
                    .map(String::as_str)
                    == Some(sandbox)
            })
            .collect())
    }

    fn stop_sandbox(&self, id: &str) -> Result<()> {
        let dir = self.sandbox_dir(id)?;
        let mut rec = SandboxRecord::load(&dir, id)?;
        for mut c in self.containers_of(id)? {
            c.stop(Duration::ZERO)?;
        }
        self.network.remove_sandbox(id, &dir)?;
        rec.state = SandboxState::NotReady;
        rec.save(&dir)
    }

    fn remove_sandbox(&self, id: &str) -> Result<()> {
        let dir = self.sandbox_dir(id)?;
        let rec = match SandboxRecord::load(&dir, id) {
            Ok(r) => r,
            Err(RuntimeError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        for c in self.containers_of(id)? {
            c.delete(true)?;
        }
        self.network.remove_sandbox(id, &dir)?;
        if let Some(cg) = cgroups::manager(&rec.cgroup) {
            cg.delete()?;
        }
        std::fs::remove_dir_all(&dir).map_err(|source| RuntimeError::Io { path: dir, source })
    }
}

fn status_of(c: &Container) -> ContainerStatus {
    ContainerStatus {
        id: c.spec.id.clone(),
        sandbox_id: c
            .spec
            .annotations
            .get(SANDBOX_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
        name: c
            .spec
            .annotations
            .get(NAME_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
        status: c.state.status,
        pid: c.state.pid,
        created_at: c.state.created_at,
        started_at: c.state.started_at,
        finished_at: c.state.finished_at,
        exit_code: c.state.exit_code,
        reason: c.state.reason.clone(),
        log_path: c.spec.log_path.clone(),
    }
}

/// The spec of a new container in sandbox `sb`.
fn container_spec(
    id: &str,
    sb: &SandboxRecord,
    sb_dir: &Path,
    cfg: ContainerConfig,
    cgroup: CgroupConfig,
) -> ContainerSpec {
    let (rootfs, layers) = match cfg.rootfs {
        RootfsSource::Directory(dir) => (dir, Vec::new()),
        RootfsSource::Image { layers } => (PathBuf::new(), layers),
    };
    // The pod's etc files first, unless a volume replaces one.
    let mut mounts: Vec<MountSpec> = sb
        .network
        .etc_files
        .iter()
        .filter(|(dst, _)| !cfg.mounts.iter().any(|m| &m.destination == dst))
        .map(|(dst, src)| MountSpec {
            destination: dst.clone(),
            kind: MountKind::Bind {
                source: src.clone(),
                readonly: false,
            },
        })
        .collect();
    mounts.extend(cfg.mounts);
    let log_path = cfg
        .log_path
        .unwrap_or_else(|| sb_dir.join("logs").join(format!("{}_{id}.log", cfg.name)));
    ContainerSpec {
        id: id.into(),
        rootfs,
        layers,
        rootfs_dir: None,
        readonly_rootfs: cfg.readonly_rootfs,
        process: cfg.process,
        hostname: None,
        mounts,
        namespaces: NamespaceSpec {
            net: Some(sb.network.netns.clone()),
            uts: Some(sb.network.uts.clone()),
            ipc: Some(sb.network.ipc.clone()),
        },
        cgroup,
        resources: cfg.resources,
        log_path,
        seccomp: true,
        add_capabilities: cfg.add_capabilities,
        drop_capabilities: cfg.drop_capabilities,
        annotations: [
            (SANDBOX_ANNOTATION.to_string(), sb.id.clone()),
            (NAME_ANNOTATION.to_string(), cfg.name),
        ]
        .into(),
        // The sandbox's network, UTS and IPC namespaces belong to the host's user namespace.
        user_namespace: None,
        stdio: cfg.stdio,
    }
}

#[async_trait::async_trait]
impl PodRuntime for SkiffRuntime {
    async fn run_pod_sandbox(&self, mut config: PodSandboxConfig) -> Result<String> {
        let id = new_id(&format!(
            "{}/{}/{}",
            config.namespace, config.name, config.uid
        ));
        if config.hostname.is_empty() {
            config.hostname = config.name.clone();
        }
        let cgroup = self.cgroup(&format!("pod-{id}"));
        let inner = self.inner.clone();
        let sid = id.clone();
        blocking(move || {
            let dir = inner.sandbox_dir(&sid)?;
            std::fs::create_dir_all(&dir).map_err(|source| RuntimeError::Io {
                path: dir.clone(),
                source,
            })?;
            let made = (|| {
                if let Some(cg) = cgroups::manager(&cgroup) {
                    cg.create()?;
                    cg.apply(&config.resources)?;
                }
                let network = inner.network.create_sandbox_with_dns(
                    &sid,
                    &dir,
                    &config.hostname,
                    config.host_network,
                    config.dns.as_ref(),
                )?;
                SandboxRecord {
                    id: sid.clone(),
                    config,
                    state: SandboxState::Ready,
                    network,
                    cgroup: cgroup.clone(),
                    created_at: jiff::Timestamp::now(),
                }
                .save(&dir)
            })();
            if made.is_err() {
                if let Some(cg) = cgroups::manager(&cgroup) {
                    let _ = cg.delete();
                }
                let _ = std::fs::remove_dir_all(&dir);
            }
            made.map(|()| sid)
        })
        .await
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        blocking(move || inner.stop_sandbox(&id)).await
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        blocking(move || inner.remove_sandbox(&id)).await
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<SandboxStatus> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        blocking(move || inner.load_sandbox(&id).map(|r| r.status())).await
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>> {
        let inner = self.inner.clone();
        blocking(move || {
            let Ok(rd) = std::fs::read_dir(&inner.sandboxes) else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if let Ok(r) = inner.load_sandbox(&id) {
                    out.push(r.status());
                }
            }
            out.sort_by_key(|s| s.created_at);
            Ok(out)
        })
        .await
    }

    async fn create_container(&self, sandbox_id: &str, config: ContainerConfig) -> Result<String> {
        if config.process.args.is_empty() {
            return Err(RuntimeError::Invalid(format!(
                "container {}: no command",
                config.name
            )));
        }
        let id = new_id(&format!("{sandbox_id}/{}", config.name));
        let cgroup = self.cgroup(&format!("pod-{sandbox_id}/{id}"));
        let (inner, sid, cid) = (self.inner.clone(), sandbox_id.to_string(), id.clone());
        blocking(move || {
            let sb = inner.load_sandbox(&sid)?;
            if sb.state != SandboxState::Ready {
                return Err(RuntimeError::Invalid(format!("sandbox {sid} is not ready")));
            }
            match &config.rootfs {
                RootfsSource::Directory(dir) if !dir.is_dir() => {
                    return Err(RuntimeError::Rootfs(format!(
                        "{} is not a directory",
                        dir.display()
                    )));
                }
                RootfsSource::Image { layers } if layers.is_empty() => {
                    return Err(RuntimeError::Rootfs("image has no layers".into()));
                }
                _ => {}
            }
            let mut spec = container_spec(&cid, &sb, &inner.sandbox_dir(&sid)?, config, cgroup);
            if !spec.layers.is_empty() {
                spec.rootfs_dir = inner.rootfs_root.as_ref().map(|r| r.join(&cid));
            }
            Container::create(&inner.containers, spec)?;
            Ok(cid)
        })
        .await
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        blocking(move || Ok(inner.load_container(&id)?.start()?)).await
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        blocking(move || {
            inner
                .load_container(&id)?
                .stop(grace)
                .map(drop)
                .map_err(Into::into)
        })
        .await
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        blocking(move || match inner.load_container(&id) {
            Ok(c) => Ok(c.delete(true)?),
            Err(RuntimeError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        })
        .await
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        blocking(move || inner.load_container(&id).map(|c| status_of(&c))).await
    }

    async fn list_containers(&self) -> Result<Vec<ContainerStatus>> {
        let inner = self.inner.clone();
        blocking(move || Ok(inner.containers.list()?.iter().map(status_of).collect())).await
    }

    async fn wait_container(&self, id: &str, timeout: Option<Duration>) -> Result<Option<i32>> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        blocking(move || Ok(inner.load_container(&id)?.wait(timeout)?)).await
    }

    async fn exec_sync(
        &self,
        id: &str,
        args: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let (inner, id2) = (self.inner.clone(), id.to_string());
        let run = blocking(move || Ok(inner.load_container(&id2)?.exec_output(args)?));
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(RuntimeError::Invalid(format!(
                "exec in {id} timed out after {timeout:?}"
            ))),
        }
    }

    async fn exec_process(&self, id: &str, command: Vec<String>) -> Result<ProcessSpec> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        blocking(move || Ok(inner.load_container(&id)?.exec_process(command))).await
    }

    async fn exec(&self, id: &str, request: ExecRequest) -> Result<i32> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        blocking(move || Ok(inner.load_container(&id)?.exec(request)?.wait()?)).await
    }

    async fn attach(&self, id: &str, stdin: bool) -> Result<AttachSession> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        blocking(move || Ok(inner.load_container(&id)?.attach(stdin)?)).await
    }

    async fn log_path(&self, id: &str) -> Result<PathBuf> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        blocking(move || Ok(inner.load_container(&id)?.spec.log_path)).await
    }

    async fn container_stats(&self, id: &str) -> Result<CgroupStats> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        blocking(move || {
            let c = inner.load_container(&id)?;
            match cgroups::manager(&c.spec.cgroup) {
                Some(m) => Ok(m.stats()?),
                None => Ok(CgroupStats::default()),
            }
        })
        .await
    }

    async fn port_forward(&self, sandbox_id: &str, port: u16) -> Result<tokio::net::TcpStream> {
        let (inner, id) = (self.inner.clone(), sandbox_id.to_string());
        let stream = blocking(move || {
            let sb = inner.load_sandbox(&id)?;
            if sb.state != SandboxState::Ready {
                return Err(RuntimeError::Invalid(format!("sandbox {id} is not ready")));
            }
            let netns = sb.network.netns.clone();
            let s = crate::network::forward::connect_in_netns(
                &netns,
                port,
                std::time::Duration::from_secs(10),
            )
            .map_err(|source| RuntimeError::Io {
                path: netns.clone(),
                source,
            })?;
            s.set_nonblocking(true).map_err(|source| RuntimeError::Io {
                path: netns,
                source,
            })?;
            Ok(s)
        })
        .await?;
        tokio::net::TcpStream::from_std(stream).map_err(|source| RuntimeError::Io {
            path: PathBuf::from(format!("127.0.0.1:{port}")),
            source,
        })
    }
}
