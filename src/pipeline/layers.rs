//! Layer streams on their way into the flattener: inflated ahead on their own
//! threads, hashed, and counted for progress.

use std::io::Read;

use sha2::{Digest as _, Sha256};

use super::progress::{Progress, ProgressEvent};
use super::RootfsError;
use crate::layer::verify_diff_id;
use crate::readahead::ReadAhead;
use crate::source::LayerRef;

/// A layer's tar stream, decompressed on its own thread. The tar's diff_id
/// is hashed here on the consumer's side: inflating and hashing the
/// compressed bytes already keep that thread busy, and hashing the
/// uncompressed bytes there too would make it the bottleneck.
pub(super) fn open_layer(
    layer: &LayerRef,
    depth: usize,
) -> Result<Box<dyn Read + Send>, RootfsError> {
    let inflated = ReadAhead::with_depth(layer.open_unverified_tar()?, depth);
    Ok(verify_diff_id(
        Box::new(inflated),
        layer.diff_id.clone(),
        &layer.name(),
    ))
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

/// Reports how much of a layer's tar has been read, in steps of a few MiB
/// so the hook is not called for every small read.
pub(super) struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a Progress,
    unreported: u64,
}

impl<'a, R> ProgressReader<'a, R> {
    const STEP: u64 = 4 << 20;

    pub(super) fn new(inner: R, progress: &'a Progress) -> Self {
        Self {
            inner,
            progress,
            unreported: 0,
        }
    }
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.unreported += n as u64;
        if self.unreported >= Self::STEP || (n == 0 && self.unreported > 0) {
            self.progress.report(ProgressEvent::Applied {
                bytes: self.unreported,
            });
            self.unreported = 0;
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
            if let ProgressEvent::Applied { bytes } = event {
                sink.lock().unwrap().push(bytes);
            }
        }));
        let data = vec![7u8; (10 << 20) + 5];
        let mut reader = ProgressReader::new(data.as_slice(), &progress);
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        let steps = seen.lock().unwrap().clone();
        assert_eq!(steps.iter().sum::<u64>(), data.len() as u64);
        assert!(
            steps.len() <= 4,
            "reported in a few steps, not per read: {steps:?}"
        );
    }
}
