//! Hash-indexed directories laid out as `e2fsck -D` lays them out: the dx
//! root, the leaves in hash order, then any interior index nodes.

use core::mem::size_of;

use zerocopy::little_endian::{U16, U32};
use zerocopy::IntoBytes;

use crate::format::dir::{
    dirent_rec_len, dx_block_csum, DxCountlimit, DxEntry, DxRootInfo, DxTail, Ext4DirEntry2,
    DX_NODE_COUNT_OFFSET, DX_ROOT_COUNT_OFFSET,
};
use crate::spec::BLOCK_SIZE;

use super::hash::dx_hash;
use super::leaf::{encode_leaf, put_dirent};
use super::{
    reject_duplicates, DirBlocks, DirContext, DirEntry, DirError, DX_NODE_LIMIT, DX_ROOT_LIMIT,
    EXT4_FT_DIR, HTREE_SLACK_PERCENT, LEAF_SPACE,
};

/// A name with its hash, ready to be placed in a leaf.
pub(super) struct Hashed<'a> {
    pub(super) hash: u32,
    pub(super) minor: u32,
    pub(super) entry: &'a DirEntry<'a>,
}

/// The leaves of an htree: ranges of the hash-sorted entries and the index
/// hash of each (the first entry's hash, bit 0 set when it continues a run
/// of equal hashes from the previous leaf).
pub(super) struct LeafPlan {
    pub(super) ranges: Vec<core::ops::Range<usize>>,
    pub(super) hashes: Vec<u32>,
}

/// Packs sorted entries into leaves exactly like e2fsck's `copy_dir_entries`:
/// fill each leaf in order, closing it once less than the slack is left.
pub(super) fn plan_leaves(sorted: &[Hashed]) -> LeafPlan {
    let slack = LEAF_SPACE * HTREE_SLACK_PERCENT / 100;
    let mut plan = LeafPlan {
        ranges: Vec::new(),
        hashes: Vec::new(),
    };
    let mut start = 0;
    let mut left = LEAF_SPACE;
    for (i, item) in sorted.iter().enumerate() {
        let rec_len = dirent_rec_len(item.entry.name.len());
        if rec_len > left {
            plan.ranges.push(start..i);
            start = i;
            left = LEAF_SPACE;
        }
        if start == i {
            let continues_run = i > 0 && sorted[i - 1].hash == item.hash;
            plan.hashes.push(item.hash | u32::from(continues_run));
        }
        left -= rec_len;
        if left < slack {
            left = 0;
        }
    }
    plan.ranges.push(start..sorted.len());
    plan
}

pub(super) fn build_htree(
    entries: &[DirEntry],
    ctx: &DirContext,
    inode_seed: u32,
) -> Result<DirBlocks, DirError> {
    let mut sorted: Vec<Hashed> = entries
        .iter()
        .map(|entry| {
            let (hash, minor) = dx_hash(entry.name, &ctx.hash);
            Hashed { hash, minor, entry }
        })
        .collect();
    sorted.sort_unstable_by(|a, b| {
        (a.hash, a.minor, a.entry.name, a.entry.inode).cmp(&(
            b.hash,
            b.minor,
            b.entry.name,
            b.entry.inode,
        ))
    });
    // Equal names hash equally, so duplicates end up adjacent.
    reject_duplicates(sorted.iter().map(|h| h.entry.name))?;

    let plan = plan_leaves(&sorted);
    let leaves = plan.ranges.len();
    let nodes = interior_nodes(leaves)?;
    let mut data = vec![0u8; (1 + leaves + nodes) * BLOCK_SIZE as usize];
    let mut blocks = data.chunks_exact_mut(BLOCK_SIZE as usize);
    let root = blocks.next();

    let mut leaf_entries: Vec<DirEntry> = Vec::new();
    for (range, block) in plan.ranges.iter().zip(blocks.by_ref()) {
        leaf_entries.clear();
        leaf_entries.extend(sorted[range.clone()].iter().map(|h| *h.entry));
        encode_leaf(block, &leaf_entries, inode_seed);
    }

    // (hash, logical block) of every leaf; leaf i lives in block i + 1.
    let leaf_index: Vec<(u32, u32)> = plan
        .hashes
        .iter()
        .zip(1u32..)
        .map(|(&hash, block)| (hash, block))
        .collect();
    let root_entries: Vec<(u32, u32)> = if nodes == 0 {
        leaf_index
    } else {
        let first_node_block = 1 + leaves as u32;
        let mut root_entries = Vec::with_capacity(nodes);
        for ((children, block), node_block) in leaf_index
            .chunks(DX_NODE_LIMIT)
            .zip(blocks.by_ref())
            .zip(first_node_block..)
        {
            encode_dx_node(block, children, inode_seed);
            root_entries.push((children[0].0, node_block));
        }
        root_entries
    };
    if let Some(root) = root {
        encode_dx_root(root, ctx, u8::from(nodes > 0), &root_entries, inode_seed);
    }
    Ok(DirBlocks {
        data,
        indexed: true,
    })
}

/// Interior index nodes needed for `leaves` leaves: none while the root can
/// point at every leaf, else one level (the kernel's limit without large_dir).
pub(super) fn interior_nodes(leaves: usize) -> Result<usize, DirError> {
    let max = DX_ROOT_LIMIT * DX_NODE_LIMIT;
    if leaves <= DX_ROOT_LIMIT {
        Ok(0)
    } else if leaves <= max {
        Ok(leaves.div_ceil(DX_NODE_LIMIT))
    } else {
        Err(DirError::TooLarge { leaves, max })
    }
}

/// Writes the count/limit header, the entries and the checksummed dx tail of
/// an index block whose header sits at `count_offset`. Entry 0's hash slot
/// holds the count/limit, so only its block is written.
fn put_dx_entries(
    block: &mut [u8],
    count_offset: usize,
    limit: usize,
    entries: &[(u32, u32)],
    inode_seed: u32,
) {
    let countlimit = DxCountlimit {
        limit: U16::new(limit as u16),
        count: U16::new(entries.len() as u16),
    };
    block[count_offset..count_offset + 4].copy_from_slice(countlimit.as_bytes());
    for (i, &(hash, child)) in entries.iter().enumerate() {
        let at = count_offset + i * size_of::<DxEntry>();
        if i == 0 {
            block[at + 4..at + 8].copy_from_slice(&child.to_le_bytes());
        } else {
            let entry = DxEntry {
                hash: U32::new(hash),
                block: U32::new(child),
            };
            block[at..at + size_of::<DxEntry>()].copy_from_slice(entry.as_bytes());
        }
    }
    let tail_at = count_offset + limit * size_of::<DxEntry>();
    let checksum = dx_block_csum(inode_seed, block, count_offset)
        .expect("the count and limit just written fit the block");
    let tail = DxTail {
        reserved: U32::new(0),
        checksum: U32::new(checksum),
    };
    block[tail_at..tail_at + size_of::<DxTail>()].copy_from_slice(tail.as_bytes());
}

fn encode_dx_root(
    block: &mut [u8],
    ctx: &DirContext,
    indirect_levels: u8,
    entries: &[(u32, u32)],
    inode_seed: u32,
) {
    block.fill(0);
    let dot = DirEntry {
        name: b".",
        inode: ctx.dir_inode,
        file_type: EXT4_FT_DIR,
    };
    let dotdot = DirEntry {
        name: b"..",
        inode: ctx.parent_inode,
        file_type: EXT4_FT_DIR,
    };
    let dot_len = dirent_rec_len(1);
    put_dirent(block, 0, &dot, dot_len);
    // `..` spans the rest of the block, hiding the index from linear readers.
    put_dirent(block, dot_len, &dotdot, BLOCK_SIZE as usize - dot_len);
    let info = DxRootInfo {
        reserved_zero: U32::new(0),
        hash_version: ctx.hash.version.as_u8(),
        info_length: size_of::<DxRootInfo>() as u8,
        indirect_levels,
        unused_flags: 0,
    };
    let info_at = dot_len + dirent_rec_len(2);
    block[info_at..info_at + size_of::<DxRootInfo>()].copy_from_slice(info.as_bytes());
    put_dx_entries(
        block,
        DX_ROOT_COUNT_OFFSET,
        DX_ROOT_LIMIT,
        entries,
        inode_seed,
    );
}

fn encode_dx_node(block: &mut [u8], entries: &[(u32, u32)], inode_seed: u32) {
    block.fill(0);
    // A free dirent covering the block, so linear readers skip it.
    let fake = Ext4DirEntry2 {
        inode: U32::new(0),
        rec_len: U16::new(BLOCK_SIZE as usize as u16),
        name_len: 0,
        file_type: 0,
    };
    block[..size_of::<Ext4DirEntry2>()].copy_from_slice(fake.as_bytes());
    put_dx_entries(
        block,
        DX_NODE_COUNT_OFFSET,
        DX_NODE_LIMIT,
        entries,
        inode_seed,
    );
}
