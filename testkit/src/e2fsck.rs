//! `e2fsck -fn` as an oracle.
//!
//! The exit code alone is not enough: some faults (wrong superblock free
//! counts, a bad group-0 descriptor checksum) are reported yet exit 0. A
//! clean run prints exactly the version line, the five `Pass N:` lines and
//! the summary line; anything else is a complaint.

use std::path::Path;
use std::process::Command;

use crate::skip::system_tool;

/// The lines a clean `e2fsck -fn` prints between its version and summary lines.
const PASS_LINES: [&str; 5] = [
    "Pass 1: Checking inodes, blocks, and sizes",
    "Pass 2: Checking directory structure",
    "Pass 3: Checking directory connectivity",
    "Pass 4: Checking reference counts",
    "Pass 5: Checking group summary information",
];

/// What `e2fsck -fn` said about an image.
#[derive(Clone, Debug)]
pub struct FsckReport {
    /// Exit code, `None` if e2fsck could not be run or was killed.
    pub exit_code: Option<i32>,
    /// Everything it printed, stderr first (that is where the version line goes).
    pub output: String,
    /// Lines a clean run would not print.
    pub unexpected_lines: Vec<String>,
}

impl FsckReport {
    /// Exit code 0, all five passes, one summary line and nothing else.
    pub fn is_clean(&self) -> bool {
        self.exit_code == Some(0) && self.unexpected_lines.is_empty()
    }
}

/// Runs `e2fsck -fn img` (read-only, forced full check) and classifies its output.
pub fn fsck(img: &Path) -> FsckReport {
    let output = match Command::new(system_tool("e2fsck"))
        .arg("-fn")
        .arg(img)
        .env("LC_ALL", "C")
        .output()
    {
        Ok(output) => output,
        Err(err) => {
            return FsckReport {
                exit_code: None,
                output: format!("cannot run e2fsck: {err}"),
                unexpected_lines: vec![format!("cannot run e2fsck: {err}")],
            }
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    let unexpected_lines = unexpected_lines(&text);
    FsckReport {
        exit_code: output.status.code(),
        output: text,
        unexpected_lines,
    }
}

/// Lines of `text` that a clean run would not print, plus notes for
/// missing pass or summary lines.
fn unexpected_lines(text: &str) -> Vec<String> {
    let mut unexpected = Vec::new();
    let mut passes_seen = [false; 5];
    let mut summaries = 0;
    for line in text.lines() {
        if let Some(i) = PASS_LINES.iter().position(|p| *p == line) {
            passes_seen[i] = true;
        } else if is_version_line(line) {
        } else if is_summary_line(line) {
            summaries += 1;
        } else {
            unexpected.push(line.to_owned());
        }
    }
    for (seen, pass) in passes_seen.iter().zip(PASS_LINES) {
        if !seen {
            unexpected.push(format!("(missing line {pass:?})"));
        }
    }
    if summaries != 1 {
        unexpected.push(format!("({summaries} summary lines instead of 1)"));
    }
    unexpected
}

/// `e2fsck 1.47.0 (5-Feb-2023)`
fn is_version_line(line: &str) -> bool {
    line.starts_with("e2fsck ") && line.ends_with(')') && line.contains(" (")
}

/// `IMG: 12/16384 files (0.0% non-contiguous), 2089/16384 blocks`
fn is_summary_line(line: &str) -> bool {
    let Some(rest) = line.rsplit_once(": ").map(|(_, rest)| rest) else {
        return false;
    };
    let Some((files, rest)) = rest.split_once(" files (") else {
        return false;
    };
    let Some((pct, blocks)) = rest.split_once("% non-contiguous), ") else {
        return false;
    };
    let ratio = |s: &str| {
        s.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
    };
    ratio(files) && pct.parse::<f64>().is_ok() && blocks.strip_suffix(" blocks").is_some_and(ratio)
}

/// Panics unless `e2fsck -fn img` exits 0 and prints nothing but the
/// version, pass and summary lines.
pub fn assert_fsck_clean(img: &Path) {
    let report = fsck(img);
    assert!(
        report.is_clean(),
        "e2fsck -fn {} is not clean (exit {:?}); unexpected lines:\n  {}\nfull output:\n{}",
        img.display(),
        report.exit_code,
        report.unexpected_lines.join("\n  "),
        report.output
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_clean_and_dirty_output() {
        let clean = "e2fsck 1.47.0 (5-Feb-2023)\nPass 1: Checking inodes, blocks, and sizes\n\
            Pass 2: Checking directory structure\nPass 3: Checking directory connectivity\n\
            Pass 4: Checking reference counts\nPass 5: Checking group summary information\n\
            /tmp/a b.img: 12/16384 files (0.0% non-contiguous), 2089/16384 blocks\n";
        assert!(unexpected_lines(clean).is_empty());
        let dirty = clean.replace(
            "Pass 5: Checking group summary information\n",
            "Pass 5: Checking group summary information\nFree blocks count wrong (1, counted=2).\n",
        );
        assert_eq!(
            unexpected_lines(&dirty),
            vec!["Free blocks count wrong (1, counted=2).".to_owned()]
        );
        let truncated = clean.replace("Pass 4: Checking reference counts\n", "");
        assert_eq!(unexpected_lines(&truncated).len(), 1);
    }
}
