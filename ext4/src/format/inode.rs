//! `struct ext4_inode` in its 256-byte form with 32 extra bytes.

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::checksum::{ext4_chksum, inode_seed};

/// An on-disk inode, including the in-inode extended attribute area.
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Ext4Inode {
    pub i_mode: U16,
    pub i_uid: U16,
    pub i_size_lo: U32,
    pub i_atime: U32,
    pub i_ctime: U32,
    pub i_mtime: U32,
    pub i_dtime: U32,
    pub i_gid: U16,
    pub i_links_count: U16,
    pub i_blocks_lo: U32,
    pub i_flags: U32,
    pub l_i_version: U32,
    pub i_block: [u8; 60],
    pub i_generation: U32,
    pub i_file_acl_lo: U32,
    pub i_size_high: U32,
    pub i_obso_faddr: U32,
    pub l_i_blocks_high: U16,
    pub l_i_file_acl_high: U16,
    pub l_i_uid_high: U16,
    pub l_i_gid_high: U16,
    pub l_i_checksum_lo: U16,
    pub l_i_reserved: U16,
    pub i_extra_isize: U16,
    pub i_checksum_hi: U16,
    pub i_ctime_extra: U32,
    pub i_mtime_extra: U32,
    pub i_atime_extra: U32,
    pub i_crtime: U32,
    pub i_crtime_extra: U32,
    pub i_version_hi: U32,
    pub i_projid: U32,
    /// In-inode extended attributes (`ext4_xattr_ibody_header` + entries).
    pub i_xattrs: [u8; 96],
}

const _: () = assert!(size_of::<Ext4Inode>() == crate::spec::INODE_SIZE as usize);

impl Ext4Inode {
    /// Recomputes the inode checksum: crc32c over the inode number, the
    /// generation and the whole inode with both checksum halves zeroed.
    pub fn update_checksum(&mut self, ino: u32, fs_seed: u32) {
        self.l_i_checksum_lo = 0.into();
        self.i_checksum_hi = 0.into();
        let seed = inode_seed(fs_seed, ino, self.i_generation.get());
        let sum = ext4_chksum(seed, self.as_bytes());
        self.l_i_checksum_lo = (sum as u16).into();
        self.i_checksum_hi = ((sum >> 16) as u16).into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn offsets_match_the_spec() {
        assert_eq!(offset_of!(Ext4Inode, i_block), 0x28);
        assert_eq!(offset_of!(Ext4Inode, i_generation), 0x64);
        assert_eq!(offset_of!(Ext4Inode, l_i_blocks_high), 0x74);
        assert_eq!(offset_of!(Ext4Inode, l_i_checksum_lo), 0x7C);
        assert_eq!(offset_of!(Ext4Inode, i_extra_isize), 0x80);
        assert_eq!(offset_of!(Ext4Inode, i_crtime), 0x90);
        assert_eq!(offset_of!(Ext4Inode, i_projid), 0x9C);
        assert_eq!(
            offset_of!(Ext4Inode, i_xattrs),
            crate::spec::INODE_XATTR_OFFSET
        );
    }
}
