//! Layer streams on their way into the flattener: inflated ahead on their own
//! threads, hashed, and counted for progress.

use std::io::Read;

use sha2::{Digest as _, Sha256};

use super::progress::{Progress, ProgressEvent};
use super::RootfsError;
use crate::layer::verify_diff_id;
use crate::readahead::ReadAhead;
use crate::source::{BlobLocation, LayerRef, SourceError};

/// A layer's tar stream, decompressed on its own thread. The tar's diff_id
/// is hashed here on the consumer's side: inflating and hashing the
/// compressed bytes already keep that thread busy, and hashing the
/// uncompressed bytes there too would make it the bottleneck. The stored
/// bytes are counted for `progress` as that thread reads them.
pub(super) fn open_layer(
    layer: &LayerRef,
    count: usize,
    depth: usize,
    progress: &Progress,
) -> Result<Box<dyn Read + Send>, RootfsError> {
    let index = layer.index + 1;
    progress.report(ProgressEvent::Opened {
        index,
        count,
        digest: layer.digest.clone(),
        size: layer.stored_len(),
    });
    let tar: Box<dyn Read + Send> = match layer.blob {
        // Opening reads the first bytes (to sniff the compression), which
        // may not have arrived: open on the read-ahead thread instead, so
        // the flattener goes on with the layers before.
        BlobLocation::Downloading(_) => {
            Box::new(OpenOnRead::Pending(layer.clone(), progress.clone()))
        }
        _ => open_counted(layer, progress.clone())?,
    };
    let inflated = ReadAhead::with_depth(tar, depth);
    Ok(verify_diff_id(
        Box::new(inflated),
        layer.diff_id.clone(),
        &layer.name(),
    ))
}

/// The layer's verified tar stream, its stored bytes counted for `progress`.
fn open_counted(layer: &LayerRef, progress: Progress) -> Result<Box<dyn Read + Send>, SourceError> {
    let index = layer.index + 1;
    layer
        .open_unverified_tar_through(move |raw| Box::new(ProgressReader::new(raw, progress, index)))
}

/// A layer opened by its first read.
enum OpenOnRead {
    Pending(LayerRef, Progress),
    Open(Box<dyn Read + Send>),
}

impl Read for OpenOnRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self {
                OpenOnRead::Open(tar) => return tar.read(buf),
                OpenOnRead::Pending(layer, progress) => {
                    let tar =
                        open_counted(layer, progress.clone()).map_err(std::io::Error::other)?;
                    *self = OpenOnRead::Open(tar);
                }
            }
        }
    }
}

/// Inflated bytes buffered between the layer threads and the flattener,
/// all layers together: this bounds memory whatever the image.
pub(super) const READ_AHEAD_BUDGET: usize = 64 << 20;

/// How many layers beyond the current one inflate at once: one per spare
/// core, at least one (so the next layer starts while this one finishes).
pub(super) fn layers_ahead() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .clamp(1, 7)
}

/// Reports how much of a layer's stored blob has been read, in steps of a
/// MiB so the hook is not called for every small read.
pub(super) struct ProgressReader<R> {
    inner: R,
    progress: Progress,
    index: usize,
    unreported: u64,
}

impl<R> ProgressReader<R> {
    const STEP: u64 = 1 << 20;

    pub(super) fn new(inner: R, progress: Progress, index: usize) -> Self {
        Self {
            inner,
            progress,
            index,
            unreported: 0,
        }
    }
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.unreported += n as u64;
        if self.unreported >= Self::STEP || (n == 0 && self.unreported > 0) {
            self.progress.report(ProgressEvent::Read {
                index: self.index,
                bytes: std::mem::take(&mut self.unreported),
            });
        }
        Ok(n)
    }
}

/// Hashes what passes through, when asked to.
pub(super) struct HashingReader<R> {
    pub(super) inner: R,
    pub(super) hasher: Option<Sha256>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reader_reports_every_byte_in_steps() {
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let progress = Progress::new(Arc::new(move |event| {
            if let ProgressEvent::Read { index: 3, bytes } = event {
                sink.lock().unwrap().push(bytes);
            }
        }));
        let data = vec![7u8; (10 << 20) + 5];
        let mut reader = ProgressReader::new(data.as_slice(), progress, 3);
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        let steps = seen.lock().unwrap().clone();
        assert_eq!(steps.iter().sum::<u64>(), data.len() as u64);
        assert!(
            steps.len() <= 11,
            "reported in a few steps, not per read: {steps:?}"
        );
    }
}
