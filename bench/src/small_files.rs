//! Many small files: a real npm `node_modules` tree (the versions pinned by
//! `bench/npm/package-lock.json`, installed by npm on first use), as a
//! tar for `banger rootfs tar:` and hcsshim's `tar2ext4` (when `TAR2EXT4`
//! names its binary), and as a directory for `mkfs.ext4 -d`, alternating
//! within one run.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::measure::{median, output, run_child};

/// Targets from the performance issue.
const TARGET_OVER_TAR2EXT4: f64 = 0.35;
const TARGET_OVER_MKFS: f64 = 0.15;
const TARGET_RSS_MIB: f64 = 64.0;

/// Times of the alternating runs.
#[derive(Debug, Default)]
pub struct SmallFiles {
    /// Files, directories and symlinks in the tree, its root excluded.
    pub entries: u64,
    /// Bytes of the tar.
    pub tar_bytes: u64,
    /// `banger rootfs tar:TAR -o IMAGE --no-agents`.
    pub banger: Vec<Duration>,
    /// Peak RSS of each banger run, in KiB.
    pub banger_rss_kib: Vec<u64>,
    /// `mkfs.ext4 -d TREE` at the size banger chose.
    pub mkfs: Vec<Duration>,
    /// `tar2ext4 -i TAR -o IMAGE`, when given.
    pub tar2ext4: Vec<Duration>,
    /// Whether banger's image passed `e2fsck -fn` without a message.
    pub fsck_clean: bool,
}

/// Why the tree cannot be built here, when it cannot.
pub fn missing_tools() -> Option<String> {
    let found = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!found).then(|| "npm is not installed (Debian: apt-get install npm)".to_string())
}

/// The `TAR2EXT4` binary, if the variable names one.
pub fn tar2ext4_binary() -> io::Result<Option<PathBuf>> {
    match std::env::var_os("TAR2EXT4") {
        None => Ok(None),
        Some(path) => {
            let path = PathBuf::from(path);
            if path.is_file() {
                Ok(Some(path))
            } else {
                Err(io::Error::other(format!(
                    "TAR2EXT4={} is not a file",
                    path.display()
                )))
            }
        }
    }
}

/// Builds the tree and its tar under `out` (kept for later runs) and times
/// `runs` rounds of each tool.
pub fn measure(
    banger: &Path,
    tar2ext4: Option<&Path>,
    out: &Path,
    runs: usize,
) -> io::Result<SmallFiles> {
    let project = install_tree(&out.join("npm"))?;
    let tar = out.join("npm.tar");
    if !tar.exists() {
        pack(&project, &tar)?;
    }
    let mut result = SmallFiles {
        entries: count_entries(&project)?,
        tar_bytes: fs::metadata(&tar)?.len(),
        ..SmallFiles::default()
    };
    let banger_image = out.join("npm-banger.ext4");
    let mkfs_image = out.join("npm-mkfs.ext4");
    let tar2ext4_image = out.join("npm-tar2ext4.ext4");
    // Warm-up: the tar and the tree into the page cache, and the size
    // mkfs.ext4 gets (banger's own choice for this content).
    run_banger(banger, &tar, &banger_image)?;
    let size = fs::metadata(&banger_image)?.len();
    crate::seed::mkfs(&project, &mkfs_image, size)?;
    for run in 1..=runs {
        let banger_run = run_banger(banger, &tar, &banger_image)?;
        result.banger.push(banger_run.wall);
        result.banger_rss_kib.push(banger_run.max_rss_kib);
        // Each tool's previous image goes before the sync, as banger's does
        // in run_banger: freeing it (and the mount's discards) is not timed.
        let _ = fs::remove_file(&mkfs_image);
        settle();
        let start = Instant::now();
        crate::seed::mkfs(&project, &mkfs_image, size)?;
        result.mkfs.push(start.elapsed());
        if let Some(tar2ext4) = tar2ext4 {
            let _ = fs::remove_file(&tar2ext4_image);
            settle();
            let start = Instant::now();
            output(
                Command::new(tar2ext4)
                    .arg("-i")
                    .arg(&tar)
                    .arg("-o")
                    .arg(&tar2ext4_image),
            )?;
            result.tar2ext4.push(start.elapsed());
        }
        eprintln!(
            "bench: npm run {run}/{runs}: banger {:.2} s ({:.0} MiB)  mkfs.ext4 -d {:.2} s{}",
            banger_run.wall.as_secs_f64(),
            banger_run.max_rss_kib as f64 / 1024.0,
            result.mkfs[run - 1].as_secs_f64(),
            result.tar2ext4.last().map_or(String::new(), |t| format!(
                "  tar2ext4 {:.2} s",
                t.as_secs_f64()
            ))
        );
    }
    let (clean, text) = crate::fsck(&banger_image)?;
    if !clean {
        eprintln!("bench: e2fsck -fn on banger's npm image is NOT clean:\n{text}");
    }
    result.fsck_clean = clean;
    for image in [&banger_image, &mkfs_image, &tar2ext4_image] {
        let _ = fs::remove_file(image);
    }
    Ok(result)
}

/// `npm install` of the pinned project into `dir/project`, unless done
/// before with the same lock file; returns the project directory. Not
/// `npm ci`: npm 11 calls this lock out of sync over an optional
/// dependency of a Windows-only package, which `npm install` skips while
/// keeping every locked version.
fn install_tree(dir: &Path) -> io::Result<PathBuf> {
    let pinned = Path::new(env!("CARGO_MANIFEST_DIR")).join("npm");
    let project = dir.join("project");
    let lock = fs::read(pinned.join("package-lock.json"))?;
    let installed = fs::read(project.join("package-lock.json")).ok();
    if installed.as_ref() == Some(&lock) && project.join("node_modules").is_dir() {
        return Ok(project);
    }
    eprintln!("bench: npm install of bench/npm (about a minute, from the npm registry)");
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    fs::create_dir_all(&project)?;
    for file in ["package.json", "package-lock.json"] {
        fs::copy(pinned.join(file), project.join(file))?;
    }
    output(
        Command::new("npm")
            .args([
                "install",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ])
            .current_dir(&project),
    )?;
    // The tar follows the tree; a new tree needs a new tar.
    let _ = fs::remove_file(dir.with_extension("tar"));
    Ok(project)
}

/// GNU tar of the project's contents, owned by root, in name order.
fn pack(project: &Path, tar: &Path) -> io::Result<()> {
    output(
        Command::new("tar")
            .args([
                "--sort=name",
                "--numeric-owner",
                "--owner=0",
                "--group=0",
                "-cf",
            ])
            .arg(tar)
            .arg("-C")
            .arg(project)
            .arg("."),
    )
    .map(drop)
}

/// Entries under `dir`, `dir` itself excluded.
fn count_entries(dir: &Path) -> io::Result<u64> {
    let mut count = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        count += 1;
        if entry.file_type()?.is_dir() {
            count += count_entries(&entry.path())?;
        }
    }
    Ok(count)
}

/// One `banger rootfs tar:TAR -o IMAGE --no-agents`, after [`settle`].
fn run_banger(banger: &Path, tar: &Path, image: &Path) -> io::Result<crate::measure::ChildRun> {
    let _ = fs::remove_file(image);
    settle();
    run_child(
        Command::new(banger)
            .arg("rootfs")
            .arg(format!("tar:{}", tar.display()))
            .arg("-o")
            .arg(image)
            .args(["--no-agents", "--quiet"])
            .stdout(Stdio::null()),
    )
}

/// Writes out what earlier runs left dirty, so that no tool pays for
/// another's writeback: each writes 700 MB here.
fn settle() {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

impl SmallFiles {
    fn medians(&self) -> (f64, f64, Option<f64>) {
        let tar2ext4 = (!self.tar2ext4.is_empty()).then(|| median(&self.tar2ext4).as_secs_f64());
        (
            median(&self.banger).as_secs_f64(),
            median(&self.mkfs).as_secs_f64(),
            tar2ext4,
        )
    }

    fn peak_rss_mib(&self) -> f64 {
        self.banger_rss_kib.iter().max().copied().unwrap_or(0) as f64 / 1024.0
    }

    /// The chart's bars: label, median seconds.
    pub fn bars(&self) -> Vec<(String, f64)> {
        let (banger, mkfs, tar2ext4) = self.medians();
        let mut bars = vec![
            ("(g) banger rootfs tar: of node_modules".to_string(), banger),
            ("(h) mkfs.ext4 -d of node_modules".to_string(), mkfs),
        ];
        if let Some(tar2ext4) = tar2ext4 {
            bars.push(("(i) tar2ext4 of node_modules".to_string(), tar2ext4));
        }
        bars
    }

    /// The figures for `results.json`.
    pub fn to_json(&self) -> Value {
        let seconds =
            |runs: &[Duration]| runs.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
        let (banger, mkfs, tar2ext4) = self.medians();
        json!({
            "entries": self.entries,
            "tar_bytes": self.tar_bytes,
            "banger_seconds": seconds(&self.banger),
            "mkfs_d_seconds": seconds(&self.mkfs),
            "tar2ext4_seconds": seconds(&self.tar2ext4),
            "median_seconds": {"banger": banger, "mkfs_d": mkfs, "tar2ext4": tar2ext4},
            "banger_over_mkfs_d": banger / mkfs,
            "banger_over_tar2ext4": tar2ext4.map(|t| banger / t),
            "banger_peak_rss_mib": self.peak_rss_mib(),
            "banger_fsck_clean": self.fsck_clean,
        })
    }

    /// README lines.
    pub fn print(&self) {
        let (banger, mkfs, tar2ext4) = self.medians();
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        println!("| (g) banger rootfs tar: of an npm node_modules tree | {banger:.2} | |");
        println!(
            "| (h) mkfs.ext4 -d of the same tree | {mkfs:.2} | g/h = {:.3} |",
            banger / mkfs
        );
        if let Some(tar2ext4) = tar2ext4 {
            println!(
                "| (i) tar2ext4 of the same tar | {tar2ext4:.2} | g/i = {:.3} |",
                banger / tar2ext4
            );
        }
        let rss = self.peak_rss_mib();
        println!(
            "- node_modules ({} entries, {} MiB of tar): g/h = {:.3} (target ≤ {TARGET_OVER_MKFS}: {}){}; peak RSS {rss:.0} MiB (target ≤ {TARGET_RSS_MIB}: {}); e2fsck -fn {}",
            self.entries,
            self.tar_bytes >> 20,
            banger / mkfs,
            verdict(banger / mkfs <= TARGET_OVER_MKFS),
            tar2ext4.map_or(" (tar2ext4 not given: TAR2EXT4=PATH)".to_string(), |t| format!(
                ", g/i = {:.3} (target ≤ {TARGET_OVER_TAR2EXT4}: {})",
                banger / t,
                verdict(banger / t <= TARGET_OVER_TAR2EXT4)
            )),
            verdict(rss <= TARGET_RSS_MIB),
            if self.fsck_clean { "clean" } else { "NOT clean" }
        );
    }
}
