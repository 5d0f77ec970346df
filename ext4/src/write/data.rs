//! Streaming file contents into the image.
//!
//! Each file's bytes are read once and written once, straight to their final
//! blocks: consecutive blocks (of one file or of consecutive files) are
//! gathered into one large buffer and written with a single positioned
//! write, on a thread of its own ([`super::background`]). Blocks that are
//! all zeros become holes, as `mke2fs -d` makes them.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;

use super::background::BackgroundWriter;
use crate::alloc::BlockAllocator;
use crate::spec::{BLOCK_SIZE, EXT_INIT_MAX_LEN, MAX_FILE_SIZE};
use crate::tree::{ContentSource, PlacedData, PlacedExtent};

/// Bytes gathered before one write.
const WRITE_BUFFER: usize = 1 << 20;
/// A buffer's length: the gathered blocks and the block being filled.
const BUFFER_LEN: usize = WRITE_BUFFER + BLOCK_SIZE as usize;

/// Why a file could not be stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// Reading the file's bytes failed (a truncated layer, say).
    #[error("reading file data")]
    Read(#[source] io::Error),
    /// Writing the image failed.
    #[error("writing the image")]
    Write(#[source] io::Error),
    /// The data ranges are not sorted, overlap, or leave the file.
    #[error("invalid sparse map: range {start}..{end} in a file of {size} bytes")]
    BadRanges {
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
        /// File size.
        size: u64,
    },
    /// The file is larger than ext4 can hold.
    #[error("a file of {size} bytes exceeds ext4's largest file size of {max} bytes (16 TiB - 4 KiB)", max = MAX_FILE_SIZE)]
    FileTooLarge {
        /// The file's size (holes included).
        size: u64,
    },
}

/// Writes file data into the image through a bump allocator.
#[derive(Debug)]
pub struct DataWriter {
    /// Blocks gathered for one write ([`BUFFER_LEN`] bytes); the
    /// `BLOCK_SIZE` bytes past `committed` are the block being filled.
    buffer: Vec<u8>,
    /// Bytes of `buffer` that hold allocated blocks.
    committed: usize,
    /// Physical block of `buffer[0]`.
    buffer_start: u64,
    /// Every run handed to a file, live or not, for dead-block accounting.
    written: Vec<PlacedExtent>,
    /// Writes full buffers; started by the first.
    writer: Option<BackgroundWriter>,
}

impl Default for DataWriter {
    fn default() -> Self {
        Self {
            buffer: vec![0u8; BUFFER_LEN],
            committed: 0,
            buffer_start: 0,
            written: Vec::new(),
            writer: None,
        }
    }
}

impl DataWriter {
    /// Every run of blocks written so far, in allocation order.
    pub fn written(&self) -> &[PlacedExtent] {
        &self.written
    }

    /// Stores one file. `reader` yields the bytes of each range in
    /// `data_ranges` one after another.
    pub fn store(
        &mut self,
        image: &File,
        alloc: &mut BlockAllocator,
        reader: &mut dyn Read,
        size: u64,
        data_ranges: &[Range<u64>],
    ) -> Result<PlacedData, DataError> {
        // A failure leaves half-read bytes in the slot: harmless, since the
        // next file's first block zeroes the slot or overwrites all of it.
        if size > MAX_FILE_SIZE {
            return Err(DataError::FileTooLarge { size });
        }
        let mut placed = PlacedData {
            size,
            extents: Vec::new(),
        };
        let mut previous_end = 0;
        let mut current: Option<u64> = None;
        for range in data_ranges {
            if range.start < previous_end || range.start > range.end || range.end > size {
                return Err(DataError::BadRanges {
                    start: range.start,
                    end: range.end,
                    size,
                });
            }
            previous_end = range.end;
            let mut pos = range.start;
            while pos < range.end {
                let logical = pos / BLOCK_SIZE;
                let offset = (pos % BLOCK_SIZE) as usize;
                if current != Some(logical) {
                    if let Some(done) = current {
                        self.commit_block(image, alloc, done, &mut placed)?;
                    }
                    current = Some(logical);
                    // The slot holds an earlier block's bytes: zero it
                    // unless this range overwrites all of it.
                    if offset != 0 || range.end - pos < BLOCK_SIZE {
                        self.slot().fill(0);
                    }
                }
                let n = (BLOCK_SIZE as usize - offset).min((range.end - pos) as usize);
                let slot = self.slot();
                reader
                    .read_exact(&mut slot[offset..offset + n])
                    .map_err(DataError::Read)?;
                pos += n as u64;
            }
        }
        if let Some(done) = current {
            self.commit_block(image, alloc, done, &mut placed)?;
        }
        Ok(placed)
    }

    /// Streams a [`ContentSource`] into the image.
    pub fn store_source(
        &mut self,
        image: &File,
        alloc: &mut BlockAllocator,
        source: &dyn ContentSource,
    ) -> Result<PlacedData, DataError> {
        let ranges = source.data_ranges();
        let mut reader = SourceReader {
            source,
            ranges: &ranges,
            index: 0,
            pos: ranges.first().map_or(0, |r| r.start),
        };
        self.store(image, alloc, &mut reader, source.len(), &ranges)
    }

    /// The block being filled, past the committed blocks.
    fn slot(&mut self) -> &mut [u8] {
        &mut self.buffer[self.committed..self.committed + BLOCK_SIZE as usize]
    }

    /// Gives the filled slot a physical block, or drops it as a hole.
    fn commit_block(
        &mut self,
        image: &File,
        alloc: &mut BlockAllocator,
        logical: u64,
        placed: &mut PlacedData,
    ) -> Result<(), DataError> {
        if self.buffer[self.committed..self.committed + BLOCK_SIZE as usize]
            .iter()
            .all(|&b| b == 0)
        {
            return Ok(()); // A hole: the slot is reused.
        }
        let physical = alloc
            .alloc(1)
            .expect("the allocator has no limit while file data streams in")
            .start;
        let contiguous =
            self.buffer_start + (self.committed / BLOCK_SIZE as usize) as u64 == physical;
        if self.committed > 0 && !contiguous {
            // Write what precedes the slot; the slot moves to the front.
            self.flush_committed(image)?;
        }
        if self.committed == 0 {
            self.buffer_start = physical;
        }
        self.committed += BLOCK_SIZE as usize;
        extend_runs(&mut placed.extents, logical, physical);
        extend_runs(&mut self.written, logical, physical);
        if self.committed >= WRITE_BUFFER {
            self.flush_committed(image)?;
        }
        Ok(())
    }

    /// Hands the committed blocks to the writer thread and goes on in
    /// another buffer, the block being filled moved to its front.
    fn flush_committed(&mut self, image: &File) -> Result<(), DataError> {
        if self.committed == 0 {
            return Ok(());
        }
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => self
                .writer
                .insert(BackgroundWriter::spawn(image, BUFFER_LEN).map_err(DataError::Write)?),
        };
        let mut next = writer.take_buffer().map_err(DataError::Write)?;
        let slot = self.committed..self.committed + BLOCK_SIZE as usize;
        next[..BLOCK_SIZE as usize].copy_from_slice(&self.buffer[slot]);
        let full = std::mem::replace(&mut self.buffer, next);
        writer
            .submit(full, self.committed, self.buffer_start * BLOCK_SIZE)
            .map_err(DataError::Write)?;
        self.committed = 0;
        Ok(())
    }

    /// Writes out everything gathered so far and waits until it is written.
    pub fn flush(&mut self, image: &File) -> Result<(), DataError> {
        self.flush_committed(image)?;
        match &mut self.writer {
            Some(writer) => writer.wait().map_err(DataError::Write),
            None => Ok(()),
        }
    }
}

/// Appends a block to a list of runs, merging it into the last run when
/// both its logical and physical positions follow on.
fn extend_runs(runs: &mut Vec<PlacedExtent>, logical: u64, physical: u64) {
    if let Some(last) = runs.last_mut() {
        if last.logical_block + last.len == logical
            && last.physical_block + last.len == physical
            && last.len < EXT_INIT_MAX_LEN
        {
            last.len += 1;
            return;
        }
    }
    runs.push(PlacedExtent {
        logical_block: logical,
        physical_block: physical,
        len: 1,
    });
}

/// Reads a source's data ranges back to back.
struct SourceReader<'a> {
    source: &'a dyn ContentSource,
    ranges: &'a [Range<u64>],
    index: usize,
    pos: u64,
}

impl Read for SourceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(range) = self.ranges.get(self.index) {
            if self.pos >= range.end {
                self.index += 1;
                if let Some(next) = self.ranges.get(self.index) {
                    self.pos = next.start;
                }
                continue;
            }
            let want = buf.len().min((range.end - self.pos) as usize);
            let n = self.source.read_at(self.pos, &mut buf[..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.pos += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::SuperblockAreas;
    use std::os::unix::fs::FileExt;

    fn setup() -> (tempfile::NamedTempFile, BlockAllocator, DataWriter) {
        let file = tempfile::NamedTempFile::new().unwrap();
        let alloc = BlockAllocator::new(SuperblockAreas { gdt_reserve: 1 }, u64::MAX);
        (file, alloc, DataWriter::default())
    }

    /// Stores all of `data` as one file with no holes declared, and flushes.
    fn store_whole(
        file: &tempfile::NamedTempFile,
        alloc: &mut BlockAllocator,
        writer: &mut DataWriter,
        data: &[u8],
    ) -> PlacedData {
        let len = data.len() as u64;
        let placed = writer
            .store(file.as_file(), alloc, &mut &data[..], len, &[0..len])
            .unwrap();
        writer.flush(file.as_file()).unwrap();
        placed
    }

    #[test]
    fn zero_blocks_become_holes_and_runs_merge() {
        let (file, mut alloc, mut writer) = setup();
        let mut data = vec![7u8; 3 * BLOCK_SIZE as usize];
        data[BLOCK_SIZE as usize..2 * BLOCK_SIZE as usize].fill(0);
        data.truncate(3 * BLOCK_SIZE as usize - 100);
        let placed = store_whole(&file, &mut alloc, &mut writer, &data);
        assert_eq!(placed.extents.len(), 2);
        assert_eq!(
            placed.extents[0],
            PlacedExtent {
                logical_block: 0,
                physical_block: 2,
                len: 1
            }
        );
        assert_eq!(
            placed.extents[1],
            PlacedExtent {
                logical_block: 2,
                physical_block: 3,
                len: 1
            }
        );
        let mut back = vec![0u8; BLOCK_SIZE as usize];
        file.as_file()
            .read_exact_at(&mut back, 3 * BLOCK_SIZE)
            .unwrap();
        assert_eq!(
            &back[..BLOCK_SIZE as usize - 100],
            &data[2 * BLOCK_SIZE as usize..]
        );
        assert!(back[BLOCK_SIZE as usize - 100..].iter().all(|&b| b == 0));
    }

    #[test]
    fn sparse_ranges_sharing_a_block() {
        let (file, mut alloc, mut writer) = setup();
        let ranges = [10..20, 30..40, 3 * BLOCK_SIZE..3 * BLOCK_SIZE + 5];
        let bytes = [1u8; 25];
        let placed = writer
            .store(
                file.as_file(),
                &mut alloc,
                &mut &bytes[..],
                5 * BLOCK_SIZE,
                &ranges,
            )
            .unwrap();
        writer.flush(file.as_file()).unwrap();
        let logical: Vec<u64> = placed.extents.iter().map(|e| e.logical_block).collect();
        assert_eq!(logical, [0, 3]);
        let mut back = [0u8; 50];
        file.as_file()
            .read_exact_at(&mut back, placed.extents[0].physical_block * BLOCK_SIZE)
            .unwrap();
        assert_eq!(&back[10..20], &[1; 10]);
        assert_eq!(&back[20..30], &[0; 10]);
        assert_eq!(&back[30..40], &[1; 10]);
    }

    #[test]
    fn runs_broken_by_a_superblock_area_are_written_in_place() {
        let (file, mut alloc, mut writer) = setup();
        // Fill group 0 up to three blocks before group 1's backup superblock.
        alloc.alloc(crate::spec::BLOCKS_PER_GROUP - 5).unwrap();
        let data: Vec<u8> = (0..8 * BLOCK_SIZE as usize)
            .map(|i| (i / BLOCK_SIZE as usize + 1) as u8)
            .collect();
        let placed = store_whole(&file, &mut alloc, &mut writer, &data);
        assert_eq!(placed.extents.len(), 2, "{:?}", placed.extents);
        for extent in &placed.extents {
            for i in 0..extent.len {
                let mut back = vec![0u8; BLOCK_SIZE as usize];
                file.as_file()
                    .read_exact_at(&mut back, (extent.physical_block + i) * BLOCK_SIZE)
                    .unwrap();
                assert!(back
                    .iter()
                    .all(|&b| b == (extent.logical_block + i + 1) as u8));
            }
        }
    }

    #[test]
    fn truncated_input_and_bad_ranges_are_errors() {
        let (file, mut alloc, mut writer) = setup();
        let r = writer.store(
            file.as_file(),
            &mut alloc,
            &mut &[1u8; 10][..],
            20,
            &[0..20],
        );
        assert!(matches!(r, Err(DataError::Read(_))));
        let r = writer.store(
            file.as_file(),
            &mut alloc,
            &mut &[1u8; 10][..],
            20,
            &[5..10, 0..4],
        );
        assert!(matches!(r, Err(DataError::BadRanges { .. })));
    }
}
