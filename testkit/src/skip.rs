//! Skipping tests whose environment is missing, loudly.

use std::fmt;

/// Why a test cannot run here (no root, no loop devices, no network, ...).
///
/// A skipped test must say so: call [`Skip::report`], which prints the
/// reason, and fails instead when `CI=true` (CI machines are expected to
/// provide everything) unless `BANGER_ALLOW_SKIP=1` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip(pub String);

impl Skip {
    /// Prints `SKIPPED: reason` to stderr, or panics on CI.
    pub fn report(&self) {
        let on_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        let allowed = std::env::var("BANGER_ALLOW_SKIP").is_ok_and(|v| v == "1");
        if on_ci && !allowed {
            panic!(
                "test cannot run: {} (CI=true, so this is a failure)",
                self.0
            );
        }
        eprintln!("SKIPPED: {}", self.0);
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skip {}

/// Whether the current process runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The path of an e2fsprogs or util-linux tool: found on `PATH`, else in
/// `/usr/sbin` or `/sbin` (which a non-root `PATH` often lacks).
pub fn system_tool(name: &str) -> std::path::PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    on_path
        .or_else(|| {
            ["/usr/sbin", "/sbin"]
                .iter()
                .map(|dir| std::path::Path::new(dir).join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| name.into())
}
