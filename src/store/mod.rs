//! The local image store: published images and kernels in the state directory,
//! their records in SQLite, and the crash-safe order of operations between them.
//!
//! # Order of operations
//! The directory rename is the commit point; the database is an index that
//! [`reconcile`] makes agree with the directories under the store lock, at the start
//! of every command that reads or changes the store.
//!
//! * **pull / import**: take the lock, reconcile, build everything in
//!   `images/.staging/<kind>-NAME-<id>/` (including `record.json`, the row to be),
//!   fsync the files and the directory, rename it to `images/NAME` (or swap it with
//!   the old `images/NAME` with `RENAME_EXCHANGE` for `--force`), fsync the parent,
//!   commit the row, then delete the old contents.
//!   A crash before the rename leaves a staging directory: deleted by the next run.
//!   A crash after it leaves a directory whose `record.json` disagrees with the row
//!   (or has none): reconcile rolls the row forward from `record.json`.
//! * **a row that cannot be committed** (disk full, I/O error; or the fsync after
//!   the rename fails): the publish is undone before the error is returned, so the
//!   command fails with the store as it was. The failed transaction changed no row.
//!   - fresh name: rename `images/NAME` to `images/.trash/<kind>.NAME.undone.<id>`,
//!     fsync, delete it. A crash before the rename rolls forward (as above); after
//!     it, reconcile deletes the tombstone and there is no row.
//!   - `--force` with `RENAME_EXCHANGE`: exchange again, so the old entry is back
//!     at `images/NAME` (matching its row) and the new one at the staging path,
//!     fsync, delete it. A crash before the exchange rolls forward; after it,
//!     reconcile deletes the staging directory.
//!   - `--force` without it: rename `images/NAME` to an `undone` tombstone, rename
//!     the `replaced` tombstone back to `images/NAME`, fsync, delete the `undone`
//!     one. A crash between the two renames leaves `images/NAME` missing and a
//!     `replaced` tombstone, which reconcile restores: the old entry and its row.
//!
//!   If the undo itself fails the error says so; the next command's reconcile
//!   settles the store by the rules above (rolling forward what is still in place).
//! * **rm**: take the lock, rename `images/NAME` to `images/.trash/<kind>.NAME.rm.<id>`,
//!   fsync, delete the row, then delete the tombstone. A crash after the rename leaves
//!   a row without a directory: reconcile deletes the row (rm rolls forward) and the
//!   tombstone.
//! * **reconcile**: remove staging directories; restore `replaced` tombstones whose
//!   entry is missing (the no-`RENAME_EXCHANGE` fallback of `--force`) and delete all
//!   other tombstones; delete rows without a directory; insert or replace rows from
//!   directories whose `record.json` is not what the row says.
//!
//! `list` and `show` reconcile too when the lock is free; while a pull holds it
//! they read rows whose directories exist.

pub mod db;
pub mod kernel;
pub mod layout;
pub mod pull;
pub mod reconcile;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cache::BlobCache;
use crate::catalog::CatalogError;
use crate::io_error::{with_context, IoError};
use crate::names::NameError;
use crate::pipeline::RootfsError;
use crate::reference::Digest;
use crate::source::SourceError;

pub use db::{Db, DbError, ImageRecord, KernelRecord};
pub use layout::{
    default_state_dir, Kind, Publication, StagingDir, StoreLayout, StoreLock, RECORD_FILE,
};

/// Test-only: `BANGER_TEST_PAUSE_AT=<point>` makes banger print
/// `BANGER_TEST_PAUSED <point>` on stderr and sleep at that point (up to 600 s), so
/// a test can SIGKILL it there deterministically, or change the world under it and
/// let it go on (see [`TEST_RESUME_ENV`]). Points: `staging`, `written`,
/// `before-rename`, `before-commit`, `rm-tombstone`, `rm-committed`. Not for
/// production use.
pub const TEST_PAUSE_ENV: &str = "BANGER_TEST_PAUSE_AT";

/// Test-only: with `BANGER_TEST_RESUME_FILE=<path>`, a run paused by
/// [`TEST_PAUSE_ENV`] goes on as soon as `<path>` exists (polled every 20 ms)
/// instead of sleeping out the 600 s. Not for production use.
pub const TEST_RESUME_ENV: &str = "BANGER_TEST_RESUME_FILE";

/// Pauses at `point` if the test-only [`TEST_PAUSE_ENV`] asks for it, until the
/// [`TEST_RESUME_ENV`] file appears or 600 s pass.
pub fn test_pause(point: &str) {
    use std::time::{Duration, Instant};

    if !std::env::var(TEST_PAUSE_ENV).is_ok_and(|p| p == point) {
        return;
    }
    eprintln!("BANGER_TEST_PAUSED {point}");
    let resume = std::env::var_os(TEST_RESUME_ENV).map(PathBuf::from);
    let deadline = Instant::now() + Duration::from_secs(600);
    // Without a resume file the test means to kill us: poll the clock only.
    let tick = Duration::from_millis(if resume.is_some() { 20 } else { 1000 });
    while Instant::now() < deadline {
        if resume.as_deref().is_some_and(Path::exists) {
            return;
        }
        std::thread::sleep(tick);
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such image or kernel.
    #[error("{kind} {name:?} not found; {hint}")]
    NotFound {
        /// `image` or `kernel`.
        kind: &'static str,
        /// The name.
        name: String,
        /// What to do.
        hint: String,
    },
    /// The name is taken.
    #[error(
        "{kind} {name:?} already exists; pass --force to replace it or --name to pick another name"
    )]
    AlreadyExists {
        /// `image` or `kernel`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A bad name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A catalog could not be read.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The image source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Writing the rootfs failed.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A kernel artifact is malformed.
    #[error("kernel artifact {reference}: {reason}")]
    KernelArtifact {
        /// The artifact.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// Local I/O failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The row of a published entry could not be written, so the publication was
    /// undone: the store is as it was before the command.
    #[error("{kind} {name:?} was not published: recording it failed")]
    NotRecorded {
        /// `image` or `kernel`.
        kind: &'static str,
        /// The name.
        name: String,
        /// Why the row could not be written.
        #[source]
        source: Box<StoreError>,
    },
    /// The row of a published entry could not be written, and undoing the
    /// publication failed too; the next command's reconcile settles it (see the
    /// order of operations above).
    #[error(
        "{kind} {name:?} may stay published without its record until the next banger \
         command reconciles the store: undoing the publication failed ({undo}) after \
         recording it failed"
    )]
    UndoFailed {
        /// `image` or `kernel`.
        kind: &'static str,
        /// The name.
        name: String,
        /// Why the undo failed.
        undo: io::Error,
        /// Why the row could not be written.
        #[source]
        source: Box<StoreError>,
    },
    /// A file given to `kernel import` is not what it must be.
    #[error("{path}: {reason}")]
    NotAKernel {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Wraps an I/O error with what was being done.
pub fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    with_context(context)
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The store: layout, database, and (for changes) the lock.
#[derive(Debug)]
pub struct Store {
    layout: StoreLayout,
    db: Db,
    lock: Option<StoreLock>,
}

/// What `cache prune` removed (or would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Unreferenced blobs and their sizes.
    pub blobs: Vec<(String, u64)>,
    /// Temp files of downloads whose banger is gone (`.tmp-PID-…` in the
    /// blob directory), by file name, and their sizes.
    pub temporaries: Vec<(String, u64)>,
    /// Total bytes, blobs and temp files.
    pub bytes: u64,
}

impl Store {
    /// Opens the store for changes: waits for the lock, then reconciles.
    pub fn open_locked(root: &Path) -> Result<Self, StoreError> {
        let layout = StoreLayout::create(root).map_err(io_err(format!(
            "creating the state directory {}",
            root.display()
        )))?;
        let lock = layout
            .lock()
            .map_err(io_err(format!("locking {}", root.display())))?;
        let mut store = Store {
            db: Db::open(&layout.db_path())?,
            layout,
            lock: Some(lock),
        };
        reconcile::reconcile(&store.layout, &mut store.db)?;
        Ok(store)
    }

    /// Opens the store for reading: reconciles if nobody holds the lock, and
    /// otherwise reads around the change in progress.
    pub fn open_read(root: &Path) -> Result<Self, StoreError> {
        let layout = StoreLayout::create(root).map_err(io_err(format!(
            "creating the state directory {}",
            root.display()
        )))?;
        let lock = layout
            .try_lock()
            .map_err(io_err(format!("locking {}", root.display())))?;
        let mut store = Store {
            db: Db::open(&layout.db_path())?,
            layout,
            lock,
        };
        if store.lock.is_some() {
            reconcile::reconcile(&store.layout, &mut store.db)?;
        }
        Ok(store)
    }

    /// The layout.
    pub fn layout(&self) -> &StoreLayout {
        &self.layout
    }

    /// Every image whose directory exists.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let all = self.db.images()?;
        Ok(all
            .into_iter()
            .filter(|r| self.layout.entry_dir(Kind::Image, &r.name).is_dir())
            .collect())
    }

    /// One image.
    pub fn image(&self, name: &str) -> Result<Option<ImageRecord>, StoreError> {
        Ok(self
            .db
            .image(name)?
            .filter(|r| self.layout.entry_dir(Kind::Image, &r.name).is_dir()))
    }

    /// One image, or a not-found error.
    pub fn require_image(&self, name: &str) -> Result<ImageRecord, StoreError> {
        self.image(name)?.ok_or_else(|| StoreError::NotFound {
            kind: "image",
            name: name.to_string(),
            hint: "see `banger image list`".to_string(),
        })
    }

    /// Every kernel.
    pub fn kernels(&self) -> Result<Vec<KernelRecord>, StoreError> {
        Ok(self
            .db
            .kernels()?
            .into_iter()
            .filter(|r| self.layout.entry_dir(Kind::Kernel, &r.name).is_dir())
            .collect())
    }

    /// One kernel.
    pub fn kernel(&self, name: &str) -> Result<Option<KernelRecord>, StoreError> {
        Ok(self
            .db
            .kernel(name)?
            .filter(|r| self.layout.entry_dir(Kind::Kernel, &r.name).is_dir()))
    }

    /// Fails with [`StoreError::AlreadyExists`] if `name` is taken and not `force`.
    pub fn check_free(&self, kind: Kind, name: &str, force: bool) -> Result<(), StoreError> {
        let taken = match kind {
            Kind::Image => self.image(name)?.is_some(),
            Kind::Kernel => self.kernel(name)?.is_some(),
        };
        if taken && !force {
            return Err(StoreError::AlreadyExists {
                kind: kind.label(),
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// A new staging directory (the lock must be held).
    pub fn stage(&self, kind: Kind, name: &str) -> Result<StagingDir, StoreError> {
        self.layout
            .stage(kind, name)
            .map_err(io_err("creating a staging directory"))
    }

    /// Publishes a staged image: writes its record, renames it into place (replacing
    /// any old one atomically), commits the row, deletes what it replaced. If the row
    /// cannot be committed the rename is undone: both happen or neither.
    pub fn publish_image(
        &mut self,
        staging: StagingDir,
        record: &ImageRecord,
    ) -> Result<(), StoreError> {
        write_record(staging.path(), record)?;
        test_pause("before-rename");
        let publication = staging
            .publish(&self.layout, Kind::Image, &record.name)
            .map_err(io_err(format!("publishing image {}", record.name)))?;
        self.record_or_undo(publication, |db| {
            test_pause("before-commit");
            db.put_image(record)
        })
    }

    /// Publishes a staged kernel, like [`Store::publish_image`].
    pub fn publish_kernel(
        &mut self,
        staging: StagingDir,
        record: &KernelRecord,
    ) -> Result<(), StoreError> {
        write_record(staging.path(), record)?;
        let publication = staging
            .publish(&self.layout, Kind::Kernel, &record.name)
            .map_err(io_err(format!("publishing kernel {}", record.name)))?;
        self.record_or_undo(publication, |db| db.put_kernel(record))
    }

    /// Makes `publication` durable and commits its row with `put`; if either fails,
    /// undoes the publication so the store is as it was before the command.
    fn record_or_undo(
        &mut self,
        publication: Publication,
        put: impl FnOnce(&mut Db) -> Result<(), DbError>,
    ) -> Result<(), StoreError> {
        let recorded = publication
            .sync(&self.layout)
            .map_err(io_err("syncing the store"))
            .and_then(|()| put(&mut self.db).map_err(StoreError::from));
        let cause = match recorded {
            Ok(()) => {
                publication.finish();
                return Ok(());
            }
            Err(cause) => Box::new(cause),
        };
        let kind = publication.kind().label();
        let name = publication.name().to_string();
        match publication.undo(&self.layout) {
            Ok(()) => Err(StoreError::NotRecorded {
                kind,
                name,
                source: cause,
            }),
            Err(undo) => Err(StoreError::UndoFailed {
                kind,
                name,
                undo,
                source: cause,
            }),
        }
    }

    /// Removes an image or kernel: tombstone, row, then the tombstone's contents.
    pub fn remove(&mut self, kind: Kind, name: &str) -> Result<(), StoreError> {
        let exists = match kind {
            Kind::Image => self.image(name)?.is_some(),
            Kind::Kernel => self.kernel(name)?.is_some(),
        };
        if !exists {
            return Err(StoreError::NotFound {
                kind: kind.label(),
                name: name.to_string(),
                hint: format!("see `banger {} list`", kind.label()),
            });
        }
        let dir = self.layout.entry_dir(kind, name);
        let tomb = self.layout.tombstone(kind, name, "rm");
        fs::rename(&dir, &tomb).map_err(io_err(format!("removing {}", dir.display())))?;
        layout::sync_dir(&self.layout.kind_dir(kind))
            .and_then(|()| layout::sync_dir(&self.layout.trash_dir()))
            .map_err(io_err("syncing the store"))?;
        test_pause("rm-tombstone");
        match kind {
            Kind::Image => self.db.delete_image(name)?,
            Kind::Kernel => self.db.delete_kernel(name)?,
        };
        test_pause("rm-committed");
        fs::remove_dir_all(&tomb).map_err(io_err(format!("deleting {}", tomb.display())))
    }

    /// Deletes (or with `dry_run` only lists) every blob in the cache under
    /// `cache_dir` that no image or kernel record references, and the temp
    /// files of downloads whose banger is gone. A dry run changes nothing in
    /// the cache.
    pub fn prune_cache(&self, cache_dir: &Path, dry_run: bool) -> Result<PruneReport, StoreError> {
        let keep: BTreeSet<String> = self.db.referenced_blobs()?;
        let opening = || format!("opening the cache {}", cache_dir.display());
        let cache = if dry_run {
            BlobCache::at(cache_dir)
        } else {
            BlobCache::open_unswept(cache_dir).map_err(io_err(opening()))?
        };
        let dir = cache_dir.join("oci/blobs/sha256");
        let mut report = PruneReport::default();

        // Downloads a killed banger left (live ones, other pulls', are not listed).
        let dead = cache.dead_downloads().map_err(io_err(opening()))?;
        let sizes: BTreeMap<PathBuf, u64> = dead
            .iter()
            .map(|p| (p.clone(), fs::symlink_metadata(p).map_or(0, |m| m.len())))
            .collect();
        let gone = if dry_run {
            dead
        } else {
            cache.sweep().map_err(io_err(opening()))?
        };
        for path in gone {
            let size = sizes.get(&path).copied().unwrap_or(0);
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            report.bytes += size;
            report.temporaries.push((name, size));
        }

        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            // A dry run creates nothing: a cache never used has nothing to prune.
            Err(e) if dry_run && e.kind() == io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(io_err(format!("listing {}", dir.display()))(e)),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for hex in names {
            // Temp files belong to downloads in flight (e.g. `banger rootfs`).
            let Ok(digest) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            if keep.contains(&digest.to_string()) {
                continue;
            }
            let path = cache.path(&digest);
            let size = fs::metadata(&path).map_or(0, |m| m.len());
            if !dry_run {
                // The per-blob lock keeps us off a blob a concurrent pull is writing.
                let _lock = cache
                    .lock(&digest)
                    .map_err(io_err(format!("locking {digest}")))?;
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(format!("deleting {}", path.display()))(e)),
                }
            }
            report.bytes += size;
            report.blobs.push((digest.to_string(), size));
        }
        if !dry_run {
            layout::sync_dir(&dir).map_err(io_err("syncing the cache"))?;
        }
        Ok(report)
    }
}

/// Writes `record.json` into a staging directory.
fn write_record(dir: &Path, record: &impl serde::Serialize) -> Result<(), StoreError> {
    let path = dir.join(RECORD_FILE);
    let json = serde_json::to_vec_pretty(record)
        .map_err(|e| io_err("encoding the record")(io::Error::other(e)))?;
    fs::write(&path, json).map_err(io_err(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> KernelRecord {
        KernelRecord {
            name: name.into(),
            source: None,
            manifest_digest: None,
            initrd: false,
            modules: false,
            created: 0,
            pull_id: "p".into(),
            blobs: Vec::new(),
        }
    }

    /// Stages and publishes kernel `name`, then fails its row with `put`.
    fn fail_record(
        store: &mut Store,
        name: &str,
        put: impl FnOnce(&mut Db) -> Result<(), DbError>,
    ) -> StoreError {
        let staging = store.stage(Kind::Kernel, name).unwrap();
        write_record(staging.path(), &record(name)).unwrap();
        let publication = staging.publish(&store.layout, Kind::Kernel, name).unwrap();
        store.record_or_undo(publication, put).unwrap_err()
    }

    /// The error's causes (not the error itself), as the CLI prints them.
    fn causes(error: &dyn std::error::Error) -> String {
        let mut text = Vec::new();
        let mut cause = error.source();
        while let Some(c) = cause {
            text.push(c.to_string());
            cause = c.source();
        }
        text.join(": ")
    }

    fn full() -> DbError {
        DbError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        ))
    }

    #[test]
    fn a_row_that_cannot_be_written_undoes_the_publish() {
        let root = tempfile::tempdir().unwrap();
        let mut store = Store::open_locked(root.path()).unwrap();
        let err = fail_record(&mut store, "k", |_| Err(full()));
        assert!(
            matches!(&err, StoreError::NotRecorded { name, .. } if name == "k"),
            "{err:?}"
        );
        let cause = causes(&err);
        assert!(cause.contains("database or disk is full"), "{cause}");
        assert!(!store.layout.entry_dir(Kind::Kernel, "k").exists());
        assert_eq!(store.kernels().unwrap(), []);
        // Nothing for reconcile to do: the store is as before.
        let report = reconcile::reconcile(&store.layout, &mut store.db).unwrap();
        assert_eq!(report, reconcile::ReconcileReport::default());
    }

    #[test]
    fn a_failed_undo_names_both_causes_and_reconcile_settles_it() {
        let root = tempfile::tempdir().unwrap();
        let mut store = Store::open_locked(root.path()).unwrap();
        let trash = store.layout.trash_dir();
        let err = fail_record(&mut store, "k", |_| {
            // The undo's tombstone cannot be made.
            fs::remove_dir(&trash).unwrap();
            Err(full())
        });
        assert!(matches!(&err, StoreError::UndoFailed { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("undoing the publication failed (No such file"),
            "{text}"
        );
        let cause = causes(&err);
        assert!(cause.contains("database or disk is full"), "{cause}");
        // The next command rolls the published entry forward.
        drop(store);
        let store = Store::open_locked(root.path()).unwrap();
        assert_eq!(store.kernels().unwrap(), [record("k")]);
    }
}
