//! A small streaming tar reader: one header at a time, file data read
//! straight from the underlying stream, nothing buffered but headers.
//!
//! It understands ustar, pax (local and global headers, sub-second times,
//! xattrs, `GNU.sparse.*` formats 0.0, 0.1 and 1.0), old GNU (long names and
//! link names, old sparse files with extension blocks, base-256 numbers) and
//! star. The `tar` crate covers less of this (it ignores pax sparse maps and
//! sub-second times and expands old sparse files with zeros), hence this.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::ops::Range;

use banger_ext4::tree::Timestamp;

use super::error::TarError;
use super::pax::{parse_records, PaxFields};
use super::sparse::{self, MAX_SPARSE_ENTRIES};
use super::tar_header::{gnu_sparse_pairs, Block, Header, BLOCK_SIZE, GNU_SPARSE};

mod entry_data;

pub(crate) use entry_data::EntryData;

/// Largest pax or GNU long-name header accepted (as Go's `archive/tar`).
const MAX_EXTENDED_HEADER: u64 = 1 << 20;
/// Most extended headers accepted in front of one entry.
const MAX_EXTENDED_HEADERS: usize = 16;

/// What an entry is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Regular,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
}

/// One entry with every extension applied.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The path as written (not yet cleaned).
    pub(crate) path: Vec<u8>,
    /// Hard or symbolic link target.
    pub(crate) link_name: Vec<u8>,
    pub(crate) kind: EntryKind,
    /// The 12 permission bits.
    pub(crate) permissions: u16,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: Timestamp,
    pub(crate) atime: Option<Timestamp>,
    pub(crate) ctime: Option<Timestamp>,
    /// Device major and minor numbers.
    pub(crate) device: (u64, u64),
    /// File size (the real size of a sparse file).
    pub(crate) size: u64,
    /// Ranges of the file whose bytes follow in the stream, in order.
    pub(crate) data_ranges: Vec<Range<u64>>,
    /// Extended attributes by full name.
    pub(crate) xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Reads entries from a tar stream.
pub(crate) struct TarReader<R> {
    inner: R,
    /// Data bytes of the current entry not yet read.
    remaining: u64,
    /// Zero padding after the current entry's data.
    padding: u64,
    /// Bytes read from the stream so far.
    offset: u64,
    /// Records of global pax headers seen so far, by key.
    globals: BTreeMap<Vec<u8>, Vec<u8>>,
    finished: bool,
    truncated: bool,
}

impl<R: Read> TarReader<R> {
    /// A reader at the start of `inner`.
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            remaining: 0,
            padding: 0,
            offset: 0,
            globals: BTreeMap::new(),
            finished: false,
            truncated: false,
        }
    }

    /// Bytes read from the stream so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Where the next header starts: past the current entry's unread data
    /// and padding.
    pub(crate) fn next_header_offset(&self) -> u64 {
        self.offset + self.remaining + self.padding
    }

    /// Whether the stream ended in the middle of something.
    pub(crate) fn truncated(&self) -> bool {
        self.truncated
    }

    /// Data bytes of the current entry not yet read.
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The current entry's data, as a reader of exactly its data bytes.
    pub(crate) fn data(&mut self) -> EntryData<'_, R> {
        EntryData(self)
    }

    /// Skips whatever is left of the current entry and reads the next one.
    /// Returns `None` at the end of the archive. A stream that ends cleanly
    /// at a header boundary without end-of-archive blocks is accepted, as
    /// Go's `archive/tar` (and so containerd) does; truncation is caught by
    /// the layer digest.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        self.skip_data()?;
        if self.finished {
            return Ok(None);
        }
        let mut local = Vec::new();
        let mut long_name = None;
        let mut long_link = None;
        let mut extended = 0;
        loop {
            let header_offset = self.offset;
            let Some(block) = self.read_block()? else {
                if extended > 0 {
                    self.truncated = true;
                    return Err(TarError::Truncated);
                }
                self.finished = true;
                return Ok(None);
            };
            let header = Header(&block);
            if header.is_zero() {
                if extended > 0 {
                    return Err(TarError::InvalidPax(
                        "extended header without an entry".into(),
                    ));
                }
                // A second zero block normally follows; a lone one at the
                // end of the stream is tolerated, more entries are not.
                if let Some(next) = self.read_block()? {
                    if next.iter().any(|&b| b != 0) {
                        return Err(TarError::DataAfterEnd);
                    }
                }
                self.finished = true;
                return Ok(None);
            }
            if !header.checksum_ok() {
                return Err(TarError::BadChecksum {
                    offset: header_offset,
                });
            }
            let typeflag = header.typeflag();
            if !matches!(typeflag, b'x' | b'g' | b'L' | b'K') {
                return self
                    .build_entry(&header, &local, long_name, long_link)
                    .map(Some);
            }
            extended += 1;
            if extended > MAX_EXTENDED_HEADERS {
                return Err(TarError::TooManyExtendedHeaders(MAX_EXTENDED_HEADERS));
            }
            let body = self.read_extended(&header)?;
            match typeflag {
                b'x' => local.extend(parse_records(&body)?),
                b'g' => {
                    for (key, value) in parse_records(&body)? {
                        if value.is_empty() {
                            self.globals.remove(&key);
                        } else {
                            self.globals.insert(key, value);
                        }
                    }
                }
                b'L' => long_name = Some(until_nul(body)),
                _ => long_link = Some(until_nul(body)),
            }
        }
    }

    /// Reads the rest of the stream after the end of the archive, so that a
    /// digest computed by a wrapping reader covers every byte.
    pub(crate) fn drain(&mut self) -> Result<(), TarError> {
        let n = io::copy(&mut self.inner, &mut io::sink())?;
        self.offset += n;
        Ok(())
    }

    fn build_entry(
        &mut self,
        header: &Header<'_>,
        local: &[(Vec<u8>, Vec<u8>)],
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<Entry, TarError> {
        let mut pax = PaxFields::default();
        for (key, value) in &self.globals {
            pax.apply_one(key, value, true)?;
        }
        pax.apply(local, false)?;

        let typeflag = header.typeflag();
        let mut path = pax
            .path
            .take()
            .or(long_name)
            .unwrap_or_else(|| header.path());
        let link_name = pax
            .link_path
            .take()
            .or(long_link)
            .unwrap_or_else(|| header.link_name());
        let kind = match typeflag {
            b'0' | b'7' | b'S' => EntryKind::Regular,
            // Pre-POSIX archives mark directories with a trailing slash.
            b'\0' if path.ends_with(b"/") => EntryKind::Directory,
            b'\0' => EntryKind::Regular,
            b'1' => EntryKind::HardLink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' | b'D' => EntryKind::Directory,
            b'6' => EntryKind::Fifo,
            other => return Err(TarError::UnsupportedType(char::from(other))),
        };

        let header_size = non_negative(header.size()?, "size")?;
        let mut archive_size = match pax.size {
            Some(size) => {
                if header_size != 0 && header_size != size && !header.size_is_octal_max() {
                    return Err(TarError::SizeMismatch {
                        pax: size,
                        header: header_size,
                    });
                }
                size
            }
            None => header_size,
        };
        // Header-only types carry no data whatever the size field says (as
        // Go's archive/tar); GNU dumpdirs ('D') do carry data, skipped.
        if matches!(typeflag, b'1'..=b'6') {
            archive_size = 0;
        }

        let mode = non_negative(header.mode()?, "mode")?;
        let uid = pax
            .uid
            .map_or_else(|| non_negative(header.uid()?, "uid"), Ok)?;
        let gid = pax
            .gid
            .map_or_else(|| non_negative(header.gid()?, "gid"), Ok)?;
        let mtime = match pax.mtime {
            Some(t) => t,
            None => Timestamp::from_secs(header.mtime()?),
        };
        let (gnu_atime, gnu_ctime) = header.gnu_times()?;
        let device = if matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
            let (major, minor) = header.device()?;
            (
                pax.dev_major
                    .map_or_else(|| non_negative(major, "devmajor"), Ok)?,
                pax.dev_minor
                    .map_or_else(|| non_negative(minor, "devminor"), Ok)?,
            )
        } else {
            (0, 0)
        };

        self.remaining = archive_size;
        self.padding = padding(archive_size);
        let (size, data_ranges) = if typeflag == b'S' {
            self.old_gnu_sparse(header, archive_size)?
        } else if kind == EntryKind::Regular && pax.sparse.is_sparse()? {
            if let Some(name) = pax.sparse.name.take() {
                path = name;
            }
            self.pax_sparse(&pax)?
        } else if kind == EntryKind::Regular {
            // One run covering the whole file, or none for an empty one.
            let ranges = std::iter::once(0..archive_size)
                .filter(|r| !r.is_empty())
                .collect();
            (archive_size, ranges)
        } else {
            (0, Vec::new())
        };

        Ok(Entry {
            path,
            link_name,
            kind,
            permissions: (mode & 0o7777) as u16,
            uid: id(uid, "uid")?,
            gid: id(gid, "gid")?,
            mtime,
            atime: pax.atime.or(gnu_atime.map(Timestamp::from_secs)),
            ctime: pax.ctime.or(gnu_ctime.map(Timestamp::from_secs)),
            device,
            size,
            data_ranges,
            xattrs: pax.xattrs,
        })
    }

    /// Old GNU sparse ('S'): the map is in the header and in extension
    /// blocks that follow it, before the data.
    fn old_gnu_sparse(
        &mut self,
        header: &Header<'_>,
        data_size: u64,
    ) -> Result<(u64, Vec<Range<u64>>), TarError> {
        let real_size = non_negative(header.gnu_real_size()?, "realsize")?;
        let area = &header.0[GNU_SPARSE.0..GNU_SPARSE.0 + GNU_SPARSE.1];
        let mut pairs = gnu_sparse_pairs(area)?;
        let mut extended = header.gnu_is_extended();
        while extended {
            let block = self.read_block()?.ok_or_else(|| {
                self.truncated = true;
                TarError::Truncated
            })?;
            pairs.extend(gnu_sparse_pairs(&block[..504])?);
            extended = block[504] != 0;
            if pairs.len() > MAX_SPARSE_ENTRIES {
                return Err(TarError::InvalidSparse("too many sparse runs".into()));
            }
        }
        let pairs = pairs
            .into_iter()
            .map(|(o, l)| {
                Ok((
                    non_negative(o, "sparse offset")?,
                    non_negative(l, "sparse numbytes")?,
                ))
            })
            .collect::<Result<Vec<_>, TarError>>()?;
        Ok((
            real_size,
            sparse::data_ranges(&pairs, real_size, data_size)?,
        ))
    }

    /// pax sparse: the map is in records (0.0, 0.1) or at the start of the
    /// data (1.0).
    fn pax_sparse(&mut self, pax: &PaxFields) -> Result<(u64, Vec<Range<u64>>), TarError> {
        let real_size = pax
            .sparse
            .real_size
            .ok_or_else(|| TarError::InvalidSparse("no GNU.sparse.size or realsize".into()))?;
        let pairs = if pax.sparse.major.as_deref() == Some(b"1") {
            match sparse::read_map_1_0(&mut self.data()) {
                Ok((pairs, _)) => pairs,
                // The map ran past the entry's own data, not the stream.
                Err(TarError::Truncated) if !self.truncated => {
                    return Err(TarError::InvalidSparse(
                        "the 1.0 map runs past the entry's data".into(),
                    ))
                }
                Err(e) => return Err(e),
            }
        } else {
            sparse::pairs_from_flat(pax.sparse.map.as_deref().unwrap_or_default())?
        };
        Ok((
            real_size,
            sparse::data_ranges(&pairs, real_size, self.remaining)?,
        ))
    }

    fn read_extended(&mut self, header: &Header<'_>) -> Result<Vec<u8>, TarError> {
        let size = non_negative(header.size()?, "size")?;
        if size > MAX_EXTENDED_HEADER {
            return Err(TarError::ExtendedHeaderTooLarge {
                size,
                max: MAX_EXTENDED_HEADER,
            });
        }
        let mut body = vec![0; size as usize];
        self.remaining = size;
        self.padding = padding(size);
        self.data()
            .read_exact(&mut body)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => TarError::Truncated,
                _ => TarError::Io(e),
            })?;
        self.skip_data()?;
        Ok(body)
    }

    /// Reads one block; `None` at a clean end of stream.
    fn read_block(&mut self) -> Result<Option<Block>, TarError> {
        let mut block = [0u8; BLOCK_SIZE];
        let mut filled = 0;
        while filled < BLOCK_SIZE {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TarError::Io(e)),
            }
        }
        self.offset += filled as u64;
        match filled {
            0 => Ok(None),
            BLOCK_SIZE => Ok(Some(block)),
            _ => {
                self.truncated = true;
                Err(TarError::Truncated)
            }
        }
    }

    /// Skips the unread data and padding of the current entry.
    fn skip_data(&mut self) -> Result<(), TarError> {
        let n = self.remaining + self.padding;
        if n == 0 {
            return Ok(());
        }
        let skipped = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        self.offset += skipped;
        self.remaining = 0;
        self.padding = 0;
        if skipped < n {
            self.truncated = true;
            return Err(TarError::Truncated);
        }
        Ok(())
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK_SIZE as u64 - size % BLOCK_SIZE as u64) % BLOCK_SIZE as u64
}

fn until_nul(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(end) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(end);
    }
    bytes
}

fn non_negative(value: i64, field: &'static str) -> Result<u64, TarError> {
    u64::try_from(value).map_err(|_| TarError::OutOfRange {
        field,
        value: value.into(),
    })
}

fn id(value: u64, field: &'static str) -> Result<u32, TarError> {
    u32::try_from(value).map_err(|_| TarError::OutOfRange {
        field,
        value: value.into(),
    })
}
