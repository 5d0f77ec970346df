//! The blob cache: `<cache>/oci/blobs/sha256/<hex>`, content-addressed and verified.
//!
//! Blobs enter only through [`BlobCache::insert`]: written to a temp file in the same
//! directory, checked for size and sha256, fsynced and renamed into place, so a reader
//! never sees a partial or corrupt blob. A per-blob `flock` on `oci/locks/<hex>.lock`
//! makes concurrent pulls (threads or processes) download each blob once.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::io_error::{with_context, IoError};
use crate::reference::Digest;

/// Blobs being written are `.tmp-PID-RANDOM` beside the blobs.
const TEMP_PREFIX: &str = ".tmp-";

/// A blob cache rooted at a cache directory.
#[derive(Debug, Clone)]
pub struct BlobCache {
    blobs: PathBuf,
    locks: PathBuf,
}

/// Why a blob could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// Writing, syncing or renaming failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The bytes do not have the declared length.
    #[error("blob {digest}: expected {expected} bytes, received {actual}")]
    Size {
        /// The blob's digest.
        digest: Digest,
        /// The declared size.
        expected: u64,
        /// What arrived.
        actual: u64,
    },
    /// The bytes do not hash to the declared digest.
    #[error("blob {digest}: content hashes to {actual}")]
    Digest {
        /// The declared digest.
        digest: Digest,
        /// What the received bytes hash to.
        actual: Digest,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> InsertError {
    with_context(context)
}

impl BlobCache {
    /// Opens (creating if needed) the cache under `cache_dir`, removing the
    /// downloads a killed banger left; live ones (other pulls) are kept.
    pub fn open(cache_dir: &Path) -> io::Result<Self> {
        let cache = Self::open_unswept(cache_dir)?;
        cache.sweep()?;
        Ok(cache)
    }

    /// Opens (creating if needed) the cache under `cache_dir` and leaves what
    /// killed bangers left for the caller to list or [`BlobCache::sweep`].
    pub fn open_unswept(cache_dir: &Path) -> io::Result<Self> {
        let cache = Self::at(cache_dir);
        fs::create_dir_all(&cache.blobs)?;
        fs::create_dir_all(&cache.locks)?;
        Ok(cache)
    }

    /// The cache under `cache_dir` as it is, created or changed in no way
    /// (for a dry run: its directories may not exist).
    pub fn at(cache_dir: &Path) -> Self {
        BlobCache {
            blobs: cache_dir.join("oci").join("blobs").join("sha256"),
            locks: cache_dir.join("oci").join("locks"),
        }
    }

    /// The temp files of downloads whose banger is gone (killed, crashed).
    pub fn dead_downloads(&self) -> io::Result<Vec<PathBuf>> {
        crate::cleanup::dead_owners(&self.blobs, TEMP_PREFIX, "")
    }

    /// Removes [`BlobCache::dead_downloads`], returning what it removed.
    pub fn sweep(&self) -> io::Result<Vec<PathBuf>> {
        crate::cleanup::sweep_dead_owners(&self.blobs, TEMP_PREFIX, "")
    }

    /// Where the blob with `digest` lives (whether or not it is cached).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// The cached blob's path if it is present with the expected size (when known).
    /// Content was verified on insertion and is re-verified while it is streamed.
    pub fn get(&self, digest: &Digest, size: Option<u64>) -> Option<PathBuf> {
        let path = self.path(digest);
        let meta = fs::metadata(&path).ok()?;
        (meta.is_file() && size.is_none_or(|s| s == meta.len())).then_some(path)
    }

    /// Takes the exclusive per-blob lock, blocking until other holders release it.
    /// The lock is released when the returned guard is dropped.
    pub fn lock(&self, digest: &Digest) -> io::Result<BlobLock> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.locks.join(format!("{}.lock", digest.hex())))?;
        file.lock()?;
        Ok(BlobLock { _file: file })
    }

    /// Starts writing a blob: bytes go to a temp file next to the final path.
    pub fn writer(&self, digest: &Digest, size: u64) -> Result<BlobWriter, InsertError> {
        // `.tmp-PID-RANDOM`: the PID tells a sweep whether the owner lives.
        let temp = tempfile::Builder::new()
            .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
            .tempfile_in(&self.blobs)
            .map_err(io_err(format!(
                "creating a temp file in {}",
                self.blobs.display()
            )))?;
        Ok(BlobWriter {
            _registration: crate::cleanup::register(temp.path()),
            temp,
            hasher: Sha256::new(),
            written: 0,
            digest: digest.clone(),
            size,
            final_path: self.path(digest),
        })
    }

    /// Inserts a complete in-memory blob (manifests, configs) after verifying it.
    pub fn insert(&self, digest: &Digest, bytes: &[u8]) -> Result<PathBuf, InsertError> {
        let mut writer = self.writer(digest, bytes.len() as u64)?;
        writer.write(bytes)?;
        writer.commit()
    }
}

/// Holds a per-blob lock; dropping it unlocks.
#[derive(Debug)]
pub struct BlobLock {
    _file: File,
}

/// A blob being written. Dropping it without [`BlobWriter::commit`] deletes the temp file.
#[derive(Debug)]
pub struct BlobWriter {
    temp: tempfile::NamedTempFile,
    _registration: crate::cleanup::Registration,
    hasher: Sha256,
    written: u64,
    digest: Digest,
    size: u64,
    final_path: PathBuf,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The declared size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Another handle on the temp file, for reading it while it is written;
    /// it stays valid after the rename into the cache or the unlink.
    pub fn reopen(&self) -> io::Result<File> {
        self.temp.reopen()
    }

    /// Appends bytes, failing as soon as the blob is longer than declared.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), InsertError> {
        self.written += bytes.len() as u64;
        if self.written > self.size {
            return Err(InsertError::Size {
                digest: self.digest.clone(),
                expected: self.size,
                actual: self.written,
            });
        }
        self.hasher.update(bytes);
        self.temp
            .write_all(bytes)
            .map_err(io_err(format!("writing {}", self.temp.path().display())))
    }

    /// Verifies size and digest, fsyncs, and renames the blob into the cache.
    pub fn commit(self) -> Result<PathBuf, InsertError> {
        if self.written != self.size {
            return Err(InsertError::Size {
                digest: self.digest,
                expected: self.size,
                actual: self.written,
            });
        }
        let actual = Digest::from_sha256_bytes(&self.hasher.finalize());
        if actual != self.digest {
            return Err(InsertError::Digest {
                digest: self.digest,
                actual,
            });
        }
        let temp_path = self.temp.path().display().to_string();
        self.temp
            .as_file()
            .sync_all()
            .map_err(io_err(format!("syncing {temp_path}")))?;
        self.temp
            .persist(&self.final_path)
            .map_err(|e| io_err(format!("renaming {temp_path} into the cache"))(e.error))?;
        // Make the rename itself durable.
        if let Some(dir) = self.final_path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(format!("syncing {}", dir.display())))?;
        }
        Ok(self.final_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_files(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            })
            .count()
    }

    #[test]
    fn case_43_only_verified_blobs_enter_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let digest = Digest::of(b"blob");
        assert!(matches!(
            cache.insert(&digest, b"blib"),
            Err(InsertError::Digest { .. })
        ));
        let mut short = cache.writer(&digest, 4).unwrap();
        short.write(b"blo").unwrap();
        assert!(matches!(short.commit(), Err(InsertError::Size { .. })));
        let mut long = cache.writer(&digest, 4).unwrap();
        assert!(matches!(
            long.write(b"blobb"),
            Err(InsertError::Size { .. })
        ));
        drop(long);
        assert!(cache.get(&digest, None).is_none());
        assert_eq!(temp_files(&dir.path().join("oci/blobs/sha256")), 0);
        let path = cache.insert(&digest, b"blob").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"blob");
        assert_eq!(cache.get(&digest, Some(4)), Some(path));
        assert_eq!(cache.get(&digest, Some(5)), None);
    }
}
