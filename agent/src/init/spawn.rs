//! Starting children and reaping them.
//!
//! Every child gets a session of its own and default signal dispositions
//! (PID 1 ignores SIGHUP and SIGQUIT, which `exec` would otherwise pass
//! on). The workload also gets `/dev/console` as its standard streams and
//! controlling terminal, and drops to its user.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::accounts::Identity;

/// What a child's standard streams are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streams {
    /// stdin `/dev/null`, stdout and stderr inherited (the console).
    Service,
    /// All three on `/dev/console`, which becomes the controlling tty.
    Console,
}

/// A process to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The executable.
    pub program: PathBuf,
    /// The arguments including `argv[0]`.
    pub argv: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// The working directory (`/` if `None`).
    pub working_dir: Option<PathBuf>,
    /// The user to become; `None` stays root.
    pub identity: Option<Identity>,
    /// The standard streams.
    pub streams: Streams,
}

/// Signals whose disposition PID 1 changes; children get the defaults back.
const RESET_SIGNALS: [libc::c_int; 7] = [
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGUSR2,
    libc::SIGPWR,
    libc::SIGCHLD,
];

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Starts `spec` and returns its pid. An exec failure (a missing file, a
/// bad interpreter) is an error here, not an exit status later.
pub fn spawn(spec: &Spec) -> io::Result<u32> {
    let mut command = Command::new(&spec.program);
    if let Some((first, rest)) = spec.argv.split_first() {
        command.arg0(first).args(rest);
    }
    command
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(spec.working_dir.as_deref().unwrap_or("/".as_ref()))
        .stdin(Stdio::null());
    let console = CString::new("/dev/console").expect("no NUL");
    let take_console = spec.streams == Streams::Console;
    let identity = spec.identity.clone();
    let groups: Vec<libc::gid_t> = identity.iter().flat_map(|id| id.groups.clone()).collect();
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls on data prepared beforehand.
    unsafe {
        command.pre_exec(move || {
            for signal in RESET_SIGNALS {
                libc::signal(signal, libc::SIG_DFL);
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            check(libc::setsid())?;
            if take_console {
                let fd = libc::open(console.as_ptr(), libc::O_RDWR);
                if fd >= 0 {
                    // Best effort: without it the workload still runs, but
                    // without job control.
                    libc::ioctl(fd, libc::TIOCSCTTY, 1);
                    for target in 0..3 {
                        libc::dup2(fd, target);
                    }
                    if fd > 2 {
                        libc::close(fd);
                    }
                }
            }
            if let Some(id) = &identity {
                check(libc::setgroups(groups.len(), groups.as_ptr()))?;
                check(libc::setgid(id.gid))?;
                check(libc::setuid(id.uid))?;
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    // The Child is dropped without waiting: PID 1's reaper collects it.
    Ok(child.id())
}

/// A `waitpid` status in words: `exited with status 3`, `was killed by
/// signal 9 (SIGKILL)`.
pub fn describe(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        format!("was killed by signal {signal} ({})", signal_name(signal))
    } else {
        format!("changed state ({status:#x})")
    }
}

/// The exit code in `status`, if the process exited normally.
pub fn exit_code(status: libc::c_int) -> Option<i32> {
    libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
}

fn signal_name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => "?",
    }
}

/// What one `waitpid(-1, WNOHANG)` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaped {
    /// A child exited with this status.
    Child(u32, libc::c_int),
    /// Children remain, none has exited.
    Running,
    /// No child is left.
    NoChildren,
}

/// Collects one exited child, if any.
pub fn reap_one() -> Reaped {
    loop {
        let mut status = 0;
        // SAFETY: passes a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match pid {
            0 => return Reaped::Running,
            pid if pid > 0 => return Reaped::Child(pid as u32, status),
            _ => match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => return Reaped::NoChildren,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_in_words() {
        assert_eq!(describe(3 << 8), "exited with status 3");
        assert_eq!(exit_code(69 << 8), Some(69));
        assert_eq!(describe(9), "was killed by signal 9 (SIGKILL)");
        assert_eq!(exit_code(9), None);
    }

    #[test]
    fn a_child_gets_its_own_session_env_and_argv0() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let spec = Spec {
            program: "/bin/sh".into(),
            argv: vec![
                "my-sh".into(),
                "-c".into(),
                format!(
                    "echo \"$0 $FOO $(pwd) $(cut -d' ' -f6 /proc/self/stat)\" > {}",
                    out.display()
                ),
            ],
            env: vec![
                ("FOO".into(), "bar".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ],
            working_dir: Some(dir.path().to_owned()),
            identity: None,
            streams: Streams::Service,
        };
        let pid = spawn(&spec).unwrap();
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(
            unsafe { libc::waitpid(pid as i32, &mut status, 0) },
            pid as i32
        );
        assert_eq!(exit_code(status), Some(0), "{}", describe(status));
        let text = std::fs::read_to_string(&out).unwrap();
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(&fields[..3], ["my-sh", "bar", dir.path().to_str().unwrap()]);
        // Field 6 of /proc/self/stat is the session id. `cut` runs in the
        // shell's session, whose leader is the shell: its pid.
        assert_eq!(fields[3], pid.to_string());
    }

    #[test]
    fn a_child_drops_to_its_identity() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPING a_child_drops_to_its_identity: needs root");
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = dir.path().join("status");
        let spec = Spec {
            program: "/bin/sh".into(),
            argv: vec![
                "sh".into(),
                "-c".into(),
                format!("cat /proc/self/status > {}", out.display()),
            ],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            working_dir: Some(dir.path().to_owned()),
            identity: Some(Identity {
                uid: 65534,
                gid: 65533,
                groups: vec![100, 4242],
                home: "/".into(),
            }),
            streams: Streams::Service,
        };
        let pid = spawn(&spec).unwrap();
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid as i32, &mut status, 0) };
        assert_eq!(exit_code(status), Some(0), "{}", describe(status));
        let text = std::fs::read_to_string(&out).unwrap();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(field("Uid:"), "65534 65534 65534 65534");
        assert_eq!(field("Gid:"), "65533 65533 65533 65533");
        assert_eq!(field("Groups:"), "100 4242");
    }

    #[test]
    fn a_missing_program_is_an_error_at_spawn() {
        let spec = Spec {
            program: "/nonexistent/program".into(),
            argv: vec!["program".into()],
            env: vec![],
            working_dir: None,
            identity: None,
            streams: Streams::Service,
        };
        let err = spawn(&spec).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
