//! Extent trees: mapping a file's runs of blocks from `i_block`, through as
//! many levels of index blocks as the run count needs.

use zerocopy::IntoBytes;

use crate::checksum::{ext4_chksum, inode_seed};
use crate::format::{Ext4Extent, Ext4ExtentHeader, Ext4ExtentIdx};
use crate::spec::{
    BLOCK_SIZE, EXT4_EXTENTS_IN_INODE, EXT4_EXTENTS_PER_BLOCK, EXT4_EXT_MAGIC, EXT_INIT_MAX_LEN,
};
use crate::tree::PlacedExtent;

/// Why an extent tree could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtentError {
    /// ext4 addresses file blocks with 32 bits.
    #[error("file block {0} is beyond ext4's 2^32 block limit")]
    FileTooLarge(u64),
}

/// One tree block to write.
#[derive(Clone, Debug)]
pub struct TreeBlock {
    /// Where the block goes.
    pub physical: u64,
    /// Its bytes, checksum included.
    pub bytes: Vec<u8>,
}

/// A built extent tree.
#[derive(Clone, Debug)]
pub struct ExtentTree {
    /// The 60 bytes of `i_block`.
    pub i_block: [u8; 60],
    /// Index and leaf blocks outside the inode.
    pub blocks: Vec<TreeBlock>,
}

/// Splits placed runs into extents of at most [`EXT_INIT_MAX_LEN`] blocks.
pub fn leaf_entries(runs: &[PlacedExtent]) -> Result<Vec<Ext4Extent>, ExtentError> {
    let mut leaves = Vec::with_capacity(runs.len());
    for run in runs {
        let mut done = 0;
        while done < run.len {
            let len = (run.len - done).min(EXT_INIT_MAX_LEN);
            let logical = run.logical_block + done;
            let last = logical + len - 1;
            if last > u64::from(u32::MAX) {
                return Err(ExtentError::FileTooLarge(last));
            }
            let physical = run.physical_block + done;
            leaves.push(Ext4Extent {
                ee_block: (logical as u32).into(),
                ee_len: (len as u16).into(),
                ee_start_hi: ((physical >> 32) as u16).into(),
                ee_start_lo: (physical as u32).into(),
            });
            done += len;
        }
    }
    Ok(leaves)
}

/// Tree blocks needed outside the inode for `entries` leaf extents.
pub fn tree_blocks_needed(entries: usize) -> u64 {
    let mut total = 0;
    let mut level = entries;
    while level > EXT4_EXTENTS_IN_INODE {
        level = level.div_ceil(EXT4_EXTENTS_PER_BLOCK);
        total += level as u64;
    }
    total
}

/// Identifies the owner of tree blocks for their checksums.
#[derive(Copy, Clone, Debug)]
pub struct Owner {
    /// Inode number.
    pub ino: u32,
    /// Inode generation.
    pub generation: u32,
    /// Filesystem checksum seed.
    pub fs_seed: u32,
}

fn header(entries: usize, max: usize, depth: u16) -> Ext4ExtentHeader {
    Ext4ExtentHeader {
        eh_magic: EXT4_EXT_MAGIC.into(),
        eh_entries: (entries as u16).into(),
        eh_max: (max as u16).into(),
        eh_depth: depth.into(),
        eh_generation: 0.into(),
    }
}

/// Lays out a node: header then entries, in a buffer of `len` bytes.
fn node_bytes<T: IntoBytes + zerocopy::Immutable>(
    entries: &[T],
    max: usize,
    depth: u16,
    len: usize,
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(header(entries.len(), max, depth).as_bytes());
    for entry in entries {
        bytes.extend_from_slice(entry.as_bytes());
    }
    bytes.resize(len, 0);
    bytes
}

/// Builds the tree for `leaves`, placing tree blocks at `physical` (which
/// must hold exactly [`tree_blocks_needed`] blocks, in order).
pub fn build(leaves: &[Ext4Extent], physical: &[u64], owner: Owner) -> ExtentTree {
    debug_assert_eq!(physical.len() as u64, tree_blocks_needed(leaves.len()));
    let mut blocks = Vec::with_capacity(physical.len());
    let mut next_physical = physical.iter().copied();
    // Entries of the level being built: (first logical block, encoded entry).
    let mut level: Vec<(u32, [u8; 12])> = leaves
        .iter()
        .map(|leaf| {
            let mut raw = [0u8; 12];
            raw.copy_from_slice(leaf.as_bytes());
            (leaf.ee_block.get(), raw)
        })
        .collect();
    let mut depth = 0u16;
    while level.len() > EXT4_EXTENTS_IN_INODE {
        let mut parents = Vec::with_capacity(level.len().div_ceil(EXT4_EXTENTS_PER_BLOCK));
        for chunk in level.chunks(EXT4_EXTENTS_PER_BLOCK) {
            let block_nr = next_physical
                .next()
                .expect("the caller allocated tree_blocks_needed() blocks");
            let raw: Vec<[u8; 12]> = chunk.iter().map(|(_, raw)| *raw).collect();
            let mut bytes = node_bytes(&raw, EXT4_EXTENTS_PER_BLOCK, depth, BLOCK_SIZE as usize);
            let tail = 12 + 12 * EXT4_EXTENTS_PER_BLOCK;
            let seed = inode_seed(owner.fs_seed, owner.ino, owner.generation);
            let sum = ext4_chksum(seed, &bytes[..tail]);
            bytes[tail..tail + 4].copy_from_slice(&sum.to_le_bytes());
            blocks.push(TreeBlock {
                physical: block_nr,
                bytes,
            });
            let index = Ext4ExtentIdx {
                ei_block: chunk[0].0.into(),
                ei_leaf_lo: (block_nr as u32).into(),
                ei_leaf_hi: ((block_nr >> 32) as u16).into(),
                ei_unused: 0.into(),
            };
            let mut raw = [0u8; 12];
            raw.copy_from_slice(index.as_bytes());
            parents.push((chunk[0].0, raw));
        }
        level = parents;
        depth += 1;
    }
    let raw: Vec<[u8; 12]> = level.iter().map(|(_, raw)| *raw).collect();
    let mut i_block = [0u8; 60];
    i_block.copy_from_slice(&node_bytes(&raw, EXT4_EXTENTS_IN_INODE, depth, 60));
    ExtentTree { i_block, blocks }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(n: u64) -> Vec<PlacedExtent> {
        (0..n)
            .map(|i| PlacedExtent {
                logical_block: i * 2,
                physical_block: 1000 + i * 3,
                len: 1,
            })
            .collect()
    }

    #[test]
    fn small_files_fit_in_the_inode() {
        let leaves = leaf_entries(&runs(4)).unwrap();
        assert_eq!(tree_blocks_needed(leaves.len()), 0);
        let tree = build(
            &leaves,
            &[],
            Owner {
                ino: 12,
                generation: 0,
                fs_seed: 1,
            },
        );
        assert_eq!(&tree.i_block[..2], &EXT4_EXT_MAGIC.to_le_bytes());
        assert_eq!(tree.i_block[2], 4);
        assert!(tree.blocks.is_empty());
    }

    #[test]
    fn depth_grows_with_run_count() {
        assert_eq!(tree_blocks_needed(5), 1);
        assert_eq!(tree_blocks_needed(340 * 4), 4);
        assert_eq!(tree_blocks_needed(340 * 4 + 1), 5 + 1);
        let leaves = leaf_entries(&runs(2000)).unwrap();
        let n = tree_blocks_needed(leaves.len());
        let physical: Vec<u64> = (0..n).map(|i| 50 + i).collect();
        let tree = build(
            &leaves,
            &physical,
            Owner {
                ino: 12,
                generation: 0,
                fs_seed: 1,
            },
        );
        assert_eq!(tree.blocks.len() as u64, n);
        assert_eq!(u16::from_le_bytes([tree.i_block[6], tree.i_block[7]]), 2);
    }

    #[test]
    fn long_runs_are_split() {
        let run = PlacedExtent {
            logical_block: 0,
            physical_block: 10,
            len: 70000,
        };
        let leaves = leaf_entries(&[run]).unwrap();
        let lens: Vec<u16> = leaves.iter().map(|l| l.ee_len.get()).collect();
        assert_eq!(lens, [32768, 32768, 4464]);
    }
}
