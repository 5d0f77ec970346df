//! Timing children and this process: wall time, peak memory, medians.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One measured child process.
#[derive(Debug, Clone, Copy)]
pub struct ChildRun {
    /// Wall-clock time from spawn to exit.
    pub wall: Duration,
    /// Peak resident set size of the child, in KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
}

/// Runs `command` to completion, failing unless it exits 0, and measures
/// it with `wait4`: std's `Child::wait` does not expose the child's rusage.
pub fn run_child(command: &mut Command) -> io::Result<ChildRun> {
    let start = Instant::now();
    let child = command.spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data for which all-zeros is valid, and
    // `wait4` only writes through the two pointers, which outlive the call.
    // The child is reaped here, so `child` must not be waited on again;
    // dropping a `Child` does not wait.
    let (reaped, usage) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let reaped = loop {
            let r = libc::wait4(pid, &mut status, 0, &mut usage);
            if r != -1 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break r;
            }
        };
        (reaped, usage)
    };
    let wall = start.elapsed();
    drop(child);
    if reaped != pid {
        return Err(io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(io::Error::other(format!(
            "{command:?} failed (wait status {status:#x})"
        )));
    }
    Ok(ChildRun {
        wall,
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
    })
}

/// Runs `command`, failing unless it exits 0; returns its stdout.
pub fn output(command: &mut Command) -> io::Result<String> {
    let out = command.output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{command:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The median of some durations (the mean of the middle two for an even count).
pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// Writes out what earlier runs left dirty, so that no tool pays for
/// another's writeback (the seed pipeline and the node_modules rows each
/// write about a GB), then reads the next tool's input (a file, or every
/// file of a tree), so that none pays for reading it from the disk: this
/// VM's host pages out cold page cache (DAMON) within the seconds the
/// other tools take. Called before every timed run, untimed.
pub fn settle(input: &Path) -> io::Result<()> {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    read_all(input)
}

/// Removes the directory tree at `path`, if there is one.
pub fn remove_dir(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reads `path` to its end, or every regular file below it.
fn read_all(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            read_all(&entry?.path())?;
        }
    } else if meta.is_file() {
        io::copy(&mut File::open(path)?, &mut io::sink())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        let ms = Duration::from_millis;
        assert_eq!(median(&[ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(median(&[ms(4), ms(1), ms(2), ms(3)]), ms(2) + ms(1) / 2);
    }

    #[test]
    fn child_failures_and_memory() {
        let run = run_child(&mut Command::new("true")).unwrap();
        assert!(run.max_rss_kib > 0);
        assert!(run_child(&mut Command::new("false")).is_err());
    }
}
