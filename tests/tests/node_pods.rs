//! A real node: `skiff agent` with the built-in runtime joined to `skiff server`, driven
//! through the real kubectl and the skiff CLI — a two-container busybox pod (httpd and a
//! ticker) with cgroup limits, shared localhost and a pod IP that answers; a killed
//! container restarted in place; logs, logs -f, logs --previous, exec with env, working dir
//! and exit codes; describe with events; `kill -9` of the agent adopting its containers;
//! graceful deletion.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use skiff_e2e::workload::http_get;
use skiff_e2e::{Backend, Cluster, can_run_nodes, container_status, eventually, ok};

const DUO: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: duo, labels: {app: duo}}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 5
  containers:
  - name: web
    image: busybox:1.36
    imagePullPolicy: IfNotPresent
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    workingDir: /www
    env: [{name: GREETING, value: "hi there"}]
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {cpu: 500m, memory: 64Mi}
    readinessProbe:
      tcpSocket: {port: 80}
      periodSeconds: 1
  - name: ticker
    image: busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]
    resources:
      limits: {memory: 48Mi}
"#;

/// The cgroup v1 or v2 memory limit of a host process.
fn memory_limit(pid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let file = if ctrls.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        } else if ctrls.is_empty()
            && std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        {
            format!("/sys/fs/cgroup{path}/memory.max")
        } else {
            continue;
        };
        return std::fs::read_to_string(file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    }
    panic!("no memory cgroup for {pid}");
}

#[test]
fn a_pod_runs_heals_streams_logs_execs_and_survives_an_agent_restart() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start(Backend::Embedded).unwrap();
    let mut node = c.start_node("e2e-node-a", 1).unwrap();
    // The Node advertises where its kubelet listens.
    let port = ok(&c.kubectl(&[
        "get",
        "node",
        &node.name,
        "-o",
        "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port} {.status.addresses[?(@.type==\"InternalIP\")].address}",
    ]));
    assert_eq!(port, format!("{} 127.0.0.1", node.kubelet_port));

    ok(&c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&DUO.replace("NODE", &node.name)),
    ));
    ok(&c.kubectl(&["wait", "--for=condition=Ready", "pod/duo", "--timeout=40s"]));
    let pod = c.pod_json("duo").unwrap();
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["status"]["hostIP"], "127.0.0.1");
    let pod_ip = pod["status"]["podIP"].as_str().unwrap().to_string();
    let get = ok(&c.kubectl(&["get", "pod", "duo"]));
    assert!(get.contains("2/2") && get.contains("Running"), "{get}");

    // Real processes with their limits, seen from the host.
    let web_id = container_status(&pod, "web")["containerID"]
        .as_str()
        .unwrap()
        .to_string();
    let tick_id = container_status(&pod, "ticker")["containerID"]
        .as_str()
        .unwrap()
        .to_string();
    let web_pid = node.container_pid(&web_id).expect("web pid");
    let tick_pid = node.container_pid(&tick_id).expect("ticker pid");
    assert_eq!(memory_limit(web_pid), 64 << 20);
    assert_eq!(memory_limit(tick_pid), 48 << 20);
    let own_ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    assert_ne!(
        std::fs::read_link(format!("/proc/{web_pid}/ns/pid")).unwrap(),
        own_ns
    );
    // The pod IP answers from the host; the containers share localhost.
    let page = eventually(Duration::from_secs(5), || {
        http_get(&format!("{pod_ip}:80"), "/index.html").ok()
    })
    .unwrap();
    assert!(page.contains("hello from skiff"), "{page}");
    let out = ok(&c.kubectl(&[
        "exec",
        "duo",
        "-c",
        "ticker",
        "--",
        "wget",
        "-qO-",
        "http://127.0.0.1/",
    ]));
    assert_eq!(out, "hello from skiff\n");

    // exec runs with the container's env and working dir; exit codes come back.
    let out = ok(&c.kubectl(&[
        "exec",
        "duo",
        "-c",
        "web",
        "--",
        "sh",
        "-c",
        "echo $GREETING; pwd",
    ]));
    assert_eq!(out, "hi there\n/www\n");
    let status = c
        .kubectl(&["exec", "duo", "-c", "web", "--", "sh", "-c", "exit 3"])
        .status;
    assert_eq!(status.code(), Some(3));
    let out = ok(&c.kubectl_stdin(
        &["exec", "-i", "duo", "-c", "web", "--", "cat"],
        Some("from stdin\n"),
    ));
    assert_eq!(out, "from stdin\n");

    // logs, and logs -f streams lines written after it started.
    let logs = ok(&c.kubectl(&["logs", "duo", "-c", "ticker"]));
    assert!(logs.starts_with("tick 1\n"), "{logs}");
    let logs = ok(&c.kubectl(&["logs", "duo", "-c", "ticker", "--tail", "1"]));
    assert_eq!(logs.lines().count(), 1, "{logs}");
    let mut follow = Command::new("kubectl")
        .arg("--cache-dir")
        .arg(&c.kube_cache)
        .args(["logs", "-f", "duo", "-c", "ticker", "--tail", "1"])
        .env("KUBECONFIG", &c.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first: u64 = lines.next().unwrap().unwrap()["tick ".len()..]
        .parse()
        .unwrap();
    let later: u64 = (0..5)
        .map(|_| lines.next().unwrap().unwrap())
        .last()
        .unwrap()["tick ".len()..]
        .parse()
        .unwrap();
    assert_eq!(later, first + 5);
    let _ = follow.kill();
    let _ = follow.wait();

    // Killing a container's process from the host: restarted in place, restartCount 1,
    // and the dead instance's log is there for --previous.
    nix_kill(tick_pid);
    let pod = eventually(Duration::from_secs(20), || {
        let p = c.pod_json("duo")?;
        let s = container_status(&p, "ticker");
        (s["restartCount"] == 1 && s["state"]["running"].is_object()).then_some(p)
    })
    .expect("ticker restarted");
    assert_eq!(
        container_status(&pod, "ticker")["lastState"]["terminated"]["exitCode"],
        137
    );
    assert_eq!(container_status(&pod, "web")["restartCount"], 0);
    let prev = ok(&c.kubectl(&["logs", "duo", "-c", "ticker", "--previous"]));
    assert!(
        prev.starts_with("tick 1\n") && prev.lines().count() > 5,
        "{prev}"
    );
    let describe = ok(&c.kubectl(&["describe", "pod", "duo"]));
    for needle in ["Started", "Created", "Restart Count:  1", "e2e-node-a"] {
        assert!(describe.contains(needle), "{needle} missing:\n{describe}");
    }

    // kill -9 of the agent: after its restart no container restarted and logs go on.
    let before = c.pod_json("duo").unwrap();
    node.restart(&c).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let after = c.pod_json("duo").unwrap();
    for name in ["web", "ticker"] {
        let (b, a) = (
            container_status(&before, name),
            container_status(&after, name),
        );
        assert_eq!(b["containerID"], a["containerID"], "{name} was replaced");
        assert_eq!(b["restartCount"], a["restartCount"], "{name} restarted");
        assert_eq!(a["ready"], true, "{name} not ready after the agent restart");
    }
    let n1 = ok(&c.kubectl(&["logs", "duo", "-c", "ticker"]))
        .lines()
        .count();
    std::thread::sleep(Duration::from_millis(600));
    let n2 = ok(&c.kubectl(&["logs", "duo", "-c", "ticker"]))
        .lines()
        .count();
    assert!(n2 > n1, "logs stopped: {n1} then {n2}");

    // Graceful deletion: SIGTERM reaches the ticker; the pod goes once its processes have.
    let tick_pid = node
        .container_pid(
            container_status(&after, "ticker")["containerID"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    ok(&c.kubectl(&["delete", "pod", "duo", "--timeout=30s"]));
    assert!(c.pod_json("duo").is_none());
    assert!(!std::path::Path::new(&format!("/proc/{tick_pid}")).exists());
    assert!(!std::path::Path::new(&format!("/proc/{web_pid}")).exists());
    let _ = node;
}

fn nix_kill(pid: i32) {
    // SIGKILL to the container's process, which this test looked up by its id.
    let st = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}
