//! Files that appear under their final name only when complete.
//!
//! Output is written to a hidden temporary name in the destination's
//! directory; [`StagedFile::persist`] fsyncs it, renames it into place and
//! fsyncs the directory. Dropping an unpersisted file removes it, so an
//! error never leaves a partial output behind; an interrupt removes it
//! through [`crate::cleanup`], and one left by a killed banger is swept by
//! the next run that writes into the same directory.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::cleanup::{self, Registration};

/// Temporary names are `.banger-PID-N.tmp`.
const TEMP_PREFIX: &str = ".banger-";
const TEMP_SUFFIX: &str = ".tmp";

/// A file being written under a temporary name.
#[derive(Debug)]
pub struct StagedFile {
    file: File,
    temp: PathBuf,
    target: PathBuf,
    persisted: bool,
    _registration: Registration,
}

impl StagedFile {
    /// Creates a temporary file beside `target`. Its name does not contain
    /// the target's, so that a target name of any valid length works: it is
    /// `.banger-PID-N.tmp`, at most 36 bytes, unique within the process.
    pub fn create(target: &Path) -> io::Result<Self> {
        let dir = parent_dir(target);
        if target.file_name().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "output path has no file name",
            ));
        }
        // What a killed banger left here; a failed sweep must not stop this run.
        let _ = cleanup::sweep_dead_owners(dir, TEMP_PREFIX, TEMP_SUFFIX);
        let temp = dir.join(cleanup::temp_name(TEMP_PREFIX, TEMP_SUFFIX));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)?;
        Ok(Self {
            file,
            _registration: cleanup::register(&temp),
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
