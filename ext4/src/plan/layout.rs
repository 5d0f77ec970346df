//! Where the metadata every image has goes: each group's bitmaps and inode
//! table, then the journal and its extent tree.
//!
//! Sizing ([`crate::geometry`]) and the writer both call [`allocate_fixed`],
//! so the blocks sizing counts are the blocks the writer takes.

use crate::alloc::{BlockAllocator, OutOfSpace, Run};
use crate::geometry::Geometry;

/// Where each group's bitmaps and inode table are.
pub(crate) struct GroupLayout {
    pub(crate) block_bitmaps: Vec<u64>,
    pub(crate) inode_bitmaps: Vec<u64>,
    pub(crate) inode_tables: Vec<u64>,
}

/// The blocks [`allocate_fixed`] handed out.
pub(crate) struct FixedBlocks {
    pub(crate) groups: GroupLayout,
    /// The journal's data, in logical order.
    pub(crate) journal: Vec<Run>,
    /// Blocks of the journal's extent tree (none for up to four runs).
    pub(crate) journal_tree: Vec<u64>,
    /// Every run allocated, for the block bitmaps.
    pub(crate) runs: Vec<Run>,
}

/// Allocates the block bitmaps, inode bitmaps and inode tables of every
/// group, then the journal and the extent tree blocks `journal_tree_blocks`
/// asks for its runs.
pub(crate) fn allocate_fixed(
    alloc: &mut BlockAllocator,
    geometry: &Geometry,
    journal_tree_blocks: fn(runs: usize) -> u64,
) -> Result<FixedBlocks, OutOfSpace> {
    let mut runs = Vec::new();
    let mut singles = |alloc: &mut BlockAllocator, count: u64| -> Result<Vec<u64>, OutOfSpace> {
        let mut blocks = Vec::with_capacity(count as usize);
        for run in alloc.alloc_many(count)? {
            runs.push(run);
            blocks.extend(run.start..run.end());
        }
        Ok(blocks)
    };
    let block_bitmaps = singles(alloc, geometry.group_count)?;
    let inode_bitmaps = singles(alloc, geometry.group_count)?;
    let mut inode_tables = Vec::with_capacity(geometry.group_count as usize);
    for _ in 0..geometry.group_count {
        let run = alloc.alloc_contiguous(geometry.inode_table_blocks())?;
        runs.push(run);
        inode_tables.push(run.start);
    }
    let journal = alloc.alloc_many(geometry.journal_blocks)?;
    runs.extend_from_slice(&journal);
    let mut journal_tree = Vec::new();
    for run in alloc.alloc_many(journal_tree_blocks(journal.len()))? {
        runs.push(run);
        journal_tree.extend(run.start..run.end());
    }
    Ok(FixedBlocks {
        groups: GroupLayout {
            block_bitmaps,
            inode_bitmaps,
            inode_tables,
        },
        journal,
        journal_tree,
        runs,
    })
}
