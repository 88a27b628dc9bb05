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
    /// Starts etcd with its data in `data_dir` (a directory it owns: emptied first) and waits
    /// until it serves requests. Ports are picked free; if another process takes one first,
    /// etcd is restarted on new ports.
    pub async fn start(data_dir: &Path) -> Result<EtcdServer, EtcdServerError> {
        if !Path::new(ETCD_BINARY).exists() {
            return Err(EtcdServerError::Missing(ETCD_BINARY.into()));
        }
        let mut last = None;
        for _ in 0..5 {
            match Self::start_once(data_dir).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    async fn start_once(data_dir: &Path) -> Result<EtcdServer, EtcdServerError> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let client_port = free_port().map_err(EtcdServerError::Start)?;
        let peer_port = free_port().map_err(EtcdServerError::Start)?;
        let endpoint = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        // A name of our own lets us tell our etcd from another one that took the port.
        let name = format!(
            "skiff-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let _ = std::fs::remove_dir_all(data_dir);
        let child = Command::new(ETCD_BINARY)
            .arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={name}={peer}"))
            .arg("--log-level=error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(EtcdServerError::Start)?;
        let mut server = EtcdServer {
            child,
            endpoint,
            data_dir: data_dir.to_path_buf(),
        };
        server.wait_ready(&name, Duration::from_secs(30)).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, name: &str, timeout: Duration) -> Result<(), EtcdServerError> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            let options = etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_millis(500))
                .with_timeout(Duration::from_secs(1));
            if let Ok(mut client) =
                etcd_client::Client::connect([self.endpoint.as_str()], Some(options)).await
                && let Ok(members) = client.member_list().await
            {
                if members.members().iter().any(|m| m.name() == name) {
                    return Ok(());
                }
                // Someone else's etcd answers on our port: ours cannot have started.
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(EtcdServerError::NotReady {
            endpoint: self.endpoint.clone(),
            waited: started.elapsed(),
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
