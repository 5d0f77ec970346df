//! A pure-Rust ext4 formatter.
//!
//! Builds an ext4 image from an in-memory [`tree::Tree`] with the features a
//! modern `mkfs.ext4` enables: 4 KiB blocks, 64bit, flex_bg, sparse_super,
//! metadata_csum, a jbd2 journal, extents, dir_index htrees, 256-byte inodes
//! with nanosecond times, and extended attributes. It needs no root, no mount
//! and no e2fsprogs.

pub mod acl;
pub mod alloc;
pub mod bitmap;
pub mod builder;
pub mod checksum;
pub mod data;
pub mod dir;
mod error;
pub mod extent;
pub mod format;
pub mod inode;
mod options;
mod plan;
pub mod read;
pub mod spec;
pub mod tree;
mod write;
pub mod xattr;

pub use plan::geometry;
