//! Egress masquerade for the pod CIDR in an nftables table of our own, replaced
//! atomically by one `nft -f -` transaction.

use std::io::Write;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

use super::NetworkError;

/// The ruleset: traffic from pods to anywhere outside the pod CIDR leaves with the
/// node's address.
pub fn ruleset(table: &str, cidr: Ipv4Net, bridge: &str) -> String {
    format!(
        "table ip {table} {{}}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {cidr} ip daddr != {cidr} oifname != \"{bridge}\" masquerade\n\
         \t}}\n\
         }}\n"
    )
}

fn nft(script: &str) -> Result<(), NetworkError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetworkError::Nftables(format!("run nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetworkError::Nftables(format!("wait nft: {e}")))?;
    if !out.status.success() {
        return Err(NetworkError::Nftables(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Installs (or replaces) the masquerade table.
pub fn ensure_masquerade(table: &str, cidr: Ipv4Net, bridge: &str) -> Result<(), NetworkError> {
    nft(&ruleset(table, cidr, bridge))
}

/// Removes the table; missing is fine.
pub fn remove_table(table: &str) -> Result<(), NetworkError> {
    nft(&format!("table ip {table} {{}}\ndelete table ip {table}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_masquerades_only_leaving_traffic() {
        let r = ruleset("skiff", "10.42.0.0/24".parse().unwrap(), "skiff0");
        assert!(r.starts_with("table ip skiff {}\ndelete table ip skiff\n"));
        assert!(r.contains(
            "ip saddr 10.42.0.0/24 ip daddr != 10.42.0.0/24 oifname != \"skiff0\" masquerade"
        ));
    }
}
