//! Encodes a directory's entries into checksummed 4 KiB directory blocks.
//!
//! A directory whose entries (with `.` and `..`) fit in one block is written
//! linearly. Larger directories become an htree laid out the way
//! `e2fsck -D` (e2fsprogs' e2fsck/rehash.c) lays one out: block 0 is the dx
//! root, blocks `1..=L` are the leaves sorted by hash, and any interior index
//! nodes follow the leaves. Placing the blocks on disk is the caller's job.

pub mod hash;
mod htree;
mod leaf;

use htree::build_htree;
use leaf::build_linear;

use core::mem::size_of;

use crate::checksum::inode_seed;
use crate::format::dir::{
    dirent_rec_len, DxEntry, DxTail, Ext4DirEntryTail, DX_NODE_COUNT_OFFSET, DX_ROOT_COUNT_OFFSET,
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

#[cfg(test)]
mod tests;
