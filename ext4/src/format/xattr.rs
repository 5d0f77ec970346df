//! Extended attribute structures (fs/ext4/xattr.h): the EA block header,
//! the in-inode area's header and the entries both hold.

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Magic of the in-inode xattr area and of EA blocks.
pub const EXT4_XATTR_MAGIC: u32 = 0xEA02_0000;
/// Most inodes the kernel lets share one EA block.
pub const EXT4_XATTR_REFCOUNT_MAX: u32 = 1024;
/// Alignment of entries and values.
pub const EXT4_XATTR_PAD: usize = 4;
pub(crate) const EXT4_XATTR_ROUND: usize = EXT4_XATTR_PAD - 1;

/// Name index of `user.*`.
pub const EXT4_XATTR_INDEX_USER: u8 = 1;
/// Name index of `system.posix_acl_access` (empty name).
pub const EXT4_XATTR_INDEX_POSIX_ACL_ACCESS: u8 = 2;
/// Name index of `system.posix_acl_default` (empty name).
pub const EXT4_XATTR_INDEX_POSIX_ACL_DEFAULT: u8 = 3;
/// Name index of `trusted.*`.
pub const EXT4_XATTR_INDEX_TRUSTED: u8 = 4;
/// Name index of `security.*`.
pub const EXT4_XATTR_INDEX_SECURITY: u8 = 6;
/// Name index of other `system.*` names.
pub const EXT4_XATTR_INDEX_SYSTEM: u8 = 7;
/// Name index of `system.richacl` (empty name).
pub const EXT4_XATTR_INDEX_RICHACL: u8 = 8;

/// Longest name suffix an entry can hold (`e_name_len` is a byte).
pub const EXT4_XATTR_NAME_MAX: usize = 255;

/// Offset of the in-inode xattr area in the inode (after the 128-byte
/// classic inode and `i_extra_isize` bytes).
pub const IN_INODE_OFFSET: usize = crate::spec::INODE_XATTR_OFFSET;
/// Length of the in-inode xattr area, magic included.
pub const IN_INODE_LEN: usize = crate::spec::INODE_SIZE as usize - IN_INODE_OFFSET;

/// Header of an EA block (`ext4_xattr_header`).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Ext4XattrHeader {
    /// [`EXT4_XATTR_MAGIC`].
    pub h_magic: U32,
    /// Number of inodes pointing at the block.
    pub h_refcount: U32,
    /// Always 1.
    pub h_blocks: U32,
    /// Fold of the entry hashes, used by the kernel to find shareable blocks.
    pub h_hash: U32,
    /// `csum(seed, le64 block number, block with this field zero)`.
    pub h_checksum: U32,
    /// Zero.
    pub h_reserved: [U32; 3],
}
const _: () = assert!(size_of::<Ext4XattrHeader>() == 32);

/// Header of the in-inode xattr area (`ext4_xattr_ibody_header`).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Ext4XattrIbodyHeader {
    /// [`EXT4_XATTR_MAGIC`].
    pub h_magic: U32,
}
const _: () = assert!(size_of::<Ext4XattrIbodyHeader>() == 4);

/// Fixed part of an xattr entry (`ext4_xattr_entry`); the name follows,
/// padded to 4 bytes. A zero `u32` ends the entry list.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Ext4XattrEntry {
    /// Length of the name suffix.
    pub e_name_len: u8,
    /// One of the `EXT4_XATTR_INDEX_*` prefixes.
    pub e_name_index: u8,
    /// Offset of the value: from the first entry in the inode, from the block start in a block.
    pub e_value_offs: U16,
    /// Inode holding the value (`ea_inode`); always 0 here.
    pub e_value_inum: U32,
    /// Length of the value.
    pub e_value_size: U32,
    /// Hash of name and value; 0 in the inode.
    pub e_hash: U32,
}
const _: () = assert!(size_of::<Ext4XattrEntry>() == 16);
