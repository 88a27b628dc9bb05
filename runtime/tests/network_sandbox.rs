//! Real pod sandboxes; needs root (the test says it is skipped otherwise): namespaces
//! pinned and removed, veth, address, route, and the pod reachable from the host on its
//! address.

use skiff_runtime::network::{PodNetwork, netns};
use skiff_runtime::testkit::{skip_unless_root, test_network, unique};

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
    if skip_unless_root() {
        return;
    }
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
