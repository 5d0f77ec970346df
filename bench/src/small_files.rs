//! Many small files: a real npm `node_modules` tree (the versions pinned by
//! `bench/npm/package-lock.json`, installed by npm on first use), as a
//! tar for `banger rootfs tar:` and hcsshim's `tar2ext4` (when `TAR2EXT4`
//! names its binary), and as a directory for `mkfs.ext4 -d`, alternating
//! within one run.
//!
//! Each tool is timed to its exit and to its image being on disk (its exit,
//! then an fsync of the image): banger and mkfs.ext4 fsync their output
//! before they exit, tar2ext4 does not, and its writeback would otherwise
//! be paid outside its timing, by whatever runs next.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::measure::{median, output, run_child, settle};

/// Targets from the performance issue.
const TARGET_OVER_TAR2EXT4: f64 = 0.35;
const TARGET_OVER_MKFS: f64 = 0.15;
const TARGET_RSS_MIB: f64 = 64.0;

/// One run of a tool: until it exited, and until its image was on disk.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    /// From the start until the tool exited.
    pub exit: Duration,
    /// From the start until an fsync of its image, after its exit, returned.
    pub on_disk: Duration,
}

impl Timed {
    /// A run that exited after `exit`, completed by an fsync of `image`.
    fn then_fsync(exit: Duration, image: &Path) -> io::Result<Self> {
        let start = Instant::now();
        File::open(image)?.sync_all()?;
        Ok(Self {
            exit,
            on_disk: exit + start.elapsed(),
        })
    }
}

/// Medians of a tool's runs, in seconds.
#[derive(Debug, Clone, Copy)]
struct Medians {
    exit: f64,
    on_disk: f64,
}

impl Medians {
    fn of(runs: &[Timed]) -> Self {
        let exits: Vec<Duration> = runs.iter().map(|r| r.exit).collect();
        let on_disk: Vec<Duration> = runs.iter().map(|r| r.on_disk).collect();
        Self {
            exit: median(&exits).as_secs_f64(),
            on_disk: median(&on_disk).as_secs_f64(),
        }
    }

    fn to_json(self) -> Value {
        json!({"exit": self.exit, "on_disk": self.on_disk})
    }
}

/// Times of the alternating runs.
#[derive(Debug, Default)]
pub struct SmallFiles {
    /// Files, directories and symlinks in the tree, its root excluded.
    pub entries: u64,
    /// Bytes of the tar.
    pub tar_bytes: u64,
    /// `banger rootfs tar:TAR -o IMAGE --no-agents`.
    pub banger: Vec<Timed>,
    /// Peak RSS of each banger run, in KiB.
    pub banger_rss_kib: Vec<u64>,
    /// `mkfs.ext4 -d TREE` at the size banger chose.
    pub mkfs: Vec<Timed>,
    /// `tar2ext4 -i TAR -o IMAGE`, when given.
    pub tar2ext4: Vec<Timed>,
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
        let banger_timed = Timed::then_fsync(banger_run.wall, &banger_image)?;
        result.banger.push(banger_timed);
        result.banger_rss_kib.push(banger_run.max_rss_kib);
        // Each tool's previous image goes before the sync, as banger's does
        // in run_banger: freeing it (and the mount's discards) is not timed.
        let _ = fs::remove_file(&mkfs_image);
        settle(&project)?;
        let start = Instant::now();
        crate::seed::mkfs(&project, &mkfs_image, size)?;
        result
            .mkfs
            .push(Timed::then_fsync(start.elapsed(), &mkfs_image)?);
        if let Some(tar2ext4) = tar2ext4 {
            let _ = fs::remove_file(&tar2ext4_image);
            settle(&tar)?;
            let start = Instant::now();
            output(
                Command::new(tar2ext4)
                    .arg("-i")
                    .arg(&tar)
                    .arg("-o")
                    .arg(&tar2ext4_image),
            )?;
            result
                .tar2ext4
                .push(Timed::then_fsync(start.elapsed(), &tar2ext4_image)?);
        }
        let both = |t: &Timed| {
            format!(
                "{:.2} s ({:.2} s on disk)",
                t.exit.as_secs_f64(),
                t.on_disk.as_secs_f64()
            )
        };
        eprintln!(
            "bench: npm run {run}/{runs}: banger {} {:.0} MiB  mkfs.ext4 -d {}{}",
            both(&banger_timed),
            banger_run.max_rss_kib as f64 / 1024.0,
            both(&result.mkfs[run - 1]),
            result
                .tar2ext4
                .last()
                .map_or(String::new(), |t| format!("  tar2ext4 {}", both(t)))
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
    settle(tar)?;
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

impl SmallFiles {
    fn medians(&self) -> (Medians, Medians, Option<Medians>) {
        let tar2ext4 = (!self.tar2ext4.is_empty()).then(|| Medians::of(&self.tar2ext4));
        (Medians::of(&self.banger), Medians::of(&self.mkfs), tar2ext4)
    }

    fn peak_rss_mib(&self) -> f64 {
        self.banger_rss_kib.iter().max().copied().unwrap_or(0) as f64 / 1024.0
    }

    /// The chart's bars: label, median seconds until the image was on disk
    /// (and tar2ext4's exit, which comes before).
    pub fn bars(&self) -> Vec<(String, f64)> {
        let (banger, mkfs, tar2ext4) = self.medians();
        let mut bars = vec![
            (
                "(g) banger rootfs tar: of node_modules".to_string(),
                banger.on_disk,
            ),
            ("(h) mkfs.ext4 -d of node_modules".to_string(), mkfs.on_disk),
        ];
        if let Some(tar2ext4) = tar2ext4 {
            bars.push((
                "(i) tar2ext4 of node_modules, image on disk".to_string(),
                tar2ext4.on_disk,
            ));
            bars.push((
                "(i) tar2ext4 of node_modules, its exit".to_string(),
                tar2ext4.exit,
            ));
        }
        bars
    }

    /// The figures for `results.json`.
    pub fn to_json(&self) -> Value {
        let seconds = |runs: &[Timed]| {
            runs.iter()
                .map(|r| json!({"exit": r.exit.as_secs_f64(), "on_disk": r.on_disk.as_secs_f64()}))
                .collect::<Vec<_>>()
        };
        let (banger, mkfs, tar2ext4) = self.medians();
        json!({
            "entries": self.entries,
            "tar_bytes": self.tar_bytes,
            "banger_seconds": seconds(&self.banger),
            "mkfs_d_seconds": seconds(&self.mkfs),
            "tar2ext4_seconds": seconds(&self.tar2ext4),
            "median_seconds": {
                "banger": banger.to_json(),
                "mkfs_d": mkfs.to_json(),
                "tar2ext4": tar2ext4.map(Medians::to_json),
            },
            "banger_over_mkfs_d": {
                "exit": banger.exit / mkfs.exit,
                "on_disk": banger.on_disk / mkfs.on_disk,
            },
            "banger_over_tar2ext4": tar2ext4.map(|t| json!({
                "exit": banger.exit / t.exit,
                "on_disk": banger.on_disk / t.on_disk,
            })),
            "banger_peak_rss_mib": self.peak_rss_mib(),
            "banger_fsck_clean": self.fsck_clean,
        })
    }

    /// README lines: times until each image was on disk, the ratios at exit
    /// beside them.
    pub fn print(&self) {
        let (banger, mkfs, tar2ext4) = self.medians();
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let ratio = |target: f64, of: Medians, to: Medians| {
            format!(
                "{:.3} on disk (target ≤ {target}: {}), {:.3} at exit ({})",
                of.on_disk / to.on_disk,
                verdict(of.on_disk / to.on_disk <= target),
                of.exit / to.exit,
                verdict(of.exit / to.exit <= target),
            )
        };
        println!(
            "| (g) banger rootfs tar: of an npm node_modules tree | {:.2} | |",
            banger.on_disk
        );
        println!(
            "| (h) mkfs.ext4 -d of the same tree | {:.2} | g/h = {:.3} |",
            mkfs.on_disk,
            banger.on_disk / mkfs.on_disk
        );
        if let Some(tar2ext4) = tar2ext4 {
            println!(
                "| (i) tar2ext4 of the same tar, then an fsync of its image (its exit: {:.2}) | {:.2} | g/i = {:.3} |",
                tar2ext4.exit,
                tar2ext4.on_disk,
                banger.on_disk / tar2ext4.on_disk
            );
        }
        let rss = self.peak_rss_mib();
        println!(
            "- node_modules ({} entries, {} MiB of tar): g/h = {}{}; peak RSS {rss:.0} MiB (target ≤ {TARGET_RSS_MIB}: {}); e2fsck -fn {}",
            self.entries,
            self.tar_bytes >> 20,
            ratio(TARGET_OVER_MKFS, banger, mkfs),
            tar2ext4.map_or(" (tar2ext4 not given: TAR2EXT4=PATH)".to_string(), |t| format!(
                "; g/i = {}",
                ratio(TARGET_OVER_TAR2EXT4, banger, t)
            )),
            verdict(rss <= TARGET_RSS_MIB),
            if self.fsck_clean { "clean" } else { "NOT clean" }
        );
    }
}
