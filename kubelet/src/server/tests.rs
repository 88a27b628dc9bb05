//! End to end through the real kubectl: the API server in-process, a Node pointing at this
//! node server, and a fake runtime whose exec runs the command on the host.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use skiff_runtime::cgroups::CgroupStats;
use skiff_runtime::container::{
    AttachSession, ExecOutput, ExecRequest, ExecStdio, ProcessSpec, Status,
};
use skiff_runtime::pod::{
    ContainerConfig, ContainerStatus, PodRuntime, PodSandboxConfig, Result as RtResult,
    RuntimeError, SandboxState, SandboxStatus,
};
use skiff_runtime::shim::frame::{AttachFrame, FrameDecoder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;

/// One pod `default/web` with container `app` (id `c1`), whose log is a file in a temp dir.
struct FakeRuntime {
    log: PathBuf,
    running: AtomicBool,
}

fn missing(id: &str) -> RuntimeError {
    RuntimeError::NotFound {
        kind: "container",
        id: id.into(),
    }
}

impl FakeRuntime {
    fn status(&self) -> ContainerStatus {
        let running = self.running.load(Ordering::SeqCst);
        ContainerStatus {
            id: "c1".into(),
            sandbox_id: "s1".into(),
            name: "app".into(),
            status: if running {
                Status::Running
            } else {
                Status::Stopped
            },
            pid: None,
            created_at: jiff::Timestamp::now(),
            started_at: Some(jiff::Timestamp::now()),
            finished_at: None,
            exit_code: None,
            reason: None,
            log_path: self.log.clone(),
        }
    }
}

#[async_trait::async_trait]
impl PodRuntime for FakeRuntime {
    async fn run_pod_sandbox(&self, _: PodSandboxConfig) -> RtResult<String> {
        Err(RuntimeError::Invalid("the fake runs no sandboxes".into()))
    }
    async fn stop_pod_sandbox(&self, id: &str) -> RtResult<()> {
        Err(missing(id))
    }
    async fn remove_pod_sandbox(&self, id: &str) -> RtResult<()> {
        Err(missing(id))
    }
    async fn pod_sandbox_status(&self, id: &str) -> RtResult<SandboxStatus> {
        Err(missing(id))
    }
    async fn list_pod_sandboxes(&self) -> RtResult<Vec<SandboxStatus>> {
        let config = PodSandboxConfig {
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            ..Default::default()
        };
        Ok(vec![SandboxStatus {
            id: "s1".into(),
            config,
            state: SandboxState::Ready,
            ip: None,
            created_at: jiff::Timestamp::now(),
        }])
    }
    async fn create_container(&self, _: &str, _: ContainerConfig) -> RtResult<String> {
        Err(RuntimeError::Invalid(
            "the fake creates no containers".into(),
        ))
    }
    async fn start_container(&self, id: &str) -> RtResult<()> {
        Err(missing(id))
    }
    async fn stop_container(&self, id: &str, _: Duration) -> RtResult<()> {
        Err(missing(id))
    }
    async fn remove_container(&self, id: &str) -> RtResult<()> {
        Err(missing(id))
    }
    async fn container_status(&self, id: &str) -> RtResult<ContainerStatus> {
        if id != "c1" {
            return Err(missing(id));
        }
        Ok(self.status())
    }
    async fn list_containers(&self) -> RtResult<Vec<ContainerStatus>> {
        Ok(vec![self.status()])
    }
    async fn wait_container(&self, id: &str, _: Option<Duration>) -> RtResult<Option<i32>> {
        Err(missing(id))
    }
    async fn exec_sync(&self, id: &str, _: Vec<String>, _: Duration) -> RtResult<ExecOutput> {
        Err(missing(id))
    }
    /// The fake keeps no process settings: the command runs as the defaults say.
    async fn exec_process(&self, id: &str, command: Vec<String>) -> RtResult<ProcessSpec> {
        if id != "c1" {
            return Err(missing(id));
        }
        Ok(default_exec_process(command))
    }
    /// Runs the command on the host with the given stdio.
    async fn exec(&self, id: &str, req: ExecRequest) -> RtResult<i32> {
        if id != "c1" {
            return Err(missing(id));
        }
        let (stdin, stdout, stderr): (Option<OwnedFd>, OwnedFd, OwnedFd) = match req.stdio {
            ExecStdio::Fds {
                stdin,
                stdout,
                stderr,
            } => (stdin, stdout, stderr),
            ExecStdio::Tty(fd) => (Some(fd.try_clone().unwrap()), fd.try_clone().unwrap(), fd),
        };
        let args = req.process.args;
        let mut child = {
            // The command (and with it our copies of the descriptors) is dropped once the
            // child runs, so the reader sees end of file when the child exits.
            let mut cmd = std::process::Command::new(&args[0]);
            cmd.args(&args[1..])
                .stdout(Stdio::from(stdout))
                .stderr(Stdio::from(stderr));
            cmd.stdin(stdin.map(Stdio::from).unwrap_or_else(Stdio::null));
            cmd.spawn()
                .map_err(|e| RuntimeError::Invalid(format!("spawn {args:?}: {e}")))?
        };
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        Ok(status.code().unwrap_or(128))
    }
    /// A session like a shim's: without stdin a line every 250 ms; with stdin an echo of
    /// each stdin frame and its size on stderr, ending (like `cat` under `stdinOnce`) when
    /// the client closes stdin.
    async fn attach(&self, id: &str, stdin: bool) -> RtResult<AttachSession> {
        if id != "c1" {
            return Err(missing(id));
        }
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        std::thread::spawn(move || fake_session(theirs, stdin));
        Ok(AttachSession {
            stream: ours,
            tty: false,
        })
    }
    async fn log_path(&self, id: &str) -> RtResult<PathBuf> {
        if id != "c1" {
            return Err(missing(id));
        }
        Ok(self.log.clone())
    }
    async fn container_stats(&self, _: &str) -> RtResult<CgroupStats> {
        Ok(CgroupStats {
            cpu_usage_ns: 5_000_000,
            memory_working_set: 4096,
            memory_usage: 8192,
            pids: 1,
            ..Default::default()
        })
    }
}

fn fake_session(mut s: std::os::unix::net::UnixStream, stdin: bool) {
    use std::io::{Read, Write};
    if !stdin {
        for i in 0..40 {
            let line = format!("attached {i}\n").into_bytes();
            if s.write_all(&AttachFrame::Stdout(line).encode()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        return;
    }
    let mut frames = FrameDecoder::default();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        frames.feed(&buf[..n]);
        while let Ok(Some(f)) = frames.next_frame() {
            let replies = match f {
                AttachFrame::Stdin(b) => [
                    AttachFrame::Stdout(b.clone()),
                    AttachFrame::Stderr(format!("{} bytes\n", b.len()).into_bytes()),
                ],
                AttachFrame::CloseStdin => return,
                _ => continue,
            };
            for r in replies {
                let _ = s.write_all(&r.encode());
            }
        }
    }
}

struct FakeLookup(Arc<FakeRuntime>);

impl ContainerLookup for FakeLookup {
    fn container_id(&self, namespace: &str, pod: &str, container: &str) -> Option<String> {
        ((namespace, pod, container) == ("default", "web", "app")).then(|| "c1".to_string())
    }
    fn runtime(&self) -> Arc<dyn PodRuntime> {
        self.0.clone()
    }
}

fn append(log: &Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let now = skiff_runtime::shim::log::rfc3339_nano(jiff::Timestamp::now());
    writeln!(f, "{now} stdout F {line}").unwrap();
}

struct Cluster {
    kubeconfig: PathBuf,
    runtime: Arc<FakeRuntime>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Cluster {
    async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        if let Some(input) = stdin {
            let mut w = child.stdin.take().unwrap();
            w.write_all(input.as_bytes()).await.unwrap();
        }
        tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("kubectl finishes")
            .unwrap()
    }

    async fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin).await;
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the API server and a node server for node `n1` at 127.0.0.1, with pod
/// `default/web` bound to it and reported running.
async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("server");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let cfg = skiff_apiserver::server::ServerConfig {
        data_dir: data_dir.clone(),
        etcd_endpoints: vec![],
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        event_ttl: skiff_apiserver::server::DEFAULT_EVENT_TTL,
        metric_resolution: std::time::Duration::from_secs(1),
        services: Default::default(),
        advertise_address: None,
    };
    let (node_stop_tx, node_stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop_rx.await;
            let _ = node_stop_tx.send(());
        };
        skiff_apiserver::server::run(cfg, shutdown, move |r| {
            let _ = ready_tx.send(r.admin_kubeconfig.clone());
        })
        .await
        .unwrap();
    });
    let kubeconfig = ready_rx.await.unwrap();

    let ca = std::fs::read_to_string(data_dir.join("tls/ca.crt")).unwrap();
    let ca_key = std::fs::read_to_string(data_dir.join("tls/ca.key")).unwrap();
    let (cert_pem, key_pem) =
        tls::issue_serving_cert(&ca, &ca_key, "n1", &["127.0.0.1".parse().unwrap()]).unwrap();
    let runtime = Arc::new(FakeRuntime {
        log: dir.path().join("app.log"),
        running: AtomicBool::new(true),
    });
    append(&runtime.log, "hello from app");
    append(&runtime.log, "second line");
    let lookup = Arc::new(FakeLookup(runtime.clone()));
    let tls = NodeTls {
        cert_pem,
        key_pem,
        client_ca_pem: ca,
    };
    let server = NodeServer::bind("127.0.0.1:0".parse().unwrap(), &tls, "n1", lookup)
        .await
        .unwrap();
    let port = server.local_addr().port();
    tokio::spawn(server.serve(async move {
        let _ = node_stop_rx.await;
    }));

    let c = Cluster {
        kubeconfig,
        runtime,
        _dir: dir,
        stop: Some(stop_tx),
    };
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
    c.kubectl_ok(&["create", "-f", "-"], Some(&node.to_string()))
        .await;
    let node_status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    }});
    c.kubectl_ok(
        &[
            "patch",
            "node",
            "n1",
            "--subresource=status",
            "--type=merge",
            "-p",
            &node_status.to_string(),
        ],
        None,
    )
    .await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "busybox"}]}});
    c.kubectl_ok(&["create", "-f", "-"], Some(&pod.to_string()))
        .await;
    let pod_status = json!({"status": {"phase": "Running", "containerStatuses": [{
        "name": "app", "image": "busybox", "imageID": "", "ready": true, "restartCount": 0,
        "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
    }]}});
    c.kubectl_ok(
        &[
            "patch",
            "pod",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            &pod_status.to_string(),
        ],
        None,
    )
    .await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_and_exec_through_the_api_server() {
    let c = cluster().await;

    assert_eq!(
        c.kubectl_ok(&["logs", "web"], None).await,
        "hello from app\nsecond line\n"
    );
    assert_eq!(
        c.kubectl_ok(&["logs", "web", "--tail=1"], None).await,
        "second line\n"
    );
    let ts = c
        .kubectl_ok(&["logs", "web", "--timestamps", "--tail=1"], None)
        .await;
    assert!(
        ts.ends_with("Z second line\n") && ts.starts_with("20"),
        "{ts:?}"
    );
    let bad = c.kubectl(&["logs", "web", "-c", "nope"], None).await;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("container nope is not valid for pod web"),
        "{bad:?}"
    );

    assert_eq!(
        c.kubectl_ok(&["exec", "web", "--", "echo", "hi"], None)
            .await,
        "hi\n"
    );
    assert_eq!(
        c.kubectl_ok(
            &["exec", "-i", "web", "--", "cat"],
            Some("from stdin\nline two\n")
        )
        .await,
        "from stdin\nline two\n"
    );
    let failed = c
        .kubectl(
            &[
                "exec",
                "web",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
            None,
        )
        .await;
    assert_eq!(failed.status.code(), Some(3), "{failed:?}");
    assert_eq!(String::from_utf8_lossy(&failed.stdout), "out\n");
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("err\n"),
        "{failed:?}"
    );

    // Attach: the session's output reaches the client.
    let mut attach = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(["attach", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut attached = BufReader::new(attach.stdout.take().unwrap()).lines();
    let line = next_line(&mut attached).await.unwrap();
    assert!(line.starts_with("attached "), "{line:?}");
    attach.kill().await.unwrap();

    // Attach with stdin: stdin frames reach the session, its stdout and stderr come back
    // on their channels, and closing stdin (v5) lets the session end the stream.
    let echoed = c
        .kubectl(&["attach", "-i", "web"], Some("typed line\n"))
        .await;
    assert!(echoed.status.success(), "{echoed:?}");
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), "typed line\n");
    assert!(
        String::from_utf8_lossy(&echoed.stderr).contains("11 bytes\n"),
        "{echoed:?}"
    );
    append(&c.runtime.log, "before follow");

    // Follow: a new line arrives while kubectl streams; the stream ends when the
    // container stops.
    let mut follow = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(["logs", "-f", "web", "--tail=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    assert_eq!(
        next_line(&mut lines).await.as_deref(),
        Some("before follow")
    );
    append(&c.runtime.log, "a new line");
    assert_eq!(next_line(&mut lines).await.as_deref(), Some("a new line"));
    append(&c.runtime.log, "the last line");
    c.runtime.running.store(false, Ordering::SeqCst);
    assert_eq!(
        next_line(&mut lines).await.as_deref(),
        Some("the last line")
    );
    assert_eq!(next_line(&mut lines).await, None);
    let status = tokio::time::timeout(Duration::from_secs(10), follow.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

async fn next_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("a line in time")
        .unwrap()
}

/// A node server alone, with a CA that can issue client certificates.
struct Node {
    addr: std::net::SocketAddr,
    ca: (String, String),
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn new_ca() -> (String, String) {
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test-ca");
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let key = rcgen::KeyPair::generate().unwrap();
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca();
    let (cert_pem, key_pem) =
        tls::issue_serving_cert(&ca.0, &ca.1, "n1", &["127.0.0.1".parse().unwrap()]).unwrap();
    let runtime = Arc::new(FakeRuntime {
        log: dir.path().join("app.log"),
        running: AtomicBool::new(true),
    });
    let tls = NodeTls {
        cert_pem,
        key_pem,
        client_ca_pem: ca.0.clone(),
    };
    let server = NodeServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &tls,
        "n1",
        Arc::new(FakeLookup(runtime)),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Node {
        addr,
        ca,
        _dir: dir,
        _stop: stop,
    }
}

impl Node {
    /// A TLS connection as a client named `cn` in group `org`.
    async fn connect(
        &self,
        cn: &str,
        org: &str,
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        use rustls_pki_types::pem::PemObject;
        let issuer = rcgen::Issuer::from_ca_cert_pem(
            &self.ca.0,
            rcgen::KeyPair::from_pem(&self.ca.1).unwrap(),
        )
        .unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, org);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from_pem_slice(self.ca.0.as_bytes()).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
                .unwrap(),
        )
        .unwrap();
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::IpAddress(self.addr.ip().into());
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap()
    }

    async fn get(&self, cn: &str, org: &str, path: &str) -> (u16, String) {
        use http_body_util::BodyExt;
        let io = hyper_util::rt::TokioIo::new(self.connect(cn, org).await);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header("host", "n1")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let code = resp.status().as_u16();
        (
            code,
            String::from_utf8(
                resp.into_body()
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
            )
            .unwrap(),
        )
    }
}

#[tokio::test]
async fn only_the_api_server_identity_is_served() {
    let n = node().await;
    assert_eq!(
        n.get(tls::APISERVER_CLIENT_CN, "", "/healthz").await,
        (200, "ok".to_string())
    );
    let (code, body) = n.get("system:node:n2", "system:nodes", "/healthz").await;
    assert_eq!(code, 403, "{body}");
    let (code, body) = n.get("admin", tls::MASTERS_GROUP, "/stats/summary").await;
    assert_eq!(code, 200, "{body}");
    let summary: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary["node"]["nodeName"], "n1");
    assert_eq!(
        summary["pods"][0]["podRef"],
        json!({"name": "web", "namespace": "default", "uid": "u1"})
    );
    assert_eq!(
        summary["pods"][0]["containers"][0]["memory"]["workingSetBytes"],
        4096
    );
    let (code, text) = n
        .get("admin", tls::MASTERS_GROUP, "/metrics/resource")
        .await;
    assert_eq!(code, 200, "{text}");
    assert!(
        text.lines().any(|l| l.starts_with(
            "container_memory_working_set_bytes{container=\"app\",namespace=\"default\",pod=\"web\"} 4096 "
        )),
        "{text}"
    );
    assert!(text.contains("\nnode_cpu_usage_seconds_total "), "{text}");
    // A node server without a kubelet behind it serves an empty exposition.
    let (code, text) = n.get("admin", tls::MASTERS_GROUP, "/metrics").await;
    assert_eq!((code, text.as_str()), (200, "# EOF\n"));
    let (code, body) = n
        .get(
            tls::APISERVER_CLIENT_CN,
            "",
            "/containerLogs/default/web/other",
        )
        .await;
    assert_eq!(code, 404, "{body}");
}

#[tokio::test]
async fn v4_exec_with_a_tty_applies_resizes() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message as WsMessage, client::IntoClientRequest};

    let n = node().await;
    let tls = n.connect(tls::APISERVER_CLIENT_CN, "").await;
    let url = format!(
        "wss://{}/exec/default/web/app?command=sh&command=-c&command=read+x%3B+stty+size&stdin=true&stdout=true&tty=true",
        n.addr
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().unwrap(),
    );
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "v4.channel.k8s.io"
    );
    ws.send(WsMessage::Binary(Bytes::from_static(
        b"\x04{\"Width\":80,\"Height\":24}",
    )))
    .await
    .unwrap();
    ws.send(WsMessage::Binary(Bytes::from_static(b"\x00go\n")))
        .await
        .unwrap();
    let (mut stdout, mut status) = (Vec::new(), None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, ws.next()).await {
        match msg.unwrap() {
            WsMessage::Binary(b) if b.first() == Some(&channel::STDOUT) => {
                stdout.extend_from_slice(&b[1..])
            }
            WsMessage::Binary(b) if b.first() == Some(&channel::STATUS) => {
                status = Some(serde_json::from_slice::<serde_json::Value>(&b[1..]).unwrap())
            }
            WsMessage::Close(f) => {
                assert_eq!(u16::from(f.unwrap().code), 1000);
                break;
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    let stdout = String::from_utf8_lossy(&stdout);
    assert!(stdout.contains("24 80"), "{stdout:?}");
    assert_eq!(status, Some(json!({"metadata": {}, "status": "Success"})));
}

/// The whole metrics path: the API server scrapes the Ready node's Summary API through its
/// relay every second, and the real `kubectl top` reads PodMetrics and NodeMetrics.
#[tokio::test]
async fn kubectl_top_reads_what_the_api_server_scraped() {
    let c = cluster().await;
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "reason": "KubeletReady", "message": "kubelet is posting ready status"}]}});
    c.kubectl_ok(
        &[
            "patch",
            "node",
            "n1",
            "--subresource=status",
            "--type=merge",
            "-p",
            &ready.to_string(),
        ],
        None,
    )
    .await;
    let mut last = String::new();
    for _ in 0..60 {
        let out = c
            .kubectl(&["top", "pod", "web", "--no-headers"], None)
            .await;
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cells: Vec<&str> = last.split_whitespace().collect();
    // The fake container's CPU counter stands still; its working set is 4096 bytes.
    assert_eq!(cells, ["web", "0m", "0Mi"], "{last}");
    let raw = c
        .kubectl_ok(
            &[
                "get",
                "--raw",
                "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web",
            ],
            None,
        )
        .await;
    let pm: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(pm["containers"][0]["usage"]["memory"], "4Ki", "{raw}");
    let node = c
        .kubectl_ok(&["top", "node", "n1", "--no-headers"], None)
        .await;
    let cells: Vec<&str> = node.split_whitespace().collect();
    assert_eq!(cells[0], "n1", "{node}");
    // The node has no capacity in its status, so kubectl shows no percentages.
    assert!(
        cells.iter().any(|c| c.ends_with("Mi") && *c != "0Mi"),
        "{node}"
    );
}
