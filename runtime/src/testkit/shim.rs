//! The test binary as the container shim: [`test_shim_hook!`](crate::test_shim_hook) puts
//! a pre-`main` hook into the binary that invokes it, which turns `<test-exe> shim --root R
//! --id ID` with `SKIFF_TEST_SHIM=1` into the real shim (so tests run without building the
//! `skiff` binary) and `SKIFF_TEST_AGENT=<spec>` into a stand-in agent for crash tests;
//! container roots and a fixture whose shim is that binary.

use std::path::{Path, PathBuf};

use crate::container::{Container, ContainerRoot, ContainerSpec, ShimCommand};

/// Makes the test binary that invokes it double as the shim (see [`shim_hook`]). The hook
/// must live in that binary's own `.init_array`, so each test target invokes this once at
/// its top level.
#[macro_export]
macro_rules! test_shim_hook {
    () => {
        #[used]
        #[unsafe(link_section = ".init_array")]
        static SKIFF_TEST_SHIM_HOOK: extern "C" fn() = $crate::testkit::shim::shim_hook;
    };
}

/// Runs before `main`: becomes the shim or the stand-in agent when the environment asks
/// for it, and otherwise returns at once.
pub extern "C" fn shim_hook() {
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
    let mut c = Container::create(&root, spec).unwrap();
    c.start().unwrap();
    println!("started");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

/// A container root in `dir` whose shim is this test binary.
pub fn test_root(dir: &Path) -> ContainerRoot {
    ContainerRoot {
        dir: dir.join("containers"),
        shim: ShimCommand {
            program: std::env::current_exe().expect("test exe"),
            env: vec![("SKIFF_TEST_SHIM".into(), "1".into())],
        },
    }
}

/// A temporary directory with a busybox root filesystem and a container root whose shim
/// is this test binary.
pub struct ContainerFixture {
    /// Holds everything; removed on drop.
    pub tmp: tempfile::TempDir,
    /// Containers live under `<tmp>/containers`.
    pub root: ContainerRoot,
    /// The busybox root filesystem.
    pub rootfs: PathBuf,
}

impl ContainerFixture {
    /// Makes the directory, the root filesystem and the container root.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = super::busybox_rootfs(&tmp.path().join("rootfs"));
        let root = test_root(tmp.path());
        Self { tmp, root, rootfs }
    }

    /// A spec running `args` in the root filesystem, with an id `<prefix>…` unique to this
    /// call and its log at `<tmp>/<id>.log`.
    pub fn spec(&self, prefix: &str, args: &[&str]) -> ContainerSpec {
        let id = super::unique(prefix);
        let log = self.tmp.path().join(format!("{id}.log"));
        super::spec(&id, &self.rootfs, &log, args)
    }
}

impl Default for ContainerFixture {
    fn default() -> Self {
        Self::new()
    }
}
