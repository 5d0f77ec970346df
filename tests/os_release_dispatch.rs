//! `banger::os_release::package_manager` against its oracle: the real
//! `assets/first-boot.sh` run under `dash` with a fake root. With an empty
//! PATH the script logs the family it picked ("uses apt") and then fails to
//! install, or exits 2 when it does not know the distribution.

use std::path::{Path, PathBuf};
use std::process::Command;

use banger::os_release::{package_manager, OsRelease};
use proptest::prelude::*;

const FIRST_BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/first-boot.sh");

fn dash() -> Option<PathBuf> {
    ["/usr/bin/dash", "/bin/dash"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The family first-boot.sh picks for `os_release`, or `None` if it gives up.
fn script_family(dash: &Path, os_release: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/banger")).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(root.join("var/lib/banger/first-boot-pending"), "").unwrap();
    std::fs::write(root.join("etc/os-release"), os_release).unwrap();
    let out = Command::new(dash)
        .arg(FIRST_BOOT)
        .env_clear()
        .env("PATH", &bin)
        .env("BANGER_ROOT", &root)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(2) => {
            assert!(stderr.contains("unsupported distribution"), "{stderr}");
            None
        }
        Some(1) => {
            let family = stderr
                .split(" uses ")
                .nth(1)
                .and_then(|rest| rest.split(';').next())
                .unwrap_or_else(|| panic!("no family in {stderr}"));
            Some(family.to_owned())
        }
        other => panic!("unexpected exit {other:?}: {stderr}"),
    }
}

fn rust_family(os_release: &str) -> Option<String> {
    package_manager(&OsRelease::parse(os_release)).map(|pm| pm.name().to_owned())
}

/// Every ID and ID_LIKE case of tests/guest_scripts.rs, plus unknown ones.
#[test]
fn dispatch_agrees_with_first_boot_for_every_known_id() {
    let Some(dash) = dash() else {
        eprintln!("SKIPPING: dash is not installed (apt-get install dash)");
        return;
    };
    let ids = [
        "debian",
        "ubuntu",
        "kali",
        "raspbian",
        "linuxmint",
        "pop",
        "alpine",
        "fedora",
        "rhel",
        "centos",
        "rocky",
        "almalinux",
        "arch",
        "archlinux",
        "manjaro",
        "opensuse",
        "opensuse-leap",
        "opensuse-tumbleweed",
        "suse",
        "sles",
        "nixos",
        "gentoo",
        "Debian",
        "debian-ish",
        "xopensuse",
    ];
    let mut files: Vec<String> = Vec::new();
    for id in ids {
        files.push(format!("NAME=\"Some Linux\"\nID={id}\nVERSION_ID=1\n"));
        files.push(format!("ID=\"{id}\"\n"));
        files.push(format!("ID='{id}'"));
    }
    files.extend(
        [
            "ID=neon\nID_LIKE=\"ubuntu debian\"\n",
            "ID=ol\nID_LIKE=\"fedora\"\n",
            "ID=\"virtuozzo\"\nID_LIKE=\"rhel centos fedora\"\n",
            "ID=endeavouros\nID_LIKE=arch\n",
            "ID=postmarketos\nID_LIKE=alpine\n",
            "ID=mylinux\nID_LIKE=\"unknownbase suse\"\n",
            "ID_LIKE=debian\nID=fedora\n",
            "ID=nixos\nID_LIKE=\"\"\n",
            "ID_LIKE=\"gentoo arch\"\n",
            "",
        ]
        .map(str::to_owned),
    );
    let mut known = 0;
    for file in &files {
        let script = script_family(&dash, file);
        known += usize::from(script.is_some());
        assert_eq!(rust_family(file), script, "for {file:?}");
    }
    assert_eq!(known, 20 * 3 + 8, "the script recognised an unexpected set");
}

/// A value as a distribution writes it: unquoted if it is one plain word,
/// else double- or single-quoted.
fn quoted(words: &[String], style: u8) -> String {
    let value = words.join(" ");
    match style {
        0 if words.len() == 1 && !value.is_empty() => value,
        0 | 1 => format!("\"{value}\""),
        _ => format!("'{value}'"),
    }
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "debian",
            "ubuntu",
            "alpine",
            "fedora",
            "rhel",
            "arch",
            "suse",
            "opensuse-leap",
            "nixos",
            "gentoo",
            "void",
            "Debian",
        ])
        .prop_map(str::to_owned),
        "[a-z0-9._-]{1,10}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Well-formed files (each key once, plain identifiers) in random order,
    /// with comments and other keys around: the Rust dispatch and the
    /// script always agree.
    #[test]
    fn dispatch_agrees_with_first_boot_on_generated_files(
        id in prop::option::of((prop::collection::vec(word(), 1..3), 0u8..3)),
        like in prop::option::of((prop::collection::vec(word(), 0..4), 0u8..3)),
        id_first in any::<bool>(),
        extra in prop::collection::vec(("[A-Z][A-Z_]{0,8}", "[a-zA-Z0-9 ._/-]{0,12}"), 0..3),
    ) {
        let Some(dash) = dash() else {
            return Ok(());
        };
        let mut lines = vec!["# generated".to_owned(), String::new()];
        for (key, value) in extra.iter().filter(|(k, _)| k != "ID" && k != "ID_LIKE") {
            lines.push(format!("{key}=\"{value}\""));
        }
        let mut ids = Vec::new();
        if let Some((words, style)) = &id {
            ids.push(format!("ID={}", quoted(words, *style)));
        }
        if let Some((words, style)) = &like {
            ids.push(format!("ID_LIKE={}", quoted(words, *style)));
        }
        if !id_first {
            ids.reverse();
        }
        lines.extend(ids);
        let file = lines.join("\n") + "\n";
        prop_assert_eq!(rust_family(&file), script_family(&dash, &file), "for {:?}", file);
    }
}
