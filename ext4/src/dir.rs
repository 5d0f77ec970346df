//! Encodes a directory's entries into checksummed 4 KiB directory blocks.
//!
//! A directory whose entries (with `.` and `..`) fit in one block is written
//! linearly. Larger directories become an htree laid out the way
//! `e2fsck -D` (e2fsprogs' e2fsck/rehash.c) lays one out: block 0 is the dx
//! root, blocks `1..=L` are the leaves sorted by hash, and any interior index
//! nodes follow the leaves. Placing the blocks on disk is the caller's job.

pub mod hash;

use core::mem::size_of;

use zerocopy::little_endian::{U16, U32};
use zerocopy::IntoBytes;

use crate::checksum::inode_seed;
use crate::format::dir::{
    dirent_rec_len, dx_block_csum, leaf_block_csum, DxCountlimit, DxEntry, DxRootInfo, DxTail,
    Ext4DirEntry2, Ext4DirEntryTail, DX_NODE_COUNT_OFFSET, DX_ROOT_COUNT_OFFSET, EXT4_FT_DIR_CSUM,
};
use crate::spec::BLOCK_SIZE;
pub use hash::{dx_hash, HashParams, HashVersion};

/// Unknown file type.
pub const EXT4_FT_UNKNOWN: u8 = 0;
/// Regular file.
pub const EXT4_FT_REG_FILE: u8 = 1;
/// Directory.
pub const EXT4_FT_DIR: u8 = 2;
/// Character device.
pub const EXT4_FT_CHRDEV: u8 = 3;
/// Block device.
pub const EXT4_FT_BLKDEV: u8 = 4;
/// FIFO.
pub const EXT4_FT_FIFO: u8 = 5;
/// Socket.
pub const EXT4_FT_SOCK: u8 = 6;
/// Symbolic link.
pub const EXT4_FT_SYMLINK: u8 = 7;

/// Inode flag the writer must set when [`DirBlocks::indexed`] is true.
pub use crate::spec::EXT4_INDEX_FL;
/// Longest name a dirent can hold.
pub const EXT4_NAME_LEN: usize = 255;
/// Space e2fsck leaves free in each htree leaf (its default
/// `indexed_dir_slack_percentage`) so later inserts rarely split leaves.
pub const HTREE_SLACK_PERCENT: usize = 20;

/// Bytes of a leaf block available to dirents (the tail takes the rest).
const LEAF_SPACE: usize = BLOCK_SIZE as usize - size_of::<Ext4DirEntryTail>();
/// Entries in a checksummed dx root: `(bs - 32 - 8) / 8`.
pub const DX_ROOT_LIMIT: usize =
    (BLOCK_SIZE as usize - DX_ROOT_COUNT_OFFSET - size_of::<DxTail>()) / size_of::<DxEntry>();
/// Entries in a checksummed dx interior node: `(bs - 8 - 8) / 8`.
pub const DX_NODE_LIMIT: usize =
    (BLOCK_SIZE as usize - DX_NODE_COUNT_OFFSET - size_of::<DxTail>()) / size_of::<DxEntry>();
const _: () = assert!(DX_ROOT_LIMIT == 507 && DX_NODE_LIMIT == 510);

/// One name in a directory (not `.` or `..`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// The name: 1–255 bytes, no `/` or NUL.
    pub name: &'a [u8],
    /// The inode it links to (non-zero).
    pub inode: u32,
    /// `EXT4_FT_*` of that inode.
    pub file_type: u8,
}

/// What the checksums and the `.`/`..` entries need to know about the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirContext {
    /// The directory's own inode (`.`).
    pub dir_inode: u32,
    /// Its parent's inode (`..`); the root directory is its own parent.
    pub parent_inode: u32,
    /// The directory inode's `i_generation`.
    pub generation: u32,
    /// The filesystem checksum seed (see [`crate::checksum::fs_seed`]).
    pub fs_seed: u32,
    /// The filesystem's htree hash.
    pub hash: HashParams,
}

/// The encoded directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirBlocks {
    /// `block_count() * BLOCK_SIZE as usize` bytes in logical block order, checksums filled.
    pub data: Vec<u8>,
    /// True for an htree: the writer sets [`EXT4_INDEX_FL`] on the inode.
    pub indexed: bool,
}

impl DirBlocks {
    /// Number of 4 KiB blocks; the directory's `i_size` is this times [`BLOCK_SIZE as usize`].
    pub fn block_count(&self) -> usize {
        self.data.len() / BLOCK_SIZE as usize
    }

    /// The blocks, in logical order.
    pub fn blocks(&self) -> impl Iterator<Item = &[u8]> {
        self.data.chunks_exact(BLOCK_SIZE as usize)
    }
}

/// Why a directory cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirError {
    /// A name of zero bytes.
    #[error("empty file name (inode {inode})")]
    EmptyName {
        /// Inode of the offending entry.
        inode: u32,
    },
    /// A name over [`EXT4_NAME_LEN`] bytes.
    #[error("file name of {len} bytes is longer than 255: {name:?}")]
    NameTooLong {
        /// The name, lossily decoded.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// `.`, `..`, or a name containing `/` or NUL.
    #[error("invalid file name {name:?}")]
    InvalidName {
        /// The name, lossily decoded.
        name: String,
    },
    /// The same name twice.
    #[error("duplicate file name {name:?}")]
    DuplicateName {
        /// The name, lossily decoded.
        name: String,
    },
    /// An entry pointing at inode 0 (which marks a free record on disk).
    #[error("entry {name:?} has inode 0")]
    ZeroInode {
        /// The name, lossily decoded.
        name: String,
    },
    /// A file type byte above [`EXT4_FT_SYMLINK`].
    #[error("entry {name:?} has unknown file type {file_type}")]
    BadFileType {
        /// The name, lossily decoded.
        name: String,
        /// The rejected value.
        file_type: u8,
    },
    /// More leaves than a two-level htree without `large_dir` can index.
    #[error(
        "directory needs {leaves} leaf blocks; an htree without large_dir indexes at most {max}"
    )]
    TooLarge {
        /// Leaf blocks needed.
        leaves: usize,
        /// Leaf blocks indexable.
        max: usize,
    },
}

/// Encodes `entries` (any order, without `.` and `..`) as directory blocks.
///
/// The result is linear if everything fits in one block, padded with empty
/// blocks up to `min_blocks` (lost+found wants 4); otherwise an htree, for
/// which `min_blocks` is ignored (every htree block must be indexed).
/// Output depends only on the set of entries, not their order.
pub fn build_directory(
    entries: &[DirEntry],
    ctx: &DirContext,
    min_blocks: usize,
) -> Result<DirBlocks, DirError> {
    for entry in entries {
        validate(entry)?;
    }
    let inode_seed = inode_seed(ctx.fs_seed, ctx.dir_inode, ctx.generation);
    let dots = dirent_rec_len(1) + dirent_rec_len(2);
    let names: usize = entries.iter().map(|e| dirent_rec_len(e.name.len())).sum();
    if dots + names <= LEAF_SPACE {
        build_linear(entries, ctx, inode_seed, min_blocks)
    } else {
        build_htree(entries, ctx, inode_seed)
    }
}

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

fn validate(entry: &DirEntry) -> Result<(), DirError> {
    let name = entry.name;
    if name.is_empty() {
        return Err(DirError::EmptyName { inode: entry.inode });
    }
    if name.len() > EXT4_NAME_LEN {
        return Err(DirError::NameTooLong {
            name: lossy(name),
            len: name.len(),
        });
    }
    if name == b"." || name == b".." || name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(DirError::InvalidName { name: lossy(name) });
    }
    if entry.inode == 0 {
        return Err(DirError::ZeroInode { name: lossy(name) });
    }
    if entry.file_type > EXT4_FT_SYMLINK {
        return Err(DirError::BadFileType {
            name: lossy(name),
            file_type: entry.file_type,
        });
    }
    Ok(())
}

/// Fails on the first pair of equal adjacent names in a sorted list.
fn reject_duplicates<'a>(mut names: impl Iterator<Item = &'a [u8]>) -> Result<(), DirError> {
    let Some(mut previous) = names.next() else {
        return Ok(());
    };
    for name in names {
        if name == previous {
            return Err(DirError::DuplicateName { name: lossy(name) });
        }
        previous = name;
    }
    Ok(())
}

fn build_linear(
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

/// A name with its hash, ready to be placed in a leaf.
struct Hashed<'a> {
    hash: u32,
    minor: u32,
    entry: &'a DirEntry<'a>,
}

/// The leaves of an htree: ranges of the hash-sorted entries and the index
/// hash of each (the first entry's hash, bit 0 set when it continues a run
/// of equal hashes from the previous leaf).
struct LeafPlan {
    ranges: Vec<core::ops::Range<usize>>,
    hashes: Vec<u32>,
}

/// Packs sorted entries into leaves exactly like e2fsck's `copy_dir_entries`:
/// fill each leaf in order, closing it once less than the slack is left.
fn plan_leaves(sorted: &[Hashed]) -> LeafPlan {
    let slack = LEAF_SPACE * HTREE_SLACK_PERCENT / 100;
    let mut plan = LeafPlan {
        ranges: Vec::new(),
        hashes: Vec::new(),
    };
    let mut start = 0;
    let mut left = LEAF_SPACE;
    for (i, item) in sorted.iter().enumerate() {
        let rec_len = dirent_rec_len(item.entry.name.len());
        if rec_len > left {
            plan.ranges.push(start..i);
            start = i;
            left = LEAF_SPACE;
        }
        if start == i {
            let continues_run = i > 0 && sorted[i - 1].hash == item.hash;
            plan.hashes.push(item.hash | u32::from(continues_run));
        }
        left -= rec_len;
        if left < slack {
            left = 0;
        }
    }
    plan.ranges.push(start..sorted.len());
    plan
}

fn build_htree(
    entries: &[DirEntry],
    ctx: &DirContext,
    inode_seed: u32,
) -> Result<DirBlocks, DirError> {
    let mut sorted: Vec<Hashed> = entries
        .iter()
        .map(|entry| {
            let (hash, minor) = dx_hash(entry.name, &ctx.hash);
            Hashed { hash, minor, entry }
        })
        .collect();
    sorted.sort_unstable_by(|a, b| {
        (a.hash, a.minor, a.entry.name, a.entry.inode).cmp(&(
            b.hash,
            b.minor,
            b.entry.name,
            b.entry.inode,
        ))
    });
    // Equal names hash equally, so duplicates end up adjacent.
    reject_duplicates(sorted.iter().map(|h| h.entry.name))?;

    let plan = plan_leaves(&sorted);
    let leaves = plan.ranges.len();
    let nodes = interior_nodes(leaves)?;
    let mut data = vec![0u8; (1 + leaves + nodes) * BLOCK_SIZE as usize];
    let mut blocks = data.chunks_exact_mut(BLOCK_SIZE as usize);
    let root = blocks.next();

    let mut leaf_entries: Vec<DirEntry> = Vec::new();
    for (range, block) in plan.ranges.iter().zip(blocks.by_ref()) {
        leaf_entries.clear();
        leaf_entries.extend(sorted[range.clone()].iter().map(|h| *h.entry));
        encode_leaf(block, &leaf_entries, inode_seed);
    }

    // (hash, logical block) of every leaf; leaf i lives in block i + 1.
    let leaf_index: Vec<(u32, u32)> = plan
        .hashes
        .iter()
        .zip(1u32..)
        .map(|(&hash, block)| (hash, block))
        .collect();
    let root_entries: Vec<(u32, u32)> = if nodes == 0 {
        leaf_index
    } else {
        let first_node_block = 1 + leaves as u32;
        let mut root_entries = Vec::with_capacity(nodes);
        for ((children, block), node_block) in leaf_index
            .chunks(DX_NODE_LIMIT)
            .zip(blocks.by_ref())
            .zip(first_node_block..)
        {
            encode_dx_node(block, children, inode_seed);
            root_entries.push((children[0].0, node_block));
        }
        root_entries
    };
    if let Some(root) = root {
        encode_dx_root(root, ctx, u8::from(nodes > 0), &root_entries, inode_seed);
    }
    Ok(DirBlocks {
        data,
        indexed: true,
    })
}

/// Interior index nodes needed for `leaves` leaves: none while the root can
/// point at every leaf, else one level (the kernel's limit without large_dir).
fn interior_nodes(leaves: usize) -> Result<usize, DirError> {
    let max = DX_ROOT_LIMIT * DX_NODE_LIMIT;
    if leaves <= DX_ROOT_LIMIT {
        Ok(0)
    } else if leaves <= max {
        Ok(leaves.div_ceil(DX_NODE_LIMIT))
    } else {
        Err(DirError::TooLarge { leaves, max })
    }
}

/// Writes one dirent at `offset`; `rec_len` may exceed the name's need.
fn put_dirent(block: &mut [u8], offset: usize, entry: &DirEntry, rec_len: usize) {
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
fn encode_leaf(block: &mut [u8], entries: &[DirEntry], inode_seed: u32) {
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

/// Writes the count/limit header, the entries and the checksummed dx tail of
/// an index block whose header sits at `count_offset`. Entry 0's hash slot
/// holds the count/limit, so only its block is written.
fn put_dx_entries(
    block: &mut [u8],
    count_offset: usize,
    limit: usize,
    entries: &[(u32, u32)],
    inode_seed: u32,
) {
    let countlimit = DxCountlimit {
        limit: U16::new(limit as u16),
        count: U16::new(entries.len() as u16),
    };
    block[count_offset..count_offset + 4].copy_from_slice(countlimit.as_bytes());
    for (i, &(hash, child)) in entries.iter().enumerate() {
        let at = count_offset + i * size_of::<DxEntry>();
        if i == 0 {
            block[at + 4..at + 8].copy_from_slice(&child.to_le_bytes());
        } else {
            let entry = DxEntry {
                hash: U32::new(hash),
                block: U32::new(child),
            };
            block[at..at + size_of::<DxEntry>()].copy_from_slice(entry.as_bytes());
        }
    }
    let tail_at = count_offset + limit * size_of::<DxEntry>();
    let checksum = dx_block_csum(inode_seed, block, count_offset)
        .expect("the count and limit just written fit the block");
    let tail = DxTail {
        reserved: U32::new(0),
        checksum: U32::new(checksum),
    };
    block[tail_at..tail_at + size_of::<DxTail>()].copy_from_slice(tail.as_bytes());
}

fn encode_dx_root(
    block: &mut [u8],
    ctx: &DirContext,
    indirect_levels: u8,
    entries: &[(u32, u32)],
    inode_seed: u32,
) {
    block.fill(0);
    let dot = DirEntry {
        name: b".",
        inode: ctx.dir_inode,
        file_type: EXT4_FT_DIR,
    };
    let dotdot = DirEntry {
        name: b"..",
        inode: ctx.parent_inode,
        file_type: EXT4_FT_DIR,
    };
    let dot_len = dirent_rec_len(1);
    put_dirent(block, 0, &dot, dot_len);
    // `..` spans the rest of the block, hiding the index from linear readers.
    put_dirent(block, dot_len, &dotdot, BLOCK_SIZE as usize - dot_len);
    let info = DxRootInfo {
        reserved_zero: U32::new(0),
        hash_version: ctx.hash.version.as_u8(),
        info_length: size_of::<DxRootInfo>() as u8,
        indirect_levels,
        unused_flags: 0,
    };
    let info_at = dot_len + dirent_rec_len(2);
    block[info_at..info_at + size_of::<DxRootInfo>()].copy_from_slice(info.as_bytes());
    put_dx_entries(
        block,
        DX_ROOT_COUNT_OFFSET,
        DX_ROOT_LIMIT,
        entries,
        inode_seed,
    );
}

fn encode_dx_node(block: &mut [u8], entries: &[(u32, u32)], inode_seed: u32) {
    block.fill(0);
    // A free dirent covering the block, so linear readers skip it.
    let fake = Ext4DirEntry2 {
        inode: U32::new(0),
        rec_len: U16::new(BLOCK_SIZE as usize as u16),
        name_len: 0,
        file_type: 0,
    };
    block[..size_of::<Ext4DirEntry2>()].copy_from_slice(fake.as_bytes());
    put_dx_entries(
        block,
        DX_NODE_COUNT_OFFSET,
        DX_NODE_LIMIT,
        entries,
        inode_seed,
    );
}

#[cfg(test)]
mod tests;
