//! Size limits of local volumes (the local-path provisioner's): a project quota on the volume's directory where its
//! filesystem (ext4 or XFS mounted with `prjquota`) offers one — the directory gets a
//! project id that its files inherit (`FS_IOC_FSSETXATTR`) and the project a hard block
//! limit (`quotactl(Q_SETQUOTA, PRJQUOTA)`) — otherwise the size is only recorded on the
//! volume.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// How a volume's size is held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// Enforced by the project quota of this id.
    Enforced {
        /// The directory's project id.
        project: u32,
    },
    /// The filesystem offers no project quota: the size is recorded, not enforced.
    Recorded,
}

impl Limit {
    /// How the limit reads in the volume's annotation.
    pub fn describe(&self) -> String {
        match self {
            Limit::Enforced { project } => format!("project-quota/{project}"),
            Limit::Recorded => "recorded".into(),
        }
    }
}

/// One line of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The device (what `quotactl` is given).
    pub device: String,
    /// Where it is mounted.
    pub point: PathBuf,
    /// The filesystem type.
    pub fstype: String,
    /// The mount options.
    pub options: Vec<String>,
}

impl Mount {
    /// Whether project quotas are on: ext4 or XFS mounted with `prjquota` (`pquota`).
    pub fn has_project_quota(&self) -> bool {
        matches!(self.fstype.as_str(), "ext4" | "xfs")
            && self
                .options
                .iter()
                .any(|o| matches!(o.as_str(), "prjquota" | "pquota" | "prjjquota"))
    }
}

/// `/proc/mounts` escapes spaces, tabs, newlines and backslashes as octal.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let digits: String = chars.clone().take(3).collect();
            if digits.len() == 3
                && let Ok(v) = u8::from_str_radix(&digits, 8)
            {
                out.push(v as char);
                chars.nth(2);
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// The mount holding `dir` (the longest mount point above it; the last such line wins, as
/// later mounts hide earlier ones).
pub fn mount_of(mounts: &str, dir: &Path) -> Option<Mount> {
    let mut best: Option<Mount> = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let point = PathBuf::from(unescape(f[1]));
        if !dir.starts_with(&point) {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|b| point.as_os_str().len() >= b.point.as_os_str().len())
        {
            best = Some(Mount {
                device: unescape(f[0]),
                point,
                fstype: f[2].to_string(),
                options: f[3].split(',').map(str::to_string).collect(),
            });
        }
    }
    best
}

/// The project id of a volume: a hash of its name (FNV-1a), never 0 (no project).
pub fn project_id(volume: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in volume.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h & 0x7fff_ffff).max(1)
}

/// `struct fsxattr` of `<linux/fs.h>`.
#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

/// New files and directories inherit the directory's project id.
const FS_XFLAG_PROJINHERIT: u32 = 0x0000_0200;
/// `PRJQUOTA` of `<linux/quota.h>`.
const PRJQUOTA: libc::c_int = 2;

nix::ioctl_read!(fs_get_xattr, b'X', 31, FsXattr);
nix::ioctl_write_ptr!(fs_set_xattr, b'X', 32, FsXattr);

fn set_project(dir: &Path, project: u32) -> io::Result<()> {
    let f = std::fs::File::open(dir)?;
    let mut attr = FsXattr::default();
    // SAFETY: the descriptor is open and `attr` is a `struct fsxattr` the call fills.
    unsafe { fs_get_xattr(f.as_raw_fd(), &mut attr) }.map_err(io::Error::from)?;
    attr.projid = project;
    attr.xflags |= FS_XFLAG_PROJINHERIT;
    // SAFETY: as above; the call only reads `attr`.
    unsafe { fs_set_xattr(f.as_raw_fd(), &attr) }.map_err(io::Error::from)?;
    Ok(())
}

fn set_block_limit(device: &str, project: u32, bytes: u64) -> io::Result<()> {
    let dev = CString::new(device).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // Quota blocks are 1 KiB; a partial block counts as a whole one.
    let blocks = bytes.div_ceil(1024);
    // SAFETY: dqblk is plain data; all-zero is a valid value.
    let mut q: libc::dqblk = unsafe { std::mem::zeroed() };
    q.dqb_bhardlimit = blocks;
    q.dqb_bsoftlimit = blocks;
    q.dqb_valid = libc::QIF_BLIMITS;
    let cmd = (libc::Q_SETQUOTA << 8) | PRJQUOTA;
    let id = libc::c_int::try_from(project)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `dev` is a NUL-terminated path and `q` a `struct dqblk` the call reads.
    let rc = unsafe { libc::quotactl(cmd, dev.as_ptr(), id, (&raw mut q).cast()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Holds `dir` (the directory of `volume`) to `bytes`: a project quota where its filesystem
/// offers one, otherwise [`Limit::Recorded`].
pub fn limit(dir: &Path, volume: &str, bytes: u64) -> io::Result<Limit> {
    let dir = dir.canonicalize()?;
    let mounts = std::fs::read_to_string("/proc/mounts")?;
    let Some(mount) = mount_of(&mounts, &dir).filter(Mount::has_project_quota) else {
        return Ok(Limit::Recorded);
    };
    let project = project_id(volume);
    set_project(&dir, project)?;
    set_block_limit(&mount.device, project, bytes)?;
    Ok(Limit::Enforced { project })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "/dev/vda / ext4 rw,relatime,discard 0 0\n\
        proc /proc proc rw,nosuid 0 0\n\
        /dev/loop3 /var/lib/skiff/storage ext4 rw,relatime,prjquota 0 0\n\
        /dev/sdb /mnt/with\\040space xfs rw,prjquota 0 0\n";

    #[test]
    fn the_longest_mount_point_holds_a_directory_and_says_whether_projects_are_on() {
        let root = mount_of(MOUNTS, Path::new("/var/lib/other")).unwrap();
        assert_eq!(root.point, Path::new("/"));
        assert!(!root.has_project_quota(), "the root has no prjquota");
        let vols = mount_of(MOUNTS, Path::new("/var/lib/skiff/storage/pvc-1")).unwrap();
        assert_eq!(vols.device, "/dev/loop3");
        assert!(vols.has_project_quota());
        let spaced = mount_of(MOUNTS, Path::new("/mnt/with space/pvc-2")).unwrap();
        assert_eq!(spaced.device, "/dev/sdb");
        assert!(spaced.has_project_quota());
        // A path that only shares a prefix of characters is not under the mount.
        let not = mount_of(MOUNTS, Path::new("/var/lib/skiff/storage2")).unwrap();
        assert_eq!(not.point, Path::new("/"));
    }

    #[test]
    fn project_ids_are_stable_nonzero_and_differ_by_volume() {
        let a = project_id("pvc-0d4c1a");
        assert_eq!(a, project_id("pvc-0d4c1a"));
        assert_ne!(a, project_id("pvc-0d4c1b"));
        assert!(a > 0 && a <= 0x7fff_ffff);
    }

    /// On a filesystem without project quotas (the root here) a limit is recorded.
    #[test]
    fn without_prjquota_the_limit_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        let held = mount_of(&mounts, &dir.path().canonicalize().unwrap()).unwrap();
        let got = limit(dir.path(), "pvc-test", 1 << 20).unwrap();
        if held.has_project_quota() {
            assert!(matches!(got, Limit::Enforced { .. }));
        } else {
            assert_eq!(got, Limit::Recorded);
        }
    }

    /// Unmounts the test filesystem however the test ends.
    struct Mounted(PathBuf);

    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }

    /// On a loop-mounted ext4 with project quotas, writing past the limit fails with
    /// EDQUOT, and a larger limit lets the write through (needs root and mkfs.ext4).
    #[test]
    fn a_project_quota_enforces_the_limit_on_ext4() {
        let mkfs = Path::new("/usr/sbin/mkfs.ext4");
        if !nix::unistd::Uid::effective().is_root() || !mkfs.exists() {
            eprintln!("skipped: needs root and mkfs.ext4");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let image = tmp.path().join("fs.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(32 << 20)
            .unwrap();
        let made = std::process::Command::new(mkfs)
            .args(["-q", "-F", "-O", "quota,project"])
            .arg(&image)
            .status()
            .unwrap();
        assert!(made.success(), "mkfs.ext4");
        let point = tmp.path().join("mnt");
        std::fs::create_dir(&point).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-o", "loop,prjquota"])
            .arg(&image)
            .arg(&point)
            .status()
            .unwrap();
        if !mounted.success() {
            eprintln!("skipped: loop devices are not available");
            return;
        }
        let _guard = Mounted(point.clone());
        let dir = point.join("pvc-quota");
        std::fs::create_dir(&dir).unwrap();
        let got = limit(&dir, "pvc-quota", 1 << 20).unwrap();
        assert_eq!(
            got,
            Limit::Enforced {
                project: project_id("pvc-quota")
            }
        );
        let write = |name: &str, len: usize| {
            use std::io::Write;
            let mut f = std::fs::File::create(dir.join(name))?;
            f.write_all(&vec![7u8; len])?;
            f.sync_all()
        };
        let err = write("big", 2 << 20).expect_err("2 MiB past a 1 MiB quota");
        assert_eq!(err.raw_os_error(), Some(libc::EDQUOT), "{err}");
        std::fs::remove_file(dir.join("big")).unwrap();
        limit(&dir, "pvc-quota", 4 << 20).unwrap();
        write("big", 2 << 20).expect("2 MiB under a 4 MiB quota");
    }
}
