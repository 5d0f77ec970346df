//! On-disk structures as `#[repr(C)]` zerocopy types.
//!
//! Every field is explicitly little-endian (big-endian for jbd2) and
//! unaligned, so a structure is exactly its on-disk bytes.

pub mod extent;
pub mod group_desc;
pub mod inode;
pub mod journal;
pub mod superblock;

pub use extent::{ExtentHeader, ExtentIndex, ExtentLeaf};
pub use group_desc::GroupDesc;
pub use inode::Inode;
pub use journal::JournalSuperblock;
pub use superblock::Superblock;
