//! [`FakeRuntime`]: a [`PodRuntime`] whose pods "run" instantly with no processes, for
//! hollow nodes (scale tests) and for the kubelet's own tests, which steer it (exit a
//! container, answer exec probes) through its inspection methods.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skiff_runtime::cgroups::CgroupStats;
use skiff_runtime::container::{ExecOutput, ExecRequest, ProcessSpec, Status};
use skiff_runtime::pod::{
    ContainerConfig, ContainerStatus, PodRuntime, PodSandboxConfig, Result, RuntimeError,
    SandboxState, SandboxStatus,
};

/// Answers `exec_sync` calls: (container name, argv) → exit code.
pub type ExecHandler = Arc<dyn Fn(&str, &[String]) -> i32 + Send + Sync>;

struct FakeContainer {
    status: ContainerStatus,
    config: ContainerConfig,
}

#[derive(Default)]
struct State {
    sandboxes: BTreeMap<String, SandboxStatus>,
    containers: BTreeMap<String, FakeContainer>,
    /// Signals each container received (15 for SIGTERM, 9 for SIGKILL), kept after removal.
    signals: BTreeMap<String, Vec<i32>>,
    next_ip: u32,
}

/// A runtime with no processes: containers are records that go Running on start.
pub struct FakeRuntime {
    state: Mutex<State>,
    seq: AtomicU64,
    base: Ipv4Addr,
    exec: Mutex<Option<ExecHandler>>,
    /// Exit code a container reports after SIGTERM (`None`: it ignores SIGTERM).
    term_exit: Mutex<Option<i32>>,
    changed: tokio::sync::Notify,
    /// Where a port forwarded to a fake pod lands (nothing listens on any other port).
    ports: Mutex<BTreeMap<u16, std::net::SocketAddr>>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new(Ipv4Addr::new(10, 88, 0, 0))
    }
}

impl FakeRuntime {
    /// A fake runtime handing out pod IPs after `base`.
    pub fn new(base: Ipv4Addr) -> Self {
        Self {
            state: Mutex::default(),
            seq: AtomicU64::new(1),
            base,
            exec: Mutex::new(None),
            term_exit: Mutex::new(Some(143)),
            changed: tokio::sync::Notify::new(),
            ports: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn id(&self, prefix: &str) -> String {
        format!(
            "{prefix}{:012x}",
            self.seq.fetch_add(1, Ordering::Relaxed) * 7919
        )
    }

    /// Sets how `exec_sync` answers (default: exit 0 for everything).
    pub fn set_exec_handler(&self, handler: ExecHandler) {
        *self.exec.lock().unwrap_or_else(|e| e.into_inner()) = Some(handler);
    }

    /// Makes `port` of every fake pod answer at `addr` (for port-forward tests).
    pub fn set_port_target(&self, port: u16, addr: std::net::SocketAddr) {
        self.ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port, addr);
    }

    /// Sets whether containers exit on SIGTERM (with the given code) or ignore it.
    pub fn set_term_exit(&self, code: Option<i32>) {
        *self.term_exit.lock().unwrap_or_else(|e| e.into_inner()) = code;
    }

    /// Makes a running container exit with `code` and `reason` (as if its process ended).
    pub fn exit_container(&self, id: &str, code: i32, reason: &str) -> bool {
        let mut st = self.lock();
        let Some(c) = st.containers.get_mut(id) else {
            return false;
        };
        if c.status.status != Status::Running {
            return false;
        }
        finish(&mut c.status, code, Some(reason.to_string()));
        drop(st);
        self.changed.notify_waiters();
        true
    }

    /// The config a container was created with.
    pub fn container_config(&self, id: &str) -> Option<ContainerConfig> {
        self.lock().containers.get(id).map(|c| c.config.clone())
    }

    /// The signals a container received (also after it was removed).
    pub fn signals(&self, id: &str) -> Vec<i32> {
        self.lock().signals.get(id).cloned().unwrap_or_default()
    }

    /// How many containers were ever created (restarts included) and still exist.
    pub fn container_count(&self) -> usize {
        self.lock().containers.len()
    }
}

fn finish(status: &mut ContainerStatus, code: i32, reason: Option<String>) {
    status.status = Status::Stopped;
    status.pid = None;
    status.exit_code = Some(code);
    status.finished_at = Some(jiff::Timestamp::now());
    status.reason = reason.or_else(|| Some(if code == 0 { "Completed" } else { "Error" }.into()));
}

fn not_found(kind: &'static str, id: &str) -> RuntimeError {
    RuntimeError::NotFound {
        kind,
        id: id.into(),
    }
}

#[async_trait::async_trait]
impl PodRuntime for FakeRuntime {
    async fn run_pod_sandbox(&self, config: PodSandboxConfig) -> Result<String> {
        let id = self.id("fsb");
        let mut st = self.lock();
        st.next_ip += 1;
        let ip = if config.host_network {
            None
        } else {
            Some(Ipv4Addr::from(u32::from(self.base) + 1 + st.next_ip))
        };
        st.sandboxes.insert(
            id.clone(),
            SandboxStatus {
                id: id.clone(),
                config,
                state: SandboxState::Ready,
                ip,
                created_at: jiff::Timestamp::now(),
            },
        );
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let mut st = self.lock();
        let sb = st
            .sandboxes
            .get_mut(id)
            .ok_or_else(|| not_found("sandbox", id))?;
        sb.state = SandboxState::NotReady;
        let mut killed = Vec::new();
        for c in st.containers.values_mut() {
            if c.status.sandbox_id == id && c.status.status == Status::Running {
                killed.push(c.status.id.clone());
                finish(&mut c.status, 137, Some("Error".into()));
            }
        }
        for k in killed {
            st.signals.entry(k).or_default().push(9);
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let mut st = self.lock();
        st.sandboxes.remove(id);
        st.containers.retain(|_, c| c.status.sandbox_id != id);
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<SandboxStatus> {
        self.lock()
            .sandboxes
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("sandbox", id))
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>> {
        Ok(self.lock().sandboxes.values().cloned().collect())
    }

    async fn create_container(&self, sandbox_id: &str, config: ContainerConfig) -> Result<String> {
        if config.process.args.is_empty() {
            return Err(RuntimeError::Invalid(format!(
                "container {}: no command",
                config.name
            )));
        }
        let id = self.id("fct");
        let mut st = self.lock();
        let sb = st
            .sandboxes
            .get(sandbox_id)
            .ok_or_else(|| not_found("sandbox", sandbox_id))?;
        if sb.state != SandboxState::Ready {
            return Err(RuntimeError::Invalid(format!(
                "sandbox {sandbox_id} is not ready"
            )));
        }
        let status = ContainerStatus {
            id: id.clone(),
            sandbox_id: sandbox_id.into(),
            name: config.name.clone(),
            status: Status::Created,
            pid: None,
            created_at: jiff::Timestamp::now(),
            started_at: None,
            finished_at: None,
            exit_code: None,
            reason: None,
            log_path: PathBuf::from(format!("/dev/null/{id}.log")),
        };
        st.containers
            .insert(id.clone(), FakeContainer { status, config });
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let mut st = self.lock();
        let c = st
            .containers
            .get_mut(id)
            .ok_or_else(|| not_found("container", id))?;
        if c.status.status != Status::Created {
            return Err(RuntimeError::Invalid(format!(
                "container {id} is not created"
            )));
        }
        c.status.status = Status::Running;
        c.status.pid = Some(1);
        c.status.started_at = Some(jiff::Timestamp::now());
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let term = *self.term_exit.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut st = self.lock();
            let running = st
                .containers
                .get(id)
                .ok_or_else(|| not_found("container", id))?
                .status
                .status
                == Status::Running;
            if !running {
                return Ok(());
            }
            st.signals.entry(id.to_string()).or_default().push(15);
            let c = st.containers.get_mut(id).expect("checked above");
            if let Some(code) = term {
                finish(&mut c.status, code, None);
                return Ok(());
            }
        }
        // The "process" ignores SIGTERM: it gets its grace period, then SIGKILL.
        tokio::time::sleep(grace).await;
        let mut st = self.lock();
        if let Some(c) = st.containers.get_mut(id)
            && c.status.status == Status::Running
        {
            finish(&mut c.status, 137, None);
            st.signals.entry(id.to_string()).or_default().push(9);
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.lock().containers.remove(id);
        Ok(())
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        self.lock()
            .containers
            .get(id)
            .map(|c| c.status.clone())
            .ok_or_else(|| not_found("container", id))
    }

    async fn list_containers(&self) -> Result<Vec<ContainerStatus>> {
        Ok(self
            .lock()
            .containers
            .values()
            .map(|c| c.status.clone())
            .collect())
    }

    async fn wait_container(&self, id: &str, timeout: Option<Duration>) -> Result<Option<i32>> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let notified = self.changed.notified();
            let st = self.container_status(id).await?;
            if st.status == Status::Stopped {
                return Ok(st.exit_code);
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, notified).await.is_err() {
                        return Ok(None);
                    }
                }
                None => notified.await,
            }
        }
    }

    async fn exec_sync(
        &self,
        id: &str,
        args: Vec<String>,
        _timeout: Duration,
    ) -> Result<ExecOutput> {
        let st = self.container_status(id).await?;
        if st.status != Status::Running {
            return Err(RuntimeError::Invalid(format!(
                "container {id} is not running"
            )));
        }
        let handler = self.exec.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let exit_code = handler.map_or(0, |h| h(&st.name, &args));
        Ok(ExecOutput {
            exit_code,
            stdout: Vec::new(),
            stderr: Vec::new(),
        })
    }

    async fn exec_process(&self, id: &str, command: Vec<String>) -> Result<ProcessSpec> {
        let st = self.lock();
        let c = st
            .containers
            .get(id)
            .ok_or_else(|| not_found("container", id))?;
        Ok(ProcessSpec {
            args: command,
            rlimits: Vec::new(),
            ..c.config.process.clone()
        })
    }

    async fn exec(&self, id: &str, _request: ExecRequest) -> Result<i32> {
        self.container_status(id).await.map(|_| 0)
    }

    async fn log_path(&self, id: &str) -> Result<PathBuf> {
        self.container_status(id).await.map(|c| c.log_path)
    }

    async fn container_stats(&self, id: &str) -> Result<CgroupStats> {
        // Plausible figures for hollow nodes: 10m of CPU since the start and a steady
        // 8 MiB working set, so metrics pipelines have something to carry.
        let c = self.container_status(id).await?;
        let ran = c
            .started_at
            .map(|t| jiff::Timestamp::now().duration_since(t).as_nanos().max(0) as u64)
            .unwrap_or(0);
        Ok(CgroupStats {
            cpu_usage_ns: ran / 100,
            memory_usage: 10 << 20,
            memory_working_set: 8 << 20,
            memory_rss: 6 << 20,
            pids: 1,
            ..CgroupStats::default()
        })
    }

    async fn port_forward(&self, sandbox_id: &str, port: u16) -> Result<tokio::net::TcpStream> {
        if !self.lock().sandboxes.contains_key(sandbox_id) {
            return Err(RuntimeError::NotFound {
                kind: "sandbox",
                id: sandbox_id.into(),
            });
        }
        let target = self
            .ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&port)
            .copied();
        let io = |source| RuntimeError::Io {
            path: format!("fake sandbox {sandbox_id}").into(),
            source,
        };
        match target {
            Some(addr) => tokio::net::TcpStream::connect(addr).await.map_err(io),
            None => Err(io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            ))),
        }
    }
}
