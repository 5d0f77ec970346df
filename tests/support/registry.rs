//! A real registry for tests: Debian's `docker-registry` on a free loopback port, fed
//! with `skopeo copy`. Missing binaries make tests skip loudly, never pass silently.

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::oci::{build_layout, ImageSpec, Layout};

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

    /// Builds an OCI layout of `images` (more than one makes an index) in `dir`,
    /// pushes it as `repo:tag` with extra skopeo `flags`, and returns the layout
    /// and the reference to pull, `HOST/repo:tag`. Every test's set-up.
    pub fn push_images(
        &self,
        dir: &Path,
        repo: &str,
        tag: &str,
        images: &[ImageSpec],
        flags: &[&str],
    ) -> (Layout, String) {
        let layout = build_layout(dir, tag, images);
        self.push(&layout.dir, tag, repo, flags);
        (layout, format!("{}/{repo}:{tag}", self.host()))
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

impl TestRegistry {
    /// Pushes an arbitrary OCI artifact (blobs, then the manifest) over the
    /// distribution API, as skopeo cannot copy non-image artifacts. Returns the
    /// manifest's digest.
    pub fn push_artifact(
        &self,
        repo: &str,
        tag: &str,
        artifact_type: &str,
        config: (&[u8], &str),
        layers: &[(&[u8], &str)],
    ) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::new();
            let base = format!("http://{}/v2/{repo}", self.host());
            let push = |bytes: Vec<u8>| {
                let (client, base) = (client.clone(), base.clone());
                async move {
                    let digest = super::oci::sha256(&bytes);
                    let started = client
                        .post(format!("{base}/blobs/uploads/"))
                        .send()
                        .await
                        .expect("start upload");
                    assert_eq!(started.status().as_u16(), 202, "start upload");
                    let location = started.headers()["location"]
                        .to_str()
                        .expect("location")
                        .to_string();
                    let location = if location.starts_with('/') {
                        format!("http://{}{location}", self.host())
                    } else {
                        location
                    };
                    let separator = if location.contains('?') { '&' } else { '?' };
                    let size = bytes.len();
                    let done = client
                        .put(format!("{location}{separator}digest={digest}"))
                        .header("Content-Type", "application/octet-stream")
                        .body(bytes)
                        .send()
                        .await
                        .expect("upload");
                    assert_eq!(done.status().as_u16(), 201, "upload {digest}");
                    (digest, size)
                }
            };
            let (config_digest, config_size) = push(config.0.to_vec()).await;
            let mut descriptors = Vec::new();
            for (bytes, media_type) in layers {
                let (digest, size) = push(bytes.to_vec()).await;
                descriptors.push(
                    serde_json::json!({"mediaType": media_type, "digest": digest, "size": size}),
                );
            }
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": artifact_type,
                "config": {"mediaType": config.1, "digest": config_digest, "size": config_size},
                "layers": descriptors,
            }))
            .expect("json");
            let digest = super::oci::sha256(&manifest);
            let put = client
                .put(format!("{base}/manifests/{tag}"))
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(manifest)
                .send()
                .await
                .expect("put manifest");
            assert_eq!(
                put.status().as_u16(),
                201,
                "put manifest: {:?}",
                put.text().await
            );
            digest
        })
    }
}
