//! Helpers for workload tests: applying manifests, reading pods as JSON through kubectl,
//! waiting for ready pods, and a poller that records pod availability during a rollout.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::{Cluster, eventually, kube_config, ok};

/// A Deployment of busybox httpd on port 8080 with `VERSION=<env>` and small requests;
/// `strategy` is the YAML flow mapping of `spec.strategy`.
pub fn deployment(name: &str, replicas: u32, env: &str, strategy: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  strategy: {strategy}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: httpd
        image: busybox:1.36
        command: ["httpd", "-f", "-p", "8080"]
        env: [{{name: VERSION, value: "{env}"}}]
        resources: {{requests: {{cpu: 10m, memory: 8Mi}}}}
"#
    )
}

/// `kubectl <args> -o json`, parsed.
pub fn json(c: &Cluster, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&ok(&c.kubectl(&a))).expect("kubectl printed JSON")
}

/// `kubectl apply -f -` of `yaml`; returns kubectl's output.
pub fn apply(c: &Cluster, yaml: &str) -> String {
    ok(&c.kubectl_stdin(&["apply", "-f", "-"], Some(yaml)))
}

/// The pods of the default namespace matching a label selector.
pub fn pods(c: &Cluster, selector: &str) -> Vec<Value> {
    json(c, &["get", "pods", "-l", selector])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Whether a pod is not being deleted.
pub fn live(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
}

/// Whether a live pod has the condition Ready=True.
pub fn ready(p: &Value) -> bool {
    live(p)
        && p["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Waits (up to `secs`) until exactly `n` live pods match `selector` and all are ready;
/// returns them. Panics with the pods' phases otherwise.
pub fn wait_ready_pods(c: &Cluster, selector: &str, n: usize, secs: u64) -> Vec<Value> {
    eventually(Duration::from_secs(secs), || {
        let ps = pods(c, selector);
        let r: Vec<Value> = ps.iter().filter(|p| ready(p)).cloned().collect();
        (r.len() == n && ps.iter().filter(|p| live(p)).count() == n).then_some(r)
    })
    .unwrap_or_else(|| {
        panic!(
            "never {n} ready pods for {selector}: {:?}",
            pods(c, selector)
                .iter()
                .map(|p| (&p["metadata"]["name"], &p["status"]["phase"]))
                .collect::<Vec<_>>()
        )
    })
}

/// Records, every 100 ms, how many live pods match a selector and how many are ready.
pub struct AvailabilityPoller {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(usize, usize)>>>,
    thread: Option<JoinHandle<()>>,
}

impl AvailabilityPoller {
    /// Starts polling the default namespace of `c` through a kube client.
    pub fn start(c: &Cluster, selector: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            let kubeconfig = c.kubeconfig.clone();
            let selector = selector.to_string();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
                rt.block_on(async move {
                    let cfg = kube_config(&kubeconfig).await.expect("client config");
                    let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(
                        kube::Client::try_from(cfg).expect("client"),
                        "default",
                    );
                    let params = kube::api::ListParams::default().labels(&selector);
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(list) = api.list(&params).await {
                            let vals: Vec<Value> = list
                                .items
                                .iter()
                                .filter_map(|p| serde_json::to_value(p).ok())
                                .collect();
                            let total = vals.iter().filter(|p| live(p)).count();
                            let avail = vals.iter().filter(|p| ready(p)).count();
                            seen.lock().expect("poller lock").push((total, avail));
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                });
            })
        };
        AvailabilityPoller {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Stops polling and returns every `(live, ready)` sample.
    pub fn finish(mut self) -> Vec<(usize, usize)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("poller thread");
        }
        self.seen.lock().expect("poller lock").clone()
    }
}

impl Drop for AvailabilityPoller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Asserts every sample kept at least `replicas - max_unavailable` pods ready and never more
/// than `replicas + max_surge` live pods.
pub fn assert_within_bounds(
    seen: &[(usize, usize)],
    replicas: usize,
    max_surge: usize,
    max_unavailable: usize,
) {
    assert!(seen.len() > 5, "poller saw too little: {seen:?}");
    for (total, avail) in seen {
        assert!(
            *avail + max_unavailable >= replicas,
            "fewer than replicas - maxUnavailable ready: {seen:?}"
        );
        assert!(
            *total <= replicas + max_surge,
            "more than replicas + maxSurge pods: {seen:?}"
        );
    }
}

/// `GET <path>` over HTTP/1.0 from `addr` (`ip:port`), from the host: the whole response.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let addr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
