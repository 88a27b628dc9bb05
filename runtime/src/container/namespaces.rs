//! The namespace plan: join the pod sandbox's network, UTS and IPC namespaces, create the
//! rest. The PID namespace is created by the shim before it forks the container's init.

use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;

use super::spec::NamespaceSpec;
use crate::syscall::{Result, Syscall};

/// Joins the namespaces named in `ns` and unshares a new mount namespace plus any of
/// network, UTS and IPC that were not given. Returns the flags of namespaces created.
pub fn enter_namespaces(sys: &dyn Syscall, ns: &NamespaceSpec) -> Result<CloneFlags> {
    let mut new = CloneFlags::CLONE_NEWNS;
    for (path, flag) in [
        (&ns.net, CloneFlags::CLONE_NEWNET),
        (&ns.uts, CloneFlags::CLONE_NEWUTS),
        (&ns.ipc, CloneFlags::CLONE_NEWIPC),
    ] {
        match path {
            Some(path) => sys.setns(path, flag)?,
            None => new |= flag,
        }
    }
    sys.unshare(new)?;
    Ok(new)
}

/// Sets the hostname only when the container owns its UTS namespace; in a pod the
/// sandbox set it already and a container must not rename its siblings' host.
pub fn set_hostname(sys: &dyn Syscall, created: CloneFlags, hostname: Option<&str>) -> Result<()> {
    match hostname {
        Some(name) if created.contains(CloneFlags::CLONE_NEWUTS) => sys.sethostname(name),
        _ => Ok(()),
    }
}

/// Namespaces an exec'd process joins, in order, from `/proc/<pid>/ns/`. The mount
/// namespace comes last: after it the host's `/proc` is no longer visible.
pub const EXEC_NAMESPACES: &[(&str, CloneFlags)] = &[
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Joins every namespace of the running container process `pid` (except PID, which the
/// shim's children are already in). `user`, the container's own user namespace if it has
/// one, comes after all of them: the others belong to the host's user namespace and can
/// only be joined with the host's privileges. It must be a path that still resolves after
/// the mount namespace changed (an open fd under `/proc/self/fd`).
pub fn join_container(sys: &dyn Syscall, pid: i32, user: Option<&Path>) -> Result<()> {
    for (name, flag) in EXEC_NAMESPACES {
        sys.setns(&PathBuf::from(format!("/proc/{pid}/ns/{name}")), *flag)?;
    }
    if let Some(path) = user {
        sys.setns(path, CloneFlags::CLONE_NEWUSER)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::{Call, RecordingSyscall};

    #[test]
    fn joins_sandbox_namespaces_and_creates_only_mount() {
        let sys = RecordingSyscall::new();
        let ns = NamespaceSpec {
            net: Some("/run/pod/net".into()),
            uts: Some("/run/pod/uts".into()),
            ipc: Some("/run/pod/ipc".into()),
        };
        let created = enter_namespaces(&sys, &ns).unwrap();
        assert_eq!(created, CloneFlags::CLONE_NEWNS);
        assert_eq!(
            sys.calls(),
            vec![
                Call::Setns("/run/pod/net".into(), CloneFlags::CLONE_NEWNET),
                Call::Setns("/run/pod/uts".into(), CloneFlags::CLONE_NEWUTS),
                Call::Setns("/run/pod/ipc".into(), CloneFlags::CLONE_NEWIPC),
                Call::Unshare(CloneFlags::CLONE_NEWNS),
            ]
        );
        set_hostname(&sys, created, Some("web")).unwrap();
        assert!(!sys.calls().iter().any(|c| matches!(c, Call::Hostname(_))));
    }

    #[test]
    fn standalone_container_gets_fresh_namespaces_and_hostname() {
        let sys = RecordingSyscall::new();
        let created = enter_namespaces(&sys, &NamespaceSpec::default()).unwrap();
        let all = CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC;
        assert_eq!(created, all);
        set_hostname(&sys, created, Some("web")).unwrap();
        assert_eq!(
            sys.calls(),
            vec![Call::Unshare(all), Call::Hostname("web".into())]
        );
    }

    #[test]
    fn exec_joins_mount_namespace_last() {
        let sys = RecordingSyscall::new();
        join_container(&sys, 42, None).unwrap();
        let calls = sys.calls();
        assert_eq!(calls.len(), 4);
        assert_eq!(
            calls[3],
            Call::Setns("/proc/42/ns/mnt".into(), CloneFlags::CLONE_NEWNS)
        );
    }

    #[test]
    fn exec_joins_the_user_namespace_after_the_mount_namespace() {
        let sys = RecordingSyscall::new();
        join_container(&sys, 42, Some(Path::new("/proc/self/fd/9"))).unwrap();
        let calls = sys.calls();
        assert_eq!(
            &calls[3..],
            &[
                Call::Setns("/proc/42/ns/mnt".into(), CloneFlags::CLONE_NEWNS),
                Call::Setns("/proc/self/fd/9".into(), CloneFlags::CLONE_NEWUSER),
            ]
        );
    }
}
