//! The contents of regular files: where their bytes come from, or where
//! they were already written.

use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use super::LendingRead;

/// Where the bytes of a regular file come from.
pub trait ContentSource: Send + Sync + fmt::Debug {
    /// Length of the file in bytes.
    fn len(&self) -> u64;

    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sorted, non-overlapping byte ranges that hold data. Everything outside
    /// them reads as zero and is written as a hole.
    fn data_ranges(&self) -> Vec<Range<u64>> {
        std::iter::once(0..self.len()).collect()
    }

    /// Reads bytes at `offset` into `buf`, returning how many were read
    /// (0 only at or past the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// A contiguous run of file blocks already written into an image.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlacedExtent {
    /// First file block (in filesystem blocks) the run covers.
    pub logical_block: u64,
    /// First physical block of the run in the image.
    pub physical_block: u64,
    /// Number of blocks in the run.
    pub len: u64,
}

/// File data that a [`ContentStore`] has already written into the image
/// under construction. Blocks not covered by an extent are holes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PlacedData {
    /// File size in bytes.
    pub size: u64,
    /// Runs in increasing logical order.
    pub extents: Vec<PlacedExtent>,
}

/// The contents of a regular file.
#[derive(Clone, Debug)]
pub enum FileContent {
    /// Bytes streamed from a source when the image is written.
    Source(Arc<dyn ContentSource>),
    /// Bytes already written into the image by the builder's content store.
    Placed(PlacedData),
}

impl FileContent {
    /// An empty file.
    pub fn empty() -> Self {
        Self::Source(Arc::new(MemorySource::new(Vec::new())))
    }

    /// A file holding `bytes`.
    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self::Source(Arc::new(MemorySource::new(bytes)))
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Self::Source(source) => source.len(),
            Self::Placed(placed) => placed.size,
        }
    }
}

/// Writes file contents somewhere durable while the tree is being built, so
/// that no file is ever held whole in memory. The image builder implements it
/// by writing straight into the image; tests may keep bytes in memory.
pub trait ContentStore {
    /// Error type of the store.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Consumes a file of `size` bytes whose data lies in `data_ranges`
    /// (sorted, non-overlapping; everything else is a hole). `reader` yields
    /// the bytes of each range one after another, and nothing else, copied
    /// out or lent.
    fn store(
        &mut self,
        reader: &mut dyn LendingRead,
        size: u64,
        data_ranges: &[Range<u64>],
    ) -> Result<FileContent, Self::Error>;
}

/// File contents held in memory: assets and test data.
#[derive(Clone)]
pub struct MemorySource {
    bytes: Arc<[u8]>,
}

impl MemorySource {
    /// A source over `bytes`.
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self {
            bytes: bytes.into(),
        }
    }

    /// The bytes of the file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for MemorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemorySource({} bytes)", self.bytes.len())
    }
}

impl ContentSource for MemorySource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        let n = buf.len().min(self.bytes.len() - start);
        buf[..n].copy_from_slice(&self.bytes[start..start + n]);
        Ok(n)
    }
}

/// A [`ContentStore`] that keeps every file in memory. For tests and small
/// trees only.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl ContentStore for MemoryStore {
    type Error = io::Error;

    fn store(
        &mut self,
        reader: &mut dyn LendingRead,
        size: u64,
        data_ranges: &[Range<u64>],
    ) -> io::Result<FileContent> {
        let len = usize::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "file too large"))?;
        let mut bytes = vec![0u8; len];
        for range in data_ranges {
            let (start, end) = (range.start as usize, range.end as usize);
            if start > end || end > len {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "data range outside the file",
                ));
            }
            reader.read_exact(&mut bytes[start..end])?;
        }
        Ok(FileContent::from_bytes(bytes))
    }
}
