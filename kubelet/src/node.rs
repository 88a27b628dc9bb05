//! The Node object: registration with capacity, addresses, labels and node info; the status
//! loop (conditions written only when they change or once a minute); the Lease in
//! `kube-node-lease` renewed every 10 s; waiting for `spec.podCIDR`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::host::HostFacts;

/// Namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Registers and heartbeats one Node.
#[derive(Clone)]
pub struct NodeAgent {
    /// The Node's name.
    pub name: String,
    client: kube::Client,
    facts: HostFacts,
    labels: BTreeMap<String, String>,
    root_dir: PathBuf,
    max_pods: u32,
    /// Whether the kubelet is ready (false until the pod network is known).
    ready_note: Option<String>,
}

/// Kubernetes' default pod limit: min(110, 10 × cores).
pub fn default_max_pods(cores: u32) -> u32 {
    110.min(10 * cores.max(1))
}

impl NodeAgent {
    /// An agent for node `name`.
    pub fn new(
        name: &str,
        client: kube::Client,
        facts: HostFacts,
        labels: BTreeMap<String, String>,
        root_dir: PathBuf,
        max_pods: Option<u32>,
    ) -> Self {
        let max_pods = max_pods.unwrap_or_else(|| default_max_pods(facts.cores));
        Self {
            name: name.into(),
            client,
            facts,
            labels,
            root_dir,
            max_pods,
            ready_note: None,
        }
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn node_labels(&self) -> BTreeMap<String, String> {
        let mut l = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), self.name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), self.facts.arch.clone()),
            ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
            (
                "beta.kubernetes.io/arch".to_string(),
                self.facts.arch.clone(),
            ),
        ]);
        l.extend(self.labels.clone());
        l
    }

    /// The status without conditions (what the node is).
    fn static_status(&self) -> Value {
        let f = &self.facts;
        let disk = crate::host::disk_bytes(&self.root_dir).unwrap_or((0, 0)).0;
        let capacity = json!({
            "cpu": f.cores.to_string(),
            "memory": format!("{}Ki", f.memory_bytes / 1024),
            "ephemeral-storage": format!("{}Ki", disk / 1024),
            "pods": self.max_pods.to_string(),
        });
        // Kubernetes keeps the hard eviction threshold (memory.available<100Mi) back.
        let alloc_mem = f.memory_bytes.saturating_sub(100 << 20);
        let allocatable = json!({
            "cpu": f.cores.to_string(),
            "memory": format!("{}Ki", alloc_mem / 1024),
            "ephemeral-storage": format!("{}Ki", disk / 10 * 9 / 1024),
            "pods": self.max_pods.to_string(),
        });
        json!({
            "capacity": capacity,
            "allocatable": allocatable,
            "addresses": [
                {"type": "InternalIP", "address": f.ip.to_string()},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": f.kubelet_port}},
            "nodeInfo": {
                "machineID": f.machine_id,
                "systemUUID": f.system_uuid,
                "bootID": f.boot_id,
                "kernelVersion": f.kernel_version,
                "osImage": f.os_image,
                "containerRuntimeVersion": f.runtime_version,
                "kubeletVersion": crate::config::KUBELET_VERSION,
                "kubeProxyVersion": crate::config::KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": f.arch,
            },
        })
    }

    /// (type, status, reason, message) of the four conditions.
    fn conditions(&self) -> Vec<(&'static str, &'static str, &'static str, String)> {
        let p = crate::host::pressure(&self.root_dir);
        let cond = |bad: bool, t, good_r, good_m: &str, bad_r, bad_m: &str| {
            if bad {
                (t, "True", bad_r, bad_m.to_string())
            } else {
                (t, "False", good_r, good_m.to_string())
            }
        };
        let ready = match &self.ready_note {
            None => (
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status".to_string(),
            ),
            Some(note) => ("Ready", "False", "KubeletNotReady", note.clone()),
        };
        vec![
            cond(
                p.memory,
                "MemoryPressure",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
            cond(
                p.disk,
                "DiskPressure",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
            ),
            cond(
                p.pid,
                "PIDPressure",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
            ready,
        ]
    }

    /// Sets the Ready condition's note: `None` is ready.
    pub fn set_not_ready(&mut self, note: Option<String>) {
        self.ready_note = note;
    }

    /// Creates the Node, or brings an existing one's labels up to date; returns it.
    pub async fn register(&self) -> kube::Result<Node> {
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": self.node_labels()},
        }))
        .expect("node object");
        match self.nodes().create(&PostParams::default(), &node).await {
            Ok(n) => Ok(n),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let patch = json!({"metadata": {"labels": self.node_labels()}});
                self.nodes()
                    .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the full status with fresh heartbeats, keeping transition times of
    /// conditions that did not change.
    async fn write_status(&self, current: Option<&Node>) -> kube::Result<Node> {
        let now = jiff::Timestamp::now().to_string();
        let old: Vec<Value> = current
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .map(|c| {
                c.iter()
                    .map(|c| serde_json::to_value(c).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        let conditions: Vec<Value> = self
            .conditions()
            .into_iter()
            .map(|(t, s, r, m)| {
                let since = old
                    .iter()
                    .find(|o| o["type"] == t && o["status"] == s)
                    .and_then(|o| o["lastTransitionTime"].as_str().map(str::to_string))
                    .unwrap_or_else(|| now.clone());
                json!({"type": t, "status": s, "reason": r, "message": m,
                       "lastHeartbeatTime": now, "lastTransitionTime": since})
            })
            .collect();
        let mut status = self.static_status();
        status["conditions"] = Value::Array(conditions);
        self.nodes()
            .patch_status(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
    }

    /// The status as compared for "changed": everything but heartbeat times.
    fn fingerprint(&self) -> Value {
        let mut s = self.static_status();
        s["conditions"] = json!(
            self.conditions()
                .into_iter()
                .map(|(t, s, r, _)| format!("{t}={s}/{r}"))
                .collect::<Vec<_>>()
        );
        s
    }

    /// Whether the server's Node carries the conditions (type, status, reason) this
    /// kubelet last computed.
    fn server_agrees(&self, node: &Node) -> bool {
        let ours = self.conditions();
        let theirs = node.status.as_ref().and_then(|s| s.conditions.as_ref());
        ours.iter().all(|(t, s, r, _)| {
            theirs.is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == *t && c.status == *s && c.reason.as_deref() == Some(*r))
            })
        })
    }

    /// Keeps the node status current until `shutdown`: writes when the status changed or
    /// `interval` passed.
    pub async fn status_loop(
        mut self,
        check: Duration,
        interval: Duration,
        mut ready: tokio::sync::watch::Receiver<Option<String>>,
    ) {
        let mut last: Option<(Value, Instant)> = None;
        loop {
            self.ready_note = ready.borrow_and_update().clone();
            let fp = self.fingerprint();
            // As the kubelet does, the Node is read every check: what the server holds may
            // have been changed by someone else (the node lifecycle controller marks the
            // conditions of a node that went quiet Unknown), and is then written back.
            let current = self.nodes().get_opt(&self.name).await;
            let overwritten = matches!(&current, Ok(Some(n)) if !self.server_agrees(n));
            let due = match &last {
                None => true,
                Some((prev, at)) => *prev != fp || at.elapsed() >= interval || overwritten,
            };
            if due && let Ok(current) = current {
                let result = match current {
                    Some(n) => self.write_status(Some(&n)).await,
                    None => match self.register().await {
                        Ok(n) => self.write_status(Some(&n)).await,
                        Err(e) => Err(e),
                    },
                };
                match result {
                    Ok(_) => last = Some((fp, Instant::now())),
                    Err(e) => {
                        tracing::warn!(node = %self.name, error = %e, "node status update failed")
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(check) => {}
                r = ready.changed() => if r.is_err() { return },
            }
        }
    }

    /// Creates or renews the node's Lease.
    pub async fn renew_lease(&self, node_uid: Option<&str>) -> kube::Result<Lease> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let now = jiff::Timestamp::now().to_string();
        let spec =
            json!({"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": now});
        match api.get_opt(&self.name).await? {
            Some(_) => {
                api.patch(
                    &self.name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({ "spec": spec })),
                )
                .await
            }
            None => {
                let mut meta = json!({"name": self.name, "namespace": LEASE_NAMESPACE});
                if let Some(uid) = node_uid {
                    meta["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node",
                        "name": self.name, "uid": uid}]);
                }
                let lease: Lease = serde_json::from_value(json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": meta, "spec": spec,
                }))
                .expect("lease object");
                api.create(&PostParams::default(), &lease).await
            }
        }
    }

    /// Renews the lease every `interval` forever.
    pub async fn lease_loop(self, interval: Duration) {
        loop {
            let uid = self
                .nodes()
                .get_opt(&self.name)
                .await
                .ok()
                .flatten()
                .and_then(|n| n.metadata.uid);
            if let Err(e) = self.renew_lease(uid.as_deref()).await {
                tracing::warn!(node = %self.name, error = %e, "lease renewal failed");
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Waits until the Node has `spec.podCIDR` and returns it.
    pub async fn wait_pod_cidr(&self, poll: Duration) -> String {
        loop {
            if let Ok(Some(n)) = self.nodes().get_opt(&self.name).await
                && let Some(cidr) = n.spec.and_then(|s| s.pod_cidr)
            {
                return cidr;
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// The first non-loopback IPv4 address of the host (the source of its default route).
pub fn detect_node_ip() -> Ipv4Addr {
    // connect() on UDP only picks a route; no packet is sent.
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .ok()
        .and_then(|a| match a.ip() {
            std::net::IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
            _ => None,
        })
        .unwrap_or(Ipv4Addr::LOCALHOST)
}
