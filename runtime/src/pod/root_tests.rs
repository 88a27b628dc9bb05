//! The pod runtime for real (root): a pod of two containers sharing localhost, reachable
//! on its address from the host, and many create/delete cycles leaving nothing behind.
//! Each test skips, saying so, when not run as root.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::container::ShimCommand;
use crate::testing::{TestCgroups, busybox_rootfs, skip_unless_root, test_root};
use crate::testkit::test_network;

struct Env {
    tmp: tempfile::TempDir,
    rt: SkiffRuntime,
    rootfs: PathBuf,
    _cgroups: TestCgroups,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(&tmp.path().join("rootfs"));
    std::fs::write(rootfs.join("var/www/index.html"), "hello from pod\n").unwrap();
    let cgroups = TestCgroups::new();
    let state = tmp.path().join("state");
    let cfg = RuntimeConfig {
        root: state.clone(),
        network: test_network(&state),
        cgroup_subtree: Some(cgroups.subtree.clone()),
        shim: ShimCommand {
            program: test_root(tmp.path()).shim.program,
            env: vec![("SKIFF_TEST_SHIM".into(), "1".into())],
        },
        rootfs_root: Some(tmp.path().join("rootfs")),
    };
    let rt = SkiffRuntime::new(cfg).unwrap();
    Env {
        tmp,
        rt,
        rootfs,
        _cgroups: cgroups,
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.rt.network().teardown_node();
    }
}

fn container(env: &Env, name: &str, args: &[&str]) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        rootfs: RootfsSource::Directory(env.rootfs.clone()),
        process: ProcessSpec {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            ..Default::default()
        },
        mounts: vec![],
        resources: Default::default(),
        readonly_rootfs: false,
        log_path: None,
        add_capabilities: vec![],
        drop_capabilities: vec![],
        stdio: Default::default(),
    }
}

fn pod(name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        name: name.into(),
        namespace: "default".into(),
        uid: name.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_pod_share_localhost_and_the_pod_ip_answers() {
    if skip_unless_root() {
        return;
    }
    let env = env();
    let rt = &env.rt;
    let sb = rt.run_pod_sandbox(pod("web")).await.unwrap();
    let ip = rt.pod_sandbox_status(&sb).await.unwrap().ip.unwrap();
    let web = rt
        .create_container(
            &sb,
            container(
                &env,
                "web",
                &["httpd", "-f", "-p", "8080", "-h", "/var/www"],
            ),
        )
        .await
        .unwrap();
    rt.start_container(&web).await.unwrap();
    let mut client = container(
        &env,
        "client",
        &[
            "sh",
            "-c",
            "for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1",
        ],
    );
    client.readonly_rootfs = true;
    let client = rt.create_container(&sb, client).await.unwrap();
    rt.start_container(&client).await.unwrap();
    let code = rt
        .wait_container(&client, Some(Duration::from_secs(20)))
        .await
        .unwrap();
    let log = std::fs::read_to_string(rt.log_path(&client).await.unwrap()).unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains(" stdout F hello from pod"), "{log}");
    // The host reaches the pod on its own address.
    let mut body = String::new();
    let mut s = std::net::TcpStream::connect((ip, 8080)).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    s.read_to_string(&mut body).unwrap();
    assert!(body.contains("hello from pod"), "{body}");
    // exec with the pod's hostname and an exit code.
    let out = rt
        .exec_sync(
            &web,
            vec!["sh".into(), "-c".into(), "hostname; exit 4".into()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, String::from_utf8_lossy(&out.stdout).trim()),
        (4, "web")
    );
    let stats = rt.container_stats(&web).await.unwrap();
    assert!(stats.memory_usage > 0);
    let all = rt.list_containers().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .any(|c| c.name == "web" && c.status == crate::container::Status::Running)
    );
    rt.stop_pod_sandbox(&sb).await.unwrap();
    assert_eq!(
        rt.container_status(&web).await.unwrap().status,
        crate::container::Status::Stopped
    );
    rt.remove_pod_sandbox(&sb).await.unwrap();
    assert!(rt.list_containers().await.unwrap().is_empty());
    assert!(rt.list_pod_sandboxes().await.unwrap().is_empty());
}

/// What the host has that a sandbox or container could leak.
#[derive(Debug, PartialEq)]
struct Footprint {
    mounts: usize,
    links: usize,
    ips: usize,
    cgroup_dirs: usize,
    shims: usize,
}

fn footprint(env: &Env) -> Footprint {
    // Only what is ours: other tests run in parallel and make their own.
    let root = env.tmp.path().to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .count();
    let bridge = &env.rt.network().config().bridge;
    let links = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|d| d.count())
        .unwrap_or(0);
    let ips = env.rt.network().ipam().allocations().unwrap().len();
    let cgroup_dirs = env._cgroups.bases().iter().map(|b| walkdirs(b)).sum();
    let shims = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&root))
                .unwrap_or(false)
        })
        .count();
    Footprint {
        mounts,
        links,
        ips,
        cgroup_dirs,
        shims,
    }
}

fn walkdirs(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| 1 + walkdirs(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_delete_cycles_leave_nothing_behind() {
    if skip_unless_root() {
        return;
    }
    let cycles: usize = std::env::var("SKIFF_LEAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let env = env();
    let rt = &env.rt;
    // Warm up node-level state (bridge, nft table) so it is part of the baseline.
    let sb = rt.run_pod_sandbox(pod("warm")).await.unwrap();
    rt.remove_pod_sandbox(&sb).await.unwrap();
    let before = footprint(&env);
    let mut sandboxes = Vec::new();
    for i in 0..cycles {
        let sb = rt.run_pod_sandbox(pod(&format!("p{i}"))).await.unwrap();
        sandboxes.push(sb.clone());
        let mut cfg = container(&env, "c", &["sh", "-c", "echo hi"]);
        cfg.resources.memory_limit = Some(32 << 20);
        let c = rt.create_container(&sb, cfg).await.unwrap();
        rt.start_container(&c).await.unwrap();
        assert_eq!(
            rt.wait_container(&c, Some(Duration::from_secs(10)))
                .await
                .unwrap(),
            Some(0)
        );
        // A second container that never starts must also go cleanly.
        let _never = rt
            .create_container(&sb, container(&env, "idle", &["sleep", "9"]))
            .await
            .unwrap();
        rt.remove_pod_sandbox(&sb).await.unwrap();
    }
    assert_eq!(footprint(&env), before);
    for sb in sandboxes {
        let (veth, _) = crate::network::veth_names(&sb);
        assert!(
            !Path::new("/sys/class/net").join(&veth).exists(),
            "{veth} left behind"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_roots_live_under_the_rootfs_root_and_go_with_their_container() {
    if skip_unless_root() {
        return;
    }
    let env = env();
    let rt = &env.rt;
    let rootfs_root = env.tmp.path().join("rootfs");
    let sb = rt.run_pod_sandbox(pod("img")).await.unwrap();
    let mut cfg = container(&env, "c", &["sh", "-c", "echo written > /made-here"]);
    cfg.rootfs = RootfsSource::Image {
        layers: vec![env.rootfs.clone()],
    };
    let c = rt.create_container(&sb, cfg).await.unwrap();
    rt.start_container(&c).await.unwrap();
    assert_eq!(
        rt.wait_container(&c, Some(Duration::from_secs(10)))
            .await
            .unwrap(),
        Some(0)
    );
    // The write landed in the container's upper directory under the rootfs root, not in
    // the state root, and not in the image's layer.
    let upper = rootfs_root.join(&c).join("upper/made-here");
    assert_eq!(std::fs::read_to_string(&upper).unwrap(), "written\n");
    assert!(!env.rootfs.join("made-here").exists());
    rt.remove_container(&c).await.unwrap();
    assert!(
        !rootfs_root.join(&c).exists(),
        "overlay directory left behind"
    );
    rt.remove_pod_sandbox(&sb).await.unwrap();
}
