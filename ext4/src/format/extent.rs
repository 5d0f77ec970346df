//! Extent tree nodes: `ext4_extent_header`, `ext4_extent`, `ext4_extent_idx`.

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Header at the start of `i_block` and of every extent tree block.
#[derive(Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Ext4ExtentHeader {
    pub eh_magic: U16,
    pub eh_entries: U16,
    pub eh_max: U16,
    pub eh_depth: U16,
    pub eh_generation: U32,
}

/// A leaf entry: a run of file blocks mapped to physical blocks.
#[derive(Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Ext4Extent {
    pub ee_block: U32,
    pub ee_len: U16,
    pub ee_start_hi: U16,
    pub ee_start_lo: U32,
}

/// An index entry: the tree block covering file blocks from `ei_block` on.
#[derive(Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Ext4ExtentIdx {
    pub ei_block: U32,
    pub ei_leaf_lo: U32,
    pub ei_leaf_hi: U16,
    pub ei_unused: U16,
}

const _: () = assert!(size_of::<Ext4ExtentHeader>() == 12);
const _: () = assert!(size_of::<Ext4Extent>() == 12);
const _: () = assert!(size_of::<Ext4ExtentIdx>() == 12);
