//! File bytes lent rather than copied.
//!
//! A file's bytes reach the image through a write buffer: copied into it,
//! then copied again by the kernel into the image. When the bytes already
//! sit in memory that can be shared (a memory-mapped tar), the stream can
//! lend them instead, and the writer hands the kernel the shared memory
//! itself: one copy fewer, on the thread that parses the layers.

use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::Arc;

/// A byte stream that may lend its next bytes instead of copying them out.
pub trait LendingRead: io::Read {
    /// Up to `max` (> 0) of the next bytes, lent: at least one, or none at
    /// the end of the stream. `Ok(None)` when this stream does not lend;
    /// then nothing was consumed and [`io::Read::read`] gives the bytes.
    fn lend(&mut self, max: usize) -> io::Result<Option<Lent>> {
        let _ = max;
        Ok(None)
    }
}

impl<R: LendingRead + ?Sized> LendingRead for &mut R {
    fn lend(&mut self, max: usize) -> io::Result<Option<Lent>> {
        (**self).lend(max)
    }
}

impl<R: LendingRead + ?Sized> LendingRead for Box<R> {
    fn lend(&mut self, max: usize) -> io::Result<Option<Lent>> {
        (**self).lend(max)
    }
}

impl LendingRead for &[u8] {}

/// A stream that never lends: every byte is copied out by `read`.
#[derive(Debug)]
pub struct Copying<R>(pub R);

impl<R: io::Read> io::Read for Copying<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: io::Read> LendingRead for Copying<R> {}

/// Bytes lent by a [`LendingRead`]: a range of memory that `owner` keeps
/// valid (mapped, say) for as long as this value lives, on any thread.
#[derive(Clone)]
pub struct Lent {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: Range<usize>,
}

impl Lent {
    /// `owner`'s bytes in `range`; `None` if the range is not within them.
    pub fn new(owner: Arc<dyn AsRef<[u8]> + Send + Sync>, range: Range<usize>) -> Option<Self> {
        let len = (*owner).as_ref().len();
        (range.start <= range.end && range.end <= len).then_some(Self { owner, range })
    }

    /// No bytes: what a stream lends at its end.
    pub fn empty() -> Self {
        Self {
            owner: Arc::new([0u8; 0]),
            range: 0..0,
        }
    }

    /// The lent bytes.
    pub fn bytes(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.range.clone()]
    }

    /// How many bytes are lent.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// Whether no bytes are lent (the stream ended).
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }
}

impl fmt::Debug for Lent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lent({:?})", self.range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn lent_bytes_are_the_owners_range_and_out_of_range_is_refused() {
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(b"abcdef".to_vec());
        let lent = Lent::new(Arc::clone(&owner), 2..5).unwrap();
        assert_eq!(lent.bytes(), b"cde");
        assert_eq!(lent.len(), 3);
        assert!(Lent::new(Arc::clone(&owner), 4..7).is_none());
        assert!(Lent::empty().is_empty());
    }

    #[test]
    fn a_copying_stream_does_not_lend_and_reads_everything() {
        let mut stream = Copying(&b"xyz"[..]);
        assert!(stream.lend(2).unwrap().is_none());
        let mut all = Vec::new();
        stream.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"xyz");
    }
}
