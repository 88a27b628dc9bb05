//! An in-process API server for other crates' tests: the real server (router, auth, watch
//! cache) on an ephemeral loopback port with the embedded store in a temporary directory,
//! and an admin `kube::Client` for it. It stops when dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use tokio::sync::oneshot;

use crate::server::{self, DEFAULT_EVENT_TTL, ServerConfig};

/// A running in-process API server; dropping it stops the server and removes its data.
pub struct TestApiServer {
    /// An admin client for the server.
    pub client: kube::Client,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    // Declared last: removed after the server is told to stop.
    dir: Option<tempfile::TempDir>,
}

impl TestApiServer {
    /// Starts a server and waits until it serves. Panics when it cannot start: this is
    /// test scaffolding.
    pub async fn start() -> TestApiServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server whose configuration `adjust` changes first (service network, etcd
    /// endpoints, ...).
    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestApiServer {
        let dir = tempfile::tempdir().expect("temporary directory for the api server");
        Self::launch(dir, adjust).await
    }

    /// Stops the server and starts a new one on the same data (a restart).
    pub async fn restart(mut self, adjust: impl FnOnce(&mut ServerConfig)) -> TestApiServer {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let dir = self.dir.take().expect("a running server has its directory");
        Self::launch(dir, adjust).await
    }

    async fn launch(
        dir: tempfile::TempDir,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> TestApiServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut cfg = ServerConfig {
            data_dir: dir.path().join("apiserver"),
            etcd_endpoints: vec![],
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            secure_port: 0,
            event_ttl: DEFAULT_EVENT_TTL,
            metric_resolution: std::time::Duration::from_secs(1),
            services: Default::default(),
            advertise_address: None,
        };
        adjust(&mut cfg);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let stopped = async move {
                let _ = stop_rx.await;
            };
            let ready = move |running: &server::Running| {
                let _ = ready_tx.send((running.local_addr, running.admin_kubeconfig.clone()));
            };
            if let Err(e) = server::run(cfg, stopped, ready).await {
                // Test scaffolding: show why in the test's output, whatever the log setup.
                eprintln!("test api server exited: {e:#}");
            }
        });
        let (addr, kubeconfig) = ready_rx.await.expect("test api server started");
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("admin kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("client config from the admin kubeconfig");
        let client = kube::Client::try_from(config).expect("client for the test api server");
        TestApiServer {
            client,
            addr,
            kubeconfig,
            stop: Some(stop_tx),
            task: Some(task),
            dir: Some(dir),
        }
    }

    /// A client of the admin user that does not retry 429 and 503 answers as kube's default
    /// client does, for tests that assert such answers.
    pub async fn client_without_retries(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("admin kubeconfig");
        let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("client config from the admin kubeconfig");
        config.default_retry = false;
        kube::Client::try_from(config).expect("client for the test api server")
    }

    /// A temporary directory that lives as long as the server (its data is in
    /// `apiserver/` below it), for the test's own files.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("a running server has its directory")
            .path()
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Polls `f` every 50 ms until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: std::time::Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
