//! A real registry for tests: Debian's `docker-registry` on a free loopback port, fed
//! with `skopeo copy`. Missing binaries make tests skip loudly, never pass silently.

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn have(binary: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True once `GET /v2/` answers 200.
fn probe_v2(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let mut reply = String::new();
    stream
        .write_all(b"GET /v2/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_ok()
        && stream.read_to_string(&mut reply).is_ok()
        && reply.starts_with("HTTP/1.")
        && reply[8..].starts_with(" 200")
}

/// A running `docker-registry serve`, killed on drop.
pub struct TestRegistry {
    child: Option<Child>,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts a registry, or returns `None` (after saying why on stderr) when
    /// `docker-registry` or `skopeo` is not installed.
    pub fn start(test: &str) -> Option<TestRegistry> {
        for binary in ["docker-registry", "skopeo"] {
            if !have(binary) {
                eprintln!("SKIPPED {test}: `{binary}` is not installed (apt-get install docker-registry skopeo)");
                return None;
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("write config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let registry = TestRegistry {
            child: Some(child),
            port,
            _dir: dir,
        };
        registry.wait_ready();
        Some(registry)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if probe_v2(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not come up on port {}", self.port);
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes `layout:tag` to `repo:tag` with extra skopeo flags (`--format v2s2`, `--all`).
    pub fn push(&self, layout: &Path, tag: &str, repo: &str, extra: &[&str]) {
        let output = Command::new("skopeo")
            .args(["copy", "--insecure-policy", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo}:{tag}", self.host()))
            .output()
            .expect("run skopeo");
        assert!(
            output.status.success(),
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Stops the registry now (to prove later resolves work from the cache).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
