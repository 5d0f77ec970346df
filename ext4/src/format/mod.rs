//! On-disk structures as `#[repr(C)]` zerocopy types, named after the
//! kernel's (`struct ext4_super_block` is [`Ext4SuperBlock`]), with the
//! checksums that cover them.
//!
//! Every field is explicitly little-endian (big-endian for jbd2) and
//! unaligned, so a structure is exactly its on-disk bytes.

pub mod acl;
pub mod dir;
pub mod extent;
pub mod group_desc;
pub mod inode;
pub mod journal;
pub mod superblock;
pub mod xattr;

pub use extent::{Ext4Extent, Ext4ExtentHeader, Ext4ExtentIdx};
pub use group_desc::Ext4GroupDesc;
pub use inode::Ext4Inode;
pub use journal::JournalSuperblock;
pub use superblock::Ext4SuperBlock;
