//! Block allocation: a bump allocator that never hands out the blocks a
//! superblock copy and its group descriptor table need.
//!
//! File data is streamed into the image before the filesystem's final size
//! is known, so block positions must not depend on it. The only fixed-position
//! metadata under flex_bg is the superblock and descriptor table at the start
//! of group 0 and of each sparse_super backup group; every such area is
//! reserved large enough for the descriptor table of the largest filesystem
//! the builder may produce. Bitmaps, inode tables and the journal are placed
//! after the data once the size is known.

use crate::spec::{group_has_super, BLOCKS_PER_GROUP};

/// A contiguous run of blocks.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Run {
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub len: u64,
}

impl Run {
    /// One past the last block.
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// The blocks reserved at the start of every group that holds a superblock.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SuperblockAreas {
    /// Blocks set aside for the group descriptor table after each superblock.
    pub gdt_reserve: u64,
}

impl SuperblockAreas {
    /// Blocks at the start of `group` that belong to its superblock copy.
    pub fn reserved_in(&self, group: u64) -> u64 {
        if group_has_super(group) {
            1 + self.gdt_reserve
        } else {
            0
        }
    }

    /// Blocks below `end` reserved for descriptors but not needed by a
    /// table of `gdt_blocks` blocks: free space, not content.
    pub fn spare_below(&self, end: u64, gdt_blocks: u64) -> u64 {
        let spare = self.gdt_reserve.saturating_sub(gdt_blocks);
        (0..end.div_ceil(BLOCKS_PER_GROUP))
            .filter(|&g| group_has_super(g))
            .map(|g| {
                let start = g * BLOCKS_PER_GROUP + 1 + gdt_blocks;
                end.saturating_sub(start).min(spare)
            })
            .sum()
    }
}

/// Allocation failed: the image is full.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("no space left below block {limit}")]
#[non_exhaustive]
pub struct OutOfSpace {
    /// The block the allocation would have crossed.
    pub limit: u64,
}

/// Hands out blocks in increasing order.
#[derive(Clone, Debug)]
pub struct BlockAllocator {
    next: u64,
    limit: u64,
    areas: SuperblockAreas,
}

impl BlockAllocator {
    /// An allocator whose first block follows group 0's superblock area and
    /// that never allocates at or past `limit`.
    pub fn new(areas: SuperblockAreas, limit: u64) -> Self {
        Self {
            next: areas.reserved_in(0),
            limit,
            areas,
        }
    }

    /// The lowest block not yet handed out.
    pub fn high_water(&self) -> u64 {
        self.next
    }

    /// Lowers or raises the limit (once the filesystem size is known).
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// Moves `next` past a superblock area it points into.
    fn skip_reserved(&mut self) {
        let group = self.next / BLOCKS_PER_GROUP;
        let area_end = group * BLOCKS_PER_GROUP + self.areas.reserved_in(group);
        self.next = self.next.max(area_end);
    }

    /// Allocates up to `max_len` (≥ 1) contiguous blocks, never crossing a
    /// group boundary, so that the run is also a valid extent length.
    pub fn alloc(&mut self, max_len: u64) -> Result<Run, OutOfSpace> {
        self.skip_reserved();
        let group_end = (self.next / BLOCKS_PER_GROUP + 1) * BLOCKS_PER_GROUP;
        let end = (self.next + max_len.max(1)).min(group_end).min(self.limit);
        if end <= self.next {
            return Err(OutOfSpace { limit: self.limit });
        }
        let run = Run {
            start: self.next,
            len: end - self.next,
        };
        self.next = end;
        Ok(run)
    }

    /// Allocates exactly `len` contiguous blocks (at most a group's worth
    /// less its superblock area), skipping to the next group if needed.
    pub fn alloc_contiguous(&mut self, len: u64) -> Result<Run, OutOfSpace> {
        loop {
            self.skip_reserved();
            let group_end = (self.next / BLOCKS_PER_GROUP + 1) * BLOCKS_PER_GROUP;
            if self.next + len <= group_end {
                if self.next + len > self.limit {
                    return Err(OutOfSpace { limit: self.limit });
                }
                return self.alloc(len);
            }
            if group_end >= self.limit {
                return Err(OutOfSpace { limit: self.limit });
            }
            self.next = group_end;
        }
    }

    /// Allocates `count` blocks as a list of runs.
    pub fn alloc_many(&mut self, mut count: u64) -> Result<Vec<Run>, OutOfSpace> {
        let mut runs = Vec::new();
        while count > 0 {
            let run = self.alloc(count)?;
            count -= run.len;
            runs.push(run);
        }
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_superblock_areas_and_group_ends() {
        let areas = SuperblockAreas { gdt_reserve: 3 };
        let mut a = BlockAllocator::new(areas, u64::MAX);
        assert_eq!(a.alloc(10).unwrap(), Run { start: 4, len: 10 });
        let big = a.alloc(BLOCKS_PER_GROUP).unwrap();
        assert_eq!(big.end(), BLOCKS_PER_GROUP);
        // Group 1 holds a backup superblock; group 2 does not.
        assert_eq!(a.alloc(1).unwrap().start, BLOCKS_PER_GROUP + 4);
        a.alloc(BLOCKS_PER_GROUP).unwrap();
        assert_eq!(a.alloc(1).unwrap().start, 2 * BLOCKS_PER_GROUP);
    }

    #[test]
    fn contiguous_runs_move_to_the_next_group() {
        let areas = SuperblockAreas { gdt_reserve: 0 };
        let mut a = BlockAllocator::new(areas, u64::MAX);
        a.alloc(BLOCKS_PER_GROUP - 10).unwrap();
        let run = a.alloc_contiguous(20).unwrap();
        assert_eq!(
            run,
            Run {
                start: BLOCKS_PER_GROUP + 1,
                len: 20
            }
        );
    }

    #[test]
    fn respects_the_limit() {
        let mut a = BlockAllocator::new(SuperblockAreas { gdt_reserve: 0 }, 8);
        assert_eq!(a.alloc(100).unwrap(), Run { start: 1, len: 7 });
        assert_eq!(a.alloc(1), Err(OutOfSpace { limit: 8 }));
    }
}
