//! A blob that is still downloading, readable as it grows: the download
//! writes the blob cache's temp file and publishes how many bytes are in
//! it; readers read the same file (through their own handle, so the
//! rename into the cache or the unlink of a failed download does not
//! matter) up to that length, waiting for more. The page cache, not RAM,
//! holds what the download has fetched ahead of the reader.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::SourceError;
use crate::reference::Digest;

/// Why a growing blob's bytes stopped coming; readers see it as the
/// source of their `io::Error`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DownloadFailed {
    /// The download failed (the pull fails with this error).
    #[error("downloading {digest} failed")]
    Failed {
        /// The blob.
        digest: Digest,
        /// Why.
        #[source]
        cause: Arc<SourceError>,
    },
    /// The download was called off because the pull failed elsewhere.
    #[error("downloading {digest} was cancelled")]
    Cancelled {
        /// The blob.
        digest: Digest,
    },
}

/// How a download ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Verified and stored in the cache at this path.
    Stored(PathBuf),
    /// Failed, or called off; nothing was cached.
    Failed(DownloadFailed),
}

#[derive(Debug, Default)]
struct State {
    /// The blob's bytes, once the download has a file for them.
    file: Option<Arc<File>>,
    /// Bytes of `file` written so far.
    available: u64,
    /// Every byte has arrived (verification and storing may still run).
    complete: bool,
    /// Readers and the pipeline want no more bytes.
    cancelled: bool,
    outcome: Option<Outcome>,
}

#[derive(Debug)]
struct Shared {
    digest: Digest,
    state: Mutex<State>,
    changed: Condvar,
    /// Wakes the download task when the blob is cancelled.
    cancel: tokio::sync::Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state());
        self.changed.notify_all();
    }

    fn cancel(&self) {
        self.update(|state| state.cancelled = true);
        self.cancel.notify_one();
    }
}

/// Calls the download off when the last handle to the blob goes away
/// without anyone waiting for it (the download itself holds no handle).
#[derive(Debug)]
struct CancelOnDrop(Arc<Shared>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.0.state().outcome.is_none() {
            self.0.cancel();
        }
    }
}

/// The readers' and the pipeline's side of a download.
#[derive(Debug, Clone)]
pub struct GrowingBlob {
    shared: Arc<Shared>,
    _owner: Arc<CancelOnDrop>,
}

/// The download's side: publishes bytes and the outcome.
#[derive(Debug)]
pub(crate) struct Publisher {
    shared: Arc<Shared>,
}

impl GrowingBlob {
    /// A blob with nothing downloaded yet, and its download's side.
    pub(crate) fn new(digest: Digest) -> (GrowingBlob, Publisher) {
        let shared = Arc::new(Shared {
            digest,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            cancel: tokio::sync::Notify::new(),
        });
        let blob = GrowingBlob {
            _owner: Arc::new(CancelOnDrop(shared.clone())),
            shared: shared.clone(),
        };
        (blob, Publisher { shared })
    }

    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.shared.digest
    }

    /// A reader of the blob from its start, blocking while the bytes it
    /// wants have not arrived.
    pub fn reader(&self) -> GrowingReader {
        GrowingReader {
            shared: self.shared.clone(),
            _owner: self._owner.clone(),
            pos: 0,
        }
    }

    /// Calls the download off: readers fail, the temp file is removed.
    /// A download already verifying or storing its blob finishes.
    pub fn cancel(&self) {
        self.shared.cancel();
    }

    /// Blocks until the download has ended, and says how.
    pub fn wait(&self) -> Outcome {
        let mut state = self.shared.state();
        loop {
            if let Some(outcome) = &state.outcome {
                return outcome.clone();
            }
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Publisher {
    /// The blob's digest.
    pub(crate) fn digest(&self) -> &Digest {
        &self.shared.digest
    }

    /// Whether the blob was called off.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.shared.state().cancelled
    }

    /// Resolves when the blob is called off.
    pub(crate) async fn cancelled(&self) {
        while !self.is_cancelled() {
            self.shared.cancel.notified().await;
        }
    }

    /// The bytes will be in `file`, which has `available` of them already.
    pub(crate) fn start(&self, file: File, available: u64) {
        self.shared.update(|state| {
            state.file = Some(Arc::new(file));
            state.available = available;
        });
    }

    /// `bytes` more were written to the file.
    pub(crate) fn grow(&self, bytes: u64) {
        self.shared.update(|state| state.available += bytes);
    }

    /// Every byte is in the file.
    pub(crate) fn complete(&self) {
        self.shared.update(|state| state.complete = true);
    }

    /// The download ended: stored, failed or cancelled.
    pub(crate) fn finish(self, outcome: Outcome) {
        self.shared.update(|state| {
            if let (Outcome::Stored(path), None) = (&outcome, &state.file) {
                // Found in the cache after all (another pull stored it).
                match File::open(path) {
                    Ok(file) => {
                        state.available = file.metadata().map_or(0, |m| m.len());
                        state.file = Some(Arc::new(file));
                    }
                    Err(e) => {
                        state.outcome = Some(Outcome::Failed(DownloadFailed::Failed {
                            digest: self.shared.digest.clone(),
                            cause: Arc::new(
                                SourceError::io(format!("opening {}", path.display()))(e),
                            ),
                        }));
                        return;
                    }
                }
                state.complete = true;
            }
            state.outcome = Some(outcome);
        });
    }
}

impl Drop for Publisher {
    // A download task that is dropped unfinished (its runtime shut down)
    // must not leave readers waiting forever.
    fn drop(&mut self) {
        let digest = self.shared.digest.clone();
        self.shared.update(|state| {
            state
                .outcome
                .get_or_insert(Outcome::Failed(DownloadFailed::Cancelled { digest }));
        });
    }
}

/// Reads a [`GrowingBlob`] from its start.
#[derive(Debug)]
pub struct GrowingReader {
    shared: Arc<Shared>,
    _owner: Arc<CancelOnDrop>,
    pos: u64,
}

impl Read for GrowingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut state = self.shared.state();
        let file = loop {
            if let Some(Outcome::Failed(failed)) = &state.outcome {
                return Err(io::Error::other(failed.clone()));
            }
            if state.cancelled {
                let digest = self.shared.digest.clone();
                return Err(io::Error::other(DownloadFailed::Cancelled { digest }));
            }
            match &state.file {
                Some(file) if self.pos < state.available => break file.clone(),
                Some(_) if state.complete => return Ok(0),
                _ => {}
            }
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        };
        let want = (state.available - self.pos).min(buf.len() as u64) as usize;
        drop(state);
        let n = file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: the download's file is shorter than published",
                    self.shared.digest
                ),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_reader_waits_for_bytes_and_sees_failures() {
        let digest = Digest::of(b"x");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut writer = File::create(&path).unwrap();
        let (blob, publisher) = GrowingBlob::new(digest.clone());
        let mut reader = blob.reader();
        let read = std::thread::spawn(move || {
            let mut out = Vec::new();
            reader.read_to_end(&mut out).map(|_| out)
        });
        publisher.start(File::open(&path).unwrap(), 0);
        for chunk in [b"hello ".as_slice(), b"world"] {
            writer.write_all(chunk).unwrap();
            publisher.grow(chunk.len() as u64);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        publisher.complete();
        assert_eq!(read.join().unwrap().unwrap(), b"hello world");
        publisher.finish(Outcome::Stored(path.clone()));
        assert!(matches!(blob.wait(), Outcome::Stored(p) if p == path));

        let (blob, publisher) = GrowingBlob::new(digest.clone());
        let mut reader = blob.reader();
        publisher.start(File::open(&path).unwrap(), 5);
        let mut buf = [0u8; 16];
        assert_eq!(reader.read(&mut buf).unwrap(), 5);
        publisher.finish(Outcome::Failed(DownloadFailed::Failed {
            digest,
            cause: Arc::new(SourceError::Corrupt {
                what: "x".into(),
                reason: "bad".into(),
            }),
        }));
        let err = reader.read(&mut buf).unwrap_err();
        let failed = err.get_ref().unwrap().downcast_ref::<DownloadFailed>();
        assert!(
            matches!(failed, Some(DownloadFailed::Failed { .. })),
            "{err}"
        );
    }

    #[test]
    fn dropping_every_handle_cancels_the_download() {
        let (blob, publisher) = GrowingBlob::new(Digest::of(b"y"));
        let reader = blob.reader();
        drop(blob);
        assert!(!publisher.is_cancelled());
        drop(reader);
        assert!(publisher.is_cancelled());
    }
}
