//! Layer streams on their way into the flattener: inflated ahead on their own
//! threads, hashed, and counted for progress.

use std::io::Read;
use std::sync::{Arc, OnceLock};

use banger_ext4::tree::{Copying, LendingRead, Lent};
use xxhash_rust::xxh3::Xxh3;

use super::progress::{Progress, ProgressEvent};
use super::RootfsError;
use crate::layer::{verify_diff_id, Compression};
use crate::mapped::ByteSink;
use crate::readahead::ReadAhead;
use crate::source::{BlobLocation, LayerRef, SourceError};

/// A layer's tar stream as [`open_layer`] returns it.
pub(super) struct OpenedLayer {
    /// The tar, verified as it is read; a mapped tar lends its bytes.
    pub(super) reader: Box<dyn LendingRead + Send>,
    /// The tar's XXH3-128 hash when asked for, there once `reader` reached its end.
    pub(super) content_digest: Option<ContentDigest>,
}

/// The XXH3-128 hash of a stream, set when the stream ends. It only names
/// a `tar:` source's content for the filesystem's UUID, which nothing
/// trusts: a tar has no digest to check it against, so a cryptographic
/// hash would prove nothing, and XXH3 hashes at memory speed where BLAKE3
/// took a fifth of the CPU time of a plain tar's conversion.
pub(super) type ContentDigest = Arc<OnceLock<[u8; 16]>>;

/// A layer's tar stream, decompressed on its own thread, and hashed for
/// `content_digest` (the UUID of a `tar:` source's image) when asked.
///
/// A plain tar in a file with nothing to verify (a `tar:` file) is the
/// exception: it is read through memory maps ([`crate::mapped`]), lends
/// its file data to the image writer, and is hashed on the maps' sink
/// thread. Otherwise, where the tar's hashes are
/// computed depends on the compression. A compressed layer's thread is
/// busy inflating and hashing the stored bytes, so its tar's diff_id (and
/// content digest) are hashed on the consumer's side; a plain tar's thread
/// only copies, so they are hashed there, off the flattener's core, and a
/// plain tar whose diff_id is its stored digest is not hashed twice. The
/// stored bytes are counted for `progress` as that thread reads them.
pub(super) fn open_layer(
    layer: &LayerRef,
    count: usize,
    depth: usize,
    progress: &Progress,
    hash_content: bool,
) -> Result<OpenedLayer, RootfsError> {
    let index = layer.index + 1;
    progress.report(ProgressEvent::Opened {
        index,
        count,
        digest: layer.digest.clone(),
        size: layer.stored_len(),
    });
    let name = layer.name();
    let content_digest = hash_content.then(ContentDigest::default);
    let hashed = |tar: Box<dyn Read + Send>| -> Box<dyn Read + Send> {
        match &content_digest {
            Some(slot) => Box::new(DigestingReader::new(tar, Arc::clone(slot))),
            None => tar,
        }
    };
    let sink = content_digest
        .as_ref()
        .map(|slot| Box::new(ContentHasher::new(Arc::clone(slot))) as Box<dyn ByteSink>);
    if let Some(mapped) = layer.open_mapped_plain_tar(sink)? {
        // Hashed on the map's own sink thread; the flattener copies only
        // headers and lends the file data on to the writer.
        return Ok(OpenedLayer {
            reader: Box::new(ProgressReader::new(mapped, progress.clone(), index)),
            content_digest,
        });
    }
    // Opening reads the first bytes (to sniff the compression), which may
    // not have arrived for a download: that one opens on the read-ahead
    // thread instead, so the flattener goes on with the layers before, and
    // is treated as compressed (as registry layers are).
    let (tar, plain): (Box<dyn Read + Send>, bool) = match layer.blob {
        BlobLocation::Downloading(_) => (
            Box::new(OpenOnRead::Pending(layer.clone(), progress.clone())),
            false,
        ),
        _ => {
            let (tar, compression) = open_counted(layer, progress.clone())?;
            (tar, compression == Compression::None)
        }
    };
    let reader: Box<dyn Read + Send> = if plain {
        let diff_id = layer
            .diff_id
            .clone()
            .filter(|diff_id| Some(diff_id) != layer.digest.as_ref());
        let tar = hashed(verify_diff_id(tar, diff_id, &name));
        Box::new(ReadAhead::with_depth(tar, depth))
    } else {
        let inflated = ReadAhead::with_depth(tar, depth);
        hashed(verify_diff_id(
            Box::new(inflated),
            layer.diff_id.clone(),
            &name,
        ))
    };
    Ok(OpenedLayer {
        reader: Box::new(Copying(reader)),
        content_digest,
    })
}

/// The layer's verified tar stream, its stored bytes counted for
/// `progress`, with the compression it was stored with.
fn open_counted(
    layer: &LayerRef,
    progress: Progress,
) -> Result<(Box<dyn Read + Send>, Compression), SourceError> {
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
                    let (tar, _) =
                        open_counted(layer, progress.clone()).map_err(std::io::Error::other)?;
                    *self = OpenOnRead::Open(tar);
                }
            }
        }
    }
}

/// Inflated bytes buffered between the layer threads and the flattener,
/// all layers together: this bounds memory whatever the image.
pub(super) const READ_AHEAD_BUDGET: usize = 16 << 20;

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

impl<R> ProgressReader<R> {
    /// Counts `n` bytes read (0 at the end).
    fn count(&mut self, n: usize) {
        self.unreported += n as u64;
        if self.unreported >= Self::STEP || (n == 0 && self.unreported > 0) {
            self.progress.report(ProgressEvent::Read {
                index: self.index,
                bytes: std::mem::take(&mut self.unreported),
            });
        }
    }
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count(n);
        Ok(n)
    }
}

impl<R: LendingRead> LendingRead for ProgressReader<R> {
    fn lend(&mut self, max: usize) -> std::io::Result<Option<Lent>> {
        let lent = self.inner.lend(max)?;
        if let Some(lent) = &lent {
            self.count(lent.len());
        }
        Ok(lent)
    }
}

/// Hashes a tar's bytes into its [`ContentDigest`], set when told the
/// tar ended: the sink of a mapped tar, and inside [`DigestingReader`].
struct ContentHasher {
    hasher: Xxh3,
    digest: ContentDigest,
}

impl ContentHasher {
    fn new(digest: ContentDigest) -> Self {
        Self {
            hasher: Xxh3::new(),
            digest,
        }
    }
}

impl ByteSink for ContentHasher {
    fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    fn finish(&mut self) {
        // Set only here, once: a second end cannot change it.
        let _ = self.digest.set(self.hasher.digest128().to_be_bytes());
    }
}

/// Hashes what passes through into its [`ContentDigest`] at the end.
struct DigestingReader<R> {
    inner: R,
    hasher: ContentHasher,
}

impl<R> DigestingReader<R> {
    fn new(inner: R, digest: ContentDigest) -> Self {
        Self {
            inner,
            hasher: ContentHasher::new(digest),
        }
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hasher.finish();
        } else {
            self.hasher.update(&buf[..n]);
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
