//! The per-pod `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, bind-mounted into
//! every container of the pod.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use super::NetworkError;

/// DNS settings written to `resolv.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DnsConfig {
    /// Name servers.
    pub servers: Vec<IpAddr>,
    /// Search domains.
    pub searches: Vec<String>,
    /// Options (`ndots:5`).
    pub options: Vec<String>,
}

impl DnsConfig {
    /// The settings of a resolv.conf text (`nameserver`, `search`/`domain`, `options`).
    pub fn parse_resolv_conf(text: &str) -> DnsConfig {
        let mut out = DnsConfig::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(|w| w.parse().ok()) {
                        out.servers.push(ip);
                    }
                }
                // The last `search` or `domain` line wins, as in the resolver.
                Some("search" | "domain") => {
                    out.searches = words.map(str::to_string).collect();
                }
                Some("options") => out.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        out
    }
}

/// Contents of `/etc/hosts` for a pod.
pub fn hosts(hostname: &str, ip: Option<Ipv4Addr>) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    if let Some(ip) = ip {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    s
}

/// Contents of `/etc/resolv.conf`; with nothing configured at all, the host's file.
pub fn resolv_conf(dns: &DnsConfig) -> String {
    if dns.servers.is_empty() && dns.searches.is_empty() && dns.options.is_empty() {
        return std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    }
    let mut s = String::new();
    if !dns.searches.is_empty() {
        s.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for ns in &dns.servers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if !dns.options.is_empty() {
        s.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    s
}

/// Writes the three files under `dir/etc/` and returns (container path, host path) pairs.
pub fn write_all(
    dir: &Path,
    hostname: &str,
    ip: Option<Ipv4Addr>,
    dns: &DnsConfig,
) -> Result<Vec<(PathBuf, PathBuf)>, NetworkError> {
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).map_err(|e| NetworkError::Io {
        path: etc.clone(),
        source: e,
    })?;
    let files = [
        ("hosts", hosts(hostname, ip)),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv_conf(dns)),
    ];
    let mut out = Vec::new();
    for (name, contents) in files {
        let path = etc.join(name);
        std::fs::write(&path, contents).map_err(|e| NetworkError::Io {
            path: path.clone(),
            source: e,
        })?;
        out.push((PathBuf::from("/etc").join(name), path));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_resolv_conf_is_read_back() {
        let got = DnsConfig::parse_resolv_conf(
            "# generated\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nsearch a.example b.example\noptions edns0 trust-ad\nnameserver 1.1.1.1 ; second\n",
        );
        assert_eq!(
            got.servers,
            vec![
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "1.1.1.1".parse().unwrap()
            ]
        );
        assert_eq!(got.searches, ["a.example", "b.example"]);
        assert_eq!(got.options, ["edns0", "trust-ad"]);
        assert_eq!(
            resolv_conf(&got),
            "search a.example b.example\nnameserver 10.0.0.2\nnameserver 1.1.1.1\noptions edns0 trust-ad\n"
        );
    }

    #[test]
    fn files_name_the_pod() {
        let tmp = tempfile::tempdir().unwrap();
        let dns = DnsConfig {
            servers: vec!["10.43.0.10".parse().unwrap()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        };
        let pairs =
            write_all(tmp.path(), "web-0", Some(Ipv4Addr::new(10, 42, 0, 5)), &dns).unwrap();
        assert_eq!(pairs.len(), 3);
        let hosts = std::fs::read_to_string(tmp.path().join("etc/hosts")).unwrap();
        assert!(hosts.contains("10.42.0.5\tweb-0\n"));
        let resolv = std::fs::read_to_string(tmp.path().join("etc/resolv.conf")).unwrap();
        assert_eq!(
            resolv,
            "search default.svc.cluster.local svc.cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
    }
}
