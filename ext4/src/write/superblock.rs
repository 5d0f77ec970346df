//! The superblock.

use zerocopy::little_endian::U32;
use zerocopy::FromZeros;

use crate::format::{Ext4Inode, Ext4SuperBlock};
use crate::geometry::Geometry;
use crate::inode::encode_time;
use crate::options::Options;
use crate::plan::numbering::InodeMap;
use crate::spec::*;

/// The superblock of group 0 (the caller sets `s_block_group_nr` and the
/// checksum for each copy).
pub(crate) fn superblock(
    options: &Options,
    geometry: &Geometry,
    free_blocks: u64,
    inodes: &InodeMap,
    journal: &Ext4Inode,
) -> Ext4SuperBlock {
    let mut sb = Ext4SuperBlock::new_zeroed();
    let reserved = geometry.blocks_count * 5 / 100;
    let set64 = |lo: &mut U32, hi: &mut U32, v: u64| {
        *lo = (v as u32).into();
        *hi = ((v >> 32) as u32).into();
    };
    sb.s_inodes_count = (geometry.inodes_count() as u32).into();
    set64(
        &mut sb.s_blocks_count_lo,
        &mut sb.s_blocks_count_hi,
        geometry.blocks_count,
    );
    set64(
        &mut sb.s_r_blocks_count_lo,
        &mut sb.s_r_blocks_count_hi,
        reserved,
    );
    set64(
        &mut sb.s_free_blocks_count_lo,
        &mut sb.s_free_blocks_count_hi,
        free_blocks,
    );
    sb.s_free_inodes_count = ((geometry.inodes_count() - u64::from(inodes.max_ino)) as u32).into();
    sb.s_log_block_size = LOG_BLOCK_SIZE_MINUS_10.into();
    sb.s_log_cluster_size = LOG_BLOCK_SIZE_MINUS_10.into();
    sb.s_blocks_per_group = (BLOCKS_PER_GROUP as u32).into();
    sb.s_clusters_per_group = (BLOCKS_PER_GROUP as u32).into();
    sb.s_inodes_per_group = (geometry.inodes_per_group as u32).into();
    let (time, time_extra) = encode_time(options.timestamp);
    let time_hi = (time_extra & 3) as u8;
    sb.s_wtime = time.into();
    sb.s_wtime_hi = time_hi;
    sb.s_lastcheck = time.into();
    sb.s_lastcheck_hi = time_hi;
    sb.s_mkfs_time = time.into();
    sb.s_mkfs_time_hi = time_hi;
    sb.s_max_mnt_count = u16::MAX.into();
    sb.s_magic = EXT4_SUPER_MAGIC.into();
    sb.s_state = EXT4_VALID_FS.into();
    sb.s_errors = EXT4_ERRORS_CONTINUE.into();
    sb.s_creator_os = EXT4_OS_LINUX.into();
    sb.s_rev_level = EXT4_DYNAMIC_REV.into();
    sb.s_first_ino = EXT4_FIRST_INO.into();
    sb.s_inode_size = (INODE_SIZE as u16).into();
    sb.s_feature_compat = FEATURE_COMPAT.into();
    sb.s_feature_incompat = FEATURE_INCOMPAT.into();
    sb.s_feature_ro_compat = FEATURE_RO_COMPAT.into();
    sb.s_uuid = options.uuid;
    let label_len = options.label.len().min(16);
    sb.s_volume_name[..label_len].copy_from_slice(&options.label[..label_len]);
    sb.s_journal_inum = EXT4_JOURNAL_INO.into();
    for (word, bytes) in sb
        .s_hash_seed
        .iter_mut()
        .zip(options.hash_seed.chunks_exact(4))
    {
        *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]).into();
    }
    sb.s_def_hash_version = DX_HASH_HALF_MD4;
    sb.s_jnl_backup_type = EXT3_JNL_BACKUP_BLOCKS;
    sb.s_desc_size = (DESC_SIZE as u16).into();
    sb.s_default_mount_opts = (EXT4_DEFM_XATTR_USER | EXT4_DEFM_ACL).into();
    for (i, word) in journal.i_block.chunks_exact(4).enumerate() {
        sb.s_jnl_blocks[i] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]).into();
    }
    sb.s_jnl_blocks[15] = journal.i_size_high;
    sb.s_jnl_blocks[16] = journal.i_size_lo;
    sb.s_min_extra_isize = EXTRA_ISIZE.into();
    sb.s_want_extra_isize = EXTRA_ISIZE.into();
    sb.s_flags = EXT2_FLAGS_SIGNED_HASH.into();
    sb.s_log_groups_per_flex = LOG_GROUPS_PER_FLEX;
    sb.s_checksum_type = EXT4_CRC32C_CHKSUM;
    sb
}
