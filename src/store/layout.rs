//! Where the store keeps things, the store lock, staging directories, and the
//! atomic publish of a staged directory.
//!
//! ```text
//! $BANGER_STATE_DIR/            (default $XDG_STATE_HOME/banger, ~/.local/state/banger)
//!   lock                        flock'ed by every command that changes the store
//!   banger.db                   SQLite records (store::db)
//!   images/NAME/                rootfs.ext4, vmlinux, [initrd], [modules.tar.gz], record.json
//!   images/.staging/            directories being built; removed by the next run
//!   images/.trash/              tombstones of removed or replaced entries
//!   kernels/NAME/               vmlinux, [initrd], [modules.tar.gz], record.json
//! ```
//! Staging and published directories share one filesystem, so publishing is one
//! `rename(2)` (or `renameat2(RENAME_EXCHANGE)` when replacing).

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{renameat_with, RenameFlags, CWD};

/// Name of the JSON record written into every published directory.
pub const RECORD_FILE: &str = "record.json";

/// The state directory's layout.
#[derive(Debug, Clone)]
pub struct StoreLayout {
    root: PathBuf,
}

/// What a store entry is: the two kinds share staging, trash and the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `images/NAME`.
    Image,
    /// `kernels/NAME`.
    Kernel,
}

impl Kind {
    /// `image` or `kernel`, for messages and tombstone names.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Kernel => "kernel",
        }
    }
}

/// `$BANGER_STATE_DIR`, else `$XDG_STATE_HOME/banger`, else `~/.local/state/banger`.
pub fn default_state_dir() -> PathBuf {
    let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = nonempty("BANGER_STATE_DIR") {
        return dir.into();
    }
    if let Some(dir) = nonempty("XDG_STATE_HOME") {
        return Path::new(&dir).join("banger");
    }
    match nonempty("HOME") {
        Some(home) => Path::new(&home).join(".local/state/banger"),
        None => std::env::temp_dir().join("banger-state"),
    }
}

impl StoreLayout {
    /// The layout under `root`, creating its directories.
    pub fn create(root: &Path) -> io::Result<Self> {
        let layout = StoreLayout {
            root: root.to_path_buf(),
        };
        for dir in [
            layout.staging_dir(),
            layout.trash_dir(),
            layout.kind_dir(Kind::Kernel),
        ] {
            fs::create_dir_all(dir)?;
        }
        Ok(layout)
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.root.join("banger.db")
    }

    /// `images/` or `kernels/`.
    pub fn kind_dir(&self, kind: Kind) -> PathBuf {
        self.root.join(match kind {
            Kind::Image => "images",
            Kind::Kernel => "kernels",
        })
    }

    /// A published entry's directory.
    pub fn entry_dir(&self, kind: Kind, name: &str) -> PathBuf {
        self.kind_dir(kind).join(name)
    }

    /// Where staging directories are made.
    pub fn staging_dir(&self) -> PathBuf {
        self.kind_dir(Kind::Image).join(".staging")
    }

    /// Where tombstones go.
    pub fn trash_dir(&self) -> PathBuf {
        self.kind_dir(Kind::Image).join(".trash")
    }

    /// Takes the store lock, waiting for another banger to finish. The kernel
    /// drops an `flock` when its holder dies, so a killed run leaves no stale lock.
    pub fn lock(&self) -> io::Result<StoreLock> {
        let file = self.lock_file()?;
        file.lock()?;
        Ok(StoreLock { _file: file })
    }

    /// Takes the store lock if nobody holds it.
    pub fn try_lock(&self) -> io::Result<Option<StoreLock>> {
        let file = self.lock_file()?;
        match file.try_lock() {
            Ok(()) => Ok(Some(StoreLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn lock_file(&self) -> io::Result<File> {
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("lock"))
    }

    /// A fresh, empty staging directory for `name`.
    pub fn stage(&self, kind: Kind, name: &str) -> io::Result<StagingDir> {
        let path = self
            .staging_dir()
            .join(format!("{}-{name}-{}", kind.label(), unique_suffix()));
        fs::create_dir(&path)?;
        Ok(StagingDir {
            _registration: crate::cleanup::register(&path),
            path,
            published: false,
        })
    }

    /// A tombstone path for an entry being removed (`why` = `rm` or `replaced`).
    pub fn tombstone(&self, kind: Kind, name: &str, why: &str) -> PathBuf {
        self.trash_dir()
            .join(format!("{}.{name}.{why}.{}", kind.label(), unique_suffix()))
    }
}

/// A unique, sortable suffix: pid and nanoseconds.
pub fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// Holds the store lock until dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// A directory being filled; removed on drop unless published.
#[derive(Debug)]
pub struct StagingDir {
    path: PathBuf,
    published: bool,
    /// Removes the directory on an interrupt (reconcile would on the next run).
    _registration: crate::cleanup::Registration,
}

impl StagingDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fsyncs every file in the directory and the directory itself, then moves it to
    /// `target` in one step. An existing `target` is swapped out atomically
    /// (`RENAME_EXCHANGE`); readers see the old entry or the new, never neither.
    ///
    /// On error nothing is published. On success the caller makes the renames
    /// durable with [`Publication::sync`], writes the record, and then either
    /// deletes what was replaced ([`Publication::finish`]) or, if the record cannot
    /// be written, puts the store back as it was ([`Publication::undo`]).
    pub fn publish(
        mut self,
        layout: &StoreLayout,
        kind: Kind,
        name: &str,
    ) -> io::Result<Publication> {
        let target = layout.entry_dir(kind, name);
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                File::open(entry.path())?.sync_all()?;
            }
        }
        sync_dir(&self.path)?;
        let displaced = if target.exists() {
            match renameat_with(CWD, &self.path, CWD, &target, RenameFlags::EXCHANGE) {
                // The old entry now sits at the staging path.
                Ok(()) => Displaced::Exchanged(self.path.clone()),
                Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
                    // No RENAME_EXCHANGE here: tombstone, then rename. A crash between
                    // the two is rolled back by reconcile (the tombstone is "replaced").
                    let tomb = layout.tombstone(kind, name, "replaced");
                    fs::rename(&target, &tomb)?;
                    if let Err(e) = fs::rename(&self.path, &target) {
                        // Put the old entry back so that the failed publish leaves
                        // the store as it was; if even that fails, reconcile does it.
                        let _ = fs::rename(&tomb, &target);
                        return Err(e);
                    }
                    Displaced::Replaced(tomb)
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            fs::rename(&self.path, &target)?;
            Displaced::Nothing
        };
        self.published = true;
        Ok(Publication {
            kind,
            name: name.to_string(),
            target,
            displaced,
        })
    }
}

/// Where a publish left the entry it replaced.
#[derive(Debug)]
enum Displaced {
    /// There was none.
    Nothing,
    /// Swapped out with `RENAME_EXCHANGE`: it sits at the staging path.
    Exchanged(PathBuf),
    /// Moved to a `replaced` tombstone (no `RENAME_EXCHANGE`).
    Replaced(PathBuf),
}

/// A staged directory renamed into place whose record is not written yet. Dropping
/// it without [`Publication::finish`] or [`Publication::undo`] leaves the state a
/// crash would (the next reconcile rolls the entry forward).
#[derive(Debug)]
#[must_use = "a publication is finished once recorded, or undone"]
pub struct Publication {
    kind: Kind,
    name: String,
    target: PathBuf,
    displaced: Displaced,
}

impl Publication {
    /// What was published.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes the publish's renames durable: the record must not be committed
    /// before the directory it describes is.
    pub fn sync(&self, layout: &StoreLayout) -> io::Result<()> {
        sync_dir(&layout.kind_dir(self.kind))?;
        sync_dir(&layout.staging_dir())?;
        if let Displaced::Replaced(_) = self.displaced {
            sync_dir(&layout.trash_dir())?;
        }
        Ok(())
    }

    /// The record is written: deletes the replaced entry. A leftover is removed by
    /// the next reconcile, so failing here is not an error.
    pub fn finish(self) {
        match self.displaced {
            Displaced::Nothing => {}
            Displaced::Exchanged(old) | Displaced::Replaced(old) => {
                let _ = fs::remove_dir_all(old);
            }
        }
    }

    /// The record could not be written: puts back what was at the name before the
    /// publish (the old entry, or nothing) and deletes the new entry. Each step
    /// leaves a state reconcile resolves (see the order of operations in
    /// [`crate::store`]). On error the new entry may still be in place.
    pub fn undo(self, layout: &StoreLayout) -> io::Result<()> {
        let leftover = match self.displaced {
            Displaced::Nothing => {
                let tomb = layout.tombstone(self.kind, &self.name, "undone");
                fs::rename(&self.target, &tomb)?;
                tomb
            }
            Displaced::Exchanged(old) => {
                // Swapping back is one atomic step: the old entry returns to its
                // name and the new one goes to the staging path.
                renameat_with(CWD, &old, CWD, &self.target, RenameFlags::EXCHANGE)?;
                old
            }
            Displaced::Replaced(old) => {
                let tomb = layout.tombstone(self.kind, &self.name, "undone");
                fs::rename(&self.target, &tomb)?;
                fs::rename(&old, &self.target)?;
                tomb
            }
        };
        sync_dir(&layout.kind_dir(self.kind))?;
        sync_dir(&layout.staging_dir())?;
        sync_dir(&layout.trash_dir())?;
        // The new entry is out of the way and unrecorded: a leftover is deleted by
        // the next reconcile, so failing here is not an error.
        let _ = fs::remove_dir_all(leftover);
        Ok(())
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Makes a directory's entries (renames, creations) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A staged directory holding one file, `what`.
    fn staged(layout: &StoreLayout, what: &str) -> StagingDir {
        let staging = layout.stage(Kind::Image, "x").unwrap();
        fs::write(staging.path().join("what"), what).unwrap();
        staging
    }

    fn what(layout: &StoreLayout) -> Option<String> {
        fs::read_to_string(layout.entry_dir(Kind::Image, "x").join("what")).ok()
    }

    fn assert_no_leftovers(layout: &StoreLayout) {
        assert_eq!(fs::read_dir(layout.staging_dir()).unwrap().count(), 0);
        assert_eq!(fs::read_dir(layout.trash_dir()).unwrap().count(), 0);
    }

    #[test]
    fn undo_puts_back_what_each_kind_of_publish_moved() {
        let root = tempfile::tempdir().unwrap();
        let layout = StoreLayout::create(root.path()).unwrap();

        // A fresh name: undone, the name is free again.
        let publication = staged(&layout, "new").publish(&layout, Kind::Image, "x");
        let publication = publication.unwrap();
        assert!(matches!(publication.displaced, Displaced::Nothing));
        assert_eq!(what(&layout).as_deref(), Some("new"));
        publication.undo(&layout).unwrap();
        assert_eq!(what(&layout), None);
        assert!(!layout.entry_dir(Kind::Image, "x").exists());
        assert_no_leftovers(&layout);

        // A replacement (by RENAME_EXCHANGE where the filesystem has it, as tmpfs
        // and ext4 do): the old entry is back.
        let old = staged(&layout, "old").publish(&layout, Kind::Image, "x");
        old.unwrap().finish();
        let publication = staged(&layout, "new")
            .publish(&layout, Kind::Image, "x")
            .unwrap();
        assert!(!matches!(publication.displaced, Displaced::Nothing));
        assert_eq!(what(&layout).as_deref(), Some("new"));
        publication.undo(&layout).unwrap();
        assert_eq!(what(&layout).as_deref(), Some("old"));
        assert_no_leftovers(&layout);

        // A replacement without RENAME_EXCHANGE, as `publish` leaves it: the new
        // entry in place, the old one in a `replaced` tombstone.
        let tomb = layout.tombstone(Kind::Image, "x", "replaced");
        let target = layout.entry_dir(Kind::Image, "x");
        fs::rename(&target, &tomb).unwrap();
        let mut staging = staged(&layout, "new");
        fs::rename(staging.path(), &target).unwrap();
        staging.published = true;
        let publication = Publication {
            kind: Kind::Image,
            name: "x".into(),
            target: target.clone(),
            displaced: Displaced::Replaced(tomb),
        };
        publication.undo(&layout).unwrap();
        assert_eq!(what(&layout).as_deref(), Some("old"));
        assert_no_leftovers(&layout);

        // Finishing deletes what was replaced and keeps the new entry.
        let publication = staged(&layout, "new")
            .publish(&layout, Kind::Image, "x")
            .unwrap();
        publication.sync(&layout).unwrap();
        publication.finish();
        assert_eq!(what(&layout).as_deref(), Some("new"));
        assert_no_leftovers(&layout);
    }

    #[test]
    fn a_failed_undo_is_an_error_not_a_panic() {
        let root = tempfile::tempdir().unwrap();
        let layout = StoreLayout::create(root.path()).unwrap();
        let publication = staged(&layout, "new")
            .publish(&layout, Kind::Image, "x")
            .unwrap();
        // Someone removed it under us: there is nothing to move back.
        fs::remove_dir_all(layout.entry_dir(Kind::Image, "x")).unwrap();
        let err = publication.undo(&layout).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }
}
