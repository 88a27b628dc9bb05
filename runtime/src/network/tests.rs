//! Real sandboxes (root): namespaces pinned and removed, veth, address, route, and the
//! pod reachable from the host on its address.

use super::*;
use crate::testing::unique;

/// A network config of our own: bridge, CIDR and nft table unique to this test.
pub fn test_network(dir: &Path) -> NetworkConfig {
    static N: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let third = ((std::process::id() as u8).wrapping_mul(7)).wrapping_add(n.wrapping_mul(31));
    let mut cfg = NetworkConfig::new(format!("10.199.{third}.0/24").parse().unwrap(), dir);
    cfg.bridge = unique("skt").chars().take(15).collect();
    cfg.nft_table = unique("skifftest");
    cfg
}

fn links_named(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn sandbox_gets_namespaces_address_and_is_reachable_from_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let net = PodNetwork::new(test_network(tmp.path()));
    let id = unique("pod");
    let dir = tmp.path().join(&id);
    let sb = net.create_sandbox(&id, &dir, "web-0", false).unwrap();
    let ip = sb.ip.unwrap();
    assert!(net.config().cidr.contains(&ip));
    assert!(netns::is_pinned(&sb.netns) && netns::is_pinned(&sb.uts) && netns::is_pinned(&sb.ipc));
    let veth = sb.veth.clone().unwrap();
    assert!(links_named(&veth).contains(&veth));
    // A listener inside the pod namespace answers the host on the pod address.
    let nsfile = sb.netns.clone();
    let listener = std::thread::spawn(move || {
        let f = std::fs::File::open(&nsfile).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let l = std::net::TcpListener::bind((ip, 7777)).unwrap();
        let (mut s, _) = l.accept().unwrap();
        use std::io::Write;
        s.write_all(b"from-pod").unwrap();
    });
    let mut got = String::new();
    for _ in 0..100 {
        if let Ok(mut s) = std::net::TcpStream::connect((ip, 7777)) {
            use std::io::Read;
            s.read_to_string(&mut got).unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    listener.join().unwrap();
    assert_eq!(got, "from-pod");
    let hosts = std::fs::read_to_string(dir.join("etc/hosts")).unwrap();
    assert!(hosts.contains(&format!("{ip}\tweb-0")));
    net.remove_sandbox(&id, &dir).unwrap();
    net.remove_sandbox(&id, &dir).unwrap();
    assert!(!sb.netns.exists());
    assert!(links_named(&veth).is_empty());
    assert!(net.ipam().allocations().unwrap().is_empty());
    net.teardown_node().unwrap();
    assert!(links_named(&net.config().bridge).is_empty());
}
