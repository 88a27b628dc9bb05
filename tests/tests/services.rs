//! Services as a user runs them, on real containers of a real node: a two-tier app whose
//! frontend pod reaches a Deployment of three busybox httpd backends (each answering its
//! own hostname) by ClusterIP and by DNS name; readiness taking a pod out of rotation and
//! back; a Service with no endpoints refusing at once; the `kubernetes` Service from a pod;
//! an agent restart that keeps traffic flowing without touching the containers; and, from
//! a test host in a network namespace outside the node, NodePort, a LoadBalancer address
//! and `externalTrafficPolicy: Local` (the client's address kept, no answer without a
//! local endpoint).
//!
//! Each test's cluster has a service range of its own (`10.150.<n>.0/24`), which its agent
//! drops when unheld, so no request can leave the machine for an address nobody serves.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_e2e::testhost::TestHost;
use skiff_e2e::workload::{apply, http_get, json, pods, ready, wait_ready_pods};
use skiff_e2e::{Cluster, Node, can_run_nodes, eventually, ok};

/// The backends: busybox httpd on 8080 serving its hostname at `/`, the client's address
/// at `/cgi-bin/ip`, and `/healthz.html` for the readiness probe (removed to fail it).
fn backend(replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: backend}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: backend}}}}
  template:
    metadata: {{labels: {{app: backend}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox:1.36
        imagePullPolicy: Never
        command:
        - sh
        - -c
        - |
          mkdir -p /www/cgi-bin
          hostname > /www/index.html
          touch /www/healthz.html
          printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n' > /www/cgi-bin/ip
          chmod +x /www/cgi-bin/ip
          exec httpd -f -p 8080 -h /www
        readinessProbe:
          httpGet: {{path: /healthz.html, port: 8080}}
          periodSeconds: 1
          failureThreshold: 1
        resources: {{requests: {{cpu: 10m, memory: 8Mi}}, limits: {{memory: 32Mi}}}}
"#
    )
}

const FRONTEND: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: frontend, labels: {app: frontend}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox:1.36, imagePullPolicy: Never, command: ["sleep", "3600"]}
"#;

/// A Service named `name` over the backends, `spec` being the rest of its spec (YAML lines
/// indented by two).
fn service(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: backend}}\n  ports: [{{name: http, port: 80, targetPort: 8080}}]\n{spec}"
    )
}

/// A server with a service range and load-balancer pool of this test's own, listening on
/// the node's address on `host`'s veth, and its node.
struct Setup {
    c: Cluster,
    node: Node,
    /// `10.150.<n>`: the service range's first three octets.
    svc_prefix: String,
}

fn start(node_name: &str, n: u8, host: &TestHost, lb_pool: Option<&str>) -> Setup {
    let svc_prefix = format!("10.150.{n}");
    let cidr = format!("{svc_prefix}.0/24");
    // On the node's address on the test host's veth rather than loopback: the `kubernetes`
    // Service's endpoint is the address the server advertises, and it may not be loopback.
    let bind = host.node_ip.to_string();
    let mut server = vec!["--service-cidr", &cidr, "--bind-address", &bind];
    let mut agent = vec![
        "--service-cidr",
        &cidr,
        "--cluster-dns",
        &format!("{svc_prefix}.10"),
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    if let Some(pool) = lb_pool {
        server.extend(["--service-lb-pool", pool]);
        agent.extend(["--service-lb-pool".into(), pool.into()]);
    }
    let c = Cluster::start_with_args(&server).unwrap();
    let agent: Vec<&str> = agent.iter().map(String::as_str).collect();
    let node = c.start_node_with_args(node_name, n, &agent).unwrap();
    Setup {
        c,
        node,
        svc_prefix,
    }
}

/// `kubectl exec POD -- CMD`: stdout and stderr together.
fn exec(c: &Cluster, pod: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(cmd);
    let out = c.kubectl(&args);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn cluster_ip(c: &Cluster, svc: &str) -> String {
    json(c, &["get", "svc", svc])["spec"]["clusterIP"]
        .as_str()
        .expect("clusterIP")
        .to_string()
}

fn names(ps: &[Value]) -> Vec<String> {
    ps.iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// `count` requests for `url` from pod `from`, one wget each, stopping at the first that
/// fails; the answers (a backend's hostname, or wget's error and `FAIL`) counted.
fn requests_from_pod(c: &Cluster, from: &str, url: &str, count: u32) -> BTreeMap<String, u32> {
    let script = format!(
        "for i in $(seq {count}); do timeout 3 wget -q -O - {url} 2>&1 || {{ echo FAIL; break; }}; done"
    );
    let out = exec(c, from, &["sh", "-c", &script]);
    let mut seen = BTreeMap::new();
    for line in out.lines() {
        *seen.entry(line.trim().to_string()).or_insert(0) += 1;
    }
    seen
}

/// Asserts that `count` requests were all answered, by exactly `backends`, each at least
/// `min` times.
fn assert_spread(seen: &BTreeMap<String, u32>, backends: &[String], count: u32, min: u32) {
    assert_eq!(seen.values().sum::<u32>(), count, "answers: {seen:?}");
    let mut got: Vec<&String> = seen.keys().collect();
    got.sort();
    let mut want: Vec<&String> = backends.iter().collect();
    want.sort();
    assert_eq!(got, want, "answered by other than the backends: {seen:?}");
    assert!(seen.values().all(|n| *n >= min), "uneven spread: {seen:?}");
}

#[test]
fn a_two_tier_app_reaches_its_backends_by_cluster_ip_and_name_through_readiness_restart_and_scale()
{
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    const N: u8 = 34;
    let host = TestHost::create(N).unwrap();
    let mut s = start("e2e-node-svc", N, &host, None);
    let c = &s.c;
    apply(c, &backend(3));
    apply(c, FRONTEND);
    apply(c, &service("backend", ""));
    let backends = names(&wait_ready_pods(c, "app=backend", 3, 90));
    wait_ready_pods(c, "app=frontend", 1, 60);
    let cip = cluster_ip(c, "backend");
    assert!(cip.starts_with(&format!("{}.", s.svc_prefix)), "{cip}");

    // 300 requests by ClusterIP and 300 by DNS name (through the kube-dns Service), all
    // answered, by all three backends.
    let by_ip = requests_from_pod(c, "frontend", &format!("http://{cip}/"), 300);
    assert_spread(&by_ip, &backends, 300, 50);
    let by_name = requests_from_pod(
        c,
        "frontend",
        "http://backend.default.svc.cluster.local/",
        300,
    );
    assert_spread(&by_name, &backends, 300, 50);

    // A pod failing readiness gets no traffic; passing again, it gets it back.
    let out_of_rotation = &backends[0];
    exec(c, out_of_rotation, &["rm", "/www/healthz.html"]);
    eventually(Duration::from_secs(20), || {
        pods(c, "app=backend")
            .iter()
            .any(|p| p["metadata"]["name"] == out_of_rotation.as_str() && !ready(p))
            .then_some(())
    })
    .expect("the pod became unready");
    // The proxy follows the slice within moments; then no request reaches the pod.
    std::thread::sleep(Duration::from_secs(1));
    let seen = requests_from_pod(c, "frontend", &format!("http://{cip}/"), 150);
    assert_spread(&seen, &backends[1..], 150, 30);
    exec(c, out_of_rotation, &["touch", "/www/healthz.html"]);
    wait_ready_pods(c, "app=backend", 3, 20);
    std::thread::sleep(Duration::from_secs(1));
    let seen = requests_from_pod(c, "frontend", &format!("http://{cip}/"), 150);
    assert_spread(&seen, &backends, 150, 15);

    kubernetes_service_answers_a_pod(&s);

    agent_restart_keeps_serving(c, &mut s.node, &cip);

    scale_to_zero_refuses_and_back_answers(c, &cip);
    drop(s);
    drop(host);
}

/// `curl ARGS` run in the network namespace of pod `pod` (busybox's wget cannot do TLS
/// with the API server's ECDSA certificate): the traffic leaves from the pod's address
/// through its veth and the node, exactly as the pod's own would.
fn curl_from_pod(s: &Setup, pod: &str, args: &[&str]) -> String {
    let p = s.c.pod_json(pod).expect("the pod");
    let id = p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .expect("a container id");
    let pid = s.node.container_pid(id).expect("the container's pid");
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["curl", "-sk", "--max-time", "5"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `kubernetes` Service (the range's first address) reaches the API server over TLS
/// from a pod: `/version` answers anyone, a list wants credentials (401 Status), and with
/// a token it is served.
fn kubernetes_service_answers_a_pod(s: &Setup) {
    let kubernetes = format!("{}.1", s.svc_prefix);
    assert_eq!(cluster_ip(&s.c, "kubernetes"), kubernetes);
    let url = |path: &str| format!("https://{kubernetes}{path}");
    let version = eventually(Duration::from_secs(10), || {
        let v = curl_from_pod(s, "frontend", &[&url("/version")]);
        v.contains("\"gitVersion\"").then_some(v)
    });
    assert!(
        version.is_some(),
        "no /version through the kubernetes Service"
    );
    let pods_url = url("/api/v1/namespaces/default/pods");
    let denied: Value =
        serde_json::from_str(&curl_from_pod(s, "frontend", &[&pods_url])).expect("a Status");
    assert_eq!(denied["kind"], "Status", "{denied}");
    assert_eq!(denied["code"], 401, "{denied}");
    let tokens: Value =
        serde_json::from_str(&std::fs::read_to_string(s.c.data_dir().join("tokens.json")).unwrap())
            .unwrap();
    let bearer = format!(
        "Authorization: Bearer {}",
        tokens["admin"].as_str().unwrap()
    );
    let list: Value =
        serde_json::from_str(&curl_from_pod(s, "frontend", &["-H", &bearer, &pods_url]))
            .expect("a list");
    assert_eq!(list["kind"], "PodList", "{list}");
    assert!(
        list["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|p| p["metadata"]["name"] == "frontend")),
        "{list}"
    );
}

/// What identifies the containers of the backends: pod name → (container id, restarts).
fn containers(c: &Cluster) -> BTreeMap<String, (String, u64)> {
    pods(c, "app=backend")
        .iter()
        .map(|p| {
            let st = &p["status"]["containerStatuses"][0];
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                (
                    st["containerID"].as_str().unwrap_or_default().to_string(),
                    st["restartCount"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

/// The proxy's table as `nft` lists it, its lines sorted (the order of elements within a
/// map is the kernel's).
fn proxy_rules(node: &Node) -> Vec<String> {
    let out = std::process::Command::new("nft")
        .args(["list", "table", "ip", &node.proxy_table()])
        .output()
        .unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

/// Requests from the host to `cip` every 50 ms from a thread; kill -9 and restart of the
/// agent in between. The longest stretch without an answer stays under 3 s, the
/// containers are the same ones, and the table holds the same rules, none twice.
fn agent_restart_keeps_serving(c: &Cluster, node: &mut Node, cip: &str) {
    let before = containers(c);
    let rules_before = proxy_rules(node);
    assert!(
        rules_before.iter().any(|l| l.contains(cip)),
        "{rules_before:?}"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::default();
    let poller = {
        let (stop, answers, addr) = (stop.clone(), answers.clone(), format!("{cip}:80"));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let ok = http_get(&addr, "/").is_ok_and(|r| r.contains(" 200 "));
                answers.lock().unwrap().push((Instant::now(), ok));
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    node.restart(c).unwrap();
    // Past the new agent's first full sync.
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    let answers = answers.lock().unwrap().clone();
    let ok_times: Vec<Instant> = answers.iter().filter(|a| a.1).map(|a| a.0).collect();
    assert!(ok_times.len() > 20, "too few answers: {}", ok_times.len());
    let longest = ok_times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let failed = answers.iter().filter(|a| !a.1).count();
    eprintln!(
        "agent restart: longest gap between answers {longest:?}, {failed} of {} requests failed",
        answers.len()
    );
    assert!(
        longest < Duration::from_secs(3),
        "a gap of {longest:?} in answers ({failed} failed of {})",
        answers.len()
    );
    assert_eq!(containers(c), before, "containers changed over the restart");
    assert_eq!(
        proxy_rules(node),
        rules_before,
        "rules changed over the restart"
    );
}

/// With no backend the ClusterIP refuses connections at once (from the host and from a
/// pod); with backends again it answers within 2 s of them being Ready.
fn scale_to_zero_refuses_and_back_answers(c: &Cluster, cip: &str) {
    ok(&c.kubectl(&["scale", "deploy", "backend", "--replicas=0"]));
    eventually(Duration::from_secs(30), || {
        pods(c, "app=backend").is_empty().then_some(())
    })
    .expect("the backends went away");
    let addr: SocketAddr = format!("{cip}:80").parse().unwrap();
    let refused = eventually(Duration::from_secs(5), || {
        let t = Instant::now();
        match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(t.elapsed()),
            _ => None,
        }
    })
    .expect("connections to a Service without endpoints are refused");
    assert!(
        refused < Duration::from_millis(500),
        "refused after {refused:?}"
    );
    let t = Instant::now();
    let from_pod = exec(
        c,
        "frontend",
        &[
            "timeout",
            "5",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{cip}/"),
        ],
    );
    assert!(from_pod.contains("Connection refused"), "{from_pod}");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t.elapsed()
    );

    ok(&c.kubectl(&["scale", "deploy", "backend", "--replicas=3"]));
    let backends = names(&wait_ready_pods(c, "app=backend", 3, 90));
    let t = Instant::now();
    let answered = eventually(Duration::from_secs(5), || {
        http_get(&format!("{cip}:80"), "/")
            .ok()
            .filter(|r| backends.iter().any(|b| r.contains(b.as_str())))
    });
    assert!(answered.is_some(), "no answer after scaling back");
    eprintln!(
        "scaled back: answered {:?} after Ready was seen",
        t.elapsed()
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "answered {:?} after the pods were Ready",
        t.elapsed()
    );
}

/// `spec.ports[0].nodePort` of a Service.
fn node_port(c: &Cluster, svc: &str) -> u64 {
    json(c, &["get", "svc", svc])["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("nodePort")
}

/// The client address httpd's CGI saw (it listens on IPv6 too: `[::ffff:a.b.c.d]`).
fn client_addr(remote_addr: &str) -> String {
    let a = remote_addr.trim();
    let a = a
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(a);
    a.strip_prefix("::ffff:").unwrap_or(a).to_string()
}

/// Whether IPv4 address `ip` is in `cidr`.
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, bits) = cidr.split_once('/').expect("a CIDR");
    let (ip, net): (u32, u32) = (
        ip.parse::<std::net::Ipv4Addr>().unwrap().into(),
        net.parse::<std::net::Ipv4Addr>().unwrap().into(),
    );
    let mask = u32::MAX << (32 - bits.parse::<u32>().unwrap());
    ip & mask == net & mask
}

/// `count` GETs of `/` at `addr` from the test host, each answered with a backend's
/// hostname; the answers counted.
fn requests_from_host(host: &TestHost, addr: &str, count: u32) -> BTreeMap<String, u32> {
    let mut seen = BTreeMap::new();
    for _ in 0..count {
        let answer = host
            .http_get(addr, "/")
            .unwrap_or_else(|e| format!("FAIL {e}"));
        *seen.entry(answer.trim().to_string()).or_insert(0) += 1;
    }
    seen
}

/// A Service without selector whose one endpoint (a real backend, `ip:8080`) a slice says
/// runs on a node that is not this one.
fn elsewhere(ip: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: elsewhere}}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: elsewhere-1
  labels: {{kubernetes.io/service-name: elsewhere}}
addressType: IPv4
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints:
- {{addresses: ["{ip}"], nodeName: e2e-node-elsewhere, conditions: {{ready: true}}}}
"#
    )
}

#[test]
fn nodeport_loadbalancer_and_local_policy_answer_a_client_outside_the_node() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    const N: u8 = 35;
    let host = TestHost::create(N).unwrap();
    let pool = host.spare_range(28);
    host.route_via_node(&pool).unwrap();
    let s = start("e2e-node-svcx", N, &host, Some(&pool));
    let c = &s.c;
    apply(c, &backend(3));
    apply(c, &service("backend-np", "  type: NodePort\n"));
    apply(c, &service("backend-lb", "  type: LoadBalancer\n"));
    apply(
        c,
        &service(
            "backend-local",
            "  type: NodePort\n  externalTrafficPolicy: Local\n",
        ),
    );
    let ps = wait_ready_pods(c, "app=backend", 3, 90);
    let backends = names(&ps);
    let node = host.node_ip;

    // A NodePort on the node's address on the veth, from the test host: every backend
    // answers; the client's address is masqueraded to the node's (its pod bridge gateway),
    // so replies come back through the node.
    let np = format!("{node}:{}", node_port(c, "backend-np"));
    let seen = eventually(Duration::from_secs(10), || host.http_get(&np, "/").ok());
    assert!(seen.is_some(), "the NodePort never answered the test host");
    assert_spread(&requests_from_host(&host, &np, 60), &backends, 60, 5);
    let gateway = Cluster::node_pod_cidr(N).replace(".0/24", ".1");
    let seen_as = host.http_get(&np, "/cgi-bin/ip").unwrap();
    assert_eq!(client_addr(&seen_as), gateway, "Cluster policy masquerades");

    // externalTrafficPolicy: Local keeps the client's address.
    let local = format!("{node}:{}", node_port(c, "backend-local"));
    let seen_as = eventually(Duration::from_secs(10), || {
        host.http_get(&local, "/cgi-bin/ip").ok()
    })
    .expect("the Local NodePort answers on the node with the endpoints");
    assert_eq!(
        client_addr(&seen_as),
        host.ip.to_string(),
        "Local keeps the source"
    );

    // A LoadBalancer Service gets an address of the pool, reached from the test host.
    let lb_ip = eventually(Duration::from_secs(20), || {
        json(c, &["get", "svc", "backend-lb"])["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(String::from)
    })
    .expect("an ingress address");
    assert!(in_cidr(&lb_ip, &pool), "{lb_ip} not in {pool}");
    let lb = format!("{lb_ip}:80");
    eventually(Duration::from_secs(10), || host.http_get(&lb, "/").ok())
        .expect("the load-balancer address answers the test host");
    assert_spread(&requests_from_host(&host, &lb, 60), &backends, 60, 5);

    // Local on a node without a local endpoint: the endpoint is real and answers through
    // the ClusterIP (internal traffic may go anywhere), but the NodePort stays silent.
    let ip = ps[0]["status"]["podIP"].as_str().unwrap();
    apply(c, &elsewhere(ip));
    let cip = cluster_ip(c, "elsewhere");
    eventually(Duration::from_secs(10), || {
        http_get(&format!("{cip}:80"), "/")
            .ok()
            .filter(|r| r.contains(backends[0].as_str()))
    })
    .expect("the ClusterIP of a Service with a remote endpoint answers");
    let silent = format!("{node}:{}", node_port(c, "elsewhere"));
    let answer = host.http_get(&silent, "/");
    assert!(
        answer.as_ref().is_err_and(|e| !e.contains("refused")),
        "a Local NodePort without a local endpoint must drop, got {answer:?}"
    );

    // Deleting a Service takes its rules out of the table.
    let table = |node: &Node| proxy_rules(node).join("\n");
    assert!(table(&s.node).contains("default/elsewhere/"));
    ok(&c.kubectl(&["delete", "svc", "elsewhere"]));
    let gone = eventually(Duration::from_secs(10), || {
        let t = table(&s.node);
        let holds_ip = t
            .split(|ch: char| !ch.is_ascii_digit() && ch != '.')
            .any(|w| w == cip);
        (!t.contains("default/elsewhere/") && !holds_ip).then_some(())
    });
    assert!(gone.is_some(), "rules left behind:\n{}", table(&s.node));
    drop(s);
    drop(host);
}
