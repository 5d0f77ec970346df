//! The image builder: streams file data into the image while the tree is
//! built; then plans the metadata (inode numbers, link counts, each inode's
//! blocks), sizes the filesystem ([`crate::geometry`]) and writes it all in
//! one pass.

use std::fs::File;
use std::path::Path;

use crate::alloc::{BlockAllocator, Run, SuperblockAreas};
use crate::dir::{HashParams, HashVersion};
use crate::error::io_error;
use crate::extent;
use crate::geometry::{Demand, Geometry};
use crate::plan::dirs::DirEncoder;
use crate::plan::inodes::{plan_inodes, Body};
use crate::plan::layout::allocate_fixed;
use crate::plan::numbering::InodeMap;
use crate::plan::placed_of;
use crate::spec::{group_has_super, BLOCKS_PER_GROUP, BLOCK_SIZE, EXT4_JOURNAL_INO};
use crate::tree::Tree;
use crate::write::bitmap::UsedBlocks;
use crate::write::data::DataWriter;
use crate::write::groups::write_group_metadata;
use crate::write::inode_table::InodeTables;
use crate::write::inodes::{write_xattr_blocks, InodeWriter};
use crate::write::journal::write_journal;
use crate::write::punch::punch_dead_data;
use crate::write::queue::WriteQueue;
use crate::write::MetadataWriter;

mod content;

pub use crate::error::BuildError;
pub use crate::extent::ExtentError;
pub use crate::options::{Options, DEFAULT_MAX_SIZE};
pub use crate::write::data::DataError;

/// What was built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// The chosen geometry.
    pub geometry: Geometry,
    /// Inodes in use, reserved ones included.
    pub used_inodes: u64,
    /// Blocks in use.
    pub used_blocks: u64,
}

/// Builds one image: file data streams in through [`crate::tree::ContentStore`], then
/// [`ImageBuilder::finish`] writes the metadata for a tree.
#[derive(Debug)]
pub struct ImageBuilder {
    image: File,
    options: Options,
    areas: SuperblockAreas,
    alloc: BlockAllocator,
    data: DataWriter,
}

/// Creates (or truncates) `path` and writes `tree` into it as an ext4 image.
pub fn write_image(tree: &Tree, path: &Path, options: Options) -> Result<ImageSummary, BuildError> {
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io_error("creating the image file"))?;
    ImageBuilder::new(file, options)?.finish(tree)
}

impl ImageBuilder {
    /// Starts an image in `image`, which is truncated: unwritten blocks stay
    /// holes and read as zeros.
    pub fn new(image: File, options: Options) -> Result<Self, BuildError> {
        // Refused before any data is placed: the descriptor reservation,
        // which fixes where data goes, follows from this size.
        let areas = crate::geometry::reservation_for(options.size.unwrap_or(options.max_size))?;
        image
            .set_len(0)
            .map_err(io_error("truncating the image file"))?;
        // File data streams in before the total is known, so it is not held
        // to an explicit size: `finish` plans the geometry with everything
        // counted and, if the size is too small, names what it must be.
        Ok(Self {
            image,
            alloc: BlockAllocator::new(areas, u64::MAX),
            areas,
            options,
            data: DataWriter::default(),
        })
    }

    /// Replaces the UUID and directory hash seed given in the options. Both
    /// are first used by [`ImageBuilder::finish`], so a caller may derive
    /// them from the content it streamed in.
    pub fn set_ids(&mut self, uuid: [u8; 16], hash_seed: [u8; 16]) {
        self.options.uuid = uuid;
        self.options.hash_seed = hash_seed;
    }

    /// Writes all metadata for `tree` and completes the image. Files whose
    /// contents come from a [`crate::tree::ContentSource`] are streamed now.
    pub fn finish(self, tree: &Tree) -> Result<ImageSummary, BuildError> {
        self.finish_measured(tree).map(|(summary, _)| summary)
    }

    /// [`ImageBuilder::finish`], also returning the blocks sizing predicted
    /// the image would span and the blocks the writer took.
    fn finish_measured(mut self, tree: &Tree) -> Result<(ImageSummary, Span), BuildError> {
        let fs_seed = crate::checksum::fs_seed(&self.options.uuid);
        let inodes = InodeMap::assign(tree)?;
        let contents = self.place_sources(tree, &inodes)?;
        // The last data goes out while the metadata is planned; waited for
        // before the holes are punched.
        self.data.submit(&self.image)?;

        let hash = HashParams::from_seed_bytes(self.options.hash_seed, HashVersion::HalfMd4, false);
        let encoder = DirEncoder {
            tree,
            inodes: &inodes,
            hash,
            fs_seed,
        };
        let plans = plan_inodes(&encoder, &contents)?;
        let pending: u64 =
            plans.iter().map(|p| p.metadata_blocks).sum::<u64>() + plans.xattr_blocks.len() as u64;
        let demand = Demand {
            allocator: &self.alloc,
            used_inodes: u64::from(inodes.max_ino),
            pending_blocks: pending,
            journal_tree_blocks: extent::tree_blocks_needed,
        };
        let geometry = demand.plan(self.options.size, self.areas)?;
        let predicted = demand.end_with(&geometry)?;
        self.alloc.set_limit(geometry.blocks_count);

        let mut w = MetadataWriter {
            image: &self.image,
            alloc: &mut self.alloc,
            used: UsedBlocks::default(),
            fs_seed,
            queue: WriteQueue::new(),
        };
        for g in (0..geometry.group_count).filter(|&g| group_has_super(g)) {
            w.used.push(Run {
                start: g * BLOCKS_PER_GROUP,
                len: 1 + geometry.gdt_blocks,
            });
        }
        let fixed = allocate_fixed(w.alloc, &geometry, extent::tree_blocks_needed)?;
        for &run in &fixed.runs {
            w.used.push(run);
        }
        let journal = write_journal(&mut w, &geometry, &fixed, &self.options)?;
        let xattr_blocks = write_xattr_blocks(&mut w, &plans.xattr_blocks)?;
        let writer = InodeWriter {
            tree,
            encoder: &encoder,
            contents: &contents,
            xattr_blocks: &xattr_blocks,
            timestamp: self.options.timestamp,
        };
        let mut tables = InodeTables::new(&geometry, &fixed.groups);
        tables.put(&mut w, EXT4_JOURNAL_INO, &journal)?;
        for plan in plans.iter() {
            let inode = writer.write(&mut w, plan)?;
            tables.put(&mut w, plan.ino, &inode)?;
        }
        tables.flush(&mut w)?;
        w.flush()?;
        self.data.flush(&self.image)?;
        let span = Span {
            predicted,
            written: w.alloc.high_water(),
        };
        // Sizing counts directory extent trees generously, never short; past
        // the prediction but within the image nothing is wrong on disk, so
        // only debug builds (the tests) stop there.
        debug_assert!(
            span.written <= span.predicted,
            "the writer took blocks up to {} but sizing planned for {}",
            span.written,
            span.predicted
        );

        for plan in plans.iter() {
            if let (Body::File, Some(node)) = (&plan.body, plan.node) {
                for e in &placed_of(tree, &contents, node).extents {
                    w.used.push(Run {
                        start: e.physical_block,
                        len: e.len,
                    });
                }
            }
        }
        punch_dead_data(&self.image, &self.data, &mut w.used)?;

        let free_blocks = write_group_metadata(
            &mut w,
            &self.options,
            &geometry,
            &fixed.groups,
            &inodes,
            &journal,
        )?;
        let used_blocks = geometry.blocks_count - free_blocks;
        self.image
            .set_len(geometry.blocks_count * BLOCK_SIZE)
            .map_err(io_error("sizing the image file"))?;
        let summary = ImageSummary {
            used_inodes: u64::from(inodes.max_ino),
            used_blocks,
            geometry,
        };
        Ok((summary, span))
    }
}

/// How far sizing expected the allocations to reach, and how far they did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    predicted: u64,
    written: u64,
}

#[cfg(test)]
mod tests;
