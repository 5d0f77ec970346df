//! Step 1: the API filesystems (`/proc`, `/sys`, `/dev`, `/dev/pts`,
//! `/dev/shm`, `/run`, `/tmp`), the `/dev/fd` and std stream symlinks, and a
//! writable root.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::say;

/// When a filesystem is mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Unless something is mounted there already.
    Always,
    /// Only when the directory is missing or not writable (`/tmp`: an
    /// image's own `/tmp` on a writable root is kept).
    IfNotWritable,
}

/// One filesystem to mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    /// Where.
    pub target: &'static str,
    /// The filesystem type, also used as the source.
    pub fstype: &'static str,
    /// `MS_*` flags.
    pub flags: libc::c_ulong,
    /// Filesystem options.
    pub data: String,
    /// Condition.
    pub when: When,
}

/// The mounts in order. `tty_gid` is the image's `tty` group, which owns
/// the pseudo-terminals if it exists.
pub fn table(tty_gid: Option<u32>) -> Vec<MountSpec> {
    let secure = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let spec = |target, fstype, flags, data: &str, when| MountSpec {
        target,
        fstype,
        flags,
        data: data.to_owned(),
        when,
    };
    let pts = match tty_gid {
        Some(gid) => format!("mode=0620,gid={gid},ptmxmode=0666"),
        None => "mode=0620,ptmxmode=0666".to_owned(),
    };
    vec![
        spec("/proc", "proc", secure, "", When::Always),
        spec("/sys", "sysfs", secure, "", When::Always),
        spec(
            "/dev",
            "devtmpfs",
            libc::MS_NOSUID,
            "mode=0755",
            When::Always,
        ),
        spec(
            "/dev/pts",
            "devpts",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            &pts,
            When::Always,
        ),
        spec(
            "/dev/shm",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV,
            "mode=1777",
            When::Always,
        ),
        spec(
            "/run",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV,
            "mode=0755",
            When::Always,
        ),
        spec(
            "/tmp",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV,
            "mode=1777",
            When::IfNotWritable,
        ),
    ]
}

/// The symlinks made in `/dev` when missing.
pub const DEV_LINKS: [(&str, &str); 4] = [
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
];

/// The mount points listed in a `/proc/self/mountinfo` (field 5, with the
/// kernel's octal escapes such as `\040` undone).
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
        .collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(value as u8);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What to do about one mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Something is mounted there already.
    AlreadyMounted,
    /// The directory exists and is writable; the condition is not met.
    Writable,
    /// Mount it.
    Mount,
}

/// Decides for `spec` given the current mount points and whether its
/// directory is writable.
pub fn decide(spec: &MountSpec, mounted: &[String], writable: bool) -> Decision {
    if mounted.iter().any(|point| point == spec.target) {
        Decision::AlreadyMounted
    } else if spec.when == When::IfNotWritable && writable {
        Decision::Writable
    } else {
        Decision::Mount
    }
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn mount(
    source: &str,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let source = cstring(source)?;
    let target = cstring(target)?;
    let fstype = fstype.map(cstring).transpose()?;
    let data = cstring(data)?;
    // SAFETY: every pointer is a valid C string or null.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the filesystem holding `path` is mounted read-only.
pub fn is_read_only(path: &str) -> io::Result<bool> {
    let path = cstring(path)?;
    // SAFETY: statvfs is plain old data filled by the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: passes a valid C string and statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_flag & libc::ST_RDONLY != 0)
}

/// Remounts `/` with `flags` added to `MS_REMOUNT` (`MS_RDONLY` for
/// read-only, 0 for read-write).
pub fn remount_root(flags: libc::c_ulong) -> io::Result<()> {
    mount("", "/", None, libc::MS_REMOUNT | flags, "")
}

fn writable(path: &str) -> bool {
    cstring(path).is_ok_and(|p| {
        // SAFETY: passes a valid C string.
        unsafe { libc::access(p.as_ptr(), libc::W_OK) == 0 }
    })
}

fn current_mount_points() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|text| mount_points(&text))
        .unwrap_or_default()
}

/// Step 1 as PID 1: a writable root, then every mount of [`table`], then
/// the `/dev` symlinks. Failures are logged and skipped.
pub fn run(tty_gid: Option<u32>) {
    match is_read_only("/") {
        Ok(true) => match remount_root(0) {
            Ok(()) => say!("remounted / read-write"),
            Err(e) => say!("warning: cannot remount / read-write: {e}"),
        },
        Ok(false) => {}
        Err(e) => say!("warning: cannot statvfs /: {e}"),
    }
    for spec in table(tty_gid) {
        let mounted = current_mount_points();
        match decide(&spec, &mounted, writable(spec.target)) {
            Decision::AlreadyMounted => {
                say!("{} is already mounted", spec.target);
                continue;
            }
            Decision::Writable => {
                say!("{} is writable; keeping the image's", spec.target);
                continue;
            }
            Decision::Mount => {}
        }
        if !Path::new(spec.target).is_dir() {
            if let Err(e) = fs::DirBuilder::new().mode(0o755).create(spec.target) {
                say!(
                    "warning: cannot create {}: {e}; {} not mounted",
                    spec.target,
                    spec.fstype
                );
                continue;
            }
        }
        match mount(
            spec.fstype,
            spec.target,
            Some(spec.fstype),
            spec.flags,
            &spec.data,
        ) {
            Ok(()) => say!("mounted {} on {}", spec.fstype, spec.target),
            Err(e) => say!(
                "warning: cannot mount {} on {}: {e}",
                spec.fstype,
                spec.target
            ),
        }
    }
    for (link, target) in DEV_LINKS {
        if fs::symlink_metadata(link).is_err() {
            if let Err(e) = std::os::unix::fs::symlink(target, link) {
                say!("warning: cannot link {link} to {target}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_points_are_unescaped() {
        let text = "\
22 1 259:0 / / rw,relatime shared:1 - ext4 /dev/nvme0n1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
30 22 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw
31 22 0:41 / /odd\\134name\\1 rw - tmpfs tmpfs rw
";
        assert_eq!(
            mount_points(text),
            ["/", "/proc", "/mnt/with space", "/odd\\name\\1"]
        );
    }

    #[test]
    fn the_table_in_order() {
        let table = table(Some(5));
        let targets: Vec<_> = table.iter().map(|s| s.target).collect();
        assert_eq!(
            targets,
            ["/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/run", "/tmp"]
        );
        assert_eq!(table[3].data, "mode=0620,gid=5,ptmxmode=0666");
        assert_eq!(table[4].data, "mode=1777");
        assert_eq!(table[5].data, "mode=0755");
        assert_eq!(table[6].data, "mode=1777");
        assert_eq!(table[6].when, When::IfNotWritable);
        assert!(table[..6].iter().all(|s| s.when == When::Always));
        assert_eq!(super::table(None)[3].data, "mode=0620,ptmxmode=0666");
    }

    #[test]
    fn decisions() {
        let table = table(None);
        let mounted = vec!["/".to_owned(), "/dev".to_owned()];
        assert_eq!(decide(&table[0], &mounted, true), Decision::Mount);
        assert_eq!(decide(&table[2], &mounted, true), Decision::AlreadyMounted);
        assert_eq!(decide(&table[6], &mounted, true), Decision::Writable);
        assert_eq!(decide(&table[6], &mounted, false), Decision::Mount);
        let with_tmp = vec!["/tmp".to_owned()];
        assert_eq!(
            decide(&table[6], &with_tmp, false),
            Decision::AlreadyMounted
        );
    }
}
