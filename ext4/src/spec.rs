//! Constants from the ext4 on-disk format (Documentation/filesystems/ext4 in
//! the Linux kernel), named as the kernel names them.

/// The only block size banger writes.
pub const BLOCK_SIZE: u64 = 4096;
/// `s_log_block_size`: block size is `1024 << 2`.
pub const LOG_BLOCK_SIZE_MINUS_10: u32 = 2;
/// Blocks (and clusters) per block group: one bitmap block's worth of bits.
pub const BLOCKS_PER_GROUP: u64 = BLOCK_SIZE * 8;
/// On-disk inode size.
pub const INODE_SIZE: u64 = 256;
/// Inodes that fit in one block of an inode table.
pub const INODES_PER_BLOCK: u64 = BLOCK_SIZE / INODE_SIZE;
/// Size of the fields past the 128-byte classic inode that we use.
pub const EXTRA_ISIZE: u16 = 32;
/// Offset of the in-inode extended attribute area.
pub const INODE_XATTR_OFFSET: usize = 128 + EXTRA_ISIZE as usize;
/// Size of a 64bit group descriptor.
pub const DESC_SIZE: u64 = 64;
/// Group descriptors per block.
pub const DESCS_PER_BLOCK: u64 = BLOCK_SIZE / DESC_SIZE;
/// `log2` of the groups in one flex group (mke2fs's default of 16).
pub const LOG_GROUPS_PER_FLEX: u8 = 4;
/// Byte offset of the primary superblock.
pub const SUPERBLOCK_OFFSET: u64 = 1024;

/// Ext4SuperBlock magic.
pub const EXT4_SUPER_MAGIC: u16 = 0xEF53;
/// `s_state`: cleanly unmounted.
pub const EXT4_VALID_FS: u16 = 1;
/// `s_errors`: continue on errors.
pub const EXT4_ERRORS_CONTINUE: u16 = 1;
/// `s_rev_level`: dynamic inode sizes and feature flags.
pub const EXT4_DYNAMIC_REV: u32 = 1;
/// `s_creator_os`: Linux.
pub const EXT4_OS_LINUX: u32 = 0;
/// `s_checksum_type`: crc32c.
pub const EXT4_CRC32C_CHKSUM: u8 = 1;
/// `s_def_hash_version`: half MD4.
pub const DX_HASH_HALF_MD4: u8 = 1;
/// `s_flags`: directory hashes use signed chars (what x86 mke2fs sets).
pub const EXT2_FLAGS_SIGNED_HASH: u32 = 0x0001;
/// `s_flags`: directory hashes use unsigned chars.
pub const EXT2_FLAGS_UNSIGNED_HASH: u32 = 0x0002;
/// `s_jnl_backup_type`: `s_jnl_blocks` holds a copy of the journal's i_block.
pub const EXT3_JNL_BACKUP_BLOCKS: u8 = 1;
/// `s_default_mount_opts`: user_xattr.
pub const EXT4_DEFM_XATTR_USER: u32 = 0x0004;
/// `s_default_mount_opts`: acl.
pub const EXT4_DEFM_ACL: u32 = 0x0008;

/// Compat feature: has a journal.
pub const EXT4_FEATURE_COMPAT_HAS_JOURNAL: u32 = 0x0004;
/// Compat feature: extended attributes.
pub const EXT4_FEATURE_COMPAT_EXT_ATTR: u32 = 0x0008;
/// Compat feature: hashed directory indexes.
pub const EXT4_FEATURE_COMPAT_DIR_INDEX: u32 = 0x0020;
/// Incompat feature: directory entries carry a file type.
pub const EXT4_FEATURE_INCOMPAT_FILETYPE: u32 = 0x0002;
/// Incompat feature: extent-mapped files.
pub const EXT4_FEATURE_INCOMPAT_EXTENTS: u32 = 0x0040;
/// Incompat feature: 64-bit block numbers and 64-byte descriptors.
pub const EXT4_FEATURE_INCOMPAT_64BIT: u32 = 0x0080;
/// Incompat feature: flexible block groups.
pub const EXT4_FEATURE_INCOMPAT_FLEX_BG: u32 = 0x0200;
/// `INCOMPAT_META_BG`: group descriptors spread over the disk (not written; the reader refuses it).
pub const EXT4_FEATURE_INCOMPAT_META_BG: u32 = 0x0010;
/// `INCOMPAT_INLINE_DATA`: small files' data inside the inode (not written; the reader refuses it).
pub const EXT4_FEATURE_INCOMPAT_INLINE_DATA: u32 = 0x8000;
/// `INCOMPAT_ENCRYPT`: names and data are ciphertext (not written; the reader refuses it).
pub const EXT4_FEATURE_INCOMPAT_ENCRYPT: u32 = 0x1_0000;
/// Ro-compat feature: superblock backups only in groups 0, 1 and powers of 3, 5, 7.
pub const EXT4_FEATURE_RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
/// Ro-compat feature: files over 2 GiB.
pub const EXT4_FEATURE_RO_COMPAT_LARGE_FILE: u32 = 0x0002;
/// Ro-compat feature: i_blocks in 48 bits.
pub const EXT4_FEATURE_RO_COMPAT_HUGE_FILE: u32 = 0x0008;
/// Ro-compat feature: directories may have more than 65000 subdirectories.
pub const EXT4_FEATURE_RO_COMPAT_DIR_NLINK: u32 = 0x0020;
/// Ro-compat feature: inodes carry `i_extra_isize` fields.
pub const EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE: u32 = 0x0040;
/// Ro-compat feature: crc32c checksums on all metadata.
pub const EXT4_FEATURE_RO_COMPAT_METADATA_CSUM: u32 = 0x0400;

/// Features banger writes (Debian's mke2fs 1.47.0 defaults less resize_inode).
pub const FEATURE_COMPAT: u32 =
    EXT4_FEATURE_COMPAT_HAS_JOURNAL | EXT4_FEATURE_COMPAT_EXT_ATTR | EXT4_FEATURE_COMPAT_DIR_INDEX;
/// Incompatible features banger writes.
pub const FEATURE_INCOMPAT: u32 = EXT4_FEATURE_INCOMPAT_FILETYPE
    | EXT4_FEATURE_INCOMPAT_EXTENTS
    | EXT4_FEATURE_INCOMPAT_64BIT
    | EXT4_FEATURE_INCOMPAT_FLEX_BG;
/// Read-only-compatible features banger writes.
pub const FEATURE_RO_COMPAT: u32 = EXT4_FEATURE_RO_COMPAT_SPARSE_SUPER
    | EXT4_FEATURE_RO_COMPAT_LARGE_FILE
    | EXT4_FEATURE_RO_COMPAT_HUGE_FILE
    | EXT4_FEATURE_RO_COMPAT_DIR_NLINK
    | EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE
    | EXT4_FEATURE_RO_COMPAT_METADATA_CSUM;

/// Group descriptor flag: inode table and bitmap are not initialised.
pub const EXT4_BG_INODE_UNINIT: u16 = 0x0001;
/// Group descriptor flag: the inode table is zeroed.
pub const EXT4_BG_INODE_ZEROED: u16 = 0x0004;

/// Inode 1 holds bad blocks.
pub const EXT4_BAD_INO: u32 = 1;
/// The root directory.
pub const EXT4_ROOT_INO: u32 = 2;
/// The journal.
pub const EXT4_JOURNAL_INO: u32 = 8;
/// First inode not reserved by the filesystem; mke2fs puts lost+found here.
pub const EXT4_FIRST_INO: u32 = 11;

/// Inode flag: the directory has an htree index.
pub const EXT4_INDEX_FL: u32 = 0x0000_1000;
/// Inode flag: `i_blocks` counts filesystem blocks, not 512-byte sectors.
pub const EXT4_HUGE_FILE_FL: u32 = 0x0004_0000;
/// Inode flag: the inode maps its blocks with extents.
pub const EXT4_EXTENTS_FL: u32 = 0x0008_0000;
/// `EXT4_INLINE_DATA_FL`: the inode holds its data (never written here).
pub const EXT4_INLINE_DATA_FL: u32 = 0x1000_0000;

/// Most links an inode may have; dir_nlink directories past it store 1.
pub const EXT4_LINK_MAX: usize = 65000;
/// Longest symlink target (PATH_MAX less the NUL).
pub const MAX_SYMLINK_LEN: usize = 4095;
/// Largest file size with 4 KiB blocks and extents: the kernel's
/// `ext4_max_size` is (2^32 − 1) blocks, one block short of 16 TiB, so that
/// an extent's 32-bit logical start and its length stay addressable.
pub const MAX_FILE_SIZE: u64 = (u32::MAX as u64) * BLOCK_SIZE;
/// Symlink targets shorter than this live in `i_block` ("fast" symlinks).
pub const FAST_SYMLINK_MAX: usize = 59;

/// Extent tree magic.
pub const EXT4_EXT_MAGIC: u16 = 0xF30A;
/// Longest initialized extent.
pub const EXT_INIT_MAX_LEN: u64 = 32768;
/// Extent entries in `i_block` (60 bytes less the 12-byte header).
pub const EXT4_EXTENTS_IN_INODE: usize = 4;
/// Extent entries in a tree block (less the header and the checksum tail).
pub const EXT4_EXTENTS_PER_BLOCK: usize = (BLOCK_SIZE as usize - 12) / 12;

/// jbd2 superblock magic.
pub const JBD2_MAGIC_NUMBER: u32 = 0xC03B_3998;
/// jbd2 block type of a version-2 superblock.
pub const JBD2_SUPERBLOCK_V2: u32 = 4;

/// Whether group `group` holds a superblock backup under sparse_super:
/// groups 0, 1 and powers of 3, 5 and 7.
pub fn group_has_super(group: u64) -> bool {
    if group <= 1 {
        return true;
    }
    [3u64, 5, 7].iter().any(|&base| {
        let mut n = base;
        while n < group {
            n *= base;
        }
        n == group
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_super_groups() {
        let backups: Vec<u64> = (0..130).filter(|&g| group_has_super(g)).collect();
        assert_eq!(backups, [0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125]);
    }

    #[test]
    fn extents_per_block_leaves_room_for_the_tail() {
        assert_eq!(EXT4_EXTENTS_PER_BLOCK, 340);
    }
}
