//! Real traffic through the proxy's table (root): a "node" network namespace with a bridge
//! and two "pod" namespaces serving their own names over TCP; the proxier programs the
//! node's kernel through `ip netns exec <node> nft` from Services and EndpointSlices given
//! directly. Checks balancing, hairpin, reject, affinity, NodePort on 127.0.0.1 and the
//! drop of unheld service addresses; removes every namespace and table it made.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use skiff_proxy::nft::{NftCommand, remove_table};
use skiff_proxy::rules::NodeContext;
use skiff_proxy::{NftablesProxier, ProxierConfig};

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// The namespaces of one test run, removed on drop.
struct Netns {
    node: String,
    pods: [String; 2],
}

impl Netns {
    fn create() -> Self {
        let tag = std::process::id() % 100000;
        let n = Netns {
            node: format!("skpx{tag}n"),
            pods: [format!("skpx{tag}a"), format!("skpx{tag}b")],
        };
        for ns in [&n.node, &n.pods[0], &n.pods[1]] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let h = n.node.as_str();
        sh(&["ip", "-n", h, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", h, "addr", "add", "10.240.0.1/24", "dev", "br0"]);
        sh(&["ip", "-n", h, "link", "set", "br0", "up"]);
        for (i, pod) in n.pods.iter().enumerate() {
            let v = format!("v{i}");
            sh(&[
                "ip", "-n", h, "link", "add", &v, "type", "veth", "peer", "name", "eth0", "netns",
                pod,
            ]);
            sh(&["ip", "-n", h, "link", "set", &v, "master", "br0", "up"]);
            // As the runtime sets its pod ports: a pod reaching itself through a Service
            // is DNATed back out the port it came in on.
            sh(&[
                "ip",
                "-n",
                h,
                "link",
                "set",
                &v,
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ]);
            sh(&[
                "ip",
                "-n",
                pod,
                "addr",
                "add",
                &format!("10.240.0.{}/24", i + 2),
                "dev",
                "eth0",
            ]);
            sh(&["ip", "-n", pod, "link", "set", "eth0", "up"]);
            sh(&[
                "ip",
                "-n",
                pod,
                "route",
                "add",
                "default",
                "via",
                "10.240.0.1",
            ]);
        }
        // Anything the node does not own leaves towards pod b, which answers for the
        // unheld service address 10.97.0.99 too: without the drop it would be reached.
        sh(&[
            "ip",
            "-n",
            h,
            "route",
            "add",
            "default",
            "via",
            "10.240.0.3",
        ]);
        sh(&[
            "ip",
            "-n",
            &n.pods[1],
            "addr",
            "add",
            "10.97.0.99/32",
            "dev",
            "lo",
        ]);
        for key in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.route_localnet=1",
        ] {
            sh(&["ip", "netns", "exec", h, "sysctl", "-qw", key]);
        }
        n
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.node, &self.pods[0], &self.pods[1]] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread inside network namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// A server in `ns` on port 8080 answering every connection with `name`.
fn serve(ns: &str, name: &'static str) {
    let listener = in_netns(ns, || TcpListener::bind("0.0.0.0:8080").unwrap());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(name.as_bytes());
        }
    });
}

/// What a connection from `ns` to `addr` got: the server's name, or the error kind.
fn ask(ns: &str, addr: &str) -> Result<String, std::io::ErrorKind> {
    let addr: SocketAddr = addr.parse().unwrap();
    in_netns(ns, move || {
        let mut c =
            TcpStream::connect_timeout(&addr, Duration::from_millis(700)).map_err(|e| e.kind())?;
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).map_err(|e| e.kind())?;
        Ok(s)
    })
}

fn service(name: &str, ip: &str, extra: serde_json::Value) -> k8s_openapi::api::core::v1::Service {
    let mut spec = json!({"clusterIP": ip, "ports": [{"name": "http", "port": 80}]});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(
        json!({"metadata": {"namespace": "default", "name": name}, "spec": spec}),
    )
    .unwrap()
}

fn slice(svc: &str, ready: &[(&str, bool)]) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    let eps: Vec<_> = ready
        .iter()
        .map(|(ip, r)| json!({"addresses": [ip], "nodeName": "node", "conditions": {"ready": r}}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": format!("{svc}-x"), "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_ips_nodeports_reject_affinity_hairpin_and_drop_in_a_real_kernel() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let ns = Netns::create();
    let (pa, pb) = (ns.pods[0].clone(), ns.pods[1].clone());
    serve(&pa, "a");
    serve(&pb, "b");
    // Before the proxy, the unheld service address is reachable (through pod b).
    assert_eq!(ask(&pa, "10.97.0.99:8080"), Ok("b".into()));

    let nft = Arc::new(NftCommand::in_netns(&ns.node));
    let cfg = ProxierConfig {
        table: "skiff-proxy-test".into(),
        node_name: "node".into(),
        drop_ranges: vec!["10.97.0.0/16".parse().unwrap()],
        node: NodeContext {
            pod_cidr: Some("10.240.0.0/24".parse().unwrap()),
            local_dns: None,
        },
        full_sync_batch: 2,
    };
    let mut p = NftablesProxier::new(cfg, nft.clone());
    assert!(p.install_skeleton().await.unwrap());
    // The drop is in force from the first transaction.
    assert_eq!(
        ask(&pa, "10.97.0.99:8080"),
        Err(std::io::ErrorKind::TimedOut)
    );

    p.service_applied(service(
        "web",
        "10.97.0.10",
        json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
    ));
    p.slice_applied(slice("web", &[("10.240.0.2", true), ("10.240.0.3", true)]));
    p.service_applied(service("self", "10.97.0.11", json!({})));
    p.slice_applied(slice("self", &[("10.240.0.2", true)]));
    p.service_applied(service("none", "10.97.0.12", json!({})));
    p.slice_applied(slice("none", &[("10.240.0.3", false)]));
    p.service_applied(service(
        "sticky",
        "10.97.0.13",
        json!({"sessionAffinity": "ClientIP"}),
    ));
    p.slice_applied(slice(
        "sticky",
        &[("10.240.0.2", true), ("10.240.0.3", true)],
    ));
    let report = p.sync().await.unwrap();
    assert_eq!((report.full, report.transactions), (true, 2));

    // A ClusterIP reaches both endpoints.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        seen.insert(ask(&pa, "10.97.0.10:80").unwrap());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["a", "b"]);
    // Hairpin: pod a reaches itself through its own Service.
    assert_eq!(ask(&pa, "10.97.0.11:80"), Ok("a".into()));
    // No ready endpoint: refused at once, not timed out.
    assert_eq!(
        ask(&pa, "10.97.0.12:80"),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    // A held address on a port no Service has: rejected.
    assert_eq!(
        ask(&pa, "10.97.0.10:81"),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    // Affinity: one client, one endpoint.
    let first = ask(&pb, "10.97.0.13:80").unwrap();
    for _ in 0..15 {
        assert_eq!(ask(&pb, "10.97.0.13:80").unwrap(), first);
    }
    // The NodePort answers on the node's 127.0.0.1.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        seen.insert(ask(&ns.node, "127.0.0.1:30080").unwrap());
    }
    assert_eq!(seen.len(), 2);

    // Endpoints become ready: answered; the Service is deleted: its address is dropped.
    p.slice_applied(slice("none", &[("10.240.0.3", true)]));
    assert_eq!(p.sync().await.unwrap().transactions, 1);
    assert_eq!(ask(&pa, "10.97.0.12:80"), Ok("b".into()));
    p.service_deleted(&service("web", "10.97.0.10", json!({})));
    p.sync().await.unwrap();
    assert_eq!(ask(&pa, "10.97.0.10:80"), Err(std::io::ErrorKind::TimedOut));
    assert_eq!(
        ask(&ns.node, "127.0.0.1:30080"),
        Err(std::io::ErrorKind::ConnectionRefused)
    );

    // Cleanup removes the table: the unheld address is reachable again.
    remove_table(nft.as_ref(), "skiff-proxy-test")
        .await
        .unwrap();
    assert_eq!(ask(&pa, "10.97.0.99:8080"), Ok("b".into()));
}
