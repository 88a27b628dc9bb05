//! Facts about the machine the node reports: cores, memory, disk, kernel, OS image, ids,
//! and the resource-pressure checks behind the node conditions.

use std::net::Ipv4Addr;
use std::path::Path;

/// What the node reports about its host.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// Logical CPUs.
    pub cores: u32,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// The node's address.
    pub ip: Ipv4Addr,
    /// Kubernetes architecture name (`amd64`, `arm64`).
    pub arch: String,
    /// `uname -r`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of os-release.
    pub os_image: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// DMI product uuid when readable, else the machine id.
    pub system_uuid: String,
    /// Boot id.
    pub boot_id: String,
    /// `skiff://<version>`.
    pub runtime_version: String,
    /// Port of the node's HTTPS server (`status.daemonEndpoints.kubeletEndpoint.Port`).
    pub kubelet_port: u16,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Kubernetes' name for the running architecture.
pub fn kube_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// A value of `/proc/meminfo` in bytes.
fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|kb| kb * 1024)
    })
}

impl HostFacts {
    /// Reads the host's facts.
    pub fn detect(ip: Ipv4Addr, runtime_version: &str) -> Self {
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("PRETTY_NAME=")
                        .map(|v| v.trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|| "Linux".into());
        let machine_id = read_trim("/etc/machine-id");
        let uuid = read_trim("/sys/class/dmi/id/product_uuid");
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            memory_bytes: meminfo("MemTotal").unwrap_or(0),
            ip,
            arch: kube_arch().into(),
            kernel_version: read_trim("/proc/sys/kernel/osrelease"),
            os_image,
            system_uuid: if uuid.is_empty() {
                machine_id.clone()
            } else {
                uuid
            },
            machine_id,
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            runtime_version: runtime_version.into(),
            kubelet_port: crate::server::DEFAULT_PORT,
        }
    }
}

/// (total, available) bytes of the filesystem holding `path` (or its nearest existing
/// ancestor).
pub fn disk_bytes(path: &Path) -> Option<(u64, u64)> {
    let mut p = path;
    while !p.exists() {
        p = p.parent()?;
    }
    let st = nix::sys::statvfs::statvfs(p).ok()?;
    let frag = st.fragment_size() as u64;
    Some((
        st.blocks() as u64 * frag,
        st.blocks_available() as u64 * frag,
    ))
}

/// Which resources are under pressure (Kubernetes' default hard eviction thresholds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    /// `memory.available < 100Mi`.
    pub memory: bool,
    /// `nodefs.available < 10%`.
    pub disk: bool,
    /// More than 90% of `pid_max` in use.
    pub pid: bool,
}

/// Checks the thresholds for a node whose state lives under `root`.
pub fn pressure(root: &Path) -> Pressure {
    let memory = meminfo("MemAvailable").is_some_and(|b| b < 100 << 20);
    let disk = disk_bytes(root).is_some_and(|(total, avail)| total > 0 && avail * 10 < total);
    let pid_max: u64 = read_trim("/proc/sys/kernel/pid_max").parse().unwrap_or(0);
    // The fourth field of loadavg is runnable/total scheduling entities.
    let threads: u64 = read_trim("/proc/loadavg")
        .split_whitespace()
        .nth(3)
        .and_then(|f| f.split('/').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Pressure {
        memory,
        disk,
        pid: pid_max > 0 && threads * 10 > pid_max * 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_read_from_the_host() {
        let f = HostFacts::detect(Ipv4Addr::LOCALHOST, "skiff://0.1.0");
        assert!(f.cores >= 1);
        assert!(f.memory_bytes > 1 << 20, "memory {}", f.memory_bytes);
        assert!(!f.kernel_version.is_empty());
        let (total, avail) = disk_bytes(Path::new("/tmp/does/not/exist")).unwrap();
        assert!(total >= avail && total > 0);
    }
}
