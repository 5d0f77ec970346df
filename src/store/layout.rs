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
    /// (`RENAME_EXCHANGE`) and its old contents returned, for the caller to delete
    /// once the database agrees; readers see the old entry or the new, never neither.
    pub fn publish(
        mut self,
        layout: &StoreLayout,
        kind: Kind,
        name: &str,
    ) -> io::Result<Option<PathBuf>> {
        let target = &layout.entry_dir(kind, name);
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                File::open(entry.path())?.sync_all()?;
            }
        }
        sync_dir(&self.path)?;
        let displaced = if target.exists() {
            match renameat_with(CWD, &self.path, CWD, target, RenameFlags::EXCHANGE) {
                // The old entry now sits at the staging path.
                Ok(()) => Some(self.path.clone()),
                Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
                    // No RENAME_EXCHANGE here: tombstone, then rename. A crash between
                    // the two is rolled back by reconcile (the tombstone is "replaced").
                    let tomb = layout.tombstone(kind, name, "replaced");
                    fs::rename(target, &tomb)?;
                    fs::rename(&self.path, target)?;
                    Some(tomb)
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            fs::rename(&self.path, target)?;
            None
        };
        self.published = true;
        if let Some(parent) = target.parent() {
            sync_dir(parent)?;
        }
        sync_dir(&layout.staging_dir())?;
        Ok(displaced)
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
