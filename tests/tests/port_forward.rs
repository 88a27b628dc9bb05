//! `kubectl port-forward` against a real node: the real kubectl, over its default
//! WebSocket tunnel and over a direct SPDY upgrade, to a busybox httpd in a pod; several
//! connections through one forward, a 1 MB answer, a port nothing listens on, and the
//! API's refusals for a pod that does not exist.

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
    command: ["sh", "-c", "mkdir -p /www && echo hello from the pod > /www/index.html && head -c 1048576 /dev/zero | tr '\\0' x > /www/big && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
"#;

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

fn forward(c: &Cluster, websockets: bool, target: &str) -> Forward {
    let mut child = Command::new("kubectl")
        .arg("--cache-dir")
        .arg(&c.kube_cache)
        .args(["port-forward", "--address", "127.0.0.1", "pod/web"])
        .arg(target)
        .env("KUBECONFIG", &c.kubeconfig)
        .env(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS",
            if websockets { "true" } else { "false" },
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl port-forward");
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

fn check_forward(c: &Cluster, websockets: bool) {
    let f = forward(c, websockets, ":8080");
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
    assert_eq!(body(&big).len(), 1 << 20);
    assert!(body(&big).iter().all(|b| *b == b'x'));
    // Two at once through the same forward.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| get(f.port, "/big"));
        let b = s.spawn(|| get(f.port, "/index.html"));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert_eq!(body(&a).len(), 1 << 20);
    assert_eq!(body(&b), b"hello from the pod\n");
}

#[test]
fn kubectl_port_forward_reaches_the_pod_over_websocket_and_spdy() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _node = c.start_node(NODE, 47).unwrap();
    apply(&c, POD);
    wait_ready_pods(&c, "app=pf", 1, 90);

    check_forward(&c, true);
    check_forward(&c, false);

    // Nothing listens on 9999 in the pod: the connection is closed and kubectl reports the
    // kubelet's error, and the forward keeps serving the other port afterwards.
    let f = forward(&c, true, ":9999");
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
