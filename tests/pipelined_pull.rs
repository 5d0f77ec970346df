//! Cold pulls write the image while its layers still download (issue 12
//! item 1): the pipelining itself, and the faults of a layer that arrives
//! while it is being written — a wrong digest, a truncated blob, one longer
//! than its descriptor, a registry that dies mid-layer. Each fails the
//! command with nothing written, published or cached, and the next pull
//! from a good registry succeeds.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use banger_testkit::assert_fsck_clean;
use support::cache_entries;
use support::fake::{mangling_registry, Content, FakeServer, Reply, REPO};
use support::oci::{build_layout, Comp, ImageSpec, LayerSpec, Layout};

/// A two-layer image whose second layer is big enough to be cut mid-way
/// (incompressible bytes, so gzip keeps it big).
fn image(dir: &Path) -> Layout {
    let mut noise = vec![0u8; 600_000];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for byte in &mut noise {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    build_layout(
        dir,
        "v1",
        &[ImageSpec::new(
            "linux/amd64",
            vec![
                LayerSpec::new(
                    Comp::Gzip,
                    &[("etc/os-release", b"ID=test\n"), ("etc/a", b"layer one")],
                ),
                LayerSpec::new(Comp::Gzip, &[("usr/noise", &noise)]),
            ],
        )],
    )
}

/// One banger installation (cache and state) in a temp dir.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_banger"));
        command
            .args(args)
            .env("BANGER_CACHE_DIR", self.path("cache"))
            .env("BANGER_STATE_DIR", self.path("state"))
            .env("HOME", self.path("home"))
            .env_remove("BANGER_TEST_PAUSE_AT")
            .env_remove("BANGER_TEST_RESUME_FILE")
            .env_remove("BANGER_CATALOG")
            .env_remove("BANGER_KERNEL_CATALOG")
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CACHE_HOME")
            .stdin(Stdio::null());
        command
    }

    /// Runs `banger ARGS`, failing the test (and killing banger) if it has
    /// not ended within two minutes: a reader waiting on a download that
    /// never ends must fail here, not hang the suite.
    fn run(&self, args: &[&str]) -> Output {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(child.wait_with_output()));
        match ended.recv_timeout(Duration::from_secs(120)) {
            Ok(output) => output.unwrap(),
            Err(_) => {
                // SAFETY: kill(2) on the child this call spawned and has not reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("banger {args:?} still ran after 120 s");
            }
        }
    }

    /// `banger rootfs` of `server`'s image into `out/<name>`.
    fn rootfs(&self, server: &FakeServer, name: &str) -> (Output, PathBuf) {
        let out = self.path("out");
        std::fs::create_dir_all(&out).unwrap();
        let output = out.join(name);
        let reference = format!("{}/{REPO}:v1", server.addr);
        let args = [
            "rootfs",
            &reference,
            "-o",
            output.to_str().unwrap(),
            "--no-agents",
        ];
        (self.run(&args), output)
    }

    /// `banger image pull` of `server`'s image as `name`.
    fn pull(&self, server: &FakeServer, name: &str) -> Output {
        let reference = format!("{}/{REPO}:v1", server.addr);
        self.run(&["image", "pull", &reference, "--name", name, "--no-agents"])
    }

    /// Nothing of a failed run is left: no output or temporary file beside
    /// it, no cache entry for the bad blob, no temporary blob.
    #[track_caller]
    fn assert_nothing_left(&self, layout: &Layout) {
        let out: Vec<_> = std::fs::read_dir(self.path("out"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(out.is_empty(), "left in the output directory: {out:?}");
        let entries = cache_entries(&self.path("cache"));
        let bad = &layout.images[0].layer_digests[1][7..];
        assert!(
            !entries.iter().any(|e| e == bad),
            "bad blob cached: {entries:?}"
        );
        assert!(
            !entries.iter().any(|e| e.starts_with(".tmp")),
            "temporary blob left: {entries:?}"
        );
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `rootfs` and `image pull` against a registry mangling the second
/// layer, expecting both to fail mentioning `needles`, leave nothing, and
/// the same commands to succeed afterwards against a good registry.
fn fails_cleanly_then_recovers(
    mangle: impl Fn(Reply, usize) -> Reply + Send + Sync + 'static,
    needles: &[&str],
) {
    let work = tempfile::tempdir().unwrap();
    let layout = image(&work.path().join("layout"));
    let bad = mangling_registry(&layout, mangle);
    let env = Env::new();
    let digest = &layout.images[0].layer_digests[1];

    let (output, file) = env.rootfs(&bad, "rootfs.ext4");
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(!file.exists());
    for needle in needles.iter().chain([&digest.as_str()]) {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
    env.assert_nothing_left(&layout);

    let output = env.pull(&bad, "img");
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
    env.assert_nothing_left(&layout);
    let show = env.run(&["image", "show", "img"]);
    assert_eq!(show.status.code(), Some(3), "no image was published");

    let good = mangling_registry(&layout, |reply, _| reply);
    let (output, file) = env.rootfs(&good, "rootfs.ext4");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_fsck_clean(&file);
    let output = env.pull(&good, "img");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_fsck_clean(&env.path("state/images/img/rootfs.ext4"));
    assert!(cache_entries(&env.path("cache")).contains(&digest[7..].to_string()));
}

#[test]
fn a_layer_with_a_wrong_digest_fails_the_pull() {
    fails_cleanly_then_recovers(
        |mut reply, _| {
            let last = reply.body.len() - 1;
            reply.body[last] ^= 0xff;
            reply
        },
        &["content hashes to", "corrupt"],
    );
}

#[test]
fn a_truncated_layer_fails_the_pull() {
    // Complete as HTTP, shorter than its descriptor.
    fails_cleanly_then_recovers(
        |mut reply, _| {
            reply.body.truncate(reply.body.len() - 100);
            reply
        },
        &["bytes, received", "corrupt"],
    );
}

#[test]
fn a_layer_longer_than_its_descriptor_fails_the_pull() {
    fails_cleanly_then_recovers(
        |mut reply, _| {
            reply.body.extend_from_slice(&[0u8; 4096]);
            reply
        },
        &["bytes, received", "corrupt"],
    );
}

#[test]
fn a_registry_dying_mid_layer_fails_the_pull() {
    // Every attempt (the first and each resumption) breaks off half way.
    fails_cleanly_then_recovers(
        |mut reply, _| {
            reply.cut_at = Some(reply.body.len() / 2);
            reply
        },
        &["could not fetch", "/blobs/"],
    );
}

#[test]
fn a_registry_refusing_to_resume_fails_the_pull() {
    // The first body breaks off; the resumption (a `Range` request) is refused.
    fails_cleanly_then_recovers(
        |mut reply, n| {
            if n == 0 {
                reply.cut_at = Some(reply.body.len() / 2);
                reply
            } else {
                Reply::new(416, "range not satisfiable")
            }
        },
        &["416", "range not satisfiable"],
    );
}

#[test]
fn a_download_broken_off_resumes_where_it_stopped() {
    let work = tempfile::tempdir().unwrap();
    let layout = image(&work.path().join("layout"));
    let ranges = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = ranges.clone();
    let content = Content::from_layout(&layout, "v1");
    let target = layout.images[0].layer_digests[1].clone();
    let wanted = target.clone();
    let count = AtomicUsize::new(0);
    // Honours `Range`, and breaks the first two bodies off.
    let server = FakeServer::start("127.0.0.1", move |request| {
        let mut reply = content.reply(request);
        if !request.path().ends_with(&wanted) {
            return reply;
        }
        let range = request.headers.get("range").cloned();
        seen.lock().unwrap().push(range.clone());
        let total = reply.body.len();
        if let Some(from) = range.and_then(|r| {
            r.strip_prefix("bytes=")?
                .strip_suffix('-')?
                .parse::<usize>()
                .ok()
        }) {
            reply.body.drain(..from);
            reply.status = 206;
            reply = reply.header(
                "Content-Range",
                &format!("bytes {from}-{}/{total}", total - 1),
            );
        }
        if count.fetch_add(1, Ordering::SeqCst) < 2 {
            reply.cut_at = Some(total / 3);
        }
        reply
    });
    let env = Env::new();
    let (output, file) = env.rootfs(&server, "rootfs.ext4");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_fsck_clean(&file);
    // Each attempt asks for the rest: 1/3 arrived, then 1/3 more.
    let size = std::fs::metadata(layout.dir.join("blobs/sha256").join(&target[7..]))
        .unwrap()
        .len();
    let third = size / 3;
    let expected = [
        None,
        Some(format!("bytes={third}-")),
        Some(format!("bytes={}-", 2 * third)),
    ];
    assert_eq!(*ranges.lock().unwrap(), expected);
}

#[test]
fn the_first_layer_is_written_while_the_second_downloads() {
    let work = tempfile::tempdir().unwrap();
    let layout = image(&work.path().join("layout"));
    let writing = Arc::new(AtomicBool::new(false));
    let started = writing.clone();
    // The second layer is served only once banger says it writes the first
    // (or after a generous timeout, so a regression fails on the order of
    // the lines rather than hanging).
    let server = mangling_registry(&layout, move |reply, _| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !started.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        reply
    });
    // `image pull` logs its progress off a terminal (`rootfs` does not).
    let env = Env::new();
    let reference = format!("{}/{REPO}:v1", server.addr);
    let mut child = env
        .command(&["image", "pull", &reference, "--name", "p", "--no-agents"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "writing layer 1/2" {
            writing.store(true, Ordering::SeqCst);
        }
        lines.push(line);
    }
    assert!(child.wait().unwrap().success(), "{lines:#?}");
    let short = &layout.images[0].layer_digests[1][..19];
    let position = |wanted: &str| lines.iter().position(|l| l.starts_with(wanted));
    let (Some(written), Some(downloaded)) = (
        position("writing layer 1/2"),
        position(&format!("downloaded  {short}")),
    ) else {
        panic!("missing lines: {lines:#?}");
    };
    assert!(
        written < downloaded,
        "the write waited for the download: {lines:#?}"
    );
    assert_fsck_clean(&env.path("state/images/p/rootfs.ext4"));
}
