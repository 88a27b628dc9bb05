//! `kubectl port-forward` and `skiff port-forward` against a real node: the real kubectl,
//! over its default WebSocket tunnel and over a direct SPDY upgrade, and skiff over the
//! WebSocket channel protocol (kube-rs), to a busybox httpd in a pod, by pod and by
//! Service (a named target port); several connections through one forward, a 10 MiB
//! answer, a port nothing listens on, and the API's refusal for a pod that does not exist.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use skiff_e2e::workload::{apply, wait_ready_pods};
use skiff_e2e::{Backend, Cluster, can_run_nodes};

const NODE: &str = "e2e-node-pf";

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: pf}}
spec:
  containers:
  - name: web
    image: busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && echo hello from the pod > /www/index.html && head -c 10485760 /dev/zero | tr '\\0' x > /www/big && exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: pf}
  ports: [{name: web, port: 80, targetPort: http}]
"#;

const BIG: usize = 10 << 20;

/// A running `kubectl port-forward` and the local port it listens on.
struct Forward {
    child: Child,
    port: u16,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        // Our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the forward is made.
#[derive(Clone, Copy, Debug)]
enum Client {
    /// kubectl's default: SPDY tunnelled in a WebSocket.
    KubectlWebSocket,
    /// kubectl with `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`: a direct SPDY upgrade.
    KubectlSpdy,
    /// `skiff port-forward`: the WebSocket channel protocol.
    Skiff,
}

fn forward(c: &Cluster, client: Client, object: &str, ports: &str) -> Forward {
    let mut cmd = match client {
        Client::Skiff => Command::new(skiff_e2e::skiff_bin()),
        _ => {
            let mut k = Command::new("kubectl");
            k.arg("--cache-dir").arg(&c.kube_cache);
            k
        }
    };
    let mut child = cmd
        .args(["port-forward", "--address", "127.0.0.1", object, ports])
        .env("KUBECONFIG", &c.kubeconfig)
        .env(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS",
            if matches!(client, Client::KubectlSpdy) {
                "false"
            } else {
                "true"
            },
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run port-forward");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut err = child.stderr.take().unwrap();
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    // "Forwarding from 127.0.0.1:43127 -> 8080"
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line)
        .expect("kubectl prints where it listens");
    let port = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no local port in {line:?}: {}", stderr.lock().unwrap()));
    std::thread::spawn(move || for _ in out.lines() {});
    Forward {
        child,
        port,
        stderr,
    }
}

/// GET `path` through the forward; the whole answer (headers and body).
fn get(port: u16, path: &str) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: web\r\n\r\n")?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    Ok(answer)
}

fn body(answer: &[u8]) -> &[u8] {
    let at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    &answer[at + 4..]
}

fn check_forward(c: &Cluster, client: Client, object: &str, ports: &str) {
    eprintln!("{client:?} {object} {ports}");
    let f = forward(c, client, object, ports);
    for i in 0..5 {
        let answer = get(f.port, "/index.html")
            .unwrap_or_else(|e| panic!("request {i}: {e}: {}", f.stderr.lock().unwrap()));
        assert_eq!(
            body(&answer),
            b"hello from the pod\n",
            "request {i}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let big = get(f.port, "/big").unwrap();
    assert_eq!(body(&big).len(), BIG);
    assert!(body(&big).iter().all(|b| *b == b'x'));
    // Two at once through the same forward.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| get(f.port, "/big"));
        let b = s.spawn(|| get(f.port, "/index.html"));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert_eq!(body(&a).len(), BIG);
    assert_eq!(body(&b), b"hello from the pod\n");
}

#[test]
fn port_forward_reaches_the_pod_by_pod_and_by_service() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _node = c.start_node(NODE, 47).unwrap();
    apply(&c, POD);
    wait_ready_pods(&c, "app=pf", 1, 90);

    check_forward(&c, Client::KubectlWebSocket, "pod/web", ":8080");
    check_forward(&c, Client::KubectlSpdy, "pod/web", ":8080");
    check_forward(&c, Client::KubectlWebSocket, "svc/web", ":80");
    check_forward(&c, Client::Skiff, "pod/web", ":8080");
    check_forward(&c, Client::Skiff, "svc/web", ":web");

    // Nothing listens on 9999 in the pod: the connection is closed and kubectl reports the
    // kubelet's error, and the forward keeps serving the other port afterwards.
    let f = forward(&c, Client::KubectlWebSocket, "pod/web", ":9999");
    let answer = get(f.port, "/").unwrap_or_default();
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    let mut reported = String::new();
    for _ in 0..50 {
        reported = f.stderr.lock().unwrap().clone();
        if reported.contains("error forwarding port 9999 to pod web") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        reported.contains("error forwarding port 9999 to pod web"),
        "{reported}"
    );
    drop(f);

    // A pod that does not exist: kube-apiserver's NotFound, before any upgrade.
    let out = c.kubectl(&["port-forward", "pod/nope", "8080"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pods \"nope\" not found"), "{err}");
}
