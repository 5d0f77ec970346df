//! Streaming file contents into the image.
//!
//! Each file's bytes are read once and written once, straight to their final
//! blocks: consecutive blocks (of one file or of consecutive files) are
//! gathered into one large write, made on a thread of its own
//! ([`super::background`]). A block is gathered either as bytes copied into
//! our buffer or, when the stream lends them ([`LendingRead`]), as the lent
//! bytes themselves, which the kernel then copies straight into the image.
//! Blocks that are all zeros become holes, as `mke2fs -d` makes them.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;

use super::background::{BackgroundWriter, Piece};
use crate::alloc::BlockAllocator;
use crate::spec::{BLOCK_SIZE, EXT_INIT_MAX_LEN, MAX_FILE_SIZE};
use crate::tree::{ContentSource, LendingRead, Lent, PlacedData, PlacedExtent};

/// Bytes gathered before one write.
const WRITE_BUFFER: usize = 1 << 20;
/// A buffer's length: the copied blocks and the block being filled.
const BUFFER_LEN: usize = WRITE_BUFFER + BLOCK_SIZE as usize;
/// Pieces gathered before one write: a write of many small lent files
/// is cut here rather than at [`WRITE_BUFFER`] bytes.
const MAX_PIECES: usize = 1024;

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
    /// Copied blocks gathered for the next write ([`BUFFER_LEN`] bytes);
    /// the `BLOCK_SIZE` bytes past `used` are the block being filled.
    buffer: Vec<u8>,
    /// Bytes of `buffer` that hold gathered blocks.
    used: usize,
    /// The gathered blocks, in physical order from `batch_start`.
    pieces: Vec<Piece>,
    /// Physical block of the first gathered block.
    batch_start: u64,
    /// Blocks gathered.
    batch_blocks: u64,
    /// The lent pieces of the block being lent, until it is committed.
    block_pieces: Vec<Lent>,
    /// Every run handed to a file, live or not, for dead-block accounting.
    written: Vec<PlacedExtent>,
    /// Writes full batches; started by the first.
    writer: Option<BackgroundWriter>,
}

impl Default for DataWriter {
    fn default() -> Self {
        Self {
            buffer: vec![0u8; BUFFER_LEN],
            used: 0,
            pieces: Vec::new(),
            batch_start: 0,
            batch_blocks: 0,
            block_pieces: Vec::new(),
            written: Vec::new(),
            writer: None,
        }
    }
}

/// How a block offered for lending was taken.
enum Lending {
    /// Its bytes are in `block_pieces`; `zero` if all of them are zeros.
    Lent { zero: bool },
    /// The stream stopped lending partway: its bytes are in the slot.
    Copied,
    /// The stream does not lend; nothing was consumed.
    Refused,
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
        reader: &mut dyn LendingRead,
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
        for (i, range) in data_ranges.iter().enumerate() {
            if range.start < previous_end || range.start > range.end || range.end > size {
                return Err(DataError::BadRanges {
                    start: range.start,
                    end: range.end,
                    size,
                });
            }
            previous_end = range.end;
            let next_start = data_ranges.get(i + 1).map_or(u64::MAX, |r| r.start);
            let mut pos = range.start;
            while pos < range.end {
                let logical = pos / BLOCK_SIZE;
                let offset = (pos % BLOCK_SIZE) as usize;
                let n = (BLOCK_SIZE as usize - offset).min((range.end - pos) as usize);
                if current != Some(logical) {
                    if let Some(done) = current.take() {
                        self.commit_slot(image, alloc, done, &mut placed)?;
                    }
                    // A block whose data is this range's alone, from the
                    // block's first byte, can be lent whole.
                    let alone = next_start >= (logical + 1) * BLOCK_SIZE;
                    if offset == 0 && (n == BLOCK_SIZE as usize || alone) {
                        match self.lend_block(reader, n)? {
                            Lending::Lent { zero } => {
                                self.commit_lent(image, alloc, logical, n, zero, &mut placed)?;
                                pos += n as u64;
                                continue;
                            }
                            Lending::Copied => {
                                current = Some(logical);
                                pos += n as u64;
                                continue;
                            }
                            Lending::Refused => {}
                        }
                    }
                    current = Some(logical);
                    // The slot holds an earlier block's bytes: zero it
                    // unless this range overwrites all of it.
                    if offset != 0 || range.end - pos < BLOCK_SIZE {
                        self.slot().fill(0);
                    }
                }
                let slot = self.slot();
                reader
                    .read_exact(&mut slot[offset..offset + n])
                    .map_err(DataError::Read)?;
                pos += n as u64;
            }
        }
        if let Some(done) = current {
            self.commit_slot(image, alloc, done, &mut placed)?;
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

    /// The block being filled, past the gathered blocks.
    fn slot(&mut self) -> &mut [u8] {
        &mut self.buffer[self.used..self.used + BLOCK_SIZE as usize]
    }

    /// Asks `reader` to lend the block's first `n` bytes.
    fn lend_block(&mut self, reader: &mut dyn LendingRead, n: usize) -> Result<Lending, DataError> {
        self.block_pieces.clear();
        let mut got = 0;
        // Checked as each piece arrives: lending the next one can move the
        // stream past the memory the previous one lies in, which a mapped
        // stream then takes out of this process's page tables.
        let mut zero = true;
        while got < n {
            match reader.lend(n - got).map_err(DataError::Read)? {
                Some(lent) if lent.is_empty() => {
                    return Err(DataError::Read(io::ErrorKind::UnexpectedEof.into()))
                }
                Some(lent) if lent.len() > n - got => {
                    return Err(DataError::Read(io::Error::other(
                        "the stream lent more bytes than asked",
                    )))
                }
                Some(lent) => {
                    got += lent.len();
                    zero = zero && is_zero(lent.bytes());
                    self.block_pieces.push(lent);
                }
                None if got == 0 => return Ok(Lending::Refused),
                None => {
                    // Copy what was lent; read the rest.
                    let pieces = std::mem::take(&mut self.block_pieces);
                    let slot = self.slot();
                    let mut at = 0;
                    for lent in &pieces {
                        slot[at..at + lent.len()].copy_from_slice(lent.bytes());
                        at += lent.len();
                    }
                    slot[n..].fill(0);
                    reader
                        .read_exact(&mut slot[got..n])
                        .map_err(DataError::Read)?;
                    return Ok(Lending::Copied);
                }
            }
        }
        Ok(Lending::Lent { zero })
    }

    /// Gathers the lent block (its `n` bytes, zeros after), or drops it as
    /// a hole when they are all `zero`.
    fn commit_lent(
        &mut self,
        image: &File,
        alloc: &mut BlockAllocator,
        logical: u64,
        n: usize,
        zero: bool,
        placed: &mut PlacedData,
    ) -> Result<(), DataError> {
        if zero {
            self.block_pieces.clear();
            return Ok(()); // A hole.
        }
        self.place_block(image, alloc, logical, placed)?;
        self.pieces
            .extend(self.block_pieces.drain(..).map(Piece::Lent));
        if n < BLOCK_SIZE as usize {
            self.pieces.push(Piece::Zeros(BLOCK_SIZE as usize - n));
        }
        self.end_block(image)
    }

    /// Gathers the filled slot, or drops it as a hole.
    fn commit_slot(
        &mut self,
        image: &File,
        alloc: &mut BlockAllocator,
        logical: u64,
        placed: &mut PlacedData,
    ) -> Result<(), DataError> {
        if is_zero(&self.buffer[self.used..self.used + BLOCK_SIZE as usize]) {
            return Ok(()); // A hole: the slot is reused.
        }
        self.place_block(image, alloc, logical, placed)?;
        let block = self.used..self.used + BLOCK_SIZE as usize;
        match self.pieces.last_mut() {
            Some(Piece::Buffer(previous)) if previous.end == block.start => {
                previous.end = block.end
            }
            _ => self.pieces.push(Piece::Buffer(block)),
        }
        self.used += BLOCK_SIZE as usize;
        self.end_block(image)
    }

    /// Gives the next gathered block a physical block, writing out what was
    /// gathered first when the new block does not follow on from it.
    fn place_block(
        &mut self,
        image: &File,
        alloc: &mut BlockAllocator,
        logical: u64,
        placed: &mut PlacedData,
    ) -> Result<(), DataError> {
        let physical = alloc
            .alloc(1)
            .expect("the allocator has no limit while file data streams in")
            .start;
        if self.batch_blocks > 0 && self.batch_start + self.batch_blocks != physical {
            self.flush_batch(image)?;
        }
        if self.batch_blocks == 0 {
            self.batch_start = physical;
        }
        self.batch_blocks += 1;
        extend_runs(&mut placed.extents, logical, physical);
        extend_runs(&mut self.written, logical, physical);
        Ok(())
    }

    /// Writes the batch out once it is large enough.
    fn end_block(&mut self, image: &File) -> Result<(), DataError> {
        if self.batch_blocks * BLOCK_SIZE >= WRITE_BUFFER as u64 || self.pieces.len() >= MAX_PIECES
        {
            self.flush_batch(image)?;
        }
        Ok(())
    }

    /// Hands the gathered blocks to the writer thread; when some were
    /// copied, goes on in another buffer, the block being filled moved to
    /// its front.
    fn flush_batch(&mut self, image: &File) -> Result<(), DataError> {
        if self.batch_blocks == 0 {
            return Ok(());
        }
        let writer = BackgroundWriter::started(&mut self.writer, image, BUFFER_LEN)
            .map_err(DataError::Write)?;
        // Sized for a full batch (a block lent across two windows adds three
        // pieces past the limit), so gathering does not grow it.
        let pieces = std::mem::replace(&mut self.pieces, Vec::with_capacity(MAX_PIECES + 3));
        let offset = self.batch_start * BLOCK_SIZE;
        self.batch_blocks = 0;
        if self.used == 0 {
            // All lent: the buffer (with the block being filled at its front)
            // stays here, and the job waits without holding one of ours.
            return writer
                .submit(Vec::new(), pieces, offset)
                .map_err(DataError::Write);
        }
        let mut next = writer.take_buffer().map_err(DataError::Write)?;
        let slot = self.used..self.used + BLOCK_SIZE as usize;
        next[..BLOCK_SIZE as usize].copy_from_slice(&self.buffer[slot]);
        let full = std::mem::replace(&mut self.buffer, next);
        writer
            .submit(full, pieces, offset)
            .map_err(DataError::Write)?;
        self.used = 0;
        Ok(())
    }

    /// Hands everything gathered so far to the writer thread, without
    /// waiting for it to be written.
    pub fn submit(&mut self, image: &File) -> Result<(), DataError> {
        self.flush_batch(image)
    }

    /// Writes out everything gathered so far and waits until it is written.
    pub fn flush(&mut self, image: &File) -> Result<(), DataError> {
        self.flush_batch(image)?;
        match &mut self.writer {
            Some(writer) => writer.wait().map_err(DataError::Write),
            None => Ok(()),
        }
    }
}

/// Whether every byte is zero (a block that can be a hole).
fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
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

impl LendingRead for SourceReader<'_> {}

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
    use std::sync::Arc;

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

    /// Lends `chunk` bytes at a time out of shared memory, and copies once
    /// `lends_left` runs out.
    struct Lender {
        bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
        pos: usize,
        chunk: usize,
        lends_left: usize,
        lent: usize,
    }

    impl Lender {
        fn new(data: &[u8], chunk: usize, lends_left: usize) -> Self {
            Self {
                bytes: Arc::new(data.to_vec()),
                pos: 0,
                chunk,
                lends_left,
                lent: 0,
            }
        }
    }

    impl Read for Lender {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (&(*self.bytes).as_ref()[self.pos..]).read(buf)?;
            self.pos += n;
            Ok(n)
        }
    }

    impl LendingRead for Lender {
        fn lend(&mut self, max: usize) -> io::Result<Option<Lent>> {
            if self.lends_left == 0 {
                return Ok(None);
            }
            self.lends_left -= 1;
            let end = (self.pos + max.min(self.chunk)).min((*self.bytes).as_ref().len());
            let lent = Lent::new(Arc::clone(&self.bytes), self.pos..end).unwrap();
            self.lent += lent.len();
            self.pos = end;
            Ok(Some(lent))
        }
    }

    fn block_at(file: &tempfile::NamedTempFile, physical: u64) -> Vec<u8> {
        let mut back = vec![0u8; BLOCK_SIZE as usize];
        file.as_file()
            .read_exact_at(&mut back, physical * BLOCK_SIZE)
            .unwrap();
        back
    }

    #[test]
    fn lent_blocks_get_zero_tails_and_zero_lent_blocks_become_holes() {
        let (file, mut alloc, mut writer) = setup();
        let block = BLOCK_SIZE as usize;
        let mut data = vec![7u8; 3 * block - 100];
        data[block..2 * block].fill(0);
        // Pieces of 1000 bytes: every block comes in several, across blocks.
        let mut lender = Lender::new(&data, 1000, usize::MAX);
        let len = data.len() as u64;
        let placed = writer
            .store(file.as_file(), &mut alloc, &mut lender, len, &[0..len])
            .unwrap();
        writer.flush(file.as_file()).unwrap();
        assert_eq!(lender.lent, data.len(), "every byte was lent");
        let logical: Vec<u64> = placed.extents.iter().map(|e| e.logical_block).collect();
        assert_eq!(logical, [0, 2]);
        assert_eq!(
            block_at(&file, placed.extents[0].physical_block),
            vec![7u8; block]
        );
        let last = block_at(&file, placed.extents[1].physical_block);
        assert_eq!(&last[..block - 100], &data[2 * block..]);
        assert!(is_zero(&last[block - 100..]));
    }

    #[test]
    fn small_lent_files_beyond_one_batch_of_pieces_land_in_their_blocks() {
        let (file, mut alloc, mut writer) = setup();
        let files = 3 * MAX_PIECES;
        let mut placements = Vec::new();
        for i in 0..files {
            // Each file's last byte is not zero, so no block is a hole.
            let data = [(i % 251) as u8, 1 + (i % 254) as u8];
            let mut lender = Lender::new(&data, usize::MAX, usize::MAX);
            placements.push(
                writer
                    .store(file.as_file(), &mut alloc, &mut lender, 2, &[0..2])
                    .unwrap(),
            );
            // A stale byte under the zero tail would show in the read-back.
            writer.buffer.fill(0xee);
        }
        writer.flush(file.as_file()).unwrap();
        for (i, placed) in placements.iter().enumerate() {
            let back = block_at(&file, placed.extents[0].physical_block);
            assert_eq!(&back[..2], &[(i % 251) as u8, 1 + (i % 254) as u8]);
            assert!(is_zero(&back[2..]), "file {i}");
        }
    }

    #[test]
    fn a_stream_that_stops_lending_partway_is_copied_for_the_rest() {
        let (file, mut alloc, mut writer) = setup();
        let data: Vec<u8> = (0..2 * BLOCK_SIZE as usize + 10)
            .map(|i| (i % 200) as u8 + 1)
            .collect();
        let mut lender = Lender::new(&data, 1000, 3);
        let len = data.len() as u64;
        let placed = writer
            .store(file.as_file(), &mut alloc, &mut lender, len, &[0..len])
            .unwrap();
        writer.flush(file.as_file()).unwrap();
        assert_eq!(lender.lent, 3000);
        let mut back = Vec::new();
        for extent in &placed.extents {
            for i in 0..extent.len {
                back.extend(block_at(&file, extent.physical_block + i));
            }
        }
        assert_eq!(&back[..data.len()], &data[..]);
        assert!(is_zero(&back[data.len()..]));
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
