//! A throwaway single-member etcd on loopback, for tests and local clusters: started from
//! `/usr/bin/etcd` on free ports, stopped by PID when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the etcd binary is expected (Debian's `etcd-server`).
pub const ETCD_BINARY: &str = "/usr/bin/etcd";

/// Why an etcd could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EtcdServerError {
    /// The binary is missing.
    #[error("{0} not found: install etcd-server (apt-get install -y etcd-server)")]
    Missing(String),
    /// No free port or the process would not start.
    #[error("start etcd: {0}")]
    Start(#[source] std::io::Error),
    /// It started but never answered.
    #[error("etcd on {endpoint} did not answer within {waited:?}")]
    NotReady {
        /// The client URL tried.
        endpoint: String,
        /// How long it was given.
        waited: Duration,
    },
}

/// A running etcd; killed and reaped on drop.
pub struct EtcdServer {
    child: Child,
    endpoint: String,
    data_dir: PathBuf,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdServer {
    /// Starts etcd with its data in `data_dir` and waits until it serves requests.
    pub async fn start(data_dir: &Path) -> Result<EtcdServer, EtcdServerError> {
        if !Path::new(ETCD_BINARY).exists() {
            return Err(EtcdServerError::Missing(ETCD_BINARY.into()));
        }
        let client_port = free_port().map_err(EtcdServerError::Start)?;
        let peer_port = free_port().map_err(EtcdServerError::Start)?;
        let endpoint = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new(ETCD_BINARY)
            .arg("--name=default")
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            .arg("--log-level=error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(EtcdServerError::Start)?;
        let server = EtcdServer {
            child,
            endpoint,
            data_dir: data_dir.to_path_buf(),
        };
        server.wait_ready(Duration::from_secs(30)).await?;
        Ok(server)
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), EtcdServerError> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            let options = etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_millis(500))
                .with_timeout(Duration::from_secs(1));
            if let Ok(mut client) =
                etcd_client::Client::connect([self.endpoint.as_str()], Some(options)).await
                && client.status().await.is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(EtcdServerError::NotReady {
            endpoint: self.endpoint.clone(),
            waited: timeout,
        })
    }

    /// The client URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The data directory it was started with.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // `Child::kill` signals exactly this PID; `wait` reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
