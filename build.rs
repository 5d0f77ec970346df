//! Builds the guest binaries of `agent/` (crate `banger-vsock-agent`): the
//! agent `banger-vsock-agent` and the PID 1 `banger-init`, as static x86-64
//! ELFs copied to `OUT_DIR` so `src/inject.rs` can embed them with
//! `include_bytes!`.
//!
//! They must run on any guest libc (glibc or musl) or none, so they are
//! linked with `+crt-static`, which on `x86_64-unknown-linux-gnu` gives a
//! self-contained static-pie. An explicit `--target` keeps that flag off
//! build scripts and proc macros. The nested cargo uses its own target
//! directory under `OUT_DIR`: sharing the outer one would wait forever on
//! the lock the outer cargo holds.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const AGENT_PACKAGE: &str = "banger-vsock-agent";
/// The binaries of that package, each copied to `OUT_DIR` under its name.
const GUEST_BINARIES: [&str; 2] = ["banger-vsock-agent", "banger-init"];
const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Variables of the outer build that must not leak into the nested cargo:
/// they would redirect its output, change its flags (clippy's wrapper, the
/// outer RUSTFLAGS) or describe the outer package.
const INHERITED_VARS: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
];
const INHERITED_PREFIXES: &[&str] = &[
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_PROFILE_",
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for path in ["agent/src", "agent/Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={path}");
    }
    emit_git_commit(&manifest_dir);

    let target_dir = out_dir.join("agent-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&manifest_dir)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            AGENT_PACKAGE,
            "--bins",
        ])
        .args(["--target", GUEST_TARGET])
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if INHERITED_VARS.contains(&key) || INHERITED_PREFIXES.iter().any(|p| key.starts_with(p)) {
            command.env_remove(key);
        }
    }
    command
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // A small binary: no debug info, no unwinding tables to speak of.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");

    let status = command.status().unwrap_or_else(|e| {
        panic!("banger build.rs: could not run cargo to build {AGENT_PACKAGE}: {e}")
    });
    if !status.success() {
        panic!(
            "banger build.rs: building the guest binaries failed ({status}). They are built with \
             `cargo build --release -p {AGENT_PACKAGE} --bins --target {GUEST_TARGET}` and \
             RUSTFLAGS=\"-C target-feature=+crt-static\"; if the target is missing, run \
             `rustup target add {GUEST_TARGET}`. See the cargo output above."
        );
    }
    let built = target_dir.join(GUEST_TARGET).join("release");
    for binary in GUEST_BINARIES {
        copy(&built.join(binary), &out_dir.join(binary));
    }
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!(
            "banger build.rs: cannot copy {} to {}: {e}",
            from.display(),
            to.display()
        );
    }
}

/// Sets `BANGER_GIT_COMMIT` for `banger --version`: the checkout's commit,
/// or `unknown` outside a git checkout (a crate tarball). The build reruns
/// when HEAD moves: HEAD itself, the branch it names, or packed refs.
fn emit_git_commit(manifest_dir: &Path) {
    let git_dir = manifest_dir.join(".git");
    let head = git_dir.join("HEAD");
    println!("cargo:rerun-if-changed={}", head.display());
    println!(
        "cargo:rerun-if-changed={}",
        git_dir.join("packed-refs").display()
    );
    if let Some(branch) = std::fs::read_to_string(&head)
        .ok()
        .and_then(|text| text.strip_prefix("ref: ").map(|r| r.trim().to_string()))
    {
        println!("cargo:rerun-if-changed={}", git_dir.join(branch).display());
    }
    let commit = Command::new("git")
        .arg("-C")
        .arg(manifest_dir)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_string())
        .filter(|commit| !commit.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=BANGER_GIT_COMMIT={commit}");
}
