//! A real Debian root filesystem as test input, built once and cached.

use std::path::PathBuf;
use std::process::Command;

use crate::skip::Skip;

/// Path of a debootstrap'd Debian bookworm tree (minbase with systemd-sysv
/// and udev), built by `scripts/debootstrap-tree` into
/// `${BANGER_TEST_CACHE:-$HOME/.cache/banger-test}` on first use.
///
/// `None` (after printing why via [`Skip::report`]) when it cannot be built
/// here: no debootstrap, not root, or no network. Panics if debootstrap
/// itself fails.
pub fn debootstrap_tree() -> Option<PathBuf> {
    run(None)
}

/// Like [`debootstrap_tree`], for one flavor of `scripts/debootstrap-tree`:
/// `systemd` (the same tree as [`debootstrap_tree`]), `minbase` (no init at
/// all), `sysvinit` (sysvinit-core with sysv-rc and insserv) or `openrc`
/// (that tree with Debian's openrc installed). Each is cached in its own
/// directory. Panics for an unknown flavor.
pub fn debootstrap_tree_flavor(flavor: &str) -> Option<PathBuf> {
    run(Some(flavor))
}

fn run(flavor: Option<&str>) -> Option<PathBuf> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/debootstrap-tree");
    let output = match Command::new("bash").arg(script).args(flavor).output() {
        Ok(output) => output,
        Err(e) => {
            Skip(format!("cannot run {script}: {e}")).report();
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => Some(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        )),
        Some(2) => {
            Skip(stderr.trim().to_owned()).report();
            None
        }
        _ => panic!("{script} failed ({}):\n{stderr}", output.status),
    }
}
