//! Test support: the unit-test binary doubles as the shim (a pre-`main` hook turns
//! `<test-exe> shim --root R --id ID` with `SKIFF_TEST_SHIM=1` into the real shim, so
//! tests run single-threaded shims without building the `skiff` binary), busybox root
//! filesystems, unique names, and cgroup roots that clean themselves up.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::cgroups::{CgroupConfig, CgroupLayout};
use crate::container::{ContainerRoot, ContainerSpec, ProcessSpec, ShimCommand};

#[used]
#[unsafe(link_section = ".init_array")]
static SHIM_HOOK: extern "C" fn() = shim_hook;

extern "C" fn shim_hook() {
    if let Some(spec) = std::env::var_os("SKIFF_TEST_AGENT") {
        fake_agent(Path::new(&spec));
    }
    if std::env::var_os("SKIFF_TEST_SHIM").is_none() {
        return;
    }
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if let [_, shim, flag_root, root, flag_id, id, ..] = args.as_slice()
        && shim == "shim"
        && flag_root == "--root"
        && flag_id == "--id"
    {
        std::process::exit(crate::shim::main(Path::new(root), id));
    }
}

/// A stand-in for the agent, for crash tests: creates and starts the container whose
/// spec is at `spec_path` (root dir in `SKIFF_TEST_AGENT_ROOT`), says `started`, and
/// waits to be killed.
fn fake_agent(spec_path: &Path) -> ! {
    use std::io::Write;
    let root = std::env::var_os("SKIFF_TEST_AGENT_ROOT").expect("SKIFF_TEST_AGENT_ROOT");
    // SAFETY: runs before main, single-threaded; the shims we spawn must not inherit it.
    unsafe { std::env::remove_var("SKIFF_TEST_AGENT") };
    let spec: ContainerSpec = serde_json::from_slice(&std::fs::read(spec_path).unwrap()).unwrap();
    let root = test_root(Path::new(&root));
    let mut c = crate::container::Container::create(&root, spec).unwrap();
    c.start().unwrap();
    println!("started");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
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

/// A container root in a temp dir whose shim is this test binary.
pub fn test_root(dir: &Path) -> ContainerRoot {
    ContainerRoot {
        dir: dir.join("containers"),
        shim: ShimCommand {
            program: std::env::current_exe().expect("test exe"),
            env: vec![("SKIFF_TEST_SHIM".into(), "1".into())],
        },
    }
}

/// Fills `dir` with Debian's static busybox and its applet links.
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
    for d in ["etc", "tmp", "proc", "sys", "dev", "root", "var/www"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    dir.to_path_buf()
}

/// A spec running `args` in `rootfs` with a fresh set of namespaces and no cgroup.
pub fn spec(id: &str, rootfs: &Path, log: &Path, args: &[&str]) -> ContainerSpec {
    ContainerSpec {
        id: id.into(),
        rootfs: rootfs.into(),
        layers: vec![],
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
    }
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
