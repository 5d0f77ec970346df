//! The store's records in SQLite: images, kernels, and the cache blobs each uses.
//!
//! The schema is versioned with `PRAGMA user_version`: [`MIGRATIONS`] is an ordered
//! list, entry `i` takes the schema from version `i` to `i + 1`, and opening a
//! database applies the missing ones in one transaction. Never edit a released
//! migration; append a new one.

use std::path::Path;

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use serde::{Deserialize, Serialize};

use crate::guest::GuestRecord;
use crate::source::RuntimeConfig;

/// Schema migrations, oldest first.
pub const MIGRATIONS: &[&str] = &[
    // 1: the first release.
    "CREATE TABLE images (
         name TEXT PRIMARY KEY,
         source TEXT NOT NULL,
         manifest_digest TEXT,
         platform TEXT,
         kernel TEXT,
         size INTEGER NOT NULL,
         created INTEGER NOT NULL,
         managed INTEGER NOT NULL,
         pull_id TEXT NOT NULL
     );
     CREATE TABLE kernels (
         name TEXT PRIMARY KEY,
         source TEXT,
         manifest_digest TEXT,
         initrd INTEGER NOT NULL,
         modules INTEGER NOT NULL,
         created INTEGER NOT NULL,
         pull_id TEXT NOT NULL
     );
     CREATE TABLE blobs (
         kind TEXT NOT NULL,
         owner TEXT NOT NULL,
         digest TEXT NOT NULL,
         PRIMARY KEY (kind, owner, digest)
     );",
    // 2: what the image runs and what banger set up in the guest, as JSON.
    "ALTER TABLE images ADD COLUMN config TEXT;
     ALTER TABLE images ADD COLUMN guest TEXT;",
];

/// A published image, as recorded in the database and in its `record.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Store name.
    pub name: String,
    /// The source pulled (canonical reference, or the source string).
    pub source: String,
    /// Digest of the top-level manifest or index, when there is one.
    pub manifest_digest: Option<String>,
    /// The platform picked.
    pub platform: Option<String>,
    /// The kernel installed beside the rootfs.
    pub kernel: Option<String>,
    /// Size of `rootfs.ext4` in bytes.
    pub size: u64,
    /// Unix seconds of the pull.
    pub created: i64,
    /// Pulled through the catalog.
    pub managed: bool,
    /// Unique per pull: tells a directory's record from a stale row.
    pub pull_id: String,
    /// Cache blobs (manifests, config, layers) the image came from.
    pub blobs: Vec<String>,
    /// The image config's run-time part (entrypoint, cmd, env, ...).
    #[serde(default)]
    pub config: Option<RuntimeConfig>,
    /// What banger set up in the guest (init, agents, kernel modules);
    /// `None` for an image written with `--no-agents`.
    #[serde(default)]
    pub guest: Option<GuestRecord>,
}

/// An installed kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRecord {
    /// Store name.
    pub name: String,
    /// The artifact reference pulled, or `None` for an import from files.
    pub source: Option<String>,
    /// The artifact's manifest digest.
    pub manifest_digest: Option<String>,
    /// Has an initrd.
    pub initrd: bool,
    /// Has a modules tarball.
    pub modules: bool,
    /// Unix seconds of the import.
    pub created: i64,
    /// Unique per import.
    pub pull_id: String,
    /// Cache blobs the kernel came from.
    pub blobs: Vec<String>,
}

/// An open database.
#[derive(Debug)]
pub struct Db {
    conn: Connection,
}

/// Why the database failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("state database")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer banger.
    #[error("state database is at schema version {found}, newer than this banger understands ({known}); upgrade banger")]
    TooNew {
        /// Found.
        found: usize,
        /// Known.
        known: usize,
    },
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn)?;
        Ok(Db { conn })
    }

    /// The schema version.
    pub fn version(&self) -> Result<usize, DbError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize)
    }

    /// Every image, by name.
    pub fn images(&self) -> Result<Vec<ImageRecord>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, source, manifest_digest, platform, kernel, size, created, managed, pull_id,
                    config, guest
             FROM images ORDER BY name",
        )?;
        let rows = stmt
            .query_map([], image_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(|r| self.with_blobs_image(r)).collect()
    }

    /// One image.
    pub fn image(&self, name: &str) -> Result<Option<ImageRecord>, DbError> {
        let row = self
            .conn
            .query_row(
                "SELECT name, source, manifest_digest, platform, kernel, size, created, managed, pull_id,
                        config, guest
                 FROM images WHERE name = ?1",
                [name],
                image_row,
            )
            .optional()?;
        row.map(|r| self.with_blobs_image(r)).transpose()
    }

    fn with_blobs_image(&self, mut record: ImageRecord) -> Result<ImageRecord, DbError> {
        record.blobs = self.blobs("image", &record.name)?;
        Ok(record)
    }

    fn blobs(&self, kind: &str, owner: &str) -> Result<Vec<String>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT digest FROM blobs WHERE kind = ?1 AND owner = ?2 ORDER BY digest")?;
        let rows = stmt.query_map([kind, owner], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }

    /// Inserts or replaces an image and its blobs, in one transaction.
    pub fn put_image(&mut self, r: &ImageRecord) -> Result<(), DbError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO images
             (name, source, manifest_digest, platform, kernel, size, created, managed, pull_id,
              config, guest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                r.name,
                r.source,
                r.manifest_digest,
                r.platform,
                r.kernel,
                r.size as i64,
                r.created,
                r.managed,
                r.pull_id,
                to_json(&r.config),
                to_json(&r.guest)
            ],
        )?;
        put_blobs(&tx, "image", &r.name, &r.blobs)?;
        Ok(tx.commit()?)
    }

    /// Deletes an image and its blob references; true if it existed.
    pub fn delete_image(&mut self, name: &str) -> Result<bool, DbError> {
        self.delete("images", "image", name)
    }

    /// Every kernel, by name.
    pub fn kernels(&self) -> Result<Vec<KernelRecord>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, source, manifest_digest, initrd, modules, created, pull_id
             FROM kernels ORDER BY name",
        )?;
        let rows = stmt
            .query_map([], kernel_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|mut r| {
                r.blobs = self.blobs("kernel", &r.name)?;
                Ok(r)
            })
            .collect()
    }

    /// One kernel.
    pub fn kernel(&self, name: &str) -> Result<Option<KernelRecord>, DbError> {
        let row = self
            .conn
            .query_row(
                "SELECT name, source, manifest_digest, initrd, modules, created, pull_id
                 FROM kernels WHERE name = ?1",
                [name],
                kernel_row,
            )
            .optional()?;
        row.map(|mut r| {
            r.blobs = self.blobs("kernel", &r.name)?;
            Ok(r)
        })
        .transpose()
    }

    /// Inserts or replaces a kernel and its blobs, in one transaction.
    pub fn put_kernel(&mut self, r: &KernelRecord) -> Result<(), DbError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO kernels
             (name, source, manifest_digest, initrd, modules, created, pull_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                r.name,
                r.source,
                r.manifest_digest,
                r.initrd,
                r.modules,
                r.created,
                r.pull_id
            ],
        )?;
        put_blobs(&tx, "kernel", &r.name, &r.blobs)?;
        Ok(tx.commit()?)
    }

    /// Deletes a kernel and its blob references; true if it existed.
    pub fn delete_kernel(&mut self, name: &str) -> Result<bool, DbError> {
        self.delete("kernels", "kernel", name)
    }

    fn delete(&mut self, table: &str, kind: &str, name: &str) -> Result<bool, DbError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(&format!("DELETE FROM {table} WHERE name = ?1"), [name])?;
        tx.execute(
            "DELETE FROM blobs WHERE kind = ?1 AND owner = ?2",
            [kind, name],
        )?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Every blob digest some image or kernel references.
    pub fn referenced_blobs(&self) -> Result<std::collections::BTreeSet<String>, DbError> {
        let mut stmt = self.conn.prepare("SELECT DISTINCT digest FROM blobs")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn put_blobs(
    tx: &Transaction<'_>,
    kind: &str,
    owner: &str,
    blobs: &[String],
) -> Result<(), DbError> {
    tx.execute(
        "DELETE FROM blobs WHERE kind = ?1 AND owner = ?2",
        [kind, owner],
    )?;
    for digest in blobs {
        tx.execute(
            "INSERT OR IGNORE INTO blobs (kind, owner, digest) VALUES (?1, ?2, ?3)",
            [kind, owner, digest],
        )?;
    }
    Ok(())
}

fn image_row(row: &Row<'_>) -> rusqlite::Result<ImageRecord> {
    Ok(ImageRecord {
        name: row.get(0)?,
        source: row.get(1)?,
        manifest_digest: row.get(2)?,
        platform: row.get(3)?,
        kernel: row.get(4)?,
        size: row.get::<_, i64>(5)? as u64,
        created: row.get(6)?,
        managed: row.get(7)?,
        pull_id: row.get(8)?,
        blobs: Vec::new(),
        config: from_json(row, 9)?,
        guest: from_json(row, 10)?,
    })
}

/// A JSON column's text; `None` stays NULL.
fn to_json<T: Serialize>(value: &Option<T>) -> Option<String> {
    value
        .as_ref()
        .map(|v| serde_json::to_string(v).expect("records serialize: no maps with non-string keys"))
}

/// A JSON column read back; NULL (rows of schema 1) is `None`.
fn from_json<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<T>> {
    let Some(text) = row.get::<_, Option<String>>(index)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

fn kernel_row(row: &Row<'_>) -> rusqlite::Result<KernelRecord> {
    Ok(KernelRecord {
        name: row.get(0)?,
        source: row.get(1)?,
        manifest_digest: row.get(2)?,
        initrd: row.get(3)?,
        modules: row.get(4)?,
        created: row.get(5)?,
        pull_id: row.get(6)?,
        blobs: Vec::new(),
    })
}

/// Applies the migrations the database lacks, all in one transaction.
fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    let found = tx.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    if found > MIGRATIONS.len() {
        return Err(DbError::TooNew {
            found,
            known: MIGRATIONS.len(),
        });
    }
    for migration in &MIGRATIONS[found..] {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    Ok(tx.commit()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            source: "docker.io/library/alpine:3.20".into(),
            manifest_digest: Some(format!("sha256:{}", "a".repeat(64))),
            platform: Some("linux/amd64".into()),
            kernel: None,
            size: 1 << 30,
            created: 1_700_000_000,
            managed: true,
            pull_id: "p1".into(),
            blobs: vec!["sha256:1".into(), "sha256:2".into()],
            config: Some(RuntimeConfig {
                cmd: vec!["/bin/sh".into()],
                env: vec!["PATH=/bin".into()],
                ..RuntimeConfig::default()
            }),
            guest: None,
        }
    }

    #[test]
    fn migrations_round_trip_and_refuse_newer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut db = Db::open(&path).unwrap();
        assert_eq!(db.version().unwrap(), MIGRATIONS.len());
        db.put_image(&image("a")).unwrap();
        db.put_image(&image("b")).unwrap();
        drop(db);
        let mut db = Db::open(&path).unwrap();
        assert_eq!(db.image("a").unwrap(), Some(image("a")));
        assert_eq!(db.images().unwrap().len(), 2);
        assert!(db.delete_image("a").unwrap());
        assert!(!db.delete_image("a").unwrap());
        assert_eq!(db.referenced_blobs().unwrap().len(), 2);
        db.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(db);
        assert!(matches!(
            Db::open(&path),
            Err(DbError::TooNew { found: 99, .. })
        ));
    }
}
