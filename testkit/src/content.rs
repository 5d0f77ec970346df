//! File contents for tests: a sparse [`ContentSource`] and a hole-aware digest.
//!
//! Contents are compared by digest so no file is ever held whole in memory.
//! The digest covers the length and every non-zero 64 KiB chunk with its
//! offset, so a source can skip the chunks its `data_ranges` leave out
//! (they read as zeros by contract) while an image reader hashes every
//! chunk it reads, and both arrive at the same value.

use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use banger_ext4::tree::ContentSource;
use sha2::{Digest, Sha256};

/// Granularity of the digest.
pub const CHUNK: u64 = 64 * 1024;

/// A file's length and a SHA-256 over its non-zero chunks (see the module docs).
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct ContentDigest {
    /// File size in bytes.
    pub len: u64,
    /// SHA-256 over `le64 offset ‖ bytes` of every chunk that is not all zero.
    pub sha256: [u8; 32],
}

impl fmt::Debug for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes, sha256 {}", self.len, hex::encode(self.sha256))
    }
}

/// Builds a [`ContentDigest`] from chunks given in increasing offset order.
#[derive(Default)]
pub struct DigestBuilder {
    hasher: Sha256,
}

impl DigestBuilder {
    /// Adds the chunk at `offset` (a multiple of [`CHUNK`]); zero chunks are skipped.
    pub fn chunk(&mut self, offset: u64, bytes: &[u8]) {
        if !is_zero(bytes) {
            self.hasher.update(offset.to_le_bytes());
            self.hasher.update(bytes);
        }
    }

    /// The digest of a file of `len` bytes.
    pub fn finish(self, len: u64) -> ContentDigest {
        ContentDigest {
            len,
            sha256: self.hasher.finalize().into(),
        }
    }
}

fn is_zero(bytes: &[u8]) -> bool {
    // Word at a time: long holes are scanned on every image read.
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    words
        .map(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
        .all(|w| w == 0)
        && tail.iter().all(|&b| b == 0)
}

/// Fills `buf` from `read` at `offset`, stopping early only at end of file.
pub fn read_full(
    mut read: impl FnMut(u64, &mut [u8]) -> io::Result<usize>,
    offset: u64,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match read(offset + done as u64, &mut buf[done..])? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

/// Digests a tree's content source, reading only chunks that overlap its data ranges.
pub fn digest_source(source: &dyn ContentSource) -> io::Result<ContentDigest> {
    let len = source.len();
    let ranges = source.data_ranges();
    let mut builder = DigestBuilder::default();
    let mut buf = vec![0u8; CHUNK as usize];
    let mut next_chunk = 0u64;
    for range in ranges.iter().filter(|r| r.start < r.end) {
        let first = (range.start / CHUNK).max(next_chunk);
        let end = range.end.min(len).div_ceil(CHUNK);
        for index in first..end {
            let offset = index * CHUNK;
            let want = CHUNK.min(len - offset) as usize;
            let got = read_full(|o, b| source.read_at(o, b), offset, &mut buf[..want])?;
            if got != want {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("source ended at {} of {len} bytes", offset + got as u64),
                ));
            }
            builder.chunk(offset, &buf[..want]);
        }
        next_chunk = next_chunk.max(end);
    }
    Ok(builder.finish(len))
}

/// Digests a file of `len` bytes read sequentially through `read`.
pub fn digest_reader(
    len: u64,
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> io::Result<ContentDigest> {
    let mut builder = DigestBuilder::default();
    let mut buf = vec![0u8; CHUNK as usize];
    let mut offset = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match read(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        builder.chunk(offset, &buf[..filled]);
        offset += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    if offset != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("read {offset} bytes of a {len}-byte file"),
        ));
    }
    Ok(builder.finish(len))
}

/// A test file with holes: data at a few offsets, zeros (and holes) elsewhere.
#[derive(Clone)]
pub struct SparseSource {
    len: u64,
    extents: Vec<(u64, Arc<[u8]>)>,
}

impl SparseSource {
    /// A file of `len` bytes holding `data` at each given offset. Extents are
    /// sorted; overlapping or out-of-bounds parts are clipped away.
    pub fn new(len: u64, mut data: Vec<(u64, Vec<u8>)>) -> Self {
        data.sort_by_key(|(offset, _)| *offset);
        let mut extents: Vec<(u64, Arc<[u8]>)> = Vec::new();
        let mut end = 0u64;
        for (offset, mut bytes) in data {
            let start = offset.max(end);
            if start >= len {
                break;
            }
            let skip = (start - offset) as usize;
            if skip >= bytes.len() {
                continue;
            }
            bytes.drain(..skip);
            bytes.truncate((len - start).min(bytes.len() as u64) as usize);
            end = start + bytes.len() as u64;
            extents.push((start, bytes.into()));
        }
        Self { len, extents }
    }
}

impl fmt::Debug for SparseSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: Vec<Range<u64>> = self.data_ranges();
        write!(f, "SparseSource({} bytes, data {ranges:?})", self.len)
    }
}

impl ContentSource for SparseSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn data_ranges(&self) -> Vec<Range<u64>> {
        self.extents
            .iter()
            .map(|(offset, bytes)| *offset..*offset + bytes.len() as u64)
            .collect()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = buf.len().min((self.len - offset) as usize);
        let out = &mut buf[..n];
        out.fill(0);
        let end = offset + n as u64;
        for (start, bytes) in &self.extents {
            let stop = start + bytes.len() as u64;
            if stop <= offset || *start >= end {
                continue;
            }
            let from = offset.max(*start);
            let to = end.min(stop);
            out[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&bytes[(from - start) as usize..(to - start) as usize]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_and_reader_digests_agree_across_holes() {
        let source = SparseSource::new(
            5 * CHUNK + 17,
            vec![
                (3, vec![1; 10]),
                (2 * CHUNK - 2, vec![7; 4]),
                (5 * CHUNK + 16, vec![9; 8]),
            ],
        );
        assert_eq!(
            source.data_ranges(),
            vec![
                3..13,
                2 * CHUNK - 2..2 * CHUNK + 2,
                5 * CHUNK + 16..5 * CHUNK + 17
            ]
        );
        let mut dense = vec![0u8; source.len() as usize];
        assert_eq!(source.read_at(0, &mut dense).unwrap(), dense.len());
        assert_eq!(dense[2 * CHUNK as usize + 1], 7);
        let mut at = 0usize;
        let from_reader = digest_reader(dense.len() as u64, |buf| {
            let n = buf.len().min(dense.len() - at).min(1000);
            buf[..n].copy_from_slice(&dense[at..at + n]);
            at += n;
            Ok(n)
        })
        .unwrap();
        assert_eq!(digest_source(&source).unwrap(), from_reader);
        let other = SparseSource::new(5 * CHUNK + 17, vec![(3, vec![1; 10])]);
        assert_ne!(digest_source(&other).unwrap(), from_reader);
    }
}
