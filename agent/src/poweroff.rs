//! The `poweroff` request: asking whatever runs as PID 1 to power the guest
//! off the way it expects to be asked.

use std::fs;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

/// The init system running as PID 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitKind {
    /// banger-init: SIGTERM.
    BangerInit,
    /// systemd: SIGRTMIN+4 (`systemctl poweroff`'s signal).
    Systemd,
    /// busybox init: SIGUSR2.
    Busybox,
    /// Anything else: its `poweroff` command.
    Other,
}

/// How the agent asks for the power-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `kill(1, signal)`.
    Signal(libc::c_int),
    /// Run the first of these that exists, as a child.
    Command(&'static [&'static str]),
}

/// The `poweroff` commands tried for an unknown init, in order.
pub const POWEROFF_COMMANDS: [&str; 3] = ["/sbin/poweroff", "/usr/sbin/poweroff", "/bin/poweroff"];

/// Classifies PID 1 by the file its `/proc/1/exe` names, else its `comm`.
/// The kernel starts `/sbin/init`, so `comm` is `init` whatever that link
/// leads to: banger-init, systemd or busybox are told apart by the target.
pub fn classify(comm: &str, exe: Option<&Path>) -> InitKind {
    let exe_name = exe.and_then(Path::file_name).and_then(|name| name.to_str());
    match (exe_name, comm.trim_end()) {
        (Some("banger-init"), _) | (None, "banger-init") => InitKind::BangerInit,
        (Some("systemd"), _) | (None, "systemd") => InitKind::Systemd,
        (Some("busybox"), _) => InitKind::Busybox,
        _ => InitKind::Other,
    }
}

/// Reads `proc/1/comm` and `proc/1/exe` under `proc_dir` (`/proc`).
pub fn detect(proc_dir: &Path) -> InitKind {
    let comm = fs::read_to_string(proc_dir.join("1/comm")).unwrap_or_default();
    let exe = fs::read_link(proc_dir.join("1/exe")).ok();
    classify(&comm, exe.as_deref())
}

/// The method for `kind`.
pub fn method(kind: InitKind) -> Method {
    match kind {
        InitKind::BangerInit => Method::Signal(libc::SIGTERM),
        InitKind::Systemd => Method::Signal(libc::SIGRTMIN() + 4),
        InitKind::Busybox => Method::Signal(libc::SIGUSR2),
        InitKind::Other => Method::Command(&POWEROFF_COMMANDS),
    }
}

/// Asks PID 1 to power off and says how.
pub fn request_power_off() -> io::Result<String> {
    let kind = detect(Path::new("/proc"));
    match method(kind) {
        Method::Signal(signal) => {
            // SAFETY: plain syscall.
            if unsafe { libc::kill(1, signal) } < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(format!("sent signal {signal} to PID 1 ({kind:?})"))
        }
        Method::Command(candidates) => {
            let program = candidates
                .iter()
                .find(|path| Path::new(path).exists())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("PID 1 is not a known init and none of {candidates:?} exists"),
                    )
                })?;
            let status = Command::new(program)
                .stdin(Stdio::null())
                .env(
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                )
                .status()?;
            Ok(format!("ran {program}: {status}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_kinds() {
        assert_eq!(classify("banger-init\n", None), InitKind::BangerInit);
        // Started as /sbin/init -> /usr/local/sbin/banger-init.
        assert_eq!(
            classify("init\n", Some(Path::new("/usr/local/sbin/banger-init"))),
            InitKind::BangerInit
        );
        assert_eq!(
            classify("init\n", Some(Path::new("/usr/lib/systemd/systemd"))),
            InitKind::Systemd
        );
        assert_eq!(
            classify("systemd\n", Some(Path::new("/usr/lib/systemd/systemd"))),
            InitKind::Systemd
        );
        assert_eq!(
            classify("init\n", Some(Path::new("/bin/busybox"))),
            InitKind::Busybox
        );
        assert_eq!(
            classify("init\n", Some(Path::new("/sbin/init"))),
            InitKind::Other
        );
        assert_eq!(
            classify("sh\n", Some(Path::new("/bin/busybox.static"))),
            InitKind::Other
        );
        assert_eq!(classify("", None), InitKind::Other);
    }

    #[test]
    fn methods() {
        assert_eq!(method(InitKind::BangerInit), Method::Signal(libc::SIGTERM));
        // glibc's SIGRTMIN is 34, so systemd's SIGRTMIN+4 is 38.
        assert_eq!(method(InitKind::Systemd), Method::Signal(38));
        assert_eq!(method(InitKind::Busybox), Method::Signal(libc::SIGUSR2));
        assert_eq!(method(InitKind::Other), Method::Command(&POWEROFF_COMMANDS));
    }

    #[test]
    fn detect_reads_a_proc_tree() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("1")).unwrap();
        assert_eq!(detect(dir.path()), InitKind::Other);
        fs::write(dir.path().join("1/comm"), "init\n").unwrap();
        std::os::unix::fs::symlink("/bin/busybox", dir.path().join("1/exe")).unwrap();
        assert_eq!(detect(dir.path()), InitKind::Busybox);
        // /sbin/init -> banger-init: comm is "init", the exe tells.
        fs::remove_file(dir.path().join("1/exe")).unwrap();
        std::os::unix::fs::symlink("/usr/local/sbin/banger-init", dir.path().join("1/exe"))
            .unwrap();
        assert_eq!(detect(dir.path()), InitKind::BangerInit);
    }
}
