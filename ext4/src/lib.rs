//! A pure-Rust ext4 formatter.
//!
//! Builds an ext4 image from an in-memory [`tree::Tree`] with the features a
//! modern `mkfs.ext4` enables: 4 KiB blocks, 64bit, flex_bg, sparse_super,
//! metadata_csum, a jbd2 journal, extents, dir_index htrees, 256-byte inodes
//! with nanosecond times, and extended attributes. It needs no root, no mount
//! and no e2fsprogs.
//!
//! Describe the content with [`tree`], write it with [`ImageBuilder`] (file
//! data streamed in as the tree grows) or [`write_image`], and read an image
//! back with [`read`]. [`geometry`], [`alloc`] and [`spec`] give the sizing
//! rules to the fuzzers; [`format`](mod@format), [`checksum`], [`dir`], [`xattr`] and
//! [`acl`] give the on-disk encoders to the tests that check them against
//! e2fsprogs.

pub mod acl;
pub mod alloc;
pub mod builder;
pub mod checksum;
pub mod dir;
pub mod format;
pub mod read;
pub mod spec;
pub mod tree;
pub mod xattr;

mod error;
mod extent;
mod inode;
mod options;
mod plan;
mod write;

pub use builder::{write_image, BuildError, ImageBuilder, ImageSummary, Options};
pub use plan::geometry;
