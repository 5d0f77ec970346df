//! One layer of a resolved image: where its blob is, and opening it as a
//! verified tar stream.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::growing::GrowingBlob;
use super::{OneShotReader, SourceError};
use crate::layer::{self, Compression, VerifyingReader};
use crate::mapped::{ByteSink, MappedReader};
use crate::reference::Digest;

/// Where a layer blob's bytes are.
#[derive(Debug, Clone)]
pub enum BlobLocation {
    /// A whole file (cached blob, OCI layout blob or `tar:` file).
    File(PathBuf),
    /// A member of a tar archive, read in place.
    Member {
        /// The archive.
        archive: PathBuf,
        /// Byte offset of the member's data.
        offset: u64,
        /// Length of the member's data.
        len: u64,
    },
    /// Standard input.
    Stdin,
    /// An injected one-shot reader.
    Reader(OneShotReader),
    /// A registry blob still downloading into the cache: read as it arrives,
    /// verified by the download.
    Downloading(GrowingBlob),
}

impl BlobLocation {
    /// The download, if the blob is still arriving.
    pub fn downloading(&self) -> Option<&GrowingBlob> {
        match self {
            BlobLocation::Downloading(blob) => Some(blob),
            _ => None,
        }
    }
}

/// Standard input holds one stream per process; a second open would read garbage.
static STDIN_TAKEN: AtomicBool = AtomicBool::new(false);

/// One layer of a resolved image.
#[derive(Debug, Clone)]
pub struct LayerRef {
    /// Position, 0 = lowest.
    pub index: usize,
    /// Digest of the blob as stored (compressed), when known.
    pub digest: Option<Digest>,
    /// Expected size of the stored blob, when known.
    pub size: Option<u64>,
    /// Digest of the uncompressed tar, when known.
    pub diff_id: Option<Digest>,
    /// The descriptor's media type (informational: compression is sniffed).
    pub media_type: String,
    /// Where the bytes are.
    pub blob: BlobLocation,
}

impl LayerRef {
    /// `layer 2 (sha256:abcdef012345)`, for messages.
    pub fn name(&self) -> String {
        match self.digest.as_ref().or(self.diff_id.as_ref()) {
            Some(digest) => format!("layer {} ({})", self.index, digest.short()),
            None => format!("layer {}", self.index),
        }
    }

    /// The stored blob's length, for progress: its descriptor's size, else
    /// the file's or archive member's length; `None` for a stream, or for a
    /// file that cannot be examined (opening it then says why).
    pub fn stored_len(&self) -> Option<u64> {
        self.size.or_else(|| match &self.blob {
            BlobLocation::File(path) => std::fs::metadata(path).ok().map(|m| m.len()),
            BlobLocation::Member { len, .. } => Some(*len),
            BlobLocation::Stdin | BlobLocation::Reader(_) | BlobLocation::Downloading(_) => None,
        })
    }

    /// The decompressed tar stream. The stored blob's digest and size are verified as
    /// it is read, and the tar's diff_id at EOF; a mismatch is an `InvalidData` error.
    /// A blob still downloading is verified by its download instead: wait for it
    /// ([`GrowingBlob::wait`]) before trusting what was read.
    pub fn open(&self) -> Result<Box<dyn Read + Send>, SourceError> {
        Ok(layer::verify_diff_id(
            self.open_unverified_tar()?,
            self.diff_id.clone(),
            &self.name(),
        ))
    }

    /// The decompressed tar stream with the stored blob verified (by its
    /// download, for a blob still downloading: see [`Self::open`]), but not the
    /// tar's diff_id: the caller checks that (with [`layer::verify_diff_id`]),
    /// on another thread than the decompression if it likes.
    pub fn open_unverified_tar(&self) -> Result<Box<dyn Read + Send>, SourceError> {
        Ok(self.open_unverified_tar_through(|raw| raw)?.0)
    }

    /// The blob read through a memory map ([`MappedReader`]), when it is a
    /// plain tar in a regular file or archive member with no digest or diff_id to
    /// verify (a `tar:` source's layer): then nothing needs its bytes but
    /// the flattener, which copies its headers out of the page cache and
    /// lends its file data on to the image writer.
    /// `None` otherwise, for [`Self::open_unverified_tar_through`] to read.
    /// `sink` sees the tar's bytes on a thread of its own.
    pub fn open_mapped_plain_tar(
        &self,
        sink: Option<Box<dyn ByteSink>>,
    ) -> Result<Option<MappedReader>, SourceError> {
        if self.digest.is_some() || self.diff_id.is_some() {
            return Ok(None);
        }
        let (path, offset, len) = match &self.blob {
            BlobLocation::File(path) => (path, 0, u64::MAX),
            BlobLocation::Member {
                archive,
                offset,
                len,
            } => (archive, *offset, *len),
            _ => return Ok(None),
        };
        let io_err =
            |action: &str| SourceError::io(format!("{}: {action} {}", self.name(), path.display()));
        // A pipe (`tar:<(zcat …)`) or device cannot be mapped: read(2) it.
        // Asked of the path, not an open file: opening a FIFO here would
        // take the writer's bytes away from the open that reads them. A
        // path that cannot be examined is left to that open to report.
        if !std::fs::metadata(path).is_ok_and(|meta| meta.is_file()) {
            return Ok(None);
        }
        let file = File::open(path).map_err(io_err("opening"))?;
        let mut prefix = [0u8; 4];
        let sniffed = file
            .read_at(&mut prefix, offset)
            .map_err(io_err("reading"))?
            .min(len.min(4) as usize);
        if Compression::sniff(&prefix[..sniffed]) != Compression::None {
            return Ok(None);
        }
        MappedReader::new(file, offset, len, sink)
            .map(Some)
            .map_err(io_err("mapping"))
    }

    /// [`Self::open_unverified_tar`] with the stored bytes passed through
    /// `through` before they are verified and decompressed, e.g. to count them;
    /// returned with the compression the blob was found to have.
    pub fn open_unverified_tar_through(
        &self,
        through: impl FnOnce(Box<dyn Read + Send>) -> Box<dyn Read + Send>,
    ) -> Result<(Box<dyn Read + Send>, Compression), SourceError> {
        let name = self.name();
        let io_err = SourceError::io;
        let raw: Box<dyn Read + Send> = match &self.blob {
            BlobLocation::File(path) => Box::new(
                File::open(path).map_err(io_err(format!("{name}: opening {}", path.display())))?,
            ),
            BlobLocation::Member {
                archive,
                offset,
                len,
            } => {
                let mut file = File::open(archive)
                    .map_err(io_err(format!("{name}: opening {}", archive.display())))?;
                file.seek(SeekFrom::Start(*offset))
                    .map_err(io_err(format!("{name}: seeking in {}", archive.display())))?;
                Box::new(file.take(*len))
            }
            BlobLocation::Stdin => {
                if STDIN_TAKEN.swap(true, Ordering::SeqCst) {
                    return Err(SourceError::AlreadyConsumed { what: name });
                }
                Box::new(io::stdin())
            }
            BlobLocation::Downloading(blob) => Box::new(blob.reader()),
            BlobLocation::Reader(reader) => reader
                .take()
                .ok_or_else(|| SourceError::AlreadyConsumed { what: name.clone() })?,
        };
        let raw = through(raw);
        let raw: Box<dyn Read + Send> = match &self.digest {
            // The download hashes and sizes the bytes as it writes them,
            // and nothing is published before it has said they match
            // (`GrowingBlob::wait`). Hashing them again here would add a
            // second SHA-256 pass to the decompressing thread.
            Some(_) if self.blob.downloading().is_some() => raw,
            Some(digest) => Box::new(VerifyingReader::new(
                raw,
                digest.clone(),
                self.size,
                format!("{name}: stored blob"),
            )),
            None => raw,
        };
        layer::decoder(raw, &name).map_err(io_err(format!("{name}: reading")))
    }
}
