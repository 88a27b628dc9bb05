//! The one kernel setting the datapath needs: `net.ipv4.conf.all.route_localnet=1`, so a
//! NodePort reached at 127.0.0.1 can be DNATed to a pod (kube-proxy's iptables mode sets
//! the same); such traffic is masqueraded by the external chains.

use std::path::{Path, PathBuf};

/// Where the setting lives under `/proc/sys`.
pub const ROUTE_LOCALNET: &str = "net/ipv4/conf/all/route_localnet";

/// Sets `route_localnet` to 1 under `proc_sys` (`/proc/sys`), returning the path written.
pub fn enable_route_localnet(proc_sys: &Path) -> std::io::Result<PathBuf> {
    let path = proc_sys.join(ROUTE_LOCALNET);
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
        return Ok(path);
    }
    std::fs::write(&path, "1\n")?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_under_the_given_root() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(ROUTE_LOCALNET);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "0\n").unwrap();
        assert_eq!(enable_route_localnet(dir.path()).unwrap(), p);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "1\n");
    }
}
