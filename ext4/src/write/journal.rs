//! The journal: an empty jbd2 journal and its inode.

use zerocopy::{FromZeros, IntoBytes};

use crate::error::BuildError;
use crate::extent::{self, Owner};
use crate::format::{Ext4Inode, JournalSuperblock};
use crate::geometry::Geometry;
use crate::inode::{build_inode, InodeFields};
use crate::options::Options;
use crate::plan::layout::FixedBlocks;
use crate::spec::*;
use crate::tree::{Metadata, PlacedExtent};

use super::MetadataWriter;

/// Writes the journal superblock and extent tree into the blocks
/// [`crate::plan::layout::allocate_fixed`] gave the journal; returns its inode.
pub(crate) fn write_journal(
    w: &mut MetadataWriter,
    geometry: &Geometry,
    fixed: &FixedBlocks,
    options: &Options,
) -> Result<Ext4Inode, BuildError> {
    let mut extents = Vec::with_capacity(fixed.journal.len());
    let mut logical = 0;
    for run in &fixed.journal {
        extents.push(PlacedExtent {
            logical_block: logical,
            physical_block: run.start,
            len: run.len,
        });
        logical += run.len;
    }
    let mut jsb = JournalSuperblock::new_zeroed();
    jsb.h_magic = JBD2_MAGIC_NUMBER.into();
    jsb.h_blocktype = JBD2_SUPERBLOCK_V2.into();
    jsb.s_blocksize = (BLOCK_SIZE as u32).into();
    jsb.s_maxlen = (geometry.journal_blocks as u32).into();
    jsb.s_first = 1.into();
    jsb.s_sequence = 1.into();
    jsb.s_uuid = options.uuid;
    jsb.s_nr_users = 1.into();
    w.write_block(fixed.journal[0].start, jsb.as_bytes())?;

    let owner = Owner {
        ino: EXT4_JOURNAL_INO,
        generation: 0,
        fs_seed: w.fs_seed,
    };
    let leaves = extent::leaf_entries(&extents).map_err(|source| BuildError::Extent {
        path: "<journal>".into(),
        source,
    })?;
    // Journal runs never cross a group, so each is one leaf and the tree
    // blocks allocated for the runs fit the leaves.
    assert_eq!(
        fixed.journal_tree.len() as u64,
        extent::tree_blocks_needed(leaves.len()),
        "the journal's tree blocks were allocated for a different leaf count"
    );
    let tree = extent::build(&leaves, &fixed.journal_tree, owner);
    for block in &tree.blocks {
        w.write_block(block.physical, &block.bytes)?;
    }
    let meta = Metadata::new(0o600, options.timestamp);
    let fields = InodeFields {
        mode: 0o100600,
        size: geometry.journal_blocks * BLOCK_SIZE,
        links: 1,
        fs_blocks: geometry.journal_blocks + fixed.journal_tree.len() as u64,
        flags: EXT4_EXTENTS_FL,
        i_block: tree.i_block,
        xattr_block: 0,
        xattrs: [0; 96],
    };
    Ok(build_inode(&meta, &fields, EXT4_JOURNAL_INO, w.fs_seed))
}
