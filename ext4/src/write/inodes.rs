//! Each inode's own blocks (directory blocks, extent tree blocks, a slow
//! symlink's block), the shared xattr blocks, and the inodes themselves.

use crate::error::BuildError;
use crate::extent::Owner;
use crate::format::Ext4Inode;
use crate::inode::{build_inode, encode_device, InodeFields};
use crate::plan::dirs::DirEncoder;
use crate::plan::inodes::{Body, InodePlan};
use crate::plan::{placed_of, SourcePlacements};
use crate::spec::{BLOCK_SIZE, EXT4_INDEX_FL};
use crate::tree::{Metadata, NodeKind, Timestamp, Tree};
use crate::xattr::XattrBlock;

use super::{blocks_chunks, coalesce, runs_of, MetadataWriter};

/// Writes the shared xattr blocks; returns their block numbers.
pub(crate) fn write_xattr_blocks(
    w: &mut MetadataWriter,
    blocks: &[(XattrBlock, u32)],
) -> Result<Vec<u64>, BuildError> {
    let numbers = w.alloc_blocks(blocks.len() as u64)?;
    for ((block, refcount), &nr) in blocks.iter().zip(&numbers) {
        let bytes = block.finalize(nr, *refcount, w.fs_seed);
        w.write_block(nr, &bytes[..])?;
    }
    Ok(numbers)
}

/// What writing any inode needs besides its plan.
pub(crate) struct InodeWriter<'a> {
    pub(crate) tree: &'a Tree,
    pub(crate) encoder: &'a DirEncoder<'a>,
    pub(crate) contents: &'a SourcePlacements,
    /// Block numbers of the shared xattr blocks, by plan index.
    pub(crate) xattr_blocks: &'a [u64],
    /// Times of the lost+found banger adds.
    pub(crate) timestamp: Timestamp,
}

impl InodeWriter<'_> {
    /// Allocates and writes an inode's own blocks (directory, extent tree,
    /// slow symlink) and returns the inode.
    pub(crate) fn write(
        &self,
        w: &mut MetadataWriter,
        plan: &InodePlan,
    ) -> Result<Ext4Inode, BuildError> {
        let tree = self.tree;
        let owner = Owner {
            ino: plan.ino,
            generation: 0,
            fs_seed: w.fs_seed,
        };
        let (xattr_block, xattr_fs_blocks) = match plan.xattr_block {
            Some(i) => (self.xattr_blocks[i as usize], 1),
            None => (0, 0),
        };
        let mut fields = InodeFields {
            mode: plan.mode,
            size: 0,
            links: plan.links,
            fs_blocks: xattr_fs_blocks,
            flags: 0,
            i_block: [0; 60],
            xattr_block,
            xattrs: plan.xattrs.as_deref().copied().unwrap_or([0; 96]),
        };
        match &plan.body {
            Body::Directory {
                blocks: planned,
                indexed,
            } => {
                let blocks = self.encoder.encode(plan.node, plan.ino)?;
                let count = blocks.block_count() as u64;
                // Same tree, same inode numbers, same seeds: the same bytes.
                assert_eq!(
                    (count, blocks.indexed),
                    (*planned, *indexed),
                    "directory inode {} encoded differently when written than when planned",
                    plan.ino
                );
                let physical = w.alloc_blocks(count)?;
                let extents = runs_of(&physical);
                for (run, chunk) in coalesce(&physical).zip(blocks_chunks(&blocks.data, &physical))
                {
                    w.write_block(run.start, chunk)?;
                }
                let tree_blocks = w.map_with_extents(&extents, owner, &mut fields, "directory")?;
                fields.size = count * BLOCK_SIZE;
                fields.fs_blocks += count + tree_blocks;
                fields.flags |= if *indexed { EXT4_INDEX_FL } else { 0 };
            }
            Body::File => {
                let node = plan.node.expect("only tree nodes are planned as files");
                let placed = placed_of(tree, self.contents, node);
                let data_blocks: u64 = placed.extents.iter().map(|e| e.len).sum();
                let tree_blocks =
                    w.map_with_extents(&placed.extents, owner, &mut fields, "file")?;
                fields.size = placed.size;
                fields.fs_blocks += data_blocks + tree_blocks;
            }
            Body::FastSymlink => {
                let target = symlink_target(tree, plan);
                fields.i_block[..target.len()].copy_from_slice(target);
                fields.size = target.len() as u64;
            }
            Body::SlowSymlink => {
                let target = symlink_target(tree, plan);
                let physical = w.alloc_blocks(1)?;
                let mut block = vec![0u8; BLOCK_SIZE as usize];
                block[..target.len()].copy_from_slice(target);
                w.write_block(physical[0], &block)?;
                let extents = runs_of(&physical);
                w.map_with_extents(&extents, owner, &mut fields, "symlink")?;
                fields.size = target.len() as u64;
                fields.fs_blocks += 1;
            }
            Body::Device(dev) => {
                fields.i_block =
                    encode_device(*dev).expect("device numbers are checked when planned")
            }
            Body::Empty => {}
        }
        let default_meta;
        let meta = match plan.node {
            Some(node) => &tree.node(node).meta,
            None => {
                default_meta = Metadata::new(0o700, self.timestamp);
                &default_meta
            }
        };
        Ok(build_inode(meta, &fields, plan.ino, w.fs_seed))
    }
}

/// The target of the symlink `plan` describes.
fn symlink_target<'t>(tree: &'t Tree, plan: &InodePlan) -> &'t [u8] {
    match plan.node.map(|node| &tree.node(node).kind) {
        Some(NodeKind::Symlink(target)) => target,
        _ => unreachable!("inode {} was planned as a symlink", plan.ino),
    }
}
