//! Progress as a person sees it: bars drawn on a real pseudo-terminal (made
//! by util-linux `script`), plain lines when stderr is a pipe, nothing with
//! `--quiet`. Pulls come from a real registry on loopback.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::oci::{Comp, ImageSpec, LayerSpec};
use support::registry::TestRegistry;

/// One layer of 32 MiB of incompressible bytes, so that the pull takes long
/// enough to be drawn whatever compression skopeo applies on the way.
fn big_layer() -> LayerSpec {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..32 << 20)
        .map(|_| {
            // xorshift64: cheap bytes no compressor can shrink.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    LayerSpec::new(Comp::Gzip, &[("blob.bin", &data)])
}

/// The layer blob as the registry serves it: (digest, size), read from the
/// manifest by skopeo, not by banger.
fn served_layer(reference: &str) -> (String, u64) {
    let output = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .expect("run skopeo");
    assert!(output.status.success(), "skopeo inspect failed");
    let manifest: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("manifest JSON");
    let layer = &manifest["layers"][0];
    (
        layer["digest"].as_str().expect("digest").to_string(),
        layer["size"].as_u64().expect("size"),
    )
}

/// Pushes the one-layer image; returns its reference and its layer blob's
/// short digest (`sha256:` and 12 hex digits) and size.
fn pushed_image(registry: &TestRegistry, dir: &Path) -> (String, String, u64) {
    let (_, reference) = registry.push_images(
        &dir.join("layout"),
        "test/progress",
        "v1",
        &[ImageSpec::new("linux/amd64", vec![big_layer()])],
        &[],
    );
    let (digest, size) = served_layer(&reference);
    let short = digest["sha256:".len()..][..12].to_string();
    (reference, format!("sha256:{short}"), size)
}

/// Where a run under `dir` keeps its cache and state.
fn dirs(dir: &Path) -> [(&'static str, PathBuf); 2] {
    [
        ("BANGER_CACHE_DIR", dir.join("cache")),
        ("BANGER_STATE_DIR", dir.join("state")),
    ]
}

/// `program` with the environment of a run under `dir`.
fn command_in(dir: &Path, program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .envs(dirs(dir))
        .env_remove("BANGER_TEST_PAUSE_AT")
        .env_remove("BANGER_CATALOG")
        .stdin(Stdio::null());
    command
}

/// Runs `banger ARGS` with stdin, stdout and stderr on a pseudo-terminal of
/// 120 columns; returns everything the terminal received.
fn on_a_terminal(dir: &Path, args: &[&str]) -> (Output, String) {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_banger"))
        .chain(args.iter().copied())
        .map(|word| format!("'{}'", word.replace('\'', r"'\''")))
        .collect();
    let shell = format!("stty cols 120 rows 40; exec {}", quoted.join(" "));
    let output = command_in(dir, "script")
        .args([
            "--quiet",
            "--flush",
            "--return",
            "--command",
            &shell,
            "/dev/null",
        ])
        .output()
        .expect("run script (util-linux)");
    let screen = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, screen)
}

/// The text of a terminal stream without its escape sequences.
fn without_escapes(screen: &str) -> String {
    let mut text = String::new();
    let mut chars = screen.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            text.push('\n');
        } else if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (0x40..=0x7e).
            if chars.next_if_eq(&'[').is_some() {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            text.push(c);
        }
    }
    text
}

#[test]
fn a_pull_on_a_terminal_draws_the_layer_with_bytes_of_its_size_and_speed() {
    let Some(registry) = TestRegistry::start("progress_on_a_terminal") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let (reference, digest, size) = pushed_image(&registry, dir.path());
    let out = dir.path().join("out.ext4");
    let out = out.to_str().expect("utf-8");
    let (output, screen) = on_a_terminal(
        dir.path(),
        &["rootfs", &reference, "-o", out, "--no-agents"],
    );
    let text = without_escapes(&screen);
    assert!(output.status.success(), "{text}");
    for expected in [
        digest,
        "layer 1/1".to_string(),
        // indicatif's binary units, two decimals: the bar's total.
        format!("/{:.2} MiB", size as f64 / f64::from(1 << 20)),
        "MiB/s".to_string(),
        format!("wrote {out}"),
    ] {
        assert!(
            text.contains(&expected),
            "{expected:?} not on the terminal:\n{text}"
        );
    }
    // Bars redraw in place: the terminal got cursor movements, not a log.
    assert!(
        screen.contains("\u{1b}["),
        "no escape sequences: {screen:?}"
    );
}

#[test]
fn quiet_draws_nothing_on_a_terminal() {
    let Some(registry) = TestRegistry::start("progress_quiet") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let (reference, _, _) = pushed_image(&registry, dir.path());
    let out = dir.path().join("out.ext4");
    let (output, screen) = on_a_terminal(
        dir.path(),
        &[
            "rootfs",
            &reference,
            "-o",
            out.to_str().expect("utf-8"),
            "--no-agents",
            "--quiet",
        ],
    );
    assert!(output.status.success(), "{screen}");
    assert_eq!(screen, "", "--quiet printed on the terminal");
    assert!(out.exists());
}

#[test]
fn a_pull_off_a_terminal_prints_plain_lines() {
    let Some(registry) = TestRegistry::start("progress_plain_lines") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let (reference, digest, size) = pushed_image(&registry, dir.path());
    let output = command_in(dir.path(), env!("CARGO_BIN_EXE_banger"))
        .args(["image", "pull", &reference, "--name", "p", "--no-agents"])
        .output()
        .expect("run banger");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let position = |line: &str| {
        lines
            .iter()
            .position(|l| *l == line)
            .unwrap_or_else(|| panic!("{line:?} missing from:\n{stderr}"))
    };
    let started = position(&format!("downloading {digest} ({size} bytes)"));
    let downloaded = position(&format!("downloaded  {digest} ({size} bytes)"));
    let writing = position("writing layer 1/1");
    let metadata = position("writing metadata");
    // The layer is written while it downloads: the write may start before
    // the download's first line, and end before its last.
    assert!(
        started < downloaded && writing < metadata,
        "lines out of order:\n{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "escape sequences off a terminal"
    );
}
