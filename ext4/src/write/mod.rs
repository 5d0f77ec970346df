//! Writing: file data as it streams in ([`data`], written on a thread of
//! its own by [`background`]); once the geometry is
//! known, the metadata blocks (journal, xattr blocks, directories, extent
//! trees, inode tables, bitmaps, descriptors and superblocks); and the holes
//! left by data no file kept.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::alloc::{BlockAllocator, Run};
use crate::error::{io_error, BuildError};
use crate::extent::{self, Owner};
use crate::inode::InodeFields;
use crate::spec::{BLOCK_SIZE, EXT4_EXTENTS_FL};
use crate::tree::PlacedExtent;
use crate::write::bitmap::UsedBlocks;
use crate::write::queue::WriteQueue;

pub(crate) mod background;
pub(crate) mod bitmap;
pub(crate) mod data;
pub(crate) mod groups;
pub(crate) mod inode_table;
pub(crate) mod inodes;
pub(crate) mod journal;
pub(crate) mod punch;
pub(crate) mod queue;
pub(crate) mod superblock;

/// Writes metadata blocks into the image, allocating them as it goes and
/// recording every block in use for the bitmaps.
pub(crate) struct MetadataWriter<'a> {
    pub(crate) image: &'a File,
    pub(crate) alloc: &'a mut BlockAllocator,
    pub(crate) used: UsedBlocks,
    pub(crate) fs_seed: u32,
    /// Where the writes go until [`MetadataWriter::flush`].
    pub(crate) queue: WriteQueue,
}

impl MetadataWriter<'_> {
    /// Queues `bytes` to be written at the start of `block`.
    pub(crate) fn write_block(&mut self, block: u64, bytes: &[u8]) -> Result<(), BuildError> {
        self.queue
            .write(self.image, block * BLOCK_SIZE, bytes)
            .map_err(io_error("writing metadata blocks"))
    }

    /// Writes everything queued and waits until it is written.
    pub(crate) fn flush(&mut self) -> Result<(), BuildError> {
        self.queue
            .flush(self.image)
            .map_err(io_error("writing metadata blocks"))
    }

    /// Allocates `count` blocks, recorded as used.
    pub(crate) fn alloc_blocks(&mut self, count: u64) -> Result<Vec<u64>, BuildError> {
        let runs = self.alloc.alloc_many(count)?;
        let mut blocks = Vec::with_capacity(count as usize);
        for run in runs {
            self.used.push(run);
            blocks.extend(run.start..run.end());
        }
        Ok(blocks)
    }

    /// Builds the extent tree for `extents`, writing any tree blocks, and
    /// sets `i_block` and the extents flag. Returns the tree block count.
    pub(crate) fn map_with_extents(
        &mut self,
        extents: &[PlacedExtent],
        owner: Owner,
        fields: &mut InodeFields,
        what: &str,
    ) -> Result<u64, BuildError> {
        let leaves = extent::leaf_entries(extents).map_err(|source| BuildError::Extent {
            path: format!("{what} inode {}", owner.ino),
            source,
        })?;
        let physical = self.alloc_blocks(extent::tree_blocks_needed(leaves.len()))?;
        let tree = extent::build(&leaves, &physical, owner);
        for block in &tree.blocks {
            self.write_block(block.physical, &block.bytes)?;
        }
        fields.i_block = tree.i_block;
        fields.flags |= EXT4_EXTENTS_FL;
        Ok(physical.len() as u64)
    }
}

/// Writes `bytes` at the start of `block` of `image`.
pub(crate) fn write_block(
    image: &File,
    block: u64,
    bytes: &[u8],
    context: &'static str,
) -> Result<(), BuildError> {
    image
        .write_all_at(bytes, block * BLOCK_SIZE)
        .map_err(io_error(context))
}

/// Physical blocks as extents of consecutive blocks, from logical block 0.
pub(crate) fn runs_of(physical: &[u64]) -> Vec<PlacedExtent> {
    let mut logical = 0;
    coalesce(physical)
        .map(|run| {
            let e = PlacedExtent {
                logical_block: logical,
                physical_block: run.start,
                len: run.len,
            };
            logical += run.len;
            e
        })
        .collect()
}

/// Groups consecutive block numbers into runs.
pub(crate) fn coalesce(physical: &[u64]) -> impl Iterator<Item = Run> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let start = *physical.get(i)?;
        let mut len = 1;
        while physical.get(i + len as usize) == Some(&(start + len)) {
            len += 1;
        }
        i += len as usize;
        Some(Run { start, len })
    })
}

/// Splits `data` into the byte chunks that go to each run of `physical`.
pub(crate) fn blocks_chunks<'a>(
    data: &'a [u8],
    physical: &'a [u64],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut offset = 0usize;
    coalesce(physical).map(move |run| {
        let len = (run.len * BLOCK_SIZE) as usize;
        let chunk = &data[offset..offset + len];
        offset += len;
        chunk
    })
}
