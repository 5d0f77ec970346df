//! `struct ext4_group_desc` in its 64-byte (64bit feature) form.

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::checksum::ext4_chksum;

/// A block group descriptor.
#[derive(Clone, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Ext4GroupDesc {
    pub bg_block_bitmap_lo: U32,
    pub bg_inode_bitmap_lo: U32,
    pub bg_inode_table_lo: U32,
    pub bg_free_blocks_count_lo: U16,
    pub bg_free_inodes_count_lo: U16,
    pub bg_used_dirs_count_lo: U16,
    pub bg_flags: U16,
    pub bg_exclude_bitmap_lo: U32,
    pub bg_block_bitmap_csum_lo: U16,
    pub bg_inode_bitmap_csum_lo: U16,
    pub bg_itable_unused_lo: U16,
    pub bg_checksum: U16,
    pub bg_block_bitmap_hi: U32,
    pub bg_inode_bitmap_hi: U32,
    pub bg_inode_table_hi: U32,
    pub bg_free_blocks_count_hi: U16,
    pub bg_free_inodes_count_hi: U16,
    pub bg_used_dirs_count_hi: U16,
    pub bg_itable_unused_hi: U16,
    pub bg_exclude_bitmap_hi: U32,
    pub bg_block_bitmap_csum_hi: U16,
    pub bg_inode_bitmap_csum_hi: U16,
    pub bg_reserved: U32,
}

const _: () = assert!(size_of::<Ext4GroupDesc>() == 64);

/// Splits a 64-bit value into its low and high 32-bit halves.
fn split64(value: u64) -> (U32, U32) {
    ((value as u32).into(), ((value >> 32) as u32).into())
}

/// Splits a 32-bit value into its low and high 16-bit halves.
fn split32(value: u32) -> (U16, U16) {
    ((value as u16).into(), ((value >> 16) as u16).into())
}

impl Ext4GroupDesc {
    /// Sets where the group's bitmaps and inode table live.
    pub fn set_locations(&mut self, block_bitmap: u64, inode_bitmap: u64, inode_table: u64) {
        (self.bg_block_bitmap_lo, self.bg_block_bitmap_hi) = split64(block_bitmap);
        (self.bg_inode_bitmap_lo, self.bg_inode_bitmap_hi) = split64(inode_bitmap);
        (self.bg_inode_table_lo, self.bg_inode_table_hi) = split64(inode_table);
    }

    /// Sets the free and used counters.
    pub fn set_counts(
        &mut self,
        free_blocks: u32,
        free_inodes: u32,
        used_dirs: u32,
        itable_unused: u32,
    ) {
        (self.bg_free_blocks_count_lo, self.bg_free_blocks_count_hi) = split32(free_blocks);
        (self.bg_free_inodes_count_lo, self.bg_free_inodes_count_hi) = split32(free_inodes);
        (self.bg_used_dirs_count_lo, self.bg_used_dirs_count_hi) = split32(used_dirs);
        (self.bg_itable_unused_lo, self.bg_itable_unused_hi) = split32(itable_unused);
    }

    /// Sets the bitmap checksums (crc32c of the bitmaps, no group number).
    pub fn set_bitmap_checksums(&mut self, block_bitmap: u32, inode_bitmap: u32) {
        (self.bg_block_bitmap_csum_lo, self.bg_block_bitmap_csum_hi) = split32(block_bitmap);
        (self.bg_inode_bitmap_csum_lo, self.bg_inode_bitmap_csum_hi) = split32(inode_bitmap);
    }

    /// Recomputes `bg_checksum`: crc32c over the group number and the
    /// descriptor with the checksum field zeroed, truncated to 16 bits.
    pub fn update_checksum(&mut self, group: u32, fs_seed: u32) {
        self.bg_checksum = 0.into();
        let seeded = ext4_chksum(fs_seed, &group.to_le_bytes());
        self.bg_checksum = (ext4_chksum(seeded, self.as_bytes()) as u16).into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn offsets_match_the_spec() {
        assert_eq!(offset_of!(Ext4GroupDesc, bg_flags), 0x12);
        assert_eq!(offset_of!(Ext4GroupDesc, bg_block_bitmap_csum_lo), 0x18);
        assert_eq!(offset_of!(Ext4GroupDesc, bg_itable_unused_lo), 0x1C);
        assert_eq!(offset_of!(Ext4GroupDesc, bg_checksum), 0x1E);
        assert_eq!(offset_of!(Ext4GroupDesc, bg_block_bitmap_hi), 0x20);
        assert_eq!(offset_of!(Ext4GroupDesc, bg_free_blocks_count_hi), 0x2C);
        assert_eq!(offset_of!(Ext4GroupDesc, bg_block_bitmap_csum_hi), 0x38);
    }
}
