//! Making the database agree with the directories after a crash (see the order of
//! operations in [`crate::store`]). Runs under the store lock.

use std::fs;
use std::path::Path;

use super::db::{Db, ImageRecord, KernelRecord};
use super::layout::{Kind, StoreLayout, RECORD_FILE};
use super::{io_err, StoreError};

/// What reconciling changed, for tests and debugging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Staging directories and tombstones deleted.
    pub removed_leftovers: usize,
    /// `replaced` tombstones moved back into place.
    pub restored: usize,
    /// Rows deleted because their directory is gone.
    pub dropped_rows: usize,
    /// Rows written from a directory's `record.json`.
    pub rolled_forward: usize,
}

/// Brings the database in line with the directories and clears leftovers.
pub fn reconcile(layout: &StoreLayout, db: &mut Db) -> Result<ReconcileReport, StoreError> {
    let mut report = ReconcileReport::default();
    for entry in read_dir(&layout.staging_dir())? {
        remove_all(&entry.path())?;
        report.removed_leftovers += 1;
    }
    for entry in read_dir(&layout.trash_dir())? {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        // `<kind>.<name>.<why>.<suffix>`; names hold no dots at the start but may
        // hold dots inside, so split from both ends.
        let restore_target = file_name
            .split_once('.')
            .and_then(|(kind, rest)| {
                let (rest, _suffix) = rest.rsplit_once('.')?;
                let (name, why) = rest.rsplit_once('.')?;
                let kind = match kind {
                    "image" => Kind::Image,
                    "kernel" => Kind::Kernel,
                    _ => return None,
                };
                (why == "replaced").then(|| layout.entry_dir(kind, name))
            })
            .filter(|target| !target.exists());
        match restore_target {
            Some(target) => {
                fs::rename(entry.path(), &target)
                    .map_err(io_err(format!("restoring {}", target.display())))?;
                report.restored += 1;
            }
            None => {
                remove_all(&entry.path())?;
                report.removed_leftovers += 1;
            }
        }
    }

    for record in db.images()? {
        if !layout.entry_dir(Kind::Image, &record.name).is_dir() {
            db.delete_image(&record.name)?;
            report.dropped_rows += 1;
        }
    }
    for record in db.kernels()? {
        if !layout.entry_dir(Kind::Kernel, &record.name).is_dir() {
            db.delete_kernel(&record.name)?;
            report.dropped_rows += 1;
        }
    }
    for (name, dir) in published(layout, Kind::Image)? {
        if let Some(record) = read_record::<ImageRecord>(&dir, &name) {
            let current = db.image(&name)?;
            if current.as_ref().map(|r| &r.pull_id) != Some(&record.pull_id) {
                db.put_image(&record)?;
                report.rolled_forward += 1;
            }
        }
    }
    for (name, dir) in published(layout, Kind::Kernel)? {
        if let Some(record) = read_record::<KernelRecord>(&dir, &name) {
            let current = db.kernel(&name)?;
            if current.as_ref().map(|r| &r.pull_id) != Some(&record.pull_id) {
                db.put_kernel(&record)?;
                report.rolled_forward += 1;
            }
        }
    }
    Ok(report)
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, StoreError> {
    let entries = fs::read_dir(dir).map_err(io_err(format!("listing {}", dir.display())))?;
    Ok(entries.flatten().collect())
}

fn remove_all(path: &Path) -> Result<(), StoreError> {
    let result = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    result.map_err(io_err(format!("deleting {}", path.display())))
}

/// Published (non-hidden) entry directories of `kind`.
fn published(
    layout: &StoreLayout,
    kind: Kind,
) -> Result<Vec<(String, std::path::PathBuf)>, StoreError> {
    let dir = layout.kind_dir(kind);
    Ok(read_dir(&dir)?
        .into_iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            (!name.starts_with('.')).then(|| (name, e.path()))
        })
        .collect())
}

/// A directory's record, if it has a readable one naming it. Directories without
/// one are not banger's and are left alone.
fn read_record<T: for<'de> serde::Deserialize<'de> + HasName>(dir: &Path, name: &str) -> Option<T> {
    let bytes = fs::read(dir.join(RECORD_FILE)).ok()?;
    let record: T = serde_json::from_slice(&bytes).ok()?;
    (record.name() == name).then_some(record)
}

trait HasName {
    fn name(&self) -> &str;
}

impl HasName for ImageRecord {
    fn name(&self) -> &str {
        &self.name
    }
}

impl HasName for KernelRecord {
    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, pull_id: &str) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            source: "oci:x".into(),
            manifest_digest: None,
            platform: None,
            kernel: None,
            size: 1,
            created: 0,
            managed: false,
            pull_id: pull_id.into(),
            blobs: Vec::new(),
            config: None,
            guest: None,
        }
    }

    fn entry(dir: &Path, record: &ImageRecord) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(RECORD_FILE), serde_json::to_vec(record).unwrap()).unwrap();
    }

    #[test]
    fn leftovers_are_rolled_back_or_forward() {
        let root = tempfile::tempdir().unwrap();
        let layout = StoreLayout::create(root.path()).unwrap();
        let mut db = Db::open(&layout.db_path()).unwrap();
        // A `--force` without RENAME_EXCHANGE, killed between its two renames: the
        // old entry is in a `replaced` tombstone and goes back.
        let old = record("alpine-3.20", "old");
        db.put_image(&old).unwrap();
        entry(
            &layout.tombstone(Kind::Image, "alpine-3.20", "replaced"),
            &old,
        );
        // An rm killed after its rename: the tombstone goes, and so does the row.
        db.put_image(&record("gone", "g")).unwrap();
        entry(
            &layout.tombstone(Kind::Image, "gone", "rm"),
            &record("gone", "g"),
        );
        // A pull killed after its rename, before its commit: the row is written.
        entry(&layout.entry_dir(Kind::Image, "new"), &record("new", "n"));
        // A pull killed while staging.
        layout
            .stage(Kind::Image, "half")
            .map(std::mem::forget)
            .unwrap();

        let report = reconcile(&layout, &mut db).unwrap();
        assert_eq!(
            report,
            ReconcileReport {
                removed_leftovers: 2,
                restored: 1,
                dropped_rows: 1,
                rolled_forward: 1,
            }
        );
        let names: Vec<String> = db.images().unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["alpine-3.20", "new"]);
        assert!(layout.entry_dir(Kind::Image, "alpine-3.20").is_dir());
        assert_eq!(fs::read_dir(layout.trash_dir()).unwrap().count(), 0);
        assert_eq!(fs::read_dir(layout.staging_dir()).unwrap().count(), 0);
        // Reconciling again changes nothing.
        assert_eq!(
            reconcile(&layout, &mut db).unwrap(),
            ReconcileReport::default()
        );
    }
}
