//! The mount plan of a container: its root filesystem, `/proc`, `/sys`, a minimal `/dev`,
//! user bind and tmpfs mounts, `pivot_root`, masked and read-only paths (as Docker does).

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::spec::{ContainerSpec, MountKind, MountSpec};
use crate::syscall::{DeviceKind, Result, Syscall, join_in_root};

/// Paths hidden from containers (Docker's default `MaskedPaths`); `true` marks directories.
pub const MASKED_PATHS: &[(&str, bool)] = &[
    ("/proc/asound", true),
    ("/proc/acpi", true),
    ("/proc/kcore", false),
    ("/proc/keys", false),
    ("/proc/latency_stats", false),
    ("/proc/timer_list", false),
    ("/proc/timer_stats", false),
    ("/proc/sched_debug", false),
    ("/proc/scsi", true),
    ("/sys/firmware", true),
    ("/sys/devices/virtual/powercap", true),
];

/// Paths made read-only (Docker's default `ReadonlyPaths`).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Device nodes in the minimal `/dev`: name, major, minor.
pub const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Builds the container's mount tree under its root filesystem, then pivots into it and
/// applies masks and read-only paths. Runs inside the container's new mount namespace.
pub fn setup_rootfs(sys: &dyn Syscall, spec: &ContainerSpec) -> Result<()> {
    let root = spec.rootfs.as_path();
    // Nothing we mount may propagate back to the host.
    sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    // pivot_root needs the new root to be a mount point.
    sys.mount(
        Some(root),
        root,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    mount_proc_sys(sys, root)?;
    mount_dev(sys, root)?;
    for m in &spec.mounts {
        mount_user(sys, root, m)?;
    }
    pivot_into(sys, root)?;
    mask_paths(sys)?;
    if spec.readonly_rootfs {
        sys.mount(
            None,
            Path::new("/"),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None,
        )?;
    }
    Ok(())
}

fn mount_proc_sys(sys: &dyn Syscall, root: &Path) -> Result<()> {
    let common = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_ = root.join("proc");
    sys.mkdir_all(&proc_, 0o555)?;
    sys.mount(Some(Path::new("proc")), &proc_, Some("proc"), common, None)?;
    let sys_ = root.join("sys");
    sys.mkdir_all(&sys_, 0o555)?;
    sys.mount(
        Some(Path::new("sysfs")),
        &sys_,
        Some("sysfs"),
        common | MsFlags::MS_RDONLY,
        None,
    )
}

fn mount_dev(sys: &dyn Syscall, root: &Path) -> Result<()> {
    let dev = root.join("dev");
    sys.mkdir_all(&dev, 0o755)?;
    sys.mount(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for (name, major, minor) in DEVICES {
        sys.mknod(&dev.join(name), DeviceKind::Char, 0o666, *major, *minor)?;
    }
    let pts = dev.join("pts");
    sys.mkdir_all(&pts, 0o755)?;
    sys.mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    sys.symlink(Path::new("pts/ptmx"), &dev.join("ptmx"))?;
    let shm = dev.join("shm");
    sys.mkdir_all(&shm, 0o1777)?;
    sys.mount(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        sys.symlink(Path::new(target), &dev.join(link))?;
    }
    Ok(())
}

fn mount_user(sys: &dyn Syscall, root: &Path, m: &MountSpec) -> Result<()> {
    let target = join_in_root(root, &m.destination);
    match &m.kind {
        MountKind::Bind { source, readonly } => {
            if source.is_dir() {
                sys.mkdir_all(&target, 0o755)?;
            } else {
                sys.touch(&target)?;
            }
            sys.mount(
                Some(source),
                &target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            if *readonly {
                sys.mount(
                    None,
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
                    None,
                )?;
            }
        }
        MountKind::Tmpfs { size, mode } => {
            sys.mkdir_all(&target, 0o755)?;
            let mut data = format!("mode={mode:o}");
            if *size > 0 {
                data.push_str(&format!(",size={size}"));
            }
            sys.mount(
                Some(Path::new("tmpfs")),
                &target,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(&data),
            )?;
        }
    }
    Ok(())
}

/// `pivot_root(".", ".")` then detach the old root (runc's trick: no put_old directory).
fn pivot_into(sys: &dyn Syscall, root: &Path) -> Result<()> {
    sys.chdir(root)?;
    sys.pivot_root(Path::new("."), Path::new("."))?;
    // The old root is stacked on "."; keep its unmount from propagating anywhere.
    sys.mount(
        None,
        Path::new("."),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )?;
    sys.umount2(Path::new("."), MntFlags::MNT_DETACH)?;
    sys.chdir(Path::new("/"))
}

fn mask_paths(sys: &dyn Syscall) -> Result<()> {
    for (path, is_dir) in MASKED_PATHS {
        let path = Path::new(path);
        if !sys.exists(path) {
            continue;
        }
        if *is_dir {
            sys.mount(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )?;
        } else {
            sys.mount(
                Some(Path::new("/dev/null")),
                path,
                None,
                MsFlags::MS_BIND,
                None,
            )?;
        }
    }
    for path in READONLY_PATHS {
        let path = Path::new(path);
        if !sys.exists(path) {
            continue;
        }
        sys.mount(
            Some(path),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        sys.mount(
            Some(path),
            path,
            None,
            MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_REC
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            None,
        )?;
    }
    Ok(())
}

/// Paths the plan creates under `root`, for tests and diagnostics.
pub fn standard_targets(root: &Path) -> Vec<PathBuf> {
    ["proc", "sys", "dev", "dev/pts", "dev/shm"]
        .iter()
        .map(|p| root.join(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::{MountKind, MountSpec};
    use crate::syscall::{Call, RecordingSyscall};

    fn spec(root: &Path) -> ContainerSpec {
        crate::testkit::spec("c1", root, Path::new("/tmp/log"), &["true"])
    }

    #[test]
    fn plan_mounts_standard_filesystems_before_pivot() {
        let sys = RecordingSyscall::new();
        let root = Path::new("/r");
        setup_rootfs(&sys, &spec(root)).unwrap();
        let calls = sys.calls();
        let pivot = calls
            .iter()
            .position(|c| matches!(c, Call::PivotRoot(..)))
            .unwrap();
        let mounts = sys.mounts();
        for target in standard_targets(root) {
            let at = calls
                .iter()
                .position(|c| matches!(c, Call::Mount { target: t, .. } if *t == target))
                .unwrap_or_else(|| panic!("{} not mounted", target.display()));
            assert!(at < pivot, "{} mounted after pivot", target.display());
        }
        let sysfs = mounts
            .iter()
            .find(|m| m.1.as_deref() == Some("sysfs"))
            .unwrap();
        assert!(sysfs.2.contains(MsFlags::MS_RDONLY));
        assert!(calls.contains(&Call::Mknod(
            "/r/dev/null".into(),
            DeviceKind::Char,
            0o666,
            1,
            3
        )));
        assert!(calls.contains(&Call::Symlink("pts/ptmx".into(), "/r/dev/ptmx".into())));
        assert!(calls.contains(&Call::Symlink(
            "/proc/self/fd/2".into(),
            "/r/dev/stderr".into()
        )));
        // The first mount makes everything private so nothing leaks to the host.
        assert_eq!(mounts[0].0, Path::new("/"));
        assert!(mounts[0].2.contains(MsFlags::MS_PRIVATE));
        // No remount of / read-only unless asked.
        assert!(
            !mounts
                .iter()
                .any(|m| m.0 == Path::new("/") && m.2.contains(MsFlags::MS_RDONLY))
        );
    }

    #[test]
    fn masks_only_existing_paths_and_uses_null_for_files() {
        let mut sys = RecordingSyscall::new();
        sys.existing.insert("/proc/kcore".into());
        sys.existing.insert("/proc/acpi".into());
        sys.existing.insert("/proc/sys".into());
        setup_rootfs(&sys, &spec(Path::new("/r"))).unwrap();
        let calls = sys.calls();
        assert!(
            calls
                .iter()
                .any(|c| matches!(c, Call::Mount { source: Some(s), target, .. }
            if s == Path::new("/dev/null") && target == Path::new("/proc/kcore")))
        );
        assert!(calls.iter().any(|c| matches!(c, Call::Mount { fstype: Some(f), target, flags, .. }
            if f == "tmpfs" && target == Path::new("/proc/acpi") && flags.contains(MsFlags::MS_RDONLY))));
        assert!(calls.iter().any(|c| matches!(c, Call::Mount { target, flags, .. }
            if target == Path::new("/proc/sys") && flags.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY))));
        assert!(
            !calls.iter().any(
                |c| matches!(c, Call::Mount { target, .. } if target == Path::new("/proc/keys"))
            )
        );
    }

    #[test]
    fn user_mounts_land_inside_root_and_readonly_remounts() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSyscall::new();
        let mut s = spec(Path::new("/r"));
        s.readonly_rootfs = true;
        s.mounts = vec![
            MountSpec {
                destination: "/data/../../etc/cfg".into(),
                kind: MountKind::Bind {
                    source: dir.path().into(),
                    readonly: true,
                },
            },
            MountSpec {
                destination: "/scratch".into(),
                kind: MountKind::Tmpfs {
                    size: 1 << 20,
                    mode: 0o755,
                },
            },
        ];
        setup_rootfs(&sys, &s).unwrap();
        let calls = sys.calls();
        // `..` cannot climb out of the root.
        assert!(calls.contains(&Call::Mkdir("/r/etc/cfg".into(), 0o755)));
        assert!(calls.iter().any(|c| matches!(c, Call::Mount { target, flags, .. }
            if target == Path::new("/r/etc/cfg") && flags.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY))));
        assert!(
            calls
                .iter()
                .any(|c| matches!(c, Call::Mount { target, data: Some(d), .. }
            if target == Path::new("/r/scratch") && d == "mode=755,size=1048576"))
        );
        let last = sys.mounts().pop().unwrap();
        assert_eq!(last.0, Path::new("/"));
        assert!(last.2.contains(MsFlags::MS_RDONLY | MsFlags::MS_REMOUNT));
    }

    #[test]
    fn a_failing_mount_stops_the_plan() {
        let mut sys = RecordingSyscall::new();
        sys.fail = Some("pivot_root");
        let err = setup_rootfs(&sys, &spec(Path::new("/r"))).unwrap_err();
        assert!(err.to_string().contains("pivot_root"));
        assert!(!sys.calls().iter().any(|c| matches!(c, Call::Umount(..))));
    }
}
