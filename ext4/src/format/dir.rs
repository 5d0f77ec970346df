//! On-disk directory structures (fs/ext4/ext4.h, fs/ext4/namei.c) and their checksums.

use core::mem::size_of;

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::checksum::ext4_chksum;

/// `struct ext4_dir_entry_2` without the name.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Ext4DirEntry2 {
    /// Inode number; 0 marks an unused record.
    pub inode: U32,
    /// Bytes to the next record (4-aligned).
    pub rec_len: U16,
    /// Name length in bytes.
    pub name_len: u8,
    /// `EXT4_FT_*`.
    pub file_type: u8,
}
const _: () = assert!(size_of::<Ext4DirEntry2>() == 8);

/// `struct ext4_dir_entry_tail`: the last 12 bytes of a checksummed leaf block.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Ext4DirEntryTail {
    /// Always 0 (looks like an unused dirent to old readers).
    pub reserved_zero1: U32,
    /// Always 12.
    pub rec_len: U16,
    /// Always 0.
    pub reserved_zero2: u8,
    /// Always [`EXT4_FT_DIR_CSUM`].
    pub reserved_ft: u8,
    /// [`leaf_block_csum`] of the block.
    pub checksum: U32,
}
const _: () = assert!(size_of::<Ext4DirEntryTail>() == 12);

/// `struct dx_root_info`, at byte 24 of an htree root (after `.` and `..`).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct DxRootInfo {
    /// Always 0.
    pub reserved_zero: U32,
    /// `DX_HASH_*` (0–2).
    pub hash_version: u8,
    /// Always 8 (this struct's size).
    pub info_length: u8,
    /// Levels of index nodes below the root.
    pub indirect_levels: u8,
    /// Always 0.
    pub unused_flags: u8,
}
const _: () = assert!(size_of::<DxRootInfo>() == 8);

/// `struct dx_countlimit`: overlays the hash of entry 0 of an index block.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct DxCountlimit {
    /// Capacity in entries, including entry 0.
    pub limit: U16,
    /// Entries in use, including entry 0.
    pub count: U16,
}
const _: () = assert!(size_of::<DxCountlimit>() == 4);

/// `struct dx_entry`: lowest hash of a child and its logical block.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct DxEntry {
    /// Lowest hash in the child; bit 0 = continues a collision run.
    pub hash: U32,
    /// Logical block number within the directory.
    pub block: U32,
}
const _: () = assert!(size_of::<DxEntry>() == 8);

/// `struct dx_tail`: follows the `limit` entry slots of a checksummed index block.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct DxTail {
    /// Always 0.
    pub reserved: U32,
    /// [`dx_block_csum`] of the block.
    pub checksum: U32,
}
const _: () = assert!(size_of::<DxTail>() == 8);

/// File type byte of a [`Ext4DirEntryTail`].
pub const EXT4_FT_DIR_CSUM: u8 = 0xDE;

/// Byte offset of the [`DxCountlimit`] in an htree root block.
pub const DX_ROOT_COUNT_OFFSET: usize = 0x20;
/// Byte offset of the [`DxCountlimit`] in an htree interior node.
pub const DX_NODE_COUNT_OFFSET: usize = 8;

/// `rec_len` needed by a name of `name_len` bytes: `EXT4_DIR_REC_LEN`.
pub const fn dirent_rec_len(name_len: usize) -> usize {
    (size_of::<Ext4DirEntry2>() + name_len + 3) & !3
}

/// Checksum stored in the [`Ext4DirEntryTail`] of a leaf block: everything before the tail.
/// Returns `None` if `block` is shorter than a tail.
pub fn leaf_block_csum(inode_seed: u32, block: &[u8]) -> Option<u32> {
    let covered = block.len().checked_sub(size_of::<Ext4DirEntryTail>())?;
    Some(ext4_chksum(inode_seed, &block[..covered]))
}

/// Checksum stored in the [`DxTail`] of an index block whose
/// [`DxCountlimit`] sits at `count_offset` ([`DX_ROOT_COUNT_OFFSET`] or
/// [`DX_NODE_COUNT_OFFSET`]): the header and the `count` used entries, then
/// the tail's reserved word and a zero checksum. `None` if the block's
/// count/limit fields point outside it.
pub fn dx_block_csum(inode_seed: u32, block: &[u8], count_offset: usize) -> Option<u32> {
    let (countlimit, _) = DxCountlimit::read_from_prefix(block.get(count_offset..)?).ok()?;
    let limit = usize::from(countlimit.limit.get());
    let count = usize::from(countlimit.count.get());
    if count > limit {
        return None;
    }
    let tail_offset = count_offset + limit * size_of::<DxEntry>();
    let (tail, _) = DxTail::read_from_prefix(block.get(tail_offset..)?).ok()?;
    let used = count_offset + count * size_of::<DxEntry>();
    let csum = ext4_chksum(inode_seed, &block[..used]);
    let csum = ext4_chksum(csum, tail.reserved.as_bytes());
    Some(ext4_chksum(csum, &0u32.to_le_bytes()))
}
