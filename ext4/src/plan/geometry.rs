//! Filesystem geometry: how many blocks, groups and inodes, and how large
//! the journal is, following mke2fs's rules where they apply.

use super::layout::allocate_fixed;
use crate::alloc::{BlockAllocator, OutOfSpace, SuperblockAreas};
use crate::spec::{BLOCKS_PER_GROUP, BLOCK_SIZE, DESCS_PER_BLOCK, INODES_PER_BLOCK};

/// Most inodes one group can hold: one inode bitmap block's worth of bits.
pub const MAX_INODES_PER_GROUP: u64 = BLOCK_SIZE * 8;
/// The smallest image the default sizing produces: 1 GiB.
pub const MIN_DEFAULT_BLOCKS: u64 = (1 << 30) / BLOCK_SIZE;
/// Blocks a tail group needs beyond its superblock area to be worth keeping
/// (mke2fs drops smaller ones).
const MIN_TAIL_BLOCKS: u64 = 50;
/// Most inodes a filesystem can have: `s_inodes_count` is 32 bits, and the
/// kernel insists that it equals inodes per group × groups.
pub const MAX_INODES: u64 = u32::MAX as u64;
/// Most descriptor blocks: without meta_bg the whole table follows each
/// superblock copy, and mke2fs turns to meta_bg once the table would take
/// more than 3/4 of a group. banger writes no meta_bg, so this is its limit.
pub const MAX_GDT_BLOCKS: u64 = BLOCKS_PER_GROUP * 3 / 4;
/// Most block groups: what [`MAX_GDT_BLOCKS`] of descriptors describe.
pub const MAX_GROUPS: u64 = MAX_GDT_BLOCKS * DESCS_PER_BLOCK;
/// Largest image banger writes: 64 TiB, where the inode count first
/// reaches ext4's 2^32 and is capped, and the largest size its tests check
/// with e2fsck. The descriptor table alone would allow [`MAX_GROUPS`] whole
/// groups (192 TiB); sizes past 64 TiB are refused rather than written
/// unverified.
pub const MAX_SIZE: u64 = 64 << 40;

/// The shape of a filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Total blocks.
    pub blocks_count: u64,
    /// Block groups.
    pub group_count: u64,
    /// Inodes in each group.
    pub inodes_per_group: u64,
    /// Blocks of group descriptors.
    pub gdt_blocks: u64,
    /// Blocks in the journal.
    pub journal_blocks: u64,
}

/// Why no geometry fits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GeometryError {
    /// The requested size cannot hold the content.
    #[error(
        "image size {requested} bytes is too small: the content needs at least {needed} bytes"
    )]
    TooSmall {
        /// Bytes asked for.
        requested: u64,
        /// Smallest size that holds the content.
        needed: u64,
    },
    /// More groups than the reserved descriptor area can describe.
    #[error("an image of {bytes} bytes exceeds the largest supported size of {max} bytes")]
    TooLarge {
        /// Bytes the image would need.
        bytes: u64,
        /// Largest size supported with this descriptor reservation.
        max: u64,
    },
    /// More inodes than ext4 can count.
    #[error("the content needs {needed} inodes; ext4 holds at most {MAX_INODES}")]
    TooManyInodes {
        /// Inodes in use, reserved ones included.
        needed: u64,
    },
}

/// The descriptor reservation for images of at most `max_bytes`: enough
/// descriptor blocks after each superblock for that many bytes' groups. It
/// fixes where data goes, so it is chosen before any is placed; sizes past
/// [`MAX_SIZE`] are refused here, naming the size.
pub fn reservation_for(max_bytes: u64) -> Result<SuperblockAreas, GeometryError> {
    if max_bytes > MAX_SIZE {
        return Err(GeometryError::TooLarge {
            bytes: max_bytes,
            max: MAX_SIZE,
        });
    }
    let max_groups = (max_bytes.max(1) / BLOCK_SIZE).div_ceil(BLOCKS_PER_GROUP);
    Ok(SuperblockAreas {
        gdt_reserve: max_groups.div_ceil(DESCS_PER_BLOCK).max(1),
    })
}

/// Why [`Geometry::for_size`] found no geometry.
enum SizeMiss {
    /// The inodes fit only with this many groups.
    Groups(u64),
    /// No number of groups helps.
    Fatal(GeometryError),
}

impl Geometry {
    /// Inodes in the filesystem.
    pub fn inodes_count(&self) -> u64 {
        self.inodes_per_group * self.group_count
    }

    /// Blocks of one group's inode table.
    pub fn inode_table_blocks(&self) -> u64 {
        self.inodes_per_group / INODES_PER_BLOCK
    }

    /// The geometry of a filesystem of `blocks` blocks holding `used_inodes`
    /// inodes (reserved ones included). Returns the number of groups needed
    /// instead when the inodes do not fit.
    fn for_size(blocks: u64, used_inodes: u64, areas: SuperblockAreas) -> Result<Self, SizeMiss> {
        let mut blocks = blocks;
        let mut groups = blocks.div_ceil(BLOCKS_PER_GROUP);
        let tail = blocks - (groups - 1) * BLOCKS_PER_GROUP;
        if groups > 1 && tail < areas.reserved_in(groups - 1) + MIN_TAIL_BLOCKS {
            blocks -= tail;
            groups -= 1;
        }
        if groups > MAX_GROUPS {
            return Err(SizeMiss::Fatal(GeometryError::TooLarge {
                bytes: blocks.saturating_mul(BLOCK_SIZE),
                max: MAX_SIZE,
            }));
        }
        let bytes = blocks * BLOCK_SIZE;
        // mke2fs's inode ratios: "small" below 512 MiB, "default" above.
        let ratio = if bytes < 512 << 20 { 4096 } else { 16384 };
        let headroom = (used_inodes / 2).max(64);
        let wanted = (bytes / ratio).max(used_inodes + headroom);
        let per_group = wanted.div_ceil(groups).next_multiple_of(INODES_PER_BLOCK);
        if per_group > MAX_INODES_PER_GROUP {
            return Err(SizeMiss::Groups(wanted.div_ceil(MAX_INODES_PER_GROUP)));
        }
        // As mke2fs: past 2^32 − 1 inodes, fewer per group (whole table blocks).
        let most_per_group = (MAX_INODES / groups) / INODES_PER_BLOCK * INODES_PER_BLOCK;
        let per_group = per_group.min(most_per_group);
        if per_group * groups < used_inodes {
            return Err(SizeMiss::Fatal(GeometryError::TooManyInodes {
                needed: used_inodes,
            }));
        }
        Ok(Self {
            blocks_count: blocks,
            group_count: groups,
            inodes_per_group: per_group,
            gdt_blocks: groups.div_ceil(DESCS_PER_BLOCK),
            journal_blocks: journal_blocks_for(blocks),
        })
    }
}

/// Journal size for a filesystem of `blocks` blocks, as mke2fs picks it.
pub fn journal_blocks_for(blocks: u64) -> u64 {
    match blocks {
        b if b < 32 * 1024 => 1024,
        b if b < 256 * 1024 => 4096,
        b if b < 512 * 1024 => 8192,
        b if b < 4096 * 1024 => 16384,
        b if b < 8192 * 1024 => 32768,
        b if b < 16384 * 1024 => 65536,
        b if b < 32768 * 1024 => 131072,
        _ => 262144,
    }
}

/// What the content needs, measured before the geometry is chosen.
#[derive(Clone, Debug)]
pub struct Demand<'a> {
    /// The allocator as it stands after file data was placed.
    pub allocator: &'a BlockAllocator,
    /// Inodes in use, the reserved ones included.
    pub used_inodes: u64,
    /// Metadata blocks still to allocate after the inode tables and journal
    /// (directories, extent tree blocks, xattr blocks, slow symlinks).
    pub pending_blocks: u64,
    /// Extent tree blocks the journal needs, given how many runs it spans.
    pub journal_tree_blocks: fn(runs: usize) -> u64,
}

impl Demand<'_> {
    /// Blocks the image spans if it has `geometry`: the writer's own
    /// [`allocate_fixed`] and then the pending blocks, on a copy of the
    /// allocator.
    pub(crate) fn end_with(&self, geometry: &Geometry) -> Result<u64, OutOfSpace> {
        let mut alloc = self.allocator.clone();
        alloc.set_limit(u64::MAX);
        allocate_fixed(&mut alloc, geometry, self.journal_tree_blocks)?;
        alloc.alloc_many(self.pending_blocks)?;
        Ok(alloc.high_water())
    }

    /// The smallest geometry of at least `blocks` blocks that holds the
    /// content, growing as needed.
    fn fit_from(
        &self,
        mut blocks: u64,
        areas: SuperblockAreas,
    ) -> Result<(Geometry, u64), GeometryError> {
        loop {
            let geometry = match Geometry::for_size(blocks, self.used_inodes, areas) {
                Ok(g) => g,
                Err(SizeMiss::Groups(groups)) => {
                    blocks = blocks.max(groups * BLOCKS_PER_GROUP);
                    continue;
                }
                Err(SizeMiss::Fatal(e)) => return Err(e),
            };
            let end = self
                .end_with(&geometry)
                .map_err(|_| GeometryError::TooLarge {
                    bytes: blocks * BLOCK_SIZE,
                    max: u64::MAX,
                })?;
            if end <= geometry.blocks_count {
                return Ok((geometry, end));
            }
            blocks = end.max(blocks + 1);
        }
    }

    /// Chooses the geometry: `size` bytes when given (an error names the
    /// need when it is too small), otherwise 1.5 × the content (data,
    /// metadata and journal), at least 1 GiB, in whole groups.
    pub fn plan(
        &self,
        size: Option<u64>,
        areas: SuperblockAreas,
    ) -> Result<Geometry, GeometryError> {
        let max_groups = areas.gdt_reserve * DESCS_PER_BLOCK;
        let check = |geometry: Geometry| {
            if geometry.gdt_blocks > areas.gdt_reserve {
                Err(GeometryError::TooLarge {
                    bytes: geometry.blocks_count * BLOCK_SIZE,
                    max: max_groups * BLOCKS_PER_GROUP * BLOCK_SIZE,
                })
            } else {
                Ok(geometry)
            }
        };
        if let Some(bytes) = size {
            let blocks = bytes / BLOCK_SIZE;
            let too_small = |needed: u64| GeometryError::TooSmall {
                requested: bytes,
                needed,
            };
            let minimum = || {
                self.fit_from(1, areas)
                    .map(|(g, _)| g.blocks_count * BLOCK_SIZE)
            };
            if bytes > MAX_SIZE {
                return Err(GeometryError::TooLarge {
                    bytes,
                    max: MAX_SIZE,
                });
            }
            let geometry = match Geometry::for_size(blocks.max(1), self.used_inodes, areas) {
                Ok(g) => g,
                Err(SizeMiss::Groups(_)) => return Err(too_small(minimum()?)),
                Err(SizeMiss::Fatal(e)) => return Err(e),
            };
            match self.end_with(&geometry) {
                Ok(end) if end <= geometry.blocks_count => return check(geometry),
                _ => return Err(too_small(minimum()?)),
            }
        }
        let data = self.allocator.high_water() - areas.spare_below(self.allocator.high_water(), 1);
        let mut blocks = (data * 3 / 2).max(MIN_DEFAULT_BLOCKS);
        loop {
            let (geometry, end) =
                self.fit_from(blocks.next_multiple_of(BLOCKS_PER_GROUP), areas)?;
            let content = end - areas.spare_below(end, geometry.gdt_blocks);
            let wanted = (content * 3 / 2)
                .max(MIN_DEFAULT_BLOCKS)
                .next_multiple_of(BLOCKS_PER_GROUP);
            if wanted <= geometry.blocks_count {
                return check(geometry);
            }
            blocks = wanted;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(alloc: &BlockAllocator, used: u64, pending: u64) -> Demand<'_> {
        Demand {
            allocator: alloc,
            used_inodes: used,
            pending_blocks: pending,
            journal_tree_blocks: |runs| if runs > 4 { 1 } else { 0 },
        }
    }

    const AREAS: SuperblockAreas = SuperblockAreas { gdt_reserve: 16 };

    #[test]
    fn small_content_gets_one_gibibyte_like_mke2fs() {
        let alloc = BlockAllocator::new(AREAS, u64::MAX);
        let g = demand(&alloc, 20, 10).plan(None, AREAS).unwrap();
        assert_eq!(g.blocks_count, 262144);
        assert_eq!(g.group_count, 8);
        assert_eq!(g.inodes_count(), 65536);
        assert_eq!(g.journal_blocks, 8192);
    }

    #[test]
    fn large_content_gets_half_again() {
        let mut alloc = BlockAllocator::new(AREAS, u64::MAX);
        alloc.alloc_many(1_000_000).unwrap();
        let g = demand(&alloc, 20, 10).plan(None, AREAS).unwrap();
        assert!(g.blocks_count >= 1_500_000, "{g:?}");
        assert!(g.blocks_count < 1_600_000, "{g:?}");
    }

    #[test]
    fn many_inodes_grow_the_inode_count() {
        let alloc = BlockAllocator::new(AREAS, u64::MAX);
        let g = demand(&alloc, 500_000, 10).plan(None, AREAS).unwrap();
        assert!(g.inodes_count() >= 750_000, "{g:?}");
    }

    #[test]
    fn explicit_size_too_small_names_the_need() {
        let mut alloc = BlockAllocator::new(AREAS, u64::MAX);
        alloc.alloc_many(10_000).unwrap();
        let err = demand(&alloc, 20, 10)
            .plan(Some(16 << 20), AREAS)
            .unwrap_err();
        match err {
            GeometryError::TooSmall { requested, needed } => {
                assert_eq!(requested, 16 << 20);
                assert!(needed > 40 << 20 && needed < 64 << 20, "{needed}");
                let ok = demand(&alloc, 20, 10).plan(Some(needed), AREAS);
                assert!(ok.is_ok(), "{ok:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn journal_sizes_follow_mke2fs() {
        assert_eq!(journal_blocks_for(16384), 1024);
        assert_eq!(journal_blocks_for(262144), 8192);
        assert_eq!(journal_blocks_for(1048576), 16384);
        assert_eq!(journal_blocks_for(10485760), 65536);
    }

    /// The descriptor reservation the builder makes for an image of `bytes`.
    fn areas_for(bytes: u64) -> SuperblockAreas {
        SuperblockAreas {
            gdt_reserve: (bytes / BLOCK_SIZE)
                .div_ceil(BLOCKS_PER_GROUP)
                .div_ceil(DESCS_PER_BLOCK),
        }
    }

    const TIB: u64 = 1 << 40;

    #[test]
    fn sixty_four_tib_caps_the_inode_count_below_two_to_the_32() {
        let areas = areas_for(64 * TIB);
        let alloc = BlockAllocator::new(areas, u64::MAX);
        let g = demand(&alloc, 20, 10).plan(Some(64 * TIB), areas).unwrap();
        // 524288 groups; 2^32 inodes wanted; (2^32 − 1) / 524288 = 8191,
        // rounded down to whole inode-table blocks of 16: 8176.
        assert_eq!(g.group_count, 524_288);
        assert_eq!(g.inodes_per_group, 8176);
        assert_eq!(g.inodes_count(), 4_286_578_688);
        assert_eq!(g.gdt_blocks, 8192);
        assert_eq!(g.journal_blocks, 262_144);
    }

    #[test]
    fn the_largest_size_is_accepted_and_one_group_more_is_not() {
        // 64 TiB: 524288 groups, 8192 descriptor blocks, well within the
        // table's limit of 3/4 of a group (1572864 groups, 192 TiB).
        assert_eq!(MAX_SIZE, 64 * TIB);
        assert_eq!(MAX_GROUPS, 1_572_864);
        let areas = areas_for(MAX_SIZE);
        let alloc = BlockAllocator::new(areas, u64::MAX);
        let g = demand(&alloc, 20, 10).plan(Some(MAX_SIZE), areas).unwrap();
        assert_eq!(g.group_count, 524_288);
        assert_eq!(g.gdt_blocks, 8192);
        // (2^32 − 1) / 524288 = 8191, down to a multiple of 16.
        assert_eq!(g.inodes_per_group, 8176);
        assert!(g.inodes_count() <= u64::from(u32::MAX));

        for bytes in [MAX_SIZE + BLOCKS_PER_GROUP * BLOCK_SIZE, 1 << 62, u64::MAX] {
            let err = demand(&alloc, 20, 10).plan(Some(bytes), areas).unwrap_err();
            assert_eq!(
                err,
                GeometryError::TooLarge {
                    bytes,
                    max: 70_368_744_177_664
                }
            );
        }
    }

    #[test]
    fn more_inodes_than_ext4_counts_is_an_error() {
        let areas = areas_for(64 * TIB);
        let alloc = BlockAllocator::new(areas, u64::MAX);
        let err = demand(&alloc, u64::from(u32::MAX), 10)
            .plan(Some(64 * TIB), areas)
            .unwrap_err();
        assert_eq!(
            err,
            GeometryError::TooManyInodes {
                needed: u64::from(u32::MAX)
            }
        );
    }
}
