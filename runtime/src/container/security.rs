//! Process identity and confinement: Docker's default capability set, `no_new_privs`,
//! supplementary groups, uid/gid, rlimits and the default seccomp filter, applied in the
//! order the kernel requires (the filter last, right before `execve`).

use std::str::FromStr;

use caps::Capability;

use super::seccomp;
use super::spec::{ContainerSpec, ProcessSpec};
use crate::syscall::{Result, Syscall, SyscallError};

/// Docker's default capabilities.
pub const DEFAULT_CAPABILITIES: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// The capability set of a container: defaults plus `add`, minus `drop` (`ALL` allowed).
pub fn capability_set(spec: &ContainerSpec) -> Result<Vec<Capability>> {
    let parse = |name: &str| {
        let canon = caps::to_canonical(name);
        Capability::from_str(&canon).map_err(|_| {
            SyscallError::io("capability", name, std::io::ErrorKind::InvalidInput.into())
        })
    };
    let mut set: Vec<Capability> = DEFAULT_CAPABILITIES.to_vec();
    for name in &spec.add_capabilities {
        if name.eq_ignore_ascii_case("ALL") {
            set = caps::all().into_iter().collect();
            continue;
        }
        let cap = parse(name)?;
        if !set.contains(&cap) {
            set.push(cap);
        }
    }
    for name in &spec.drop_capabilities {
        if name.eq_ignore_ascii_case("ALL") {
            set.clear();
            continue;
        }
        let cap = parse(name)?;
        set.retain(|c| *c != cap);
    }
    set.sort_by_key(|c| c.index());
    Ok(set)
}

/// Applies rlimits (while still privileged, so hard limits may be raised).
pub fn apply_rlimits(sys: &dyn Syscall, process: &ProcessSpec) -> Result<()> {
    for limit in &process.rlimits {
        sys.set_rlimit(*limit)?;
    }
    Ok(())
}

/// Drops to the container's identity and confinement. After this only `execve` remains.
pub fn confine(
    sys: &dyn Syscall,
    process: &ProcessSpec,
    caps: &[Capability],
    seccomp_programs: &[seccompiler::BpfProgram],
) -> Result<()> {
    sys.limit_bounding_caps(caps)?;
    sys.set_groups(&process.user.additional_gids)?;
    sys.set_ids(process.user.uid, process.user.gid)?;
    // A non-root uid loses its permitted set in setuid; root keeps exactly the set.
    let effective: &[Capability] = if process.user.uid == 0 { caps } else { &[] };
    sys.set_caps(effective)?;
    sys.set_no_new_privs()?;
    sys.chdir(std::path::Path::new(&process.cwd))?;
    for program in seccomp_programs {
        sys.apply_seccomp(program)?;
    }
    Ok(())
}

/// The seccomp programs for `spec` (none when disabled).
pub fn seccomp_for(spec: &ContainerSpec) -> Vec<seccompiler::BpfProgram> {
    if spec.seccomp {
        seccomp::default_programs()
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::User;
    use crate::syscall::{Call, RecordingSyscall};

    fn spec() -> ContainerSpec {
        serde_json::from_value(serde_json::json!({
            "id": "c", "rootfs": "/r", "process": {"args": ["sh"]},
            "cgroup": "none", "log_path": "/l"
        }))
        .unwrap()
    }

    #[test]
    fn capability_set_adds_and_drops() {
        let mut s = spec();
        assert_eq!(
            capability_set(&s).unwrap().len(),
            DEFAULT_CAPABILITIES.len()
        );
        s.add_capabilities = vec!["NET_ADMIN".into()];
        s.drop_capabilities = vec!["CAP_KILL".into(), "mknod".into()];
        let set = capability_set(&s).unwrap();
        assert!(set.contains(&Capability::CAP_NET_ADMIN));
        assert!(!set.contains(&Capability::CAP_KILL));
        assert!(!set.contains(&Capability::CAP_MKNOD));
        s.drop_capabilities = vec!["ALL".into()];
        s.add_capabilities = vec![];
        assert!(capability_set(&s).unwrap().is_empty());
        s.add_capabilities = vec!["NOT_A_CAP".into()];
        assert!(capability_set(&s).is_err());
    }

    #[test]
    fn non_root_user_gets_no_effective_caps_and_seccomp_is_last() {
        let sys = RecordingSyscall::new();
        let mut p = spec().process;
        p.user = User {
            uid: 1000,
            gid: 100,
            additional_gids: vec![5, 6],
        };
        let progs = seccomp::default_programs();
        confine(&sys, &p, DEFAULT_CAPABILITIES, &progs).unwrap();
        let calls = sys.calls();
        assert_eq!(calls[0], Call::BoundingCaps(DEFAULT_CAPABILITIES.to_vec()));
        assert_eq!(calls[1], Call::Groups(vec![5, 6]));
        assert_eq!(calls[2], Call::Ids(1000, 100));
        assert_eq!(calls[3], Call::Caps(vec![]));
        assert!(calls.contains(&Call::NoNewPrivs));
        assert!(matches!(calls.last(), Some(Call::Seccomp(n)) if *n > 10));
    }

    #[test]
    fn root_keeps_the_bounded_set() {
        let sys = RecordingSyscall::new();
        confine(&sys, &spec().process, DEFAULT_CAPABILITIES, &[]).unwrap();
        assert!(
            sys.calls()
                .contains(&Call::Caps(DEFAULT_CAPABILITIES.to_vec()))
        );
        assert!(!sys.calls().iter().any(|c| matches!(c, Call::Seccomp(_))));
    }
}
