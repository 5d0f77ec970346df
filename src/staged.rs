//! Files that appear under their final name only when complete.
//!
//! Output is written to a hidden temporary name in the destination's
//! directory; [`StagedFile::persist`] fsyncs it, renames it into place and
//! fsyncs the directory. Dropping an unpersisted file removes it, so an
//! error never leaves a partial output behind.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file being written under a temporary name.
#[derive(Debug)]
pub struct StagedFile {
    file: File,
    temp: PathBuf,
    target: PathBuf,
    persisted: bool,
}

impl StagedFile {
    /// Creates a temporary file beside `target`. Its name does not contain
    /// the target's, so that a target name of any valid length works: it is
    /// `.banger-PID-N.tmp`, at most 36 bytes, unique within the process.
    pub fn create(target: &Path) -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = parent_dir(target);
        if target.file_name().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "output path has no file name",
            ));
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".banger-{}-{n}.tmp", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)?;
        Ok(Self {
            file,
            temp,
            target: target.to_path_buf(),
            persisted: false,
        })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The temporary path.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Makes the file durable and moves it to its final name atomically.
    pub fn persist(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.temp, &self.target)?;
        self.persisted = true;
        File::open(parent_dir(&self.target))?.sync_all()
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn appears_only_when_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.ext4");
        let mut staged = StagedFile::create(&target).unwrap();
        staged.file.write_all(b"data").unwrap();
        assert!(!target.exists());
        staged.persist().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"data");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_target_name_of_255_bytes_works() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("n".repeat(255));
        let mut staged = StagedFile::create(&target).unwrap();
        staged.file.write_all(b"data").unwrap();
        staged.persist().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"data");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_files_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.ext4");
        drop(StagedFile::create(&target).unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
