//! A machine outside the node for a test: a network namespace joined to the host by a veth
//! pair with addresses of a test-only range (`100.64.0.0/10`, shared address space, which
//! nothing else on the test machines uses), so NodePort and load-balancer traffic reaches
//! the node from another address, as it would from a client elsewhere. The namespace has
//! routes only to its link and to ranges a test routes through the node
//! ([`TestHost::route_via_node`]), so nothing it sends can leave the machine. Dropping it
//! (also while a test panics) removes the namespace, both ends of the veth and its routes.

use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

/// A network namespace with a veth to the host.
pub struct TestHost {
    /// The namespace's name (`ip netns exec NAME`).
    pub netns: String,
    /// The host end of the veth.
    pub host_link: String,
    /// The node's address on the veth (where NodePorts are reached from the test host).
    pub node_ip: Ipv4Addr,
    /// The test host's own address.
    pub ip: Ipv4Addr,
    /// The /24 this host's addresses come from: the veth is its first /30, the rest is
    /// free for what the test routes through the node ([`TestHost::spare_range`]).
    base: [u8; 3],
}

/// The `/24` of test host `n` of this test process: `100.<64 + pid % 50>.<n>.0`.
fn base(n: u8) -> [u8; 3] {
    [100, 64 + (std::process::id() % 50) as u8, n]
}

impl TestHost {
    /// Creates test host `n` (`n` tells the test hosts of one test process apart; a suite
    /// uses the same `n` as its node, which is already unique among the suites). A host of
    /// the same name left by an earlier, killed run is removed first.
    pub fn create(n: u8) -> Result<Self> {
        let tag = format!("{:x}{n:02x}", std::process::id() % 0xfffff);
        let b = base(n);
        let host = Self {
            netns: format!("skiff-testhost-{tag}"),
            host_link: format!("svh{tag}"),
            node_ip: Ipv4Addr::new(b[0], b[1], b[2], 1),
            ip: Ipv4Addr::new(b[0], b[1], b[2], 2),
            base: b,
        };
        host.remove();
        let guest_link = format!("svg{tag}");
        let node_addr = format!("{}/30", host.node_ip);
        let (ns, link) = (host.netns.as_str(), host.host_link.as_str());
        for step in [
            vec!["netns", "add", ns],
            vec![
                "link",
                "add",
                link,
                "type",
                "veth",
                "peer",
                "name",
                &guest_link,
                "netns",
                ns,
            ],
            vec!["addr", "add", &node_addr, "dev", link],
            vec!["link", "set", link, "up"],
        ] {
            ip(&step).with_context(|| format!("creating test host {ns}"))?;
        }
        for step in [
            vec![
                "addr",
                "add",
                &format!("{}/30", host.ip),
                "dev",
                &guest_link,
            ],
            vec!["link", "set", &guest_link, "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            host.ip_in(&step)?;
        }
        Ok(host)
    }

    /// A range of `2^(32-prefix)` addresses (prefix 25 to 30) of this host's /24 outside
    /// the veth's, for addresses the node answers for (a load-balancer pool): `spare_range(28)`
    /// is `100.x.n.16/28`. Route it with [`TestHost::route_via_node`].
    pub fn spare_range(&self, prefix: u8) -> String {
        assert!(
            (25..=30).contains(&prefix),
            "prefix {prefix} out of 25..=30"
        );
        let size = 1u16 << (32 - prefix);
        let start = size.max(4);
        let [a, b, c] = self.base;
        format!("{a}.{b}.{c}.{start}/{prefix}")
    }

    /// Routes `cidr` from the test host to the node over the veth.
    pub fn route_via_node(&self, cidr: &str) -> Result<()> {
        self.ip_in(&["route", "add", cidr, "via", &self.node_ip.to_string()])
    }

    /// Runs `program args` inside the test host's namespace; returns what it printed.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.netns, program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec")
    }

    /// `GET http://<addr><path>` from the test host with busybox wget, given 3 s: the
    /// body, or wget's error (`Connection refused`), or `timed out`.
    pub fn http_get(&self, addr: &str, path: &str) -> Result<String, String> {
        let url = format!("http://{addr}{path}");
        let out = self.run("timeout", &["3", "busybox", "wget", "-q", "-O", "-", &url]);
        match out.status.code() {
            Some(0) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            Some(124) => Err("timed out".into()),
            _ => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    fn ip_in(&self, args: &[&str]) -> Result<()> {
        let mut all = vec!["-n", self.netns.as_str()];
        all.extend_from_slice(args);
        ip(&all).with_context(|| format!("in test host {}", self.netns))
    }

    /// Removes the namespace (which takes the guest end of the veth, so the pair, and
    /// every route in it) and the host end if it is still there. Missing is fine.
    fn remove(&self) {
        for args in [
            vec!["netns", "delete", self.netns.as_str()],
            vec!["link", "delete", self.host_link.as_str()],
        ] {
            let _ = Command::new("ip")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `ip ARGS`, failing with its stderr.
fn ip<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        bail!(
            "ip {}: {}",
            shown.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
