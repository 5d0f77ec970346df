//! README's two set-up commands on a bare root shell (no `sudo` on PATH,
//! no `SUDO_USER`) and as a normal user who has `sudo`.
//!
//! The first command is `cargo run --release -- image pull
//! oci:examples/busybox:latest`; cargo cannot run inside `cargo test` (it
//! holds the build lock), so the test runs the same command line on the
//! binary this build made. The second is `scripts/test`, run here with
//! `--deps-only`, which stops after installing the oracles.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use banger_testkit::skip::{is_root, Skip};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A directory of links to every command on `PATH` but `sudo`: a root
/// shell on a fresh Debian, where sudo is not installed.
fn path_without_sudo(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir(&bin).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo_bin = PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo/bin");
    for entry_dir in std::env::split_paths(&path).chain([cargo_bin]) {
        let Ok(entries) = fs::read_dir(&entry_dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let target = bin.join(&name);
            if name == "sudo" || target.exists() {
                continue;
            }
            symlink(entry.path(), target).unwrap();
        }
    }
    bin
}

fn output_text(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn both_commands_work_as_root_without_sudo() {
    if !is_root() {
        return Skip("the bare root shell case needs root".into()).report();
    }
    let work = tempfile::tempdir().unwrap();
    let bin = path_without_sudo(work.path());
    assert!(!bin.join("sudo").exists());
    let home = std::env::var("HOME").unwrap();

    let test = Command::new(Path::new(REPO).join("scripts/test"))
        .arg("--deps-only")
        .env_clear()
        .env("PATH", &bin)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "scripts/test --deps-only: {}",
        output_text(&test)
    );
    let stderr = String::from_utf8_lossy(&test.stderr);
    assert!(!stderr.contains("sudo"), "{}", output_text(&test));

    let state = work.path().join("state");
    let pull = Command::new(env!("CARGO_BIN_EXE_banger"))
        .args(["image", "pull", "oci:examples/busybox:latest"])
        .current_dir(REPO)
        .env_clear()
        .env("PATH", &bin)
        .env("HOME", work.path())
        .env("BANGER_STATE_DIR", &state)
        .env("BANGER_CACHE_DIR", work.path().join("cache"))
        .output()
        .unwrap();
    assert!(pull.status.success(), "image pull: {}", output_text(&pull));
    let rootfs = state.join("images/busybox-latest/rootfs.ext4");
    banger_testkit::assert_fsck_clean(&rootfs);
}

/// A copy of `scripts/test` that user `nobody` can run, with a `sudo` that
/// records how it was called instead of becoming root.
fn sandbox_for_nobody(dir: &Path, with_sudo: bool) -> (PathBuf, PathBuf) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
    let scripts = dir.join("scripts");
    fs::create_dir(&scripts).unwrap();
    let script = scripts.join("test");
    fs::copy(Path::new(REPO).join("scripts/test"), &script).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("fake-bin");
    fs::create_dir(&bin).unwrap();
    let record = dir.join("sudo-args");
    if with_sudo {
        let sudo = bin.join("sudo");
        fs::write(
            &sudo,
            format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n", record.display()),
        )
        .unwrap();
        fs::set_permissions(&sudo, fs::Permissions::from_mode(0o755)).unwrap();
    }
    (script, record)
}

fn run_as_nobody(script: &Path, bin: &Path) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(script)
        .arg("--deps-only")
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", "/nonexistent")
        .output()
        .unwrap()
}

#[test]
fn a_normal_user_goes_through_sudo_or_is_told_to_be_root() {
    if !is_root() {
        return Skip("switching to user nobody needs root".into()).report();
    }
    let work = tempfile::tempdir().unwrap();
    let (script, record) = sandbox_for_nobody(work.path(), true);
    let out = run_as_nobody(&script, &work.path().join("fake-bin"));
    assert!(out.status.success(), "{}", output_text(&out));
    let recorded = fs::read_to_string(&record).unwrap();
    let path = format!(
        "PATH={}:/usr/bin:/bin",
        work.path().join("fake-bin").display()
    );
    assert_eq!(
        recorded.lines().collect::<Vec<_>>(),
        [
            "--preserve-env=HOME,CARGO_HOME,RUSTUP_HOME,CARGO_TARGET_DIR,FUZZ_SECONDS",
            "env",
            path.as_str(),
            script.to_str().unwrap(),
            "--deps-only",
        ]
    );

    let work = tempfile::tempdir().unwrap();
    let (script, record) = sandbox_for_nobody(work.path(), false);
    let out = run_as_nobody(&script, &work.path().join("fake-bin"));
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "scripts/test: needs root (loop mounts, device nodes, debootstrap, qemu); run it as root\n"
    );
    assert!(!record.exists());
}
