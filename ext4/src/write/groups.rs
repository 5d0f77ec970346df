//! Per-group metadata: block and inode bitmaps, the descriptor table and
//! every superblock copy.

use std::os::unix::fs::FileExt;

use zerocopy::IntoBytes;

use crate::error::{io_error, BuildError};
use crate::format::{Ext4GroupDesc, Ext4Inode};
use crate::geometry::Geometry;
use crate::options::Options;
use crate::plan::layout::GroupLayout;
use crate::plan::numbering::InodeMap;
use crate::spec::{
    group_has_super, BLOCKS_PER_GROUP, BLOCK_SIZE, DESC_SIZE, EXT4_BG_INODE_UNINIT,
    EXT4_BG_INODE_ZEROED, SUPERBLOCK_OFFSET,
};
use crate::write::bitmap;

use super::superblock::superblock;
use super::{write_block, MetadataWriter};

/// Writes bitmaps, descriptors and every superblock copy; returns the
/// free block count.
pub(crate) fn write_group_metadata(
    w: &mut MetadataWriter,
    options: &Options,
    geometry: &Geometry,
    layout: &GroupLayout,
    inodes: &InodeMap,
    journal: &Ext4Inode,
) -> Result<u64, BuildError> {
    let fs_seed = w.fs_seed;
    let mut gdt = vec![0u8; (geometry.gdt_blocks * BLOCK_SIZE) as usize];
    let runs = w.used.runs();
    let mut cursor = 0;
    let mut free_blocks = 0u64;
    let ipg = geometry.inodes_per_group;
    let dirs = inodes.dirs_per_group(geometry.group_count, ipg);
    for g in 0..geometry.group_count {
        let i = g as usize;
        let blocks = bitmap::block_bitmap(g, geometry.blocks_count, runs, &mut cursor, fs_seed);
        let used_inodes = inodes.used_in_group(g, ipg);
        let (inode_bits, inode_csum) = bitmap::inode_bitmap(used_inodes, ipg, fs_seed);
        write_block(
            w.image,
            layout.block_bitmaps[i],
            &blocks.bytes,
            "writing a block bitmap",
        )?;
        write_block(
            w.image,
            layout.inode_bitmaps[i],
            &inode_bits,
            "writing an inode bitmap",
        )?;
        free_blocks += u64::from(blocks.free);
        let mut desc = Ext4GroupDesc::default();
        desc.set_locations(
            layout.block_bitmaps[i],
            layout.inode_bitmaps[i],
            layout.inode_tables[i],
        );
        let unused = ipg as u32 - used_inodes;
        desc.set_counts(blocks.free, unused, dirs[i], unused);
        let mut flags = EXT4_BG_INODE_ZEROED;
        if used_inodes == 0 {
            flags |= EXT4_BG_INODE_UNINIT;
        }
        desc.bg_flags = flags.into();
        desc.set_bitmap_checksums(blocks.checksum, inode_csum);
        desc.update_checksum(g as u32, fs_seed);
        let at = i * DESC_SIZE as usize;
        gdt[at..at + DESC_SIZE as usize].copy_from_slice(desc.as_bytes());
    }
    let mut sb = superblock(options, geometry, free_blocks, inodes, journal);
    for g in (0..geometry.group_count).filter(|&g| group_has_super(g)) {
        sb.s_block_group_nr = (g as u16).into();
        sb.update_checksum();
        let start = g * BLOCKS_PER_GROUP;
        let offset = if g == 0 {
            SUPERBLOCK_OFFSET
        } else {
            start * BLOCK_SIZE
        };
        w.image
            .write_all_at(sb.as_bytes(), offset)
            .map_err(io_error("writing a superblock"))?;
        write_block(w.image, start + 1, &gdt, "writing group descriptors")?;
    }
    Ok(free_blocks)
}
