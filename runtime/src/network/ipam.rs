//! Pod IP allocation from the node's pod CIDR, persisted as one file per address
//! (created with `O_EXCL`, so concurrent or restarted allocators never hand out an address
//! twice and a crash never loses one).

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::NetworkError;

/// Allocator over `cidr`; `.1` is the gateway (bridge) and never handed out.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    cidr: Ipv4Net,
}

impl Ipam {
    /// An allocator keeping its files in `dir`.
    pub fn new(dir: impl Into<PathBuf>, cidr: Ipv4Net) -> Self {
        Self {
            dir: dir.into(),
            cidr: cidr.trunc(),
        }
    }

    /// The gateway address (first host).
    pub fn gateway(&self) -> Ipv4Addr {
        self.cidr.hosts().next().unwrap_or(self.cidr.network())
    }

    fn file(&self, ip: Ipv4Addr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// Allocates the lowest free address for `owner`; an owner that already holds one
    /// gets the same address back (idempotent create after a crash).
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr, NetworkError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        if let Some(ip) = self.owned_by(owner)? {
            return Ok(ip);
        }
        let gw = self.gateway();
        for ip in self.cidr.hosts().filter(|ip| *ip != gw) {
            let path = self.file(ip);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(owner.as_bytes()).map_err(io(&path))?;
                    f.sync_data().map_err(io(&path))?;
                    return Ok(ip);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Err(NetworkError::Exhausted(self.cidr))
    }

    /// Releases `ip` if `owner` holds it.
    pub fn release(&self, ip: Ipv4Addr, owner: &str) -> Result<(), NetworkError> {
        let path = self.file(ip);
        match std::fs::read_to_string(&path) {
            Ok(o) if o == owner => std::fs::remove_file(&path).map_err(io(&path)),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The address `owner` holds, if any.
    pub fn owned_by(&self, owner: &str) -> Result<Option<Ipv4Addr>, NetworkError> {
        Ok(self
            .allocations()?
            .into_iter()
            .find(|(_, o)| o == owner)
            .map(|(ip, _)| ip))
    }

    /// Every allocation: (address, owner).
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>, NetworkError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let Ok(ip) = e.file_name().to_string_lossy().parse::<Ipv4Addr>() else {
                continue;
            };
            if let Ok(owner) = std::fs::read_to_string(e.path()) {
                out.push((ip, owner));
            }
        }
        out.sort();
        Ok(out)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NetworkError + '_ {
    move |source| NetworkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_skips_gateway_and_survives_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let cidr: Ipv4Net = "10.199.7.0/29".parse().unwrap();
        let a = Ipam::new(tmp.path(), cidr);
        assert_eq!(a.gateway(), Ipv4Addr::new(10, 199, 7, 1));
        let ip1 = a.allocate("pod-a").unwrap();
        let ip2 = a.allocate("pod-b").unwrap();
        assert_eq!(ip1, Ipv4Addr::new(10, 199, 7, 2));
        assert_eq!(ip2, Ipv4Addr::new(10, 199, 7, 3));
        assert_eq!(a.allocate("pod-a").unwrap(), ip1, "idempotent per owner");
        // A second allocator over the same directory (a restart) sees the same state.
        let b = Ipam::new(tmp.path(), cidr);
        assert_eq!(b.allocate("pod-c").unwrap(), Ipv4Addr::new(10, 199, 7, 4));
        b.release(ip1, "someone-else").unwrap();
        assert_eq!(b.owned_by("pod-a").unwrap(), Some(ip1));
        b.release(ip1, "pod-a").unwrap();
        assert_eq!(b.allocate("pod-d").unwrap(), ip1, "freed address reused");
        for o in ["pod-e", "pod-f"] {
            b.allocate(o).unwrap();
        }
        assert!(matches!(
            b.allocate("pod-g"),
            Err(NetworkError::Exhausted(_))
        ));
        assert_eq!(b.allocations().unwrap().len(), 5);
    }
}
