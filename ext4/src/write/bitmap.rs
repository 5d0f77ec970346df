//! Block and inode bitmaps, built one group at a time from the list of
//! used block runs, so memory does not grow with the filesystem size.

use bitvec::prelude::*;

use crate::alloc::Run;
use crate::checksum::ext4_chksum;
use crate::spec::{BLOCKS_PER_GROUP, BLOCK_SIZE};

/// Every block in use, as runs.
#[derive(Clone, Debug, Default)]
pub struct UsedBlocks {
    runs: Vec<Run>,
    normalized: bool,
}

impl UsedBlocks {
    /// Records a used run.
    pub fn push(&mut self, run: Run) {
        if run.len > 0 {
            self.runs.push(run);
            self.normalized = false;
        }
    }

    /// Sorts and merges the runs.
    pub fn normalize(&mut self) {
        if self.normalized {
            return;
        }
        self.runs.sort_unstable();
        let mut merged: Vec<Run> = Vec::with_capacity(self.runs.len());
        for run in self.runs.drain(..) {
            match merged.last_mut() {
                Some(last) if run.start <= last.end() => {
                    last.len = last.len.max(run.end() - last.start);
                }
                _ => merged.push(run),
            }
        }
        self.runs = merged;
        self.normalized = true;
    }

    /// The sorted, merged runs.
    pub fn runs(&mut self) -> &[Run] {
        self.normalize();
        &self.runs
    }

    /// The parts of `others` (sorted) that no used run covers.
    pub fn uncovered(&mut self, others: &[Run]) -> Vec<Run> {
        self.normalize();
        let mut out = Vec::new();
        let mut i = 0;
        for other in others {
            let mut start = other.start;
            while i < self.runs.len() && self.runs[i].end() <= start {
                i += 1;
            }
            let mut j = i;
            while start < other.end() {
                match self.runs.get(j) {
                    Some(run) if run.start < other.end() => {
                        if run.start > start {
                            out.push(Run {
                                start,
                                len: run.start - start,
                            });
                        }
                        start = start.max(run.end());
                        j += 1;
                    }
                    _ => {
                        out.push(Run {
                            start,
                            len: other.end() - start,
                        });
                        start = other.end();
                    }
                }
            }
        }
        out
    }
}

/// One group's block bitmap.
pub struct BlockBitmap {
    /// The bitmap block.
    pub bytes: Vec<u8>,
    /// Free blocks in the group.
    pub free: u32,
    /// crc32c of the bitmap (no group number, per the on-disk format).
    pub checksum: u32,
}

/// Builds the block bitmap of `group` in a filesystem of `blocks_count`
/// blocks. `cursor` carries the position in `runs` from group to group, so
/// groups must be built in order.
pub fn block_bitmap(
    group: u64,
    blocks_count: u64,
    runs: &[Run],
    cursor: &mut usize,
    fs_seed: u32,
) -> BlockBitmap {
    let first = group * BLOCKS_PER_GROUP;
    let end = first + BLOCKS_PER_GROUP;
    let mut bits = bitvec![u8, Lsb0; 0; BLOCKS_PER_GROUP as usize];
    while let Some(run) = runs.get(*cursor) {
        if run.start >= end {
            break;
        }
        let from = run.start.max(first);
        let to = run.end().min(end);
        if from < to {
            bits[(from - first) as usize..(to - first) as usize].fill(true);
        }
        if run.end() > end {
            break; // The run continues into the next group.
        }
        *cursor += 1;
    }
    let in_group = blocks_count.saturating_sub(first).min(BLOCKS_PER_GROUP);
    let used = bits[..in_group as usize].count_ones() as u64;
    // Blocks past the end of the filesystem are marked in use.
    bits[in_group as usize..].fill(true);
    let bytes = bits.into_vec();
    let checksum = ext4_chksum(fs_seed, &bytes);
    BlockBitmap {
        bytes,
        free: (in_group - used) as u32,
        checksum,
    }
}

/// Builds an inode bitmap with the first `used` of `per_group` inodes in
/// use; returns the block and its checksum (over the `per_group` bits only;
/// the padding after them is set and not checksummed).
pub fn inode_bitmap(used: u32, per_group: u64, fs_seed: u32) -> (Vec<u8>, u32) {
    let mut bits = bitvec![u8, Lsb0; 0; BLOCK_SIZE as usize * 8];
    bits[..used as usize].fill(true);
    bits[per_group as usize..].fill(true);
    let bytes = bits.into_vec();
    let checksum = ext4_chksum(fs_seed, &bytes[..(per_group / 8) as usize]);
    (bytes, checksum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_and_uncovered_parts_are_found() {
        let mut used = UsedBlocks::default();
        used.push(Run { start: 10, len: 5 });
        used.push(Run { start: 12, len: 10 });
        used.push(Run { start: 40, len: 2 });
        assert_eq!(
            used.runs(),
            &[Run { start: 10, len: 12 }, Run { start: 40, len: 2 }]
        );
        let dead = used.uncovered(&[Run { start: 5, len: 10 }, Run { start: 20, len: 30 }]);
        assert_eq!(
            dead,
            [
                Run { start: 5, len: 5 },
                Run { start: 22, len: 18 },
                Run { start: 42, len: 8 }
            ]
        );
    }

    #[test]
    fn last_group_pads_past_the_end() {
        let runs = [
            Run { start: 0, len: 3 },
            Run {
                start: 32770,
                len: 2,
            },
        ];
        let mut cursor = 0;
        let g0 = block_bitmap(0, 32768 + 100, &runs, &mut cursor, 0);
        assert_eq!(g0.free, 32768 - 3);
        assert_eq!(g0.bytes[0], 0b111);
        let g1 = block_bitmap(1, 32768 + 100, &runs, &mut cursor, 0);
        assert_eq!(g1.free, 98);
        assert_eq!(g1.bytes[0], 0b1100);
        assert_eq!(g1.bytes[12], 0xF0); // bits 100.. set
        assert!(g1.bytes[13..].iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn inode_bitmap_padding() {
        let (bytes, _) = inode_bitmap(11, 8192, 0);
        assert_eq!(bytes[0], 0xFF);
        assert_eq!(bytes[1], 0b111);
        assert!(bytes[1024..].iter().all(|&b| b == 0xFF));
        assert!(bytes[2..1024].iter().all(|&b| b == 0));
    }
}
