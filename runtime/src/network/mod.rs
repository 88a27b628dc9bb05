//! The pod sandbox network: one network namespace per pod pinned by a bind mount, a veth
//! into the node bridge, an address from the pod CIDR, a default route through the
//! bridge, egress masquerade, and the pod's `/etc/hosts`, `/etc/hostname`,
//! `/etc/resolv.conf`.

pub mod files;
pub mod forward;
pub mod ipam;
pub mod links;
pub mod nat;
pub mod netns;

pub use files::DnsConfig;
pub use ipam::Ipam;
pub use netns::NsKind;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// Network errors, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A namespace file could not be made or removed.
    #[error("namespace {path}: {message}")]
    Namespace {
        /// The nsfs file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A netlink request failed.
    #[error("netlink {op}: {message}")]
    Netlink {
        /// The operation.
        op: &'static str,
        /// The kernel's answer.
        message: String,
    },
    /// nftables refused the ruleset.
    #[error("nftables: {0}")]
    Nftables(String),
    /// Every address of the pod CIDR is taken.
    #[error("no free address in {0}")]
    Exhausted(Ipv4Net),
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Node-level network settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The node bridge (`skiff0`).
    pub bridge: String,
    /// The node's pod CIDR; its first address is the bridge's.
    pub cidr: Ipv4Net,
    /// nftables table for masquerade (`skiff_pods`).
    pub nft_table: String,
    /// IP allocation files.
    pub ipam_dir: PathBuf,
    /// DNS for pods.
    pub dns: DnsConfig,
    /// Install the egress masquerade table.
    pub masquerade: bool,
}

impl NetworkConfig {
    /// Defaults for a node with `cidr`, keeping state under `state_dir`.
    pub fn new(cidr: Ipv4Net, state_dir: &Path) -> Self {
        Self {
            bridge: "skiff0".into(),
            cidr,
            nft_table: "skiff_pods".into(),
            ipam_dir: state_dir.join("ipam"),
            dns: DnsConfig::default(),
            masquerade: true,
        }
    }
}

/// What a sandbox's network is made of, persisted with the sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxNetwork {
    /// Pinned network namespace.
    pub netns: PathBuf,
    /// Pinned UTS namespace.
    pub uts: PathBuf,
    /// Pinned IPC namespace.
    pub ipc: PathBuf,
    /// The pod's address (none with host networking).
    pub ip: Option<Ipv4Addr>,
    /// Host side of the veth.
    pub veth: Option<String>,
    /// (container path, host file) of hosts, hostname, resolv.conf.
    pub etc_files: Vec<(PathBuf, PathBuf)>,
}

/// The node's pod networking.
pub struct PodNetwork {
    config: NetworkConfig,
    ipam: Ipam,
    node_ready: Mutex<bool>,
}

/// veth names (host, peer) for a sandbox: at most 15 bytes, stable per id.
pub fn veth_names(id: &str) -> (String, String) {
    let h = hex::encode(sha2::Sha256::digest(id.as_bytes()));
    (format!("sk{}", &h[..10]), format!("sp{}", &h[..10]))
}

impl PodNetwork {
    /// A pod network with `config`.
    pub fn new(config: NetworkConfig) -> Self {
        let ipam = Ipam::new(config.ipam_dir.clone(), config.cidr);
        Self {
            config,
            ipam,
            node_ready: Mutex::new(false),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// The allocator.
    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    fn ensure_node(&self) -> Result<u32, NetworkError> {
        let (bridge, gw, prefix) = (
            self.config.bridge.clone(),
            self.ipam.gateway(),
            self.config.cidr.prefix_len(),
        );
        let idx = links::run(None, move |h| async move {
            links::ensure_bridge(&h, &bridge, gw, prefix).await
        })?;
        let mut ready = self.node_ready.lock().unwrap_or_else(|e| e.into_inner());
        if !*ready && self.config.masquerade {
            nat::ensure_masquerade(
                &self.config.nft_table,
                self.config.cidr,
                &self.config.bridge,
            )?;
        }
        *ready = true;
        Ok(idx)
    }

    /// Removes the node bridge and the masquerade table (tests and node teardown).
    pub fn teardown_node(&self) -> Result<(), NetworkError> {
        let bridge = self.config.bridge.clone();
        links::run(None, move |h| async move {
            links::delete_link(&h, &bridge).await
        })?;
        if self.config.masquerade {
            nat::remove_table(&self.config.nft_table)?;
        }
        Ok(())
    }

    /// Creates the namespaces and network of sandbox `id` under `dir`. With
    /// `host_network` the pod shares the node's network namespace and gets no address.
    pub fn create_sandbox(
        &self,
        id: &str,
        dir: &Path,
        hostname: &str,
        host_network: bool,
    ) -> Result<SandboxNetwork, NetworkError> {
        self.create_sandbox_with_dns(id, dir, hostname, host_network, None)
    }

    /// [`PodNetwork::create_sandbox`] with the pod's own DNS settings (the node's when
    /// `None`) written to its `resolv.conf`.
    pub fn create_sandbox_with_dns(
        &self,
        id: &str,
        dir: &Path,
        hostname: &str,
        host_network: bool,
        dns: Option<&DnsConfig>,
    ) -> Result<SandboxNetwork, NetworkError> {
        let ns = dir.join("ns");
        let mut net = SandboxNetwork {
            netns: if host_network {
                "/proc/1/ns/net".into()
            } else {
                ns.join("net")
            },
            uts: ns.join("uts"),
            ipc: ns.join("ipc"),
            ip: None,
            veth: None,
            etc_files: Vec::new(),
        };
        let made = (|| {
            netns::create(&net.uts, NsKind::Uts, Some(hostname))?;
            netns::create(&net.ipc, NsKind::Ipc, None)?;
            if !host_network {
                netns::create(&net.netns, NsKind::Net, None)?;
                let bridge = self.ensure_node()?;
                let ip = self.ipam.allocate(id)?;
                net.ip = Some(ip);
                let (host, peer) = veth_names(id);
                let nsfile = net.netns.clone();
                let (h2, p2) = (host.clone(), peer.clone());
                links::run(None, move |h| async move {
                    links::add_veth(&h, &h2, &p2, &nsfile, bridge).await
                })?;
                net.veth = Some(host);
                let (gw, prefix) = (self.ipam.gateway(), self.config.cidr.prefix_len());
                links::run(Some(net.netns.clone()), move |h| async move {
                    links::configure_pod(&h, &peer, ip, prefix, gw).await
                })?;
            }
            let dns = dns.unwrap_or(&self.config.dns);
            net.etc_files = files::write_all(dir, hostname, net.ip, dns)?;
            Ok(())
        })();
        match made {
            Ok(()) => Ok(net),
            Err(e) => {
                let _ = self.remove_sandbox(id, dir);
                Err(e)
            }
        }
    }

    /// Tears down what [`PodNetwork::create_sandbox`] made; safe to repeat.
    pub fn remove_sandbox(&self, id: &str, dir: &Path) -> Result<(), NetworkError> {
        let (host, _) = veth_names(id);
        // Deleting the namespace destroys the pair too; delete the host end explicitly in
        // case the namespace was already gone or is still held somewhere.
        links::run(
            None,
            move |h| async move { links::delete_link(&h, &host).await },
        )?;
        let ns = dir.join("ns");
        for kind in [NsKind::Net, NsKind::Uts, NsKind::Ipc] {
            netns::remove(&ns.join(kind.name()))?;
        }
        if let Some(ip) = self.ipam.owned_by(id)? {
            self.ipam.release(ip, id)?;
        }
        Ok(())
    }
}
