//! Real containers; needs root (each test says it is skipped otherwise): busybox in
//! namespaces through the shim, logs, exit codes, exec, cgroup limits, OOM, adoption by a
//! fresh runtime, and clean teardown. This test binary doubles as the shim.

use std::time::Duration;

use skiff_runtime::container::*;
use skiff_runtime::shim::log::{Stream, parse_record};
use skiff_runtime::testkit::{
    ContainerFixture as Fixture, TestCgroups, skip_unless_root, test_root,
};

skiff_runtime::test_shim_hook!();

/// A fixture, or `None` (the test is skipped) when not root.
fn fixture() -> Option<Fixture> {
    (!skip_unless_root()).then(Fixture::new)
}

/// The container's log, every line a whole CRI record.
fn log(s: &ContainerSpec) -> Vec<(Stream, String)> {
    std::fs::read_to_string(&s.log_path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (_, stream, partial, text) =
                parse_record(l).unwrap_or_else(|| panic!("not CRI: {l}"));
            assert!(!partial);
            (stream, text.to_string())
        })
        .collect()
}

fn run_to_exit(f: &Fixture, s: ContainerSpec) -> (Container, i32) {
    let mut c = Container::create(&f.root, s).unwrap();
    assert_eq!(c.state.status, Status::Created);
    c.start().unwrap();
    let code = c
        .wait(Some(Duration::from_secs(20)))
        .unwrap()
        .expect("exited");
    (c, code)
}

#[test]
fn echo_runs_logs_in_cri_format_and_records_exit() {
    let Some(f) = fixture() else { return };
    let s = f.spec(
        "c",
        &["sh", "-c", "echo hello; echo oops >&2; hostname; exit 3"],
    );
    let (c, code) = run_to_exit(&f, s.clone());
    assert_eq!(code, 3);
    assert_eq!(c.state.exit_code, Some(3));
    assert_eq!(c.state.reason.as_deref(), Some("Error"));
    assert!(!c.state.oom_killed);
    let log = log(&s);
    assert!(log.contains(&(Stream::Stdout, "hello".into())), "{log:?}");
    assert!(log.contains(&(Stream::Stderr, "oops".into())), "{log:?}");
    assert!(log.contains(&(Stream::Stdout, "box".into())), "{log:?}");
    c.delete(false).unwrap();
    assert!(!f.root.container_dir(&s.id).exists());
}

#[test]
fn missing_command_exits_127_with_a_message() {
    let Some(f) = fixture() else { return };
    let s = f.spec("c", &["no-such-cmd"]);
    let (c, code) = run_to_exit(&f, s.clone());
    assert_eq!(code, 127);
    let log = log(&s);
    assert!(
        log.iter().any(|(st, t)| *st == Stream::Stderr
            && t.contains("\"no-such-cmd\": executable file not found in $PATH")),
        "{log:?}"
    );
    c.delete(false).unwrap();
}

#[test]
fn container_sees_its_own_world() {
    let Some(f) = fixture() else { return };
    let script = "echo pid=$$; ls /dev | tr '\\n' ' '; echo; cat /proc/keys | wc -c; \
        touch /proc/sys/x 2>/dev/null || echo procsys-ro; touch /sys/x 2>/dev/null || echo sys-ro; \
        grep CapBnd /proc/self/status; grep NoNewPrivs /proc/self/status; grep Seccomp: /proc/self/status; \
        id -u; pwd";
    let mut s = f.spec("c", &["sh", "-c", script]);
    s.process.user = User {
        uid: 65534,
        gid: 65534,
        additional_gids: vec![],
    };
    s.process.cwd = "/work/dir".into();
    let (c, code) = run_to_exit(&f, s.clone());
    let out: Vec<String> = log(&s).into_iter().map(|(_, t)| t).collect();
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out[0], "pid=1");
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "fd", "stdin",
        "stdout", "stderr",
    ] {
        assert!(
            out[1].split(' ').any(|d| d == dev),
            "missing /dev/{dev}: {}",
            out[1]
        );
    }
    assert_eq!(out[2].trim(), "0", "/proc/keys masked");
    assert!(
        out.contains(&"procsys-ro".to_string()) && out.contains(&"sys-ro".to_string()),
        "{out:?}"
    );
    assert_eq!(
        out.iter().find(|l| l.starts_with("CapBnd")).unwrap(),
        "CapBnd:\t00000000a80425fb"
    );
    assert!(out.contains(&"NoNewPrivs:\t1".to_string()));
    assert!(out.contains(&"Seccomp:\t2".to_string()));
    assert!(out.contains(&"65534".to_string()));
    assert!(out.contains(&"/work/dir".to_string()));
    c.delete(false).unwrap();
}

#[test]
fn exec_runs_in_the_container_and_returns_the_exit_code() {
    let Some(f) = fixture() else { return };
    let s = f.spec("c", &["sh", "-c", "echo ready > /tmp/flag; sleep 30"]);
    let mut c = Container::create(&f.root, s).unwrap();
    assert!(
        c.exec_output(vec!["true".into()]).is_err(),
        "exec before start"
    );
    c.start().unwrap();
    let mut out = None;
    for _ in 0..100 {
        let o = c
            .exec_output(vec![
                "sh".into(),
                "-c".into(),
                "cat /tmp/flag; hostname; exit 7".into(),
            ])
            .unwrap();
        if o.stdout.starts_with(b"ready") {
            out = Some(o);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = out.expect("exec saw the container's /tmp");
    assert_eq!(out.exit_code, 7);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\nbox\n");
    let missing = c.exec_output(vec!["nope".into()]).unwrap();
    assert_eq!(missing.exit_code, 127);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("executable file not found"));
    // sh as PID 1 has no SIGTERM handler, so the kernel drops SIGTERM: SIGKILL after grace.
    let code = c.stop(Duration::from_millis(300)).unwrap();
    assert_eq!(code, 137);
    c.delete(false).unwrap();
}

#[test]
fn delete_refuses_running_and_force_kills() {
    let Some(f) = fixture() else { return };
    let s = f.spec("c", &["sleep", "100"]);
    let mut c = Container::create(&f.root, s).unwrap();
    c.start().unwrap();
    let pid = c.state.pid.unwrap();
    let c2 = c.clone();
    assert!(matches!(
        c2.delete(false),
        Err(ContainerError::InvalidState { .. })
    ));
    c.delete(true).unwrap();
    assert!(skiff_runtime::container::state::proc_start_time(pid).is_none());
}

#[test]
fn cgroup_limits_visible_from_host_and_removed_on_delete() {
    let Some(f) = fixture() else { return };
    let cgs = TestCgroups::new();
    let mut s = f.spec("c", &["sleep", "30"]);
    s.cgroup = cgs.config(&format!("pod/{}", s.id));
    s.resources = skiff_runtime::cgroups::Resources {
        pids_limit: Some(20),
        ..skiff_runtime::cgroups::Resources::from_kubernetes(Some(500), Some(500), Some(64 << 20))
    };
    let mut c = Container::create(&f.root, s.clone()).unwrap();
    c.start().unwrap();
    let mgr = skiff_runtime::cgroups::manager(&s.cgroup).unwrap();
    assert_eq!(mgr.processes().unwrap(), vec![c.state.pid.unwrap()]);
    if let skiff_runtime::cgroups::CgroupConfig::V1 { dirs } = &s.cgroup {
        let rd = |c: &str, f: &str| {
            std::fs::read_to_string(dirs[c].join(f))
                .unwrap()
                .trim()
                .to_string()
        };
        assert_eq!(
            rd("memory", "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(rd("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(rd("cpu", "cpu.shares"), "512");
        assert_eq!(rd("pids", "pids.max"), "20");
    }
    let stats = mgr.stats().unwrap();
    assert!(stats.memory_usage > 0);
    c.delete(true).unwrap();
    match &s.cgroup {
        skiff_runtime::cgroups::CgroupConfig::V1 { dirs } => {
            assert!(dirs.values().all(|d| !d.exists()))
        }
        skiff_runtime::cgroups::CgroupConfig::V2 { dir, .. } => assert!(!dir.exists()),
        skiff_runtime::cgroups::CgroupConfig::None => unreachable!(),
    }
}

#[test]
fn memory_limit_too_low_is_oom_killed() {
    let Some(f) = fixture() else { return };
    let cgs = TestCgroups::new();
    let mut s = f.spec(
        "c",
        &[
            "sh",
            "-c",
            "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
        ],
    );
    s.cgroup = cgs.config(&s.id);
    s.resources.memory_limit = Some(8 << 20);
    let (c, code) = run_to_exit(&f, s);
    assert_eq!(code, 137);
    assert!(c.state.oom_killed);
    assert_eq!(c.state.reason.as_deref(), Some("OOMKilled"));
    c.delete(false).unwrap();
}

#[test]
fn setup_failure_is_reported_at_create_and_leaves_nothing() {
    let Some(f) = fixture() else { return };
    let mut s = f.spec("c", &["true"]);
    s.namespaces.net = Some("/nonexistent/netns".into());
    let err = Container::create(&f.root, s.clone()).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/netns"), "{err}");
    assert!(!f.root.container_dir(&s.id).exists());
}

#[test]
fn containers_outlive_their_runtime_and_are_adopted() {
    let Some(f) = fixture() else { return };
    let s = f.spec("c", &["sh", "-c", "echo one; read x < /dev/zero; sleep 30"]);
    let c = Container::create(&f.root, s.clone()).unwrap();
    let mut c = c;
    c.start().unwrap();
    drop(c);
    // A fresh runtime instance finds it from disk alone.
    let fresh = test_root(f.tmp.path());
    let all = fresh.list().unwrap();
    let mut adopted = all.into_iter().find(|c| c.id() == s.id).unwrap();
    assert_eq!(adopted.state.status, Status::Running);
    assert!(adopted.state.shim_alive());
    std::thread::sleep(Duration::from_millis(200));
    assert!(log(&s).contains(&(Stream::Stdout, "one".into())));
    assert_eq!(adopted.stop(Duration::from_millis(500)).unwrap(), 137);
    adopted.delete(false).unwrap();
}

#[test]
fn overlay_of_image_layers_is_the_root_and_goes_with_delete() {
    let Some(f) = fixture() else { return };
    let top = f.tmp.path().join("layer2");
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::write(top.join("etc/motd"), "from the top layer\n").unwrap();
    let mut s = f.spec(
        "c",
        &[
            "sh",
            "-c",
            "cat /etc/motd; echo new > /written; cat /written",
        ],
    );
    s.layers = vec![f.rootfs.clone(), top.clone()];
    let (c, code) = run_to_exit(&f, s.clone());
    assert_eq!(code, 0);
    let out: Vec<String> = log(&s).into_iter().map(|(_, t)| t).collect();
    assert_eq!(out, ["from the top layer", "new"]);
    // Writes land in the container's upper directory, never in a layer.
    assert!(!f.rootfs.join("written").exists() && !top.join("written").exists());
    let rootfs = c.spec.rootfs.clone();
    assert!(
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&*rootfs.to_string_lossy())
    );
    c.delete(false).unwrap();
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&*rootfs.to_string_lossy())
    );
}

#[test]
fn kill_9_of_the_agent_leaves_containers_running_and_adoptable() {
    use std::io::BufRead;
    let Some(f) = fixture() else { return };
    let s = f.spec(
        "c",
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done",
        ],
    );
    let spec_path = f.tmp.path().join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&s).unwrap()).unwrap();
    let mut agent = std::process::Command::new(std::env::current_exe().unwrap())
        .env("SKIFF_TEST_AGENT", &spec_path)
        .env("SKIFF_TEST_AGENT_ROOT", f.tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(f.tmp.path().join("agent.err")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(agent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "started");
    agent.kill().unwrap();
    agent.wait().unwrap();
    let ticks = || {
        log(&s)
            .iter()
            .filter(|(_, t)| t.starts_with("tick"))
            .count()
    };
    let before = ticks();
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        ticks() > before,
        "the shim keeps logging after the agent died"
    );
    // A fresh runtime instance adopts it from disk.
    let mut adopted = Container::load(&test_root(f.tmp.path()), &s.id).unwrap();
    assert_eq!(adopted.state.status, Status::Running);
    let out = adopted
        .exec_output(vec!["echo".into(), "still here".into()])
        .unwrap();
    assert_eq!(out.stdout, b"still here\n");
    assert_eq!(adopted.stop(Duration::from_millis(200)).unwrap(), 137);
    let log = log(&s);
    assert_eq!(
        log[0],
        (Stream::Stdout, "tick 1".to_string()),
        "log intact from the start"
    );
    adopted.delete(false).unwrap();
}

#[test]
fn exec_with_stdin_and_with_a_tty() {
    use std::io::{Read, Write};
    let Some(f) = fixture() else { return };
    let mut c = Container::create(&f.root, f.spec("c", &["sleep", "30"])).unwrap();
    c.start().unwrap();
    // stdin attached: `tr` uppercases what we write.
    let (in_r, mut in_w) = std::io::pipe().unwrap();
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    let (_err_r, err_w) = std::io::pipe().unwrap();
    let h = c
        .exec(ExecRequest {
            process: c.exec_process(vec!["tr".into(), "a-z".into(), "A-Z".into()]),
            stdio: ExecStdio::Fds {
                stdin: Some(in_r.into()),
                stdout: out_w.into(),
                stderr: err_w.into(),
            },
        })
        .unwrap();
    in_w.write_all(b"hello\n").unwrap();
    drop(in_w);
    let mut out = String::new();
    out_r.read_to_string(&mut out).unwrap();
    assert_eq!(out, "HELLO\n");
    assert_eq!(h.wait().unwrap(), 0);
    // A TTY: the process sees a terminal of the size we set on the master.
    let pty = nix::pty::openpty(None, None).unwrap();
    resize_tty(&pty.master, 33, 101).unwrap();
    let h = c
        .exec(ExecRequest {
            process: c.exec_process(vec![
                "sh".into(),
                "-c".into(),
                "[ -t 0 ] && echo isatty; stty size; exit 2".into(),
            ]),
            stdio: ExecStdio::Tty(pty.slave),
        })
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    // EIO on the master marks the slave side closed.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(h.wait().unwrap(), 2);
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("isatty") && out.contains("33 101"), "{out}");
    c.delete(true).unwrap();
}

#[test]
fn user_namespace_maps_root_inside_to_the_mapped_host_uid() {
    let Some(f) = fixture() else { return };
    let mut s = f.spec("c", &["sleep", "30"]);
    s.user_namespace = Some(IdMapping::shifted(100_000, 65536));
    let mut c = Container::create(&f.root, s).unwrap();
    c.start().unwrap();
    let pid = c.state.pid.unwrap();
    // The host sees init as the mapped uid once it has dropped into the container's identity.
    let host_ids = || -> Vec<String> {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:"))
            .flat_map(|l| l.split_whitespace().skip(1).map(str::to_string))
            .collect()
    };
    let mut ids = host_ids();
    for _ in 0..100 {
        if ids.iter().all(|id| id == "100000") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        ids = host_ids();
    }
    assert_eq!(ids, vec!["100000"; 8], "host view of the container's ids");
    // Inside, that uid is root, and exec'd processes land in the same user namespace.
    let out = c
        .exec_output(vec![
            "sh".into(),
            "-c".into(),
            "id -u; id -g; cat /proc/self/uid_map".into(),
        ])
        .unwrap();
    assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words, ["0", "0", "0", "100000", "65536"], "{text}");
    c.delete(true).unwrap();
}
