//! The kernel settings the datapath needs: `net.ipv4.ip_forward=1`, without which a
//! ClusterIP, NodePort or load-balancer connection DNATed to a pod is dropped instead of
//! forwarded to the pod's bridge (the bridge CNI plugin turns it on for the same reason),
//! and `net.ipv4.conf.all.route_localnet=1`, so a NodePort reached at 127.0.0.1 can be
//! DNATed to a pod (kube-proxy's iptables mode sets the same); such traffic is masqueraded
//! by the external chains.

use std::path::{Path, PathBuf};

/// Where IPv4 forwarding is switched under `/proc/sys`.
pub const IP_FORWARD: &str = "net/ipv4/ip_forward";
/// Where `route_localnet` lives under `/proc/sys`.
pub const ROUTE_LOCALNET: &str = "net/ipv4/conf/all/route_localnet";

/// Sets `route_localnet` to 1 under `proc_sys` (`/proc/sys`), returning the path written.
pub fn enable_route_localnet(proc_sys: &Path) -> std::io::Result<PathBuf> {
    enable(proc_sys, ROUTE_LOCALNET)
}

/// Turns IPv4 forwarding on under `proc_sys` (`/proc/sys`), returning the path written.
pub fn enable_ip_forward(proc_sys: &Path) -> std::io::Result<PathBuf> {
    enable(proc_sys, IP_FORWARD)
}

/// Writes 1 to `proc_sys/setting` unless it is already 1 (a write of `ip_forward` resets
/// other per-interface settings, so an unchanged value is left alone).
fn enable(proc_sys: &Path, setting: &str) -> std::io::Result<PathBuf> {
    let path = proc_sys.join(setting);
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
        return Ok(path);
    }
    std::fs::write(&path, "1\n")?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(value: &str, setting: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(setting);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, value).unwrap();
        (dir, p)
    }

    #[test]
    fn writes_one_under_the_given_root() {
        let (dir, p) = fixture("0\n", ROUTE_LOCALNET);
        assert_eq!(enable_route_localnet(dir.path()).unwrap(), p);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "1\n");
    }

    #[test]
    fn turns_forwarding_on() {
        let (dir, p) = fixture("0\n", IP_FORWARD);
        assert_eq!(enable_ip_forward(dir.path()).unwrap(), p);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "1\n");
    }

    #[test]
    fn leaves_a_setting_already_on_unwritten() {
        // Written, it would read "1\n".
        let (dir, p) = fixture("1", IP_FORWARD);
        assert_eq!(enable_ip_forward(dir.path()).unwrap(), p);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "1");
    }
}
