//! Leaf blocks: directory entries one after another, ended by the
//! checksummed tail; and the linear directory made only of them.

use core::mem::size_of;

use zerocopy::little_endian::{U16, U32};
use zerocopy::IntoBytes;

use crate::format::dir::{
    dirent_rec_len, leaf_block_csum, Ext4DirEntry2, Ext4DirEntryTail, EXT4_FT_DIR_CSUM,
};
use crate::spec::BLOCK_SIZE;

use super::{
    reject_duplicates, DirBlocks, DirContext, DirEntry, DirError, EXT4_FT_DIR, LEAF_SPACE,
};

/// A directory of leaf blocks only, `.` and `..` first, then the entries
/// by name; at least `min_blocks` blocks.
pub(super) fn build_linear(
    entries: &[DirEntry],
    ctx: &DirContext,
    inode_seed: u32,
    min_blocks: usize,
) -> Result<DirBlocks, DirError> {
    let mut sorted: Vec<&DirEntry> = entries.iter().collect();
    sorted.sort_unstable_by(|a, b| a.name.cmp(b.name).then(a.inode.cmp(&b.inode)));
    reject_duplicates(sorted.iter().map(|e| e.name))?;

    let blocks = min_blocks.max(1);
    let mut data = vec![0u8; blocks * BLOCK_SIZE as usize];
    let mut first: Vec<DirEntry> = Vec::with_capacity(sorted.len() + 2);
    first.push(DirEntry {
        name: b".",
        inode: ctx.dir_inode,
        file_type: EXT4_FT_DIR,
    });
    first.push(DirEntry {
        name: b"..",
        inode: ctx.parent_inode,
        file_type: EXT4_FT_DIR,
    });
    first.extend(sorted.into_iter().copied());

    let mut chunks = data.chunks_exact_mut(BLOCK_SIZE as usize);
    if let Some(block) = chunks.next() {
        encode_leaf(block, &first, inode_seed);
    }
    for block in chunks {
        encode_leaf(block, &[], inode_seed);
    }
    Ok(DirBlocks {
        data,
        indexed: false,
    })
}

/// Writes one dirent at `offset`; `rec_len` may exceed the name's need.
pub(super) fn put_dirent(block: &mut [u8], offset: usize, entry: &DirEntry, rec_len: usize) {
    let header = Ext4DirEntry2 {
        inode: U32::new(entry.inode),
        rec_len: U16::new(rec_len as u16),
        name_len: entry.name.len() as u8,
        file_type: entry.file_type,
    };
    let name_at = offset + size_of::<Ext4DirEntry2>();
    block[offset..name_at].copy_from_slice(header.as_bytes());
    block[name_at..name_at + entry.name.len()].copy_from_slice(entry.name);
}

/// Encodes a leaf block: `entries` packed in order (the last one's `rec_len`
/// reaching the tail; an unused record if there are none), then the tail.
/// Callers guarantee the entries fit in [`LEAF_SPACE`].
pub(super) fn encode_leaf(block: &mut [u8], entries: &[DirEntry], inode_seed: u32) {
    block.fill(0);
    let mut offset = 0;
    for (i, entry) in entries.iter().enumerate() {
        let rec_len = if i + 1 == entries.len() {
            LEAF_SPACE - offset
        } else {
            dirent_rec_len(entry.name.len())
        };
        put_dirent(block, offset, entry, rec_len);
        offset += rec_len;
    }
    if entries.is_empty() {
        let unused = DirEntry {
            name: b"",
            inode: 0,
            file_type: 0,
        };
        put_dirent(block, 0, &unused, LEAF_SPACE);
    }
    let checksum =
        leaf_block_csum(inode_seed, block).expect("a leaf block is longer than its tail");
    let tail = Ext4DirEntryTail {
        reserved_zero1: U32::new(0),
        rec_len: U16::new(size_of::<Ext4DirEntryTail>() as u16),
        reserved_zero2: 0,
        reserved_ft: EXT4_FT_DIR_CSUM,
        checksum: U32::new(checksum),
    };
    block[LEAF_SPACE..].copy_from_slice(tail.as_bytes());
}
