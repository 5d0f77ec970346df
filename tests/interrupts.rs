//! Interrupts leave nothing behind (issue 13 item 5): SIGINT, SIGTERM and
//! SIGHUP while `banger rootfs` writes its output or while a blob
//! downloads remove what was being written and exit 128 + the signal;
//! after a SIGKILL, which cannot be caught, the next command sweeps what
//! the dead process left and succeeds.

mod support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use banger_testkit::assert_fsck_clean;
use support::oci::{Comp, ImageSpec, LayerSpec};
use support::registry::TestRegistry;

struct Work {
    dir: tempfile::TempDir,
}

impl Work {
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
            .env_remove("BANGER_TEST_PAUSE_AT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// Starts banger paused at `point` (see `test_pause`), returning once it is there.
    fn paused_at(&self, args: &[&str], point: &str) -> (Child, mpsc::Receiver<String>) {
        let mut child = self
            .command(args)
            .env("BANGER_TEST_PAUSE_AT", point)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (paused_tx, paused_rx) = mpsc::channel();
        let (rest_tx, rest_rx) = mpsc::channel();
        let marker = format!("BANGER_TEST_PAUSED {point}");
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
            for line in lines.by_ref() {
                if line == marker {
                    let _ = paused_tx.send(());
                    break;
                }
            }
            let rest: Vec<String> = lines.collect();
            let _ = rest_tx.send(rest.join("\n"));
        });
        if paused_rx.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = child.kill();
            panic!("banger {args:?} never reached {point}");
        }
        (child, rest_rx)
    }

    /// Runs banger to success; returns what it printed.
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.command(args).stdout(Stdio::piped()).output().unwrap();
        assert!(
            out.status.success(),
            "banger {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

fn send(child: &Child, signal: i32) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a valid signal number on our own child.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Names in `dir`, sorted; empty when it does not exist.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The signals banger cleans up after, with their names.
const CLEANUP_SIGNALS: [(libc::c_int, &str); 3] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
];

/// Sends `signal` to a paused banger and checks that it exits 128 + the
/// signal, saying it removed what it was writing.
fn interrupt(child: &mut Child, stderr: &mpsc::Receiver<String>, signal: libc::c_int, name: &str) {
    send(child, signal);
    assert_eq!(child.wait().unwrap().code(), Some(128 + signal), "{name}");
    let stderr = stderr.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        stderr.contains(&format!(
            "interrupted by {name}; removed the files being written"
        )),
        "{name}: {stderr}"
    );
}

#[test]
fn sigint_sigterm_and_sighup_during_the_write_remove_the_output() {
    let layout = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/busybox");
    let source = format!("oci:{}:latest", layout.display());
    for (signal, name) in CLEANUP_SIGNALS {
        let work = Work::new();
        let out_dir = work.path("out");
        fs::create_dir(&out_dir).unwrap();
        let output = out_dir.join("rootfs.ext4");
        let args = [
            "rootfs",
            source.as_str(),
            "-o",
            output.to_str().unwrap(),
            "--modules",
            "none",
        ];
        let (mut child, stderr) = work.paused_at(&args, "output-created");
        assert_eq!(
            names(&out_dir).len(),
            1,
            "the temporary output exists while paused"
        );
        interrupt(&mut child, &stderr, signal, name);
        assert_eq!(names(&out_dir), Vec::<String>::new(), "{name} left files");
    }
}

/// `banger rootfs REFERENCE -o OUTPUT --no-agents`.
fn rootfs_args<'a>(reference: &'a str, output: &'a Path) -> [&'a str; 5] {
    [
        "rootfs",
        reference,
        "-o",
        output.to_str().unwrap(),
        "--no-agents",
    ]
}

/// A registry serving a small two-layer image as `repo:v1`.
fn registry_with_image(work: &Work, test: &str) -> Option<(TestRegistry, String)> {
    let registry = TestRegistry::start(test)?;
    let layout = work.path("layout");
    let layers = vec![
        LayerSpec::new(
            Comp::Gzip,
            &[
                ("etc/os-release", b"ID=test\n"),
                ("bin/tool", &[7u8; 300_000]),
            ],
        ),
        LayerSpec::new(Comp::Zstd, &[("etc/hostname", b"interrupted\n")]),
    ];
    let images = [ImageSpec::new("linux/amd64", layers)];
    let (_, reference) = registry.push_images(&layout, "repo", "v1", &images, &[]);
    Some((registry, reference))
}

#[test]
fn an_interrupted_download_leaves_no_temporary_blob() {
    let server = Work::new();
    let Some((_registry, reference)) =
        registry_with_image(&server, "an_interrupted_download_leaves_no_temporary_blob")
    else {
        return;
    };
    for (signal, name) in CLEANUP_SIGNALS {
        // A fresh cache each time: the download starts from nothing.
        let work = Work::new();
        let blobs = work.path("cache/oci/blobs/sha256");
        let output = work.path("rootfs.ext4");
        let args = rootfs_args(&reference, &output);
        let (mut child, stderr) = work.paused_at(&args, "downloading");
        assert!(
            names(&blobs).iter().any(|n| n.starts_with(".tmp-")),
            "{name}: a download is in progress: {:?}",
            names(&blobs)
        );
        interrupt(&mut child, &stderr, signal, name);
        let temporaries: Vec<String> = names(&blobs)
            .into_iter()
            .filter(|n| n.starts_with('.'))
            .collect();
        assert_eq!(temporaries, Vec::<String>::new(), "{name} left files");
        assert!(!output.exists(), "{name}");
        let hidden: Vec<String> = names(work.dir.path())
            .into_iter()
            .filter(|n| n.starts_with('.'))
            .collect();
        assert_eq!(hidden, Vec::<String>::new(), "{name} left files");
    }
}

#[test]
fn cache_prune_sweeps_a_killed_download_and_its_dry_run_only_lists_it() {
    let work = Work::new();
    let Some((_registry, reference)) = registry_with_image(
        &work,
        "cache_prune_sweeps_a_killed_download_and_its_dry_run_only_lists_it",
    ) else {
        return;
    };
    let blobs = work.path("cache/oci/blobs/sha256");
    let output = work.path("rootfs.ext4");
    let args = rootfs_args(&reference, &output);
    let (mut child, _) = work.paused_at(&args, "downloading");
    child.kill().unwrap(); // SIGKILL: nothing can clean up
    child.wait().unwrap();
    let before = names(&blobs);
    let left: Vec<&String> = before.iter().filter(|n| n.starts_with(".tmp-")).collect();
    assert_eq!(left.len(), 1, "SIGKILL left one download: {before:?}");
    let temp = left[0].clone();
    assert!(
        temp.starts_with(&format!(".tmp-{}-", child.id())),
        "{temp} names the killed process"
    );
    let size = fs::metadata(blobs.join(&temp)).unwrap().len();

    // A dry run lists the leftover and changes nothing.
    let out = work.ok(&["cache", "prune", "--dry-run", "--json"]);
    let dry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        dry["temporaries"],
        serde_json::json!([{"name": temp, "size": size}]),
        "{dry}"
    );
    assert_eq!(names(&blobs), before, "the dry run deleted nothing");
    let out = work.ok(&["cache", "prune", "--dry-run"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!(
            "would delete {temp} ({size} bytes, a download whose banger is gone)\n"
        )),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(" and 1 temporary file, "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(names(&blobs), before, "the dry run deleted nothing");

    // The real prune removes it and says so.
    let out = work.ok(&["cache", "prune"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!(
            "deleted {temp} ({size} bytes, a download whose banger is gone)\n"
        )),
        "{stdout}"
    );
    let after = names(&blobs);
    assert!(
        !after.contains(&temp),
        "prune swept the download: {after:?}"
    );
    assert!(after.iter().all(|n| !n.starts_with('.')), "{after:?}");
}

#[test]
fn after_a_sigkill_the_next_pull_sweeps_what_was_left() {
    let work = Work::new();
    let Some((_registry, reference)) =
        registry_with_image(&work, "after_a_sigkill_the_next_pull_sweeps_what_was_left")
    else {
        return;
    };
    let blobs = work.path("cache/oci/blobs/sha256");
    let output = work.path("rootfs.ext4");
    let args = rootfs_args(&reference, &output);
    let (mut child, _) = work.paused_at(&args, "downloading");
    child.kill().unwrap(); // SIGKILL: nothing can clean up
    child.wait().unwrap();
    assert!(
        names(&blobs).iter().any(|n| n.starts_with(".tmp-")),
        "SIGKILL left the download: {:?}",
        names(&blobs)
    );

    // The same at the write: the temporary output stays beside the target.
    let (mut child, _) = work.paused_at(&args, "output-created");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(names(work.dir.path())
        .iter()
        .any(|n| n.starts_with(".banger-")));

    work.ok(&args);
    assert_fsck_clean(&output);
    let left: Vec<String> = names(&blobs)
        .into_iter()
        .chain(names(work.dir.path()))
        .filter(|n| n.starts_with(".tmp-") || n.starts_with(".banger-"))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "the next pull swept them");
}

#[test]
fn an_interrupted_pull_removes_its_staging_directory() {
    let work = Work::new();
    let layout = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/busybox");
    let source = format!("oci:{}:latest", layout.display());
    let args = ["image", "pull", source.as_str(), "--modules", "none"];
    let (mut child, _) = work.paused_at(&args, "written");
    let staging = work.path("state/images/.staging");
    assert_eq!(names(&staging).len(), 1, "the pull is staged");
    send(&child, libc::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert_eq!(names(&staging), Vec::<String>::new());
    assert_eq!(names(&work.path("state/images")), [".staging", ".trash"]);
}
