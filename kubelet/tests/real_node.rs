//! The kubelet with the real runtime (root only): a two-container busybox pod sharing
//! localhost with cgroup limits checked from the host, the pod IP answering from the host,
//! a killed process restarted in place, and graceful deletion. The test binary doubles as
//! the container shim (`<exe> shim --root R --id ID`), so it has its own `main`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use serde_json::json;
use skiff_kubelet::{ImageService, KubeletConfig, StoreImages};
use skiff_runtime::container::ShimCommand;
use skiff_runtime::image::ImageStore;
use skiff_runtime::pod::{PodRuntime, RuntimeConfig, SkiffRuntime};
use skiff_runtime::testkit::busybox_tarball;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, shim, flag_root, root, flag_id, id, ..] = args.as_slice()
        && shim == "shim"
        && flag_root == "--root"
        && flag_id == "--id"
    {
        std::process::exit(skiff_runtime::shim::main(Path::new(root), id));
    }
    // Speak enough of libtest's protocol for cargo test and nextest: `--list` names the one
    // test (none for `--ignored`), and a filter that does not match runs nothing.
    const NAME: &str = "two_container_pod_on_real_runtime";
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("{NAME}: test");
        }
        return;
    }
    let filters: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        return;
    }
    if !nix::unistd::geteuid().is_root() || !Path::new("/bin/busybox").exists() {
        println!("real_node: skipped (needs root and busybox-static)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(two_container_pod_on_real_runtime());
    println!("test two_container_pod_on_real_runtime ... ok");
}

/// The v1 or v2 cgroup file of a process for `controller`.
fn cgroup_file(pid: i32, controller: &str, v1_file: &str, v2_file: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        if ctrls.split(',').any(|c| c == controller) {
            return std::fs::read_to_string(format!("/sys/fs/cgroup/{controller}{path}/{v1_file}"))
                .unwrap();
        }
        if ctrls.is_empty() {
            return std::fs::read_to_string(format!("/sys/fs/cgroup{path}/{v2_file}")).unwrap();
        }
    }
    panic!("no {controller} cgroup for {pid}");
}

async fn two_container_pod_on_real_runtime() {
    let api = start_api().await;
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("{:x}", std::process::id() % 0xffff);
    let store = Arc::new(ImageStore::open(&dir.path().join("agent")).unwrap());
    store
        .import_rootfs(&busybox_tarball(dir.path()), "skiff.test/busybox:1")
        .unwrap();
    let mut rc = RuntimeConfig::new(dir.path().join("state"), "10.251.77.0/24".parse().unwrap());
    rc.network.bridge = format!("skt{tag}");
    rc.network.nft_table = format!("skiff_kt{tag}");
    rc.cgroup_subtree = Some(format!("skiff-kubelet-test-{tag}"));
    rc.shim = ShimCommand {
        program: std::env::current_exe().unwrap(),
        env: vec![],
    };
    let runtime = Arc::new(SkiffRuntime::new(rc.clone()).unwrap());
    let prt: Arc<dyn PodRuntime> = runtime.clone();
    let images: Arc<dyn ImageService> = Arc::new(StoreImages::new(store));
    let make = || {
        let mut cfg = KubeletConfig::new(
            "real1",
            api.client.clone(),
            prt.clone(),
            images.clone(),
            dir.path().join("agent"),
        );
        cfg.timers = fast_timers();
        cfg.node_ip = Some(std::net::Ipv4Addr::LOCALHOST);
        start_kubelet(cfg)
    };
    let node = make();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(api.client.clone());
    eventually(Duration::from_secs(10), "node registered", || async {
        nodes.get_opt("real1").await.unwrap()
    })
    .await;
    set_pod_cidr(&api.client, "real1", "10.251.77.0/24").await;

    let slot = std::sync::Mutex::new(Some(node));
    let result = std::panic::AssertUnwindSafe(scenario(&api, &prt, &make, &slot));
    let outcome = futures::FutureExt::catch_unwind(result).await;
    let node = slot.lock().unwrap().take().unwrap_or_else(make);

    // Clean up whatever the scenario left: pods, sandboxes, bridge, nft table, cgroups.
    let pods: Api<Pod> = Api::namespaced(api.client.clone(), "default");
    let _ = pods.delete("duo", &DeleteParams::default()).await;
    let _ = eventually(Duration::from_secs(20), "pod gone", || async {
        get_pod(&api.client, "duo").await.is_none().then_some(())
    })
    .await;
    node.stop().await;
    for sb in prt.list_pod_sandboxes().await.unwrap_or_default() {
        let _ = prt.remove_pod_sandbox(&sb.id).await;
    }
    let _ = runtime.network().teardown_node();
    if let Ok(layout) =
        skiff_runtime::cgroups::CgroupLayout::detect(rc.cgroup_subtree.as_deref().unwrap())
        && let Some(m) = skiff_runtime::cgroups::manager(&layout.config_for(""))
    {
        let _ = m.delete();
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
}

async fn scenario(
    api: &Api_,
    rt: &Arc<dyn PodRuntime>,
    make: &dyn Fn() -> Node_,
    slot: &std::sync::Mutex<Option<Node_>>,
) {
    create_pod(
        &api.client,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "duo", "namespace": "default"},
            "spec": {"nodeName": "real1", "terminationGracePeriodSeconds": 3, "containers": [
                {"name": "web", "image": "skiff.test/busybox:1", "imagePullPolicy": "IfNotPresent",
                 "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                 "resources": {"limits": {"memory": "64Mi", "cpu": "200m"}},
                 "readinessProbe": {"httpGet": {"port": 8080, "path": "/"}, "periodSeconds": 1}},
                {"name": "ticker", "image": "skiff.test/busybox:1", "imagePullPolicy": "Never",
                 "command": ["sh", "-c", "trap 'echo term; exit 0' TERM; while true; do echo tick; sleep 1; done"],
                 "resources": {"limits": {"memory": "32Mi"}}},
            ]},
        }),
    )
    .await;
    let p = wait_pod(&api.client, "duo", 30, "2/2 ready", |p| {
        phase(p) == "Running" && condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    let ip = p.status.as_ref().unwrap().pod_ip.clone().unwrap();
    assert!(ip.starts_with("10.251.77."), "pod ip {ip}");
    // The pod IP answers from the host.
    let mut s = tokio::net::TcpStream::connect(format!("{ip}:8080"))
        .await
        .expect("pod IP reachable");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(body.contains("hello from skiff"), "{body}");
    // The two containers share localhost.
    let ticker = container_id(&p, "ticker").unwrap();
    let out = rt
        .exec_sync(
            &ticker,
            vec![
                "wget".into(),
                "-qO-".into(),
                "http://127.0.0.1:8080/".into(),
            ],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello from skiff"));
    // Each container is a real process with its own cgroup limits.
    let web = container_id(&p, "web").unwrap();
    let web_pid = rt.container_status(&web).await.unwrap().pid.unwrap();
    let tick_pid = rt.container_status(&ticker).await.unwrap().pid.unwrap();
    assert_ne!(web_pid, tick_pid);
    let mem = cgroup_file(web_pid, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(mem.trim(), (64u64 << 20).to_string());
    let mem = cgroup_file(tick_pid, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(mem.trim(), (32u64 << 20).to_string());
    let own_pidns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    assert_ne!(
        std::fs::read_link(format!("/proc/{web_pid}/ns/pid")).unwrap(),
        own_pidns
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{web_pid}/ns/net")).unwrap(),
        std::fs::read_link(format!("/proc/{tick_pid}/ns/net")).unwrap(),
        "containers share the pod's network namespace"
    );

    // Killing a container's process from the host restarts it in place.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tick_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let p = wait_pod(&api.client, "duo", 20, "ticker restarted", |p| {
        cstatus(p, "ticker")
            .is_some_and(|c| c.restart_count == 1 && c.state.as_ref().unwrap().running.is_some())
    })
    .await;
    let last = cstatus(&p, "ticker")
        .unwrap()
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(last.exit_code, 137);
    assert_eq!(cstatus(&p, "web").unwrap().restart_count, 0);

    // A kubelet restart adopts the running containers: same ids, no restarts.
    let new_ticker = container_id(&p, "ticker").unwrap();
    let old = slot.lock().unwrap().take().unwrap();
    old.stop().await;
    *slot.lock().unwrap() = Some(make());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p = get_pod(&api.client, "duo").await.unwrap();
    assert_eq!(container_id(&p, "ticker").unwrap(), new_ticker);
    assert_eq!(container_id(&p, "web").unwrap(), web);
    assert_eq!(cstatus(&p, "ticker").unwrap().restart_count, 1);
    assert_eq!(cstatus(&p, "web").unwrap().restart_count, 0);
    assert_eq!(condition(&p, "Ready").as_deref(), Some("True"));
    assert_eq!(
        rt.container_status(&web).await.unwrap().pid,
        Some(web_pid),
        "web not restarted"
    );

    // Graceful deletion: SIGTERM reaches the ticker, then the pod object goes.
    let log = rt.log_path(&new_ticker).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(api.client.clone(), "default");
    pods.delete("duo", &DeleteParams::default()).await.unwrap();
    let mut saw_term = false;
    eventually(Duration::from_secs(20), "pod removed", || {
        if let Ok(text) = std::fs::read_to_string(&log) {
            saw_term |= text.contains("term");
        }
        async { get_pod(&api.client, "duo").await.is_none().then_some(()) }
    })
    .await;
    assert!(saw_term, "the ticker saw SIGTERM");
    assert!(
        rt.list_pod_sandboxes().await.unwrap().is_empty(),
        "sandbox removed"
    );
}
