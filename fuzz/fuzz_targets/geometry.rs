//! Sizing: random amounts of file data, inode counts, pending metadata and
//! `--size` values through the formatter's geometry planner, reserving
//! descriptors as the builder does. Either a geometry that keeps every
//! superblock invariant the kernel and e2fsck check, or a typed error;
//! never a panic, never an overflowed field. Sizes past the largest (64
//! TiB) are refused by the builder's reservation and by the planner, with
//! a `TooLarge` naming the size asked for and the largest.
#![no_main]

use arbitrary::Arbitrary;
use banger_ext4::alloc::BlockAllocator;
use banger_ext4::builder::DEFAULT_MAX_SIZE;
use banger_ext4::geometry::{
    reservation_for, Demand, GeometryError, MAX_GROUPS, MAX_INODES, MAX_INODES_PER_GROUP,
    MAX_SIZE,
};
use banger_ext4::spec::{BLOCKS_PER_GROUP, BLOCK_SIZE, DESCS_PER_BLOCK, INODES_PER_BLOCK};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Blocks of file data placed before sizing (bounded: the allocator
    /// keeps one run per group it crosses).
    data_blocks: u32,
    /// Inodes in use, reserved ones included.
    used_inodes: u64,
    /// Metadata blocks still to allocate.
    pending_blocks: u32,
    /// `--size` in bytes, if given.
    size: Option<u64>,
    /// Small sizes matter most: when set, `size` is taken modulo 4 GiB.
    small: bool,
}

fuzz_target!(|input: Input| {
    let size = input.size.map(|s| if input.small { s % (4 << 30) } else { s });
    // As ImageBuilder::new: the descriptor reservation follows the size (or
    // the default cap), and sizes past the largest are refused up front.
    let max_bytes = size.unwrap_or(DEFAULT_MAX_SIZE);
    let areas = match reservation_for(max_bytes) {
        Ok(areas) => {
            assert!(max_bytes <= MAX_SIZE, "{max_bytes}: {areas:?}");
            areas
        }
        Err(e) => {
            let too_large = GeometryError::TooLarge {
                bytes: max_bytes,
                max: MAX_SIZE,
            };
            assert_eq!(e, too_large);
            assert!(max_bytes > MAX_SIZE, "{e}");
            let message = e.to_string();
            assert!(
                message.contains(&max_bytes.to_string()) && message.contains(&MAX_SIZE.to_string()),
                "{message}"
            );
            // The planner, even with the largest reservation, refuses such a
            // size too: never a geometry for it.
            let areas = reservation_for(MAX_SIZE).expect("the largest size has a reservation");
            let alloc = BlockAllocator::new(areas, u64::MAX);
            let demand = Demand {
                allocator: &alloc,
                used_inodes: input.used_inodes % (MAX_INODES + 2),
                pending_blocks: u64::from(input.pending_blocks),
                journal_tree_blocks: |_| 0,
            };
            assert_eq!(demand.plan(size, areas), Err(too_large));
            return;
        }
    };
    let mut alloc = BlockAllocator::new(areas, u64::MAX);
    if input.data_blocks > 0 && alloc.alloc_many(u64::from(input.data_blocks)).is_err() {
        return;
    }
    let used_inodes = input.used_inodes % (MAX_INODES + 2);
    let demand = Demand {
        allocator: &alloc,
        used_inodes,
        pending_blocks: u64::from(input.pending_blocks),
        journal_tree_blocks: |runs| if runs > 4 { 1 } else { 0 },
    };
    match demand.plan(size, areas) {
        Ok(g) => {
            assert!(g.blocks_count > 0);
            assert!(g.blocks_count * BLOCK_SIZE <= MAX_SIZE, "{g:?}");
            if let Some(bytes) = size {
                assert!(g.blocks_count <= bytes / BLOCK_SIZE, "{g:?} for {bytes}");
            }
            assert_eq!(g.group_count, g.blocks_count.div_ceil(BLOCKS_PER_GROUP), "{g:?}");
            assert!(g.group_count <= MAX_GROUPS, "{g:?}");
            assert_eq!(g.gdt_blocks, g.group_count.div_ceil(DESCS_PER_BLOCK), "{g:?}");
            assert!(g.gdt_blocks <= areas.gdt_reserve, "{g:?} {areas:?}");
            assert_eq!(g.inodes_per_group % INODES_PER_BLOCK, 0, "{g:?}");
            assert!(g.inodes_per_group >= INODES_PER_BLOCK, "{g:?}");
            assert!(g.inodes_per_group <= MAX_INODES_PER_GROUP, "{g:?}");
            assert!(g.inodes_count() <= MAX_INODES, "{g:?}");
            assert!(g.inodes_count() >= used_inodes, "{g:?} for {used_inodes}");
            assert!(g.journal_blocks < g.blocks_count, "{g:?}");
            // The data already placed lies inside the filesystem.
            assert!(alloc.high_water() <= g.blocks_count, "{g:?}");
        }
        Err(GeometryError::TooSmall { requested, needed }) => {
            assert_eq!(Some(requested), size);
            assert!(needed > requested, "{needed} <= {requested}");
        }
        Err(GeometryError::TooLarge { bytes, max }) => {
            // Sizes past the largest were refused above. What is left: content
            // that alone needs more than the largest size, or the default
            // sizing (1.5 × the content) outgrowing the default reservation;
            // a given size reserves descriptors for itself. Either way the
            // error names a size past the limit it names.
            let reserved = areas.gdt_reserve * DESCS_PER_BLOCK * BLOCKS_PER_GROUP * BLOCK_SIZE;
            assert!(
                max == MAX_SIZE || (size.is_none() && max == reserved),
                "{bytes} {max} for {size:?} {areas:?}"
            );
            assert!(bytes > max, "{bytes} <= {max}");
        }
        Err(GeometryError::TooManyInodes { needed }) => {
            assert_eq!(needed, used_inodes);
        }
    }
});
