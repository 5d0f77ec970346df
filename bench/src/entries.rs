//! Memory per entry: peak RSS of `banger rootfs tar:` on trees of many
//! empty entries, where the in-memory tree is all there is to measure.
//!
//! Three tars are written (streamed, never held): 300 000 empty
//! directories, 10^6 empty files, and a one-file baseline. Bytes per entry
//! are (peak RSS − baseline peak RSS) / entries; names are counted in,
//! since they are what a real tree holds too (`d0123/f0001234`, 5 and 8
//! bytes).

use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::measure::run_child;

/// One measured tree.
pub struct EntriesRun {
    /// What it holds.
    pub label: &'static str,
    /// Entries in the tar (parents included).
    pub entries: u64,
    /// Peak RSS in KiB.
    pub max_rss_kib: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Whether `e2fsck -fn` passed on the image.
    pub fsck_clean: bool,
}

/// Writes a tar of `count` empty entries, 1 000 per parent directory:
/// directories when `dirs`, else regular files. Returns the entry count.
fn write_tar(path: &Path, count: u64, dirs: bool) -> io::Result<u64> {
    let mut builder = tar::Builder::new(BufWriter::new(File::create(path)?));
    let header = |kind: tar::EntryType, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(1_600_000_000);
        h
    };
    let mut entries = 0;
    for i in 0..count {
        if i % 1000 == 0 {
            let mut h = header(tar::EntryType::Directory, 0o755);
            builder.append_data(&mut h, format!("d{:04}/", i / 1000), io::empty())?;
            entries += 1;
        }
        let (kind, mode, name) = if dirs {
            (
                tar::EntryType::Directory,
                0o755,
                format!("d{:04}/e{i:07}/", i / 1000),
            )
        } else {
            (
                tar::EntryType::Regular,
                0o644,
                format!("d{:04}/f{i:07}", i / 1000),
            )
        };
        builder.append_data(&mut header(kind, mode), name, io::empty())?;
        entries += 1;
    }
    builder
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?;
    Ok(entries)
}

fn run_one(banger: &Path, tar: &Path, image: &Path) -> io::Result<(u64, f64, bool)> {
    let _ = fs::remove_file(image);
    let run = run_child(
        Command::new(banger)
            .arg("rootfs")
            .arg(format!("tar:{}", tar.display()))
            .arg("-o")
            .arg(image)
            .args(["--no-agents", "--quiet", "--max-entries", "2000000"])
            .stdout(Stdio::null()),
    )?;
    let fsck = Command::new("e2fsck").arg("-fn").arg(image).output()?;
    let _ = fs::remove_file(image);
    Ok((
        run.max_rss_kib,
        run.wall.as_secs_f64(),
        fsck.status.success(),
    ))
}

/// Measures the baseline and both trees in `out`, removing what it wrote.
pub fn measure(banger: &Path, out: &Path) -> io::Result<(u64, Vec<EntriesRun>)> {
    let tar = out.join("entries.tar");
    let image = out.join("entries.ext4");
    write_tar(&tar, 1, false)?;
    let (baseline, _, _) = run_one(banger, &tar, &image)?;
    let mut runs = Vec::new();
    for (label, count, dirs) in [
        ("300 000 empty directories", 300_000, true),
        ("10^6 empty files", 1_000_000, false),
    ] {
        let entries = write_tar(&tar, count, dirs)?;
        let (max_rss_kib, seconds, fsck_clean) = run_one(banger, &tar, &image)?;
        runs.push(EntriesRun {
            label,
            entries,
            max_rss_kib,
            seconds,
            fsck_clean,
        });
    }
    fs::remove_file(&tar)?;
    Ok((baseline, runs))
}

/// Bytes of peak RSS per entry above the baseline.
pub fn bytes_per_entry(run: &EntriesRun, baseline_kib: u64) -> u64 {
    run.max_rss_kib.saturating_sub(baseline_kib) * 1024 / run.entries
}

/// The runs as JSON for results.json.
pub fn to_json(baseline_kib: u64, runs: &[EntriesRun]) -> Value {
    json!({
        "baseline_peak_rss_kib": baseline_kib,
        "runs": runs.iter().map(|r| json!({
            "tree": r.label,
            "entries": r.entries,
            "peak_rss_kib": r.max_rss_kib,
            "bytes_per_entry": bytes_per_entry(r, baseline_kib),
            "seconds": r.seconds,
            "fsck_clean": r.fsck_clean,
        })).collect::<Vec<_>>(),
    })
}
