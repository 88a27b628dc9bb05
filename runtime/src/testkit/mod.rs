//! Fixtures shared by the crate's tests, its root-only integration tests (`runtime/tests/`),
//! the e2e harness and the benchmarks (the `testkit` feature): busybox root filesystems and
//! tarballs, container specs, unique names, cgroup subtrees that remove themselves, a
//! network config of a test's own, the teardown of a whole test node, the test binary as
//! shim ([`shim`]), and (in [`crate::image::testutil`]) test images and a loopback registry.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::cgroups::{CgroupConfig, CgroupLayout};
use crate::container::{ContainerSpec, ProcessSpec};
use crate::network::NetworkConfig;

pub mod shim;

pub use shim::{ContainerFixture, test_root};

/// True (after saying so on stderr) when this process is not root: a test that needs root
/// starts with `if skip_unless_root() { return; }`.
pub fn skip_unless_root() -> bool {
    let skip = !nix::unistd::geteuid().is_root();
    if skip {
        eprintln!("skipped: this test needs root (namespaces, mounts, cgroups, links)");
    }
    skip
}

/// A name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fills `dir` with Debian's static busybox and its applet links, an `/etc/passwd` and
/// `/etc/group`, and `/www/index.html` ("hello from skiff") for httpd to serve.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let bb = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox-static installed (apt-get install -y busybox-static)");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(&bb, bin.join("busybox")).unwrap();
    let list = std::process::Command::new(&bb)
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in ["etc", "tmp", "proc", "sys", "dev", "root", "www", "var/www"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::write(dir.join("www/index.html"), "hello from skiff\n").unwrap();
    dir.to_path_buf()
}

/// [`busybox_rootfs`] as a tarball `<dir>/busybox.tar` (for `skiff image import
/// --rootfs`); the directory it was made from is removed.
pub fn busybox_tarball(dir: &Path) -> PathBuf {
    let root = busybox_rootfs(&dir.join("bbroot"));
    let tar = dir.join("busybox.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success(), "tar of the busybox root failed");
    std::fs::remove_dir_all(&root).unwrap();
    tar
}

/// A spec running `args` in `rootfs` with a fresh set of namespaces and no cgroup.
pub fn spec(id: &str, rootfs: &Path, log: &Path, args: &[&str]) -> ContainerSpec {
    ContainerSpec {
        id: id.into(),
        rootfs: rootfs.into(),
        layers: vec![],
        rootfs_dir: None,
        readonly_rootfs: false,
        process: ProcessSpec {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into(), "HOME=/root".into()],
            cwd: "/".into(),
            user: Default::default(),
            rlimits: vec![],
        },
        hostname: Some("box".into()),
        mounts: vec![],
        namespaces: Default::default(),
        cgroup: CgroupConfig::None,
        resources: Default::default(),
        log_path: log.into(),
        seccomp: true,
        add_capabilities: vec![],
        drop_capabilities: vec![],
        annotations: Default::default(),
        user_namespace: None,
        stdio: Default::default(),
    }
}

/// A network config of a test's own: bridge, pod CIDR and nftables table unique to this
/// process and call, state under `dir`.
pub fn test_network(dir: &Path) -> NetworkConfig {
    static N: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let third = ((std::process::id() as u8).wrapping_mul(7)).wrapping_add(n.wrapping_mul(31));
    let mut cfg = NetworkConfig::new(format!("10.199.{third}.0/24").parse().unwrap(), dir);
    cfg.bridge = unique("skt").chars().take(15).collect();
    cfg.nft_table = unique("skifftest");
    cfg
}

/// A cgroup subtree for one test, removed (with anything left in it) on drop.
pub struct TestCgroups {
    /// The layout rooted at the test's own subtree.
    pub layout: CgroupLayout,
    /// The subtree name.
    pub subtree: String,
}

impl TestCgroups {
    /// Detects this machine's layout under a unique subtree.
    pub fn new() -> Self {
        let subtree = unique("skiff-test-");
        let layout = CgroupLayout::detect(&subtree).expect("cgroup hierarchy");
        Self { layout, subtree }
    }
    /// Config for `rel` below the subtree.
    pub fn config(&self, rel: &str) -> CgroupConfig {
        self.layout.config_for(rel)
    }
    /// Base directories (per controller on v1).
    pub fn bases(&self) -> Vec<PathBuf> {
        match &self.layout {
            CgroupLayout::V1 { bases } => bases.values().cloned().collect(),
            CgroupLayout::V2 { base, .. } => vec![base.clone()],
        }
    }
}

impl Default for TestCgroups {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestCgroups {
    fn drop(&mut self) {
        for base in self.bases() {
            // Children first: walk depth-first and rmdir every directory.
            fn rm(dir: &Path) {
                if let Ok(rd) = std::fs::read_dir(dir) {
                    for e in rd.flatten() {
                        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            rm(&e.path());
                        }
                    }
                }
                let _ = std::fs::remove_dir(dir);
            }
            rm(&base);
        }
    }
}

/// For the calling thread only: moves it into a private mount namespace without the
/// cgroup2 `unified` mount of the hybrid layout, which crun 1.8 refuses to run beside
/// the v1 controllers. Processes spawned from this thread inherit the view.
pub fn hide_cgroup2_unified() -> nix::Result<()> {
    use nix::mount::{MntFlags, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    match nix::mount::umount2("/sys/fs/cgroup/unified", MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes everything a test or benchmark node left: every sandbox and container `rt` still
/// knows (stopped at once), the node's bridge and nftables table, mounts under `root_dir`
/// (deepest first) and the cgroup subtree. Best effort: each step goes on after a failure.
pub async fn tear_down_node(
    rt: Option<&crate::pod::SkiffRuntime>,
    root_dir: &Path,
    cgroup_subtree: &str,
) {
    use crate::pod::PodRuntime;
    if let Some(rt) = rt {
        for sb in rt.list_pod_sandboxes().await.unwrap_or_default() {
            let _ = rt.stop_pod_sandbox(&sb.id).await;
            let _ = rt.remove_pod_sandbox(&sb.id).await;
        }
        for c in rt.list_containers().await.unwrap_or_default() {
            let _ = rt.stop_container(&c.id, std::time::Duration::ZERO).await;
            let _ = rt.remove_container(&c.id).await;
        }
        let _ = rt.network().teardown_node();
    }
    let root = root_dir.display().to_string();
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&root))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = std::process::Command::new("umount")
            .args(["-l", &m])
            .status();
    }
    if let Ok(layout) = CgroupLayout::detect(cgroup_subtree)
        && let Some(m) = crate::cgroups::manager(&layout.config_for(""))
    {
        let _ = m.delete();
    }
}
