//! POSIX ACL structures: ext4's on-disk format (fs/ext4/acl.h) and the VFS
//! xattr format (include/uapi/linux/posix_acl_xattr.h), which share a header
//! and the full entry.

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Version of the VFS (`getxattr`) ACL format.
pub const POSIX_ACL_XATTR_VERSION: u32 = 0x0002;
/// Version of ext4's on-disk ACL format.
pub const EXT4_ACL_VERSION: u32 = 0x0001;

/// The file owner's entry.
pub const ACL_USER_OBJ: u16 = 0x01;
/// A named user's entry.
pub const ACL_USER: u16 = 0x02;
/// The owning group's entry.
pub const ACL_GROUP_OBJ: u16 = 0x04;
/// A named group's entry.
pub const ACL_GROUP: u16 = 0x08;
/// The mask entry.
pub const ACL_MASK: u16 = 0x10;
/// Everyone else's entry.
pub const ACL_OTHER: u16 = 0x20;

/// Read permission.
pub const ACL_READ: u16 = 0x04;
/// Write permission.
pub const ACL_WRITE: u16 = 0x02;
/// Execute permission.
pub const ACL_EXECUTE: u16 = 0x01;

/// The id the VFS format gives entries that name nobody.
pub const ACL_UNDEFINED_ID: u32 = u32::MAX;

/// Header of both formats: just the version.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Ext4AclHeader {
    /// [`POSIX_ACL_XATTR_VERSION`] or [`EXT4_ACL_VERSION`].
    pub a_version: U32,
}
const _: () = assert!(size_of::<Ext4AclHeader>() == 4);

/// A full entry: every VFS entry, and ext4's `ACL_USER`/`ACL_GROUP` entries
/// (`posix_acl_xattr_entry`, `ext4_acl_entry`).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Ext4AclEntry {
    /// One of the `ACL_*` tags.
    pub e_tag: U16,
    /// `ACL_READ | ACL_WRITE | ACL_EXECUTE` bits.
    pub e_perm: U16,
    /// The uid or gid for named entries.
    pub e_id: U32,
}
const _: () = assert!(size_of::<Ext4AclEntry>() == 8);

/// ext4's short entry for tags that name nobody (`ext4_acl_entry_short`).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct Ext4AclEntryShort {
    /// One of `ACL_USER_OBJ`, `ACL_GROUP_OBJ`, `ACL_MASK`, `ACL_OTHER`.
    pub e_tag: U16,
    /// `ACL_READ | ACL_WRITE | ACL_EXECUTE` bits.
    pub e_perm: U16,
}
const _: () = assert!(size_of::<Ext4AclEntryShort>() == 4);
