//! Leaving nothing behind when banger stops early.
//!
//! Files and directories that exist only while banger works (an output's
//! temporary name, a blob being downloaded, a store staging directory) are
//! registered here while they exist. On SIGINT, SIGTERM or SIGHUP the CLI
//! calls [`remove_registered`] before exiting. SIGKILL cannot be caught, so
//! temporary names carry the owner's PID and [`sweep_dead_owners`] removes
//! those whose process is gone the next time banger uses the directory.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Paths to remove on an interrupt, by registration id.
static REGISTERED: Mutex<BTreeMap<u64, PathBuf>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn registered() -> MutexGuard<'static, BTreeMap<u64, PathBuf>> {
    // A panic while holding the lock leaves the map intact: keep using it.
    REGISTERED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps a path registered for removal on an interrupt until dropped.
/// Dropping it does not remove the path: its owner does that (or publishes it).
#[derive(Debug)]
pub struct Registration {
    id: u64,
}

/// Registers `path` (a file or a directory) for removal on an interrupt.
pub fn register(path: &Path) -> Registration {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    registered().insert(id, path.to_path_buf());
    Registration { id }
}

impl Drop for Registration {
    fn drop(&mut self) {
        registered().remove(&self.id);
    }
}

/// Removes every registered path. Called on an interrupt, just before exit.
pub fn remove_registered() {
    let paths: Vec<PathBuf> = registered().values().cloned().collect();
    remove_all(&paths);
}

fn remove_all(paths: &[PathBuf]) {
    for path in paths {
        let removed = match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
            Ok(_) => fs::remove_file(path),
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            if e.kind() != io::ErrorKind::NotFound {
                eprintln!("warning: could not remove {}: {e}", path.display());
            }
        }
    }
}

/// The temporary name `{prefix}{pid}-{unique}{suffix}` for this process:
/// [`sweep_dead_owners`] can tell from it whether its owner still runs.
pub fn temp_name(prefix: &str, suffix: &str) -> String {
    static UNIQUE: AtomicU64 = AtomicU64::new(0);
    let unique = UNIQUE.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}-{unique}{suffix}", std::process::id())
}

/// Entries of `dir` named `{prefix}{pid}-…{suffix}` whose process no
/// longer exists (left by a SIGKILL or a crash), without touching them:
/// what [`sweep_dead_owners`] would remove. Entries of live processes, this
/// one included, and names of another form are not listed.
pub fn dead_owners(dir: &Path, prefix: &str, suffix: &str) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut dead = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| owner_pid(n, prefix, suffix)) else {
            continue;
        };
        if !process_exists(pid) {
            dead.push(entry.path());
        }
    }
    dead.sort();
    Ok(dead)
}

/// Removes what [`dead_owners`] lists. Returns the paths it removed (one
/// another banger swept first is not among them).
pub fn sweep_dead_owners(dir: &Path, prefix: &str, suffix: &str) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for path in dead_owners(dir, prefix, suffix)? {
        let result = match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => removed.push(path),
            // Another banger swept it first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// The PID in a name made by [`temp_name`] with `prefix` and `suffix`.
fn owner_pid(name: &str, prefix: &str, suffix: &str) -> Option<u32> {
    let middle = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    let (pid, unique) = middle.split_once('-')?;
    if unique.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// Whether a process with this PID exists (zombies included: their owner
/// may still be about to clean up).
fn process_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pids_parse_only_from_our_names() {
        assert_eq!(
            owner_pid(".banger-123-4.tmp", ".banger-", ".tmp"),
            Some(123)
        );
        assert_eq!(owner_pid(".tmp-77-xYz", ".tmp-", ""), Some(77));
        assert_eq!(owner_pid(".tmp-abc", ".tmp-", ""), None);
        assert_eq!(owner_pid("rootfs.ext4", ".banger-", ".tmp"), None);
        assert_eq!(owner_pid(".banger-123-.tmp", ".banger-", ".tmp"), None);
    }

    #[test]
    fn sweeping_removes_only_what_dead_processes_left() {
        let dir = tempfile::tempdir().unwrap();
        // A process that has exited: its PID is free (reuse within this test is
        // possible but vanishingly unlikely).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let mine = std::process::id();
        for name in [
            format!(".banger-{dead}-0.tmp"),
            format!(".banger-{mine}-0.tmp"),
            "keep.ext4".to_string(),
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        fs::create_dir(dir.path().join(format!(".banger-{dead}-1.tmp"))).unwrap();
        let dead = [
            dir.path().join(format!(".banger-{dead}-0.tmp")),
            dir.path().join(format!(".banger-{dead}-1.tmp")),
        ];
        assert_eq!(dead_owners(dir.path(), ".banger-", ".tmp").unwrap(), dead);
        assert_eq!(
            sweep_dead_owners(dir.path(), ".banger-", ".tmp").unwrap(),
            dead
        );
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [format!(".banger-{mine}-0.tmp"), "keep.ext4".to_string()]
        );
    }

    #[test]
    fn registered_paths_are_removed_and_dropped_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        let sub = dir.path().join("d");
        let kept = dir.path().join("kept");
        fs::write(&file, b"x").unwrap();
        fs::create_dir_all(sub.join("inner")).unwrap();
        fs::write(&kept, b"x").unwrap();
        let _file = register(&file);
        let _sub = register(&sub);
        drop(register(&kept));
        // Other tests register paths too: remove only this test's.
        let ours: Vec<PathBuf> = registered()
            .values()
            .filter(|p| p.starts_with(dir.path()))
            .cloned()
            .collect();
        assert_eq!(ours, [file.clone(), sub.clone()]);
        remove_all(&ours);
        assert!(!file.exists() && !sub.exists());
        assert!(kept.exists());
    }
}
