//! `kubectl top` on a real node: a pod burning CPU under a 250m limit and one holding
//! 48 MB of anonymous memory; `kubectl top pods` and `top nodes` show figures that match the cgroup
//! and /proc readings this test takes itself within 10 %.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_e2e::workload::{apply, json, wait_ready_pods};
use skiff_e2e::{Backend, Cluster, can_run_nodes, eventually};

const NODE: &str = "e2e-node-top";

const PODS: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: burn, labels: {app: top, role: cpu}}
spec:
  containers:
  - name: burn
    image: busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "while :; do :; done"]
    readinessProbe:
      exec: {command: ["true"]}
      periodSeconds: 1
    resources:
      requests: {cpu: 250m, memory: 8Mi}
      limits: {cpu: 250m, memory: 64Mi}
---
apiVersion: v1
kind: Pod
metadata: {name: hold, labels: {app: top, role: memory}}
spec:
  containers:
  - name: hold
    image: busybox:1.36
    imagePullPolicy: Never
    # The shell keeps the 48 MB string in a variable. The loop matters: as its last
    # command a plain `sleep` would be exec'd in the shell's place, and the string (and
    # the working set with it) would be gone.
    command: ["sh", "-c", "x=$(head -c 48000000 /dev/zero | tr '\\0' a); echo held; while :; do sleep 3600; done"]
    resources:
      requests: {cpu: 10m, memory: 64Mi}
      limits: {memory: 256Mi}
"#;

/// The cgroup directory of `pid` for a v1 controller, or its v2 directory.
fn cgroup_dir(pid: i32, v1_controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/pid/cgroup");
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        if controllers.split(',').any(|c| c == v1_controller) {
            let mount = if v1_controller == "cpuacct" {
                "cpu,cpuacct"
            } else {
                v1_controller
            };
            for m in [mount, v1_controller] {
                let dir = PathBuf::from(format!("/sys/fs/cgroup/{m}{path}"));
                if dir.exists() {
                    return dir;
                }
            }
        }
    }
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup v2 line");
    let v2 = PathBuf::from(format!("/sys/fs/cgroup{path}"));
    if v2.join("cpu.stat").exists() {
        v2
    } else {
        PathBuf::from(format!("/sys/fs/cgroup/unified{path}"))
    }
}

fn keyed(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time of the container in nanoseconds.
fn cpu_ns(pid: i32) -> u64 {
    let dir = cgroup_dir(pid, "cpuacct");
    match std::fs::read_to_string(dir.join("cpuacct.usage")) {
        Ok(s) => s.trim().parse().unwrap(),
        Err(_) => {
            keyed(
                &std::fs::read_to_string(dir.join("cpu.stat")).unwrap(),
                "usage_usec ",
            ) * 1000
        }
    }
}

/// Working set in bytes: usage minus inactive file cache.
fn working_set(pid: i32) -> u64 {
    let dir = cgroup_dir(pid, "memory");
    let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap();
    match std::fs::read_to_string(dir.join("memory.usage_in_bytes")) {
        Ok(u) => u
            .trim()
            .parse::<u64>()
            .unwrap()
            .saturating_sub(keyed(&stat, "total_inactive_file ")),
        Err(_) => {
            let u: u64 = std::fs::read_to_string(dir.join("memory.current"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            u.saturating_sub(keyed(&stat, "inactive_file "))
        }
    }
}

/// Millicores from a `kubectl top` CPU cell (`249m`, `1`).
fn millicores(cell: &str) -> f64 {
    match cell.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => cell.parse::<f64>().unwrap() * 1000.0,
    }
}

/// Bytes from a `kubectl top` memory cell (`39Mi`, `1Gi`, `800Ki`).
fn bytes(cell: &str) -> f64 {
    for (suffix, mul) in [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
    ] {
        if let Some(v) = cell.strip_suffix(suffix) {
            return v.parse::<f64>().unwrap() * mul;
        }
    }
    cell.parse().unwrap()
}

fn within(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.max(1.0)
}

/// Rows of `kubectl top ...` as cells, header dropped.
fn top(c: &Cluster, args: &[&str]) -> Option<Vec<Vec<String>>> {
    let mut all = vec!["top"];
    all.extend_from_slice(args);
    let out = c.kubectl(&all);
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(
        text.lines()
            .skip(1)
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect(),
    )
}

/// GET `path` from the node's kubelet server as a `system:masters` client, with a client
/// certificate this test issues from the cluster CA (the kubelet accepts no tokens).
fn kubelet_get(c: &Cluster, node: &skiff_e2e::node::Node, path: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) =
        skiff_e2e::kubelet_client_cert(&c.data_dir().join("tls"), dir.path(), "e2e-scraper")
            .unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sSf", "-k", "--max-time", "10", "--cert"])
        .arg(&crt)
        .arg("--key")
        .arg(&key)
        .arg(format!(
            "https://127.0.0.1:{}{path}",
            node.host.kubelet_port
        ))
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

fn pid_of(c: &Cluster, node: &skiff_e2e::node::Node, pod: &str) -> i32 {
    let p: Value = json(c, &["get", "pod", pod, "-o", "json"]);
    let id = p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap()
        .to_string();
    node.container_pid(&id).expect("container pid")
}

#[test]
fn kubectl_top_matches_cgroup_readings() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start(Backend::Embedded).unwrap();
    let node = c.start_node(NODE, 31).unwrap();
    apply(&c, PODS);
    wait_ready_pods(&c, "app=top", 2, 90);
    let (burn, hold) = (pid_of(&c, &node, "burn"), pid_of(&c, &node, "hold"));

    // CPU: the figure `top` shows against the rate this test measures over the same few
    // seconds (both windows are about the 1 s resolution, so retry until they agree).
    let cpu = eventually(Duration::from_secs(60), || {
        let (t0, u0) = (Instant::now(), cpu_ns(burn));
        let rows = top(&c, &["pods", "-l", "role=cpu"])?;
        std::thread::sleep(Duration::from_millis(1500));
        let rows2 = top(&c, &["pods", "-l", "role=cpu"])?;
        let measured = (cpu_ns(burn) - u0) as f64 / t0.elapsed().as_nanos() as f64 * 1000.0;
        let shown = rows.iter().chain(&rows2).find(|r| r[0] == "burn")?;
        let shown = millicores(&shown[1]);
        (shown > 0.0 && within(shown, measured, 0.10)).then_some((shown, measured))
    });
    let (shown_cpu, measured_cpu) =
        cpu.expect("kubectl top pods burn within 10% of its cgroup CPU rate");
    eprintln!("burn: top {shown_cpu}m, cgroup {measured_cpu:.0}m");

    // Memory: the held 48 MB, working set as Kubernetes defines it.
    let mut last = (0.0, 0.0);
    let mem = eventually(Duration::from_secs(30), || {
        let rows = top(&c, &["pods", "-l", "app=top", "--containers"])?;
        let row = rows.iter().find(|r| r[0] == "hold" && r[1] == "hold")?;
        let shown = bytes(&row[3]);
        let measured = working_set(hold) as f64;
        last = (shown, measured);
        // The shell holds a 48 MB string, all of it anonymous memory in the working set.
        (shown > 45e6 && within(shown, measured, 0.10)).then_some((shown, measured))
    });
    let (shown_mem, measured_mem) = mem.unwrap_or_else(|| {
        panic!("kubectl top pods --containers hold within 10% of its working set: last {last:?}")
    });
    eprintln!("hold: top {shown_mem}, cgroup {measured_mem}");

    // Both pods listed, all namespaces too.
    let all = top(&c, &["pods", "-A"]).expect("kubectl top pods -A");
    assert!(
        all.iter().any(|r| r[0] == "default" && r[1] == "burn"),
        "{all:?}"
    );
    assert!(
        all.iter().any(|r| r[0] == "default" && r[1] == "hold"),
        "{all:?}"
    );

    // `skiff top` prints the same columns from the same API.
    let out = c.skiff(&["top", "pods", "-l", "app=top", "--containers"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("POD"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().take(2).eq(["hold", "hold"])),
        "{text}"
    );
    let out = c.skiff(&["top", "nodes"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CPU(%)") && text.contains(NODE), "{text}");

    // The node: non-zero CPU at least what the burner uses, memory matching /proc/meminfo.
    let node_row = eventually(Duration::from_secs(30), || {
        let rows = top(&c, &["nodes"])?;
        let row = rows.into_iter().find(|r| r[0] == NODE)?;
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let kb = |k: &str| keyed(&meminfo, k) as f64 * 1024.0;
        let ws = kb("MemTotal:") - kb("MemFree:") - kb("Inactive(file):");
        let shown = bytes(&row[3]);
        (millicores(&row[1]) >= shown_cpu * 0.9 && within(shown, ws, 0.10)).then_some(row)
    });
    let row = node_row.expect("kubectl top nodes shows the node's CPU and working set");
    eprintln!("node: {row:?}");
    assert!(row[2].ends_with('%') && row[4].ends_with('%'), "{row:?}");

    // The kubelet's own Prometheus metrics: two pods started, the runtime's operations
    // timed by type, and the readiness probe of the burner counted by result.
    // (Fetched until the service proxy's first sync is in, which a loaded machine delays.)
    let mut text = String::new();
    eventually(Duration::from_secs(30), || {
        text = kubelet_get(&c, &node, "/metrics");
        sample(&text, "kubeproxy_sync_proxy_rules_duration_seconds_count ").filter(|n| *n >= 1.0)
    });
    assert_eq!(
        sample(&text, "kubelet_pod_start_duration_seconds_count "),
        Some(2.0),
        "{text}"
    );
    for op in [
        "run_podsandbox",
        "create_container",
        "start_container",
        "list_containers",
    ] {
        let count = sample(
            &text,
            &format!(
                "kubelet_runtime_operations_duration_seconds_count{{operation_type=\"{op}\"}} "
            ),
        );
        assert!(count.is_some_and(|n| n >= 1.0), "{op}: {text}");
    }
    let probes = sample(
        &text,
        "prober_probe_total{probe_type=\"Readiness\",result=\"successful\",container=\"burn\",pod=\"burn\",namespace=\"default\"",
    );
    assert!(probes.is_some_and(|n| n >= 1.0), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    // The node's other components on the same /metrics: the service proxy has synced its
    // rules, and a name looked up from a pod reached the node's cluster DNS.
    let syncs = sample(&text, "kubeproxy_sync_proxy_rules_duration_seconds_count ");
    assert!(syncs.is_some_and(|n| n >= 1.0), "{text}");
    assert!(
        sample(
            &text,
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv4\"} "
        )
        .is_some_and(|t| t > 1.0e9),
        "{text}"
    );
    // The lookup runs in `hold`, not in the burner that its CPU limit throttles; it and the
    // counters it moves are retried, as a loaded machine can take its time with either.
    let mut last = String::new();
    let looked_up = eventually(Duration::from_secs(30), || {
        let out = c.kubectl(&[
            "exec",
            "hold",
            "--",
            "nslookup",
            "kubernetes.default.svc.cluster.local",
        ]);
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.status.success().then_some(())
    });
    assert!(looked_up.is_some(), "nslookup from a pod: {last}");
    let counted = eventually(Duration::from_secs(30), || {
        text = kubelet_get(&c, &node, "/metrics");
        let udp = sample(&text, "skiff_dns_queries_total{protocol=\"udp\"} ");
        let answered = sample(
            &text,
            "skiff_dns_responses_total{rcode=\"NOERROR\",source=\"cluster\"} ",
        );
        (udp.is_some_and(|n| n >= 1.0) && answered.is_some_and(|n| n >= 1.0)).then_some(())
    });
    assert!(
        counted.is_some(),
        "the node's DNS counted the lookup: {text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");

    // A pod without metrics yet, and one that does not exist: metrics-server's errors.
    let out = c.kubectl(&["top", "pod", "nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pods \"default/nope\" not found") || err.contains("not found"),
        "{err}"
    );
}
