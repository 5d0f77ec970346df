//! The agent's request/response logic over a Unix socket, and its behaviour
//! when the kernel has no vsock.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use banger_vsock_agent::health::Probe;
use banger_vsock_agent::server::{serve, serve_with, PowerOff};

fn ask(socket: &Path, request: &[u8]) -> serde_json::Value {
    ask_on(UnixStream::connect(socket).unwrap(), request)
}

/// Sends `request` on `stream` and parses the one-line answer.
fn ask_on(mut stream: UnixStream, request: &[u8]) -> serde_json::Value {
    stream.write_all(request).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.ends_with('\n'), "{answer:?}");
    assert_eq!(answer.matches('\n').count(), 1, "{answer:?}");
    serde_json::from_str(&answer).unwrap()
}

#[test]
fn health_over_a_unix_socket_reports_the_probe_files() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Probe {
        uptime_path: dir.path().join("uptime"),
        hostname_path: dir.path().join("hostname"),
        first_boot_marker: dir.path().join("first-boot-pending"),
    };
    std::fs::write(&probe.uptime_path, "1234.56 789.00\n").unwrap();
    std::fs::write(&probe.hostname_path, "guest-1\n").unwrap();
    std::fs::write(&probe.first_boot_marker, "").unwrap();
    let socket = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let shared = Arc::new(probe.clone());
    std::thread::spawn(move || serve(listener.incoming(), shared));

    let health = ask(&socket, b"health\n");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["uptime"].as_f64(), Some(1234.56));
    assert_eq!(health["hostname"], "guest-1");
    assert_eq!(health["first_boot_pending"], true);
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));

    // First boot done, facts unreadable: the agent still answers.
    std::fs::remove_file(&probe.first_boot_marker).unwrap();
    std::fs::remove_file(&probe.uptime_path).unwrap();
    std::fs::remove_file(&probe.hostname_path).unwrap();
    let health = ask(&socket, b"  HEALTH \r\n");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["first_boot_pending"], false);
    assert!(health["uptime"].is_null());
    assert!(health["hostname"].is_null());

    // A request without a newline is answered once the client shuts down
    // its side; unknown requests are errors.
    let mut stream = UnixStream::connect(&socket).unwrap();
    stream.write_all(b"status").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let value: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(value["status"], "error");
}

#[test]
fn poweroff_is_answered_first_then_the_action_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let (sender, receiver) = std::sync::mpsc::channel::<Instant>();
    let sender = std::sync::Mutex::new(sender);
    // A slow action: the client must have its answer and EOF long before
    // it ends, because the connection is closed before the action runs.
    let power_off: PowerOff = Arc::new(move || {
        std::thread::sleep(Duration::from_millis(1500));
        sender.lock().unwrap().send(Instant::now()).unwrap();
    });
    let probe = Arc::new(Probe {
        uptime_path: dir.path().join("uptime"),
        hostname_path: dir.path().join("hostname"),
        first_boot_marker: dir.path().join("marker"),
    });
    std::thread::spawn(move || serve_with(listener.incoming(), probe, power_off));

    // `ask` reads to EOF.
    let start = Instant::now();
    let answer = ask(&socket, b"poweroff\n");
    let answered = Instant::now();
    assert_eq!(answer, serde_json::json!({"status": "powering-off"}));
    assert!(
        answered - start < Duration::from_millis(1000),
        "{:?}",
        answered - start
    );
    let acted = receiver
        .recv_timeout(Duration::from_secs(5))
        .expect("no power-off");
    assert!(acted > answered);
    // Other requests do not act.
    assert_eq!(ask(&socket, b"health\n")["status"], "ok");
    assert_eq!(ask(&socket, b" PowerOff \r\n")["status"], "powering-off");
    receiver
        .recv_timeout(Duration::from_secs(5))
        .expect("second power-off");
    let error = ask(&socket, b"power off\n");
    assert_eq!(error["status"], "error");
    assert!(
        error["error"].as_str().unwrap().contains("\"poweroff\""),
        "{error}"
    );
    assert!(receiver.recv_timeout(Duration::from_millis(200)).is_err());
}

/// The agent binary under test, killed when the test ends, passed or not:
/// a process left behind would hold the test runner's output open.
struct AgentProcess(std::process::Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connects once the agent listens: the socket file appears at `bind`,
/// a moment before `listen`, when a connection is still refused.
fn connect_when_listening(socket: &Path) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match UnixStream::connect(socket) {
            Ok(stream) => return stream,
            Err(e) if Instant::now() < deadline => {
                assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ),
                    "connect: {e}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the agent never listened on {}: {e}", socket.display()),
        }
    }
}

#[test]
fn the_binary_serves_real_proc_facts_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let _agent = AgentProcess(
        Command::new(env!("CARGO_BIN_EXE_banger-vsock-agent"))
            .arg("--unix")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let health = ask_on(connect_when_listening(&socket), b"health\n");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(health["hostname"], hostname.trim());
    assert!(health["uptime"].as_f64().unwrap() > 0.0);
    assert_eq!(
        health["first_boot_pending"],
        Path::new(banger_vsock_agent::FIRST_BOOT_MARKER).exists()
    );
}

#[test]
fn bad_arguments_exit_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_banger-vsock-agent"))
        .args(["--port", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid port \"nope\""));
}

/// Installs a seccomp filter that makes `socket(AF_VSOCK, ...)` fail with
/// `EAFNOSUPPORT`, exactly what a kernel without the vsock module answers.
/// Runs in the forked child before exec.
fn deny_vsock() -> std::io::Result<()> {
    const SECCOMP_DATA_NR: u32 = 0;
    const SECCOMP_DATA_ARCH: u32 = 4;
    const SECCOMP_DATA_ARG0: u32 = 16;
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let filter = [
        stmt(load, SECCOMP_DATA_ARCH),
        jeq(AUDIT_ARCH_X86_64, 0, 5),
        stmt(load, SECCOMP_DATA_NR),
        jeq(libc::SYS_socket as u32, 0, 3),
        stmt(load, SECCOMP_DATA_ARG0),
        jeq(libc::AF_VSOCK as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::EAFNOSUPPORT as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with valid arguments; `prog` outlives the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
#[test]
fn exits_with_a_clear_message_when_vsock_is_unavailable() {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_banger-vsock-agent"));
    command.args(["--port", "5005"]);
    // SAFETY: the hook only calls prctl, which is async-signal-safe.
    unsafe { command.pre_exec(deny_vsock) };
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(
        stderr.contains("banger-vsock-agent: AF_VSOCK is unavailable")
            && stderr.contains("vmw_vsock_virtio_transport")
            && stderr.trim_end().ends_with("; exiting"),
        "{stderr}"
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn the_client_mode_says_which_agent_it_could_not_ask() {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_banger-vsock-agent"));
    command.args(["--request", "health", "--cid", "1", "--port", "5006"]);
    // SAFETY: the hook only calls prctl, which is async-signal-safe.
    unsafe { command.pre_exec(deny_vsock) };
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("banger-vsock-agent: asking the agent at 1:5006: "),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn the_client_mode_takes_no_unix_socket() {
    let out = Command::new(env!("CARGO_BIN_EXE_banger-vsock-agent"))
        .args(["--request", "health", "--unix", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--request and --unix exclude each other")
    );
}
