//! Container probes (exec through the runtime, httpGet to the pod IP, tcpSocket) and the
//! per-probe bookkeeping of initial delay, period, timeout and thresholds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use skiff_runtime::pod::PodRuntime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Outcome of one probe run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// Passed.
    Success,
    /// Failed, with what was seen.
    Failure(String),
}

/// Resolves a port (number or a named container port).
fn port(p: &IntOrString, c: &Container) -> Option<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

/// Runs `probe` once against container `id` of `c` in a pod at `pod_ip`.
pub async fn run(
    runtime: &Arc<dyn PodRuntime>,
    probe: &Probe,
    c: &Container,
    id: &str,
    pod_ip: Option<&str>,
) -> ProbeResult {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(exec) = &probe.exec {
        let args = exec.command.clone().unwrap_or_default();
        return match runtime.exec_sync(id, args, timeout).await {
            Ok(out) if out.exit_code == 0 => ProbeResult::Success,
            Ok(out) => ProbeResult::Failure(format!(
                "command exited with {}: {}",
                out.exit_code,
                String::from_utf8_lossy(&out.stdout).trim()
            )),
            Err(e) => ProbeResult::Failure(e.to_string()),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let host = tcp.host.as_deref().or(pod_ip).unwrap_or("127.0.0.1");
        let Some(p) = port(&tcp.port, c) else {
            return ProbeResult::Failure("invalid port".into());
        };
        let addr = format!("{host}:{p}");
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => ProbeResult::Success,
            Ok(Err(e)) => ProbeResult::Failure(format!("dial tcp {addr}: {e}")),
            Err(_) => ProbeResult::Failure(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    if let Some(http) = &probe.http_get {
        let host = http.host.as_deref().or(pod_ip).unwrap_or("127.0.0.1");
        let Some(p) = port(&http.port, c) else {
            return ProbeResult::Failure("invalid port".into());
        };
        let path = http.path.as_deref().unwrap_or("/");
        let headers: String = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| format!("{}: {}\r\n", h.name, h.value))
            .collect();
        return match tokio::time::timeout(timeout, http_get(host, p, path, &headers)).await {
            Ok(Ok(code)) if (200..400).contains(&code) => ProbeResult::Success,
            Ok(Ok(code)) => {
                ProbeResult::Failure(format!("HTTP probe failed with statuscode: {code}"))
            }
            Ok(Err(e)) => ProbeResult::Failure(format!("Get \"http://{host}:{p}{path}\": {e}")),
            Err(_) => ProbeResult::Failure(format!(
                "Get \"http://{host}:{p}{path}\": context deadline exceeded"
            )),
        };
    }
    if probe.grpc.is_some() {
        return ProbeResult::Failure("grpc probes are not supported".into());
    }
    ProbeResult::Success
}

/// A minimal HTTP/1.1 GET returning the status code.
async fn http_get(host: &str, port: u16, path: &str, headers: &str) -> std::io::Result<u16> {
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\n{headers}Connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = vec![0u8; 256];
    let mut n = 0;
    while n < 12 {
        let r = s.read(&mut buf[n..]).await?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response")
        })
}

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// startupProbe.
    Startup,
    /// livenessProbe.
    Liveness,
    /// readinessProbe.
    Readiness,
}

impl ProbeKind {
    /// The name used in events ("Liveness probe failed: ...").
    pub fn title(self) -> &'static str {
        match self {
            Self::Startup => "Startup",
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
        }
    }
}

/// The running state of one probe of one container instance.
#[derive(Debug, Clone)]
pub struct ProbeTracker {
    /// The probe.
    pub probe: Probe,
    /// Next run.
    pub next: Instant,
    successes: i32,
    failures: i32,
    /// The current verdict (`None` until a threshold is crossed).
    pub verdict: Option<bool>,
}

impl ProbeTracker {
    /// A tracker for a container that started at `started`.
    pub fn new(probe: Probe, started: Instant) -> Self {
        let delay = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        Self {
            probe,
            next: started + delay,
            successes: 0,
            failures: 0,
            verdict: None,
        }
    }

    /// Whether the probe should run now.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Records a result; returns the verdict if it changed.
    pub fn record(&mut self, ok: bool, now: Instant) -> Option<bool> {
        let period = Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64);
        self.next = now + period;
        if ok {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let success_threshold = self.probe.success_threshold.unwrap_or(1).max(1);
        let failure_threshold = self.probe.failure_threshold.unwrap_or(3).max(1);
        let new = if ok && self.successes >= success_threshold {
            Some(true)
        } else if !ok && self.failures >= failure_threshold {
            Some(false)
        } else {
            self.verdict
        };
        if new != self.verdict {
            self.verdict = new;
            return new;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_decide_verdicts() {
        let probe = Probe {
            failure_threshold: Some(2),
            success_threshold: Some(1),
            initial_delay_seconds: Some(5),
            ..Default::default()
        };
        let t0 = Instant::now();
        let mut t = ProbeTracker::new(probe, t0);
        assert!(!t.due(t0));
        assert!(t.due(t0 + Duration::from_secs(5)));
        assert_eq!(t.record(true, t0), Some(true));
        assert_eq!(
            t.record(false, t0),
            None,
            "one failure is under the threshold"
        );
        assert_eq!(t.record(false, t0), Some(false));
        assert_eq!(t.record(true, t0), Some(true));
    }

    #[tokio::test]
    async fn tcp_and_http_probes_reach_a_listener() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut b = [0u8; 512];
                let _ = s.read(&mut b).await;
                let _ = s
                    .write_all(b"HTTP/1.1 503 Unavailable\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let c = Container::default();
        let rt: Arc<dyn PodRuntime> = Arc::new(crate::fake::FakeRuntime::default());
        let probe: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": port}})).unwrap();
        assert_eq!(
            run(&rt, &probe, &c, "x", Some("127.0.0.1")).await,
            ProbeResult::Success
        );
        let probe: Probe =
            serde_json::from_value(serde_json::json!({"httpGet": {"port": port, "path": "/h"}}))
                .unwrap();
        assert!(matches!(
            run(&rt, &probe, &c, "x", Some("127.0.0.1")).await,
            ProbeResult::Failure(m) if m.contains("503")
        ));
    }
}
