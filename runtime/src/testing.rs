//! Test support: the unit-test binary doubles as the shim (a pre-`main` hook turns
//! `<test-exe> shim --root R --id ID` with `SKIFF_TEST_SHIM=1` into the real shim, so
//! tests run single-threaded shims without building the `skiff` binary), and container
//! roots using it; the rest comes from [`crate::testkit`].

use std::path::Path;

use crate::container::{ContainerRoot, ContainerSpec, ShimCommand};
pub use crate::testkit::{TestCgroups, busybox_rootfs, spec, unique};

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

/// Whether a test that needs root must be skipped: true (after saying so) when not root.
pub fn skip_unless_root(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        println!("{test}: skipped (needs root)");
    }
    !root
}
