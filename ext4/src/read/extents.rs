//! Walking an inode's extent tree.

use super::{Image, InodeView, ReadError};
use crate::format::{Ext4Extent, Ext4ExtentHeader, Ext4ExtentIdx};
use crate::spec::{EXT4_EXT_MAGIC, EXT_INIT_MAX_LEN};
use zerocopy::FromBytes;

/// The kernel refuses trees deeper than this (`EXT4_MAX_EXTENT_DEPTH`).
const MAX_DEPTH: u16 = 5;

/// Tree nodes one walk may read (fewer on a small filesystem): a leaf maps
/// up to 340 extents, so this covers over a TiB fragmented into single
/// 4 KiB blocks, while a hostile tree repeating its children cannot turn a
/// read into hours of I/O.
const MAX_NODES: u32 = 1 << 20;

/// State of one walk.
struct Walk {
    ino: u32,
    extents: Vec<MappedExtent>,
    nodes_left: u32,
    blocks_left: u64,
}

/// A run of file blocks mapped to contiguous disk blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedExtent {
    /// First file block.
    pub logical: u64,
    /// First disk block.
    pub physical: u64,
    /// Number of blocks.
    pub len: u64,
    /// Allocated but never written: reads as zeros.
    pub unwritten: bool,
}

impl Image {
    /// The extents of a regular file, directory or slow symlink, sorted and
    /// checked not to overlap each other or leave the filesystem.
    pub fn extents(&self, inode: &InodeView) -> Result<Vec<MappedExtent>, ReadError> {
        if !inode.uses_extents() {
            return Err(ReadError::Unsupported("block-mapped (ext2/ext3) files"));
        }
        // ext4 shares no blocks between or within files: a file maps at
        // most every block once, and its tree has at most as many nodes.
        let mut walk = Walk {
            ino: inode.ino,
            extents: Vec::new(),
            nodes_left: MAX_NODES.min(u32::try_from(self.blocks_count).unwrap_or(u32::MAX)),
            blocks_left: self.blocks_count,
        };
        self.walk(&mut walk, &inode.i_block, None)?;
        Ok(walk.extents)
    }

    /// Appends the leaves under one node; `depth` is what the parent says
    /// this node's depth must be (`None` at the root).
    fn walk(&self, walk: &mut Walk, node: &[u8], depth: Option<u16>) -> Result<(), ReadError> {
        let ino = walk.ino;
        let corrupt = |what| ReadError::Corrupt { ino, what };
        let (header, body) =
            Ext4ExtentHeader::read_from_prefix(node).map_err(|_| corrupt("short extent node"))?;
        if header.eh_magic.get() != EXT4_EXT_MAGIC {
            return Err(corrupt("bad extent header magic"));
        }
        let node_depth = header.eh_depth.get();
        if node_depth > MAX_DEPTH || depth.is_some_and(|expected| expected != node_depth) {
            return Err(corrupt("bad extent tree depth"));
        }
        let entries = usize::from(header.eh_entries.get());
        if entries > usize::from(header.eh_max.get()) || entries * 12 > body.len() {
            return Err(corrupt("more extent entries than the node holds"));
        }
        let body = &body[..entries * 12];
        if node_depth == 0 {
            let leaves =
                <[Ext4Extent]>::ref_from_bytes(body).map_err(|_| corrupt("extent leaf"))?;
            for leaf in leaves {
                let raw_len = u64::from(leaf.ee_len.get());
                let unwritten = raw_len > EXT_INIT_MAX_LEN;
                let extent = MappedExtent {
                    logical: u64::from(leaf.ee_block.get()),
                    physical: u64::from(leaf.ee_start_lo.get())
                        | u64::from(leaf.ee_start_hi.get()) << 32,
                    len: if unwritten {
                        raw_len - EXT_INIT_MAX_LEN
                    } else {
                        raw_len
                    },
                    unwritten,
                };
                let next_logical = walk.extents.last().map_or(0, |e| e.logical + e.len);
                if extent.logical < next_logical {
                    return Err(corrupt("extents overlap or are out of order"));
                }
                if extent.physical.saturating_add(extent.len) > self.blocks_count {
                    return Err(corrupt("an extent reaches beyond the filesystem"));
                }
                walk.blocks_left = walk
                    .blocks_left
                    .checked_sub(extent.len)
                    .ok_or(corrupt("maps more blocks than the filesystem has"))?;
                walk.extents.push(extent);
            }
            return Ok(());
        }
        let indexes =
            <[Ext4ExtentIdx]>::ref_from_bytes(body).map_err(|_| corrupt("extent index"))?;
        for index in indexes {
            let child = u64::from(index.ei_leaf_lo.get()) | u64::from(index.ei_leaf_hi.get()) << 32;
            walk.nodes_left = walk
                .nodes_left
                .checked_sub(1)
                .ok_or(corrupt("extent tree has too many nodes"))?;
            let block = self.read_block(child, ino)?;
            self.walk(walk, &block, Some(node_depth - 1))?;
        }
        Ok(())
    }
}
