use super::htree::{interior_nodes, plan_leaves, Hashed};
use super::*;
use crate::checksum::ext4_chksum;

const DIR_INODE: u32 = 1234;
const PARENT_INODE: u32 = 2;

fn ctx() -> DirContext {
    DirContext {
        dir_inode: DIR_INODE,
        parent_inode: PARENT_INODE,
        generation: 0xABCD_0123,
        fs_seed: 0x6BDB_A3A9,
        hash: HashParams {
            seed: [0x1111_1111, 0x2222_2222, 0x3333_3333, 0x4444_4444],
            version: HashVersion::HalfMd4,
            unsigned_chars: false,
        },
    }
}

fn inode_seed() -> u32 {
    let c = ctx();
    let s = ext4_chksum(c.fs_seed, &c.dir_inode.to_le_bytes());
    ext4_chksum(s, &c.generation.to_le_bytes())
}

fn le16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// (inode, rec_len, name, file_type) of every record before the tail,
/// asserting the records tile the block exactly and the tail is valid.
fn walk_leaf(block: &[u8]) -> Vec<(u32, usize, Vec<u8>, u8)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < LEAF_SPACE {
        let rec_len = le16(block, at + 4);
        let name_len = usize::from(block[at + 6]);
        assert_eq!(rec_len % 4, 0, "rec_len {rec_len} at {at} not aligned");
        assert!(
            rec_len >= dirent_rec_len(name_len),
            "rec_len too small at {at}"
        );
        assert!(
            at + rec_len <= LEAF_SPACE,
            "record at {at} overruns the tail"
        );
        let name = block[at + 8..at + 8 + name_len].to_vec();
        out.push((le32(block, at), rec_len, name, block[at + 7]));
        at += rec_len;
    }
    assert_eq!(at, LEAF_SPACE);
    let tail = &block[LEAF_SPACE..];
    assert_eq!(&tail[..8], &[0, 0, 0, 0, 12, 0, 0, 0xDE]);
    assert_eq!(
        le32(tail, 8),
        ext4_chksum(inode_seed(), &block[..LEAF_SPACE])
    );
    out
}

fn names(n: usize, len: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{i:0len$}").into_bytes()).collect()
}

fn entries(names: &[Vec<u8>]) -> Vec<DirEntry<'_>> {
    names
        .iter()
        .zip(100u32..)
        .map(|(name, inode)| DirEntry {
            name,
            inode,
            file_type: EXT4_FT_REG_FILE,
        })
        .collect()
}

#[test]
fn rec_len_is_header_plus_name_rounded_to_four() {
    let lens: Vec<usize> = (1..=9).map(dirent_rec_len).collect();
    assert_eq!(lens, [12, 12, 12, 12, 16, 16, 16, 16, 20]);
    assert_eq!(dirent_rec_len(255), 264);
}

#[test]
fn small_directory_is_one_linear_block_sorted_by_name() {
    let list = [
        DirEntry {
            name: b"zeta",
            inode: 20,
            file_type: EXT4_FT_DIR,
        },
        DirEntry {
            name: b"alpha",
            inode: 21,
            file_type: EXT4_FT_SYMLINK,
        },
        DirEntry {
            name: b"mid",
            inode: 22,
            file_type: EXT4_FT_REG_FILE,
        },
    ];
    let dir = build_directory(&list, &ctx(), 0).unwrap();
    assert!(!dir.indexed);
    assert_eq!(dir.block_count(), 1);
    let records = walk_leaf(&dir.data);
    let summary: Vec<(u32, usize, &[u8], u8)> = records
        .iter()
        .map(|(i, r, n, t)| (*i, *r, n.as_slice(), *t))
        .collect();
    assert_eq!(
        summary,
        [
            (DIR_INODE, 12, &b"."[..], EXT4_FT_DIR),
            (PARENT_INODE, 12, b"..", EXT4_FT_DIR),
            (21, 16, b"alpha", EXT4_FT_SYMLINK),
            (22, 12, b"mid", EXT4_FT_REG_FILE),
            (20, 4084 - 52, b"zeta", EXT4_FT_DIR),
        ]
    );
}

#[test]
fn empty_directory_dotdot_reaches_the_tail() {
    let dir = build_directory(&[], &ctx(), 1).unwrap();
    let records = walk_leaf(&dir.data);
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].1, 4084 - 12);
}

#[test]
fn min_blocks_pads_with_empty_checksummed_blocks() {
    let dir = build_directory(&[], &ctx(), 4).unwrap();
    assert_eq!(dir.block_count(), 4);
    assert_eq!(dir.data.len(), 4 * BLOCK_SIZE as usize);
    for block in dir.blocks().skip(1) {
        assert_eq!(walk_leaf(block), [(0, 4084, Vec::new(), 0)]);
    }
}

#[test]
fn output_does_not_depend_on_input_order() {
    for count in [10, 1000] {
        let names = names(count, 12);
        let mut list = entries(&names);
        let forward = build_directory(&list, &ctx(), 0).unwrap();
        list.reverse();
        list.swap(0, count / 2);
        assert_eq!(build_directory(&list, &ctx(), 0).unwrap(), forward);
    }
}

#[test]
fn switches_to_an_htree_exactly_when_one_block_overflows() {
    // 12-byte names take 20 bytes: 24 + 203 * 20 = 4084 fills the block.
    let names = names(204, 12);
    let fits = build_directory(&entries(&names[..203]), &ctx(), 0).unwrap();
    assert!(!fits.indexed);
    assert_eq!(fits.block_count(), 1);
    assert_eq!(walk_leaf(&fits.data).last().unwrap().1, 20);
    let over = build_directory(&entries(&names), &ctx(), 3).unwrap();
    assert!(over.indexed);
    assert_eq!(
        over.block_count(),
        3,
        "root + two leaves; min_blocks ignored"
    );
}

/// Reads an index block: (count, limit, [(hash, block)]) with entry 0's hash as 0.
fn read_index(block: &[u8], count_offset: usize) -> (usize, usize, Vec<(u32, u32)>) {
    let limit = le16(block, count_offset);
    let count = le16(block, count_offset + 2);
    let entries = (0..count)
        .map(|i| {
            let at = count_offset + 8 * i;
            let hash = if i == 0 { 0 } else { le32(block, at) };
            (hash, le32(block, at + 4))
        })
        .collect();
    let tail = count_offset + 8 * limit;
    assert_eq!(le32(block, tail), 0);
    let mut covered = block[..count_offset + 8 * count].to_vec();
    covered.extend_from_slice(&[0; 8]);
    assert_eq!(le32(block, tail + 4), ext4_chksum(inode_seed(), &covered));
    (count, limit, entries)
}

/// Checks an htree end to end and returns (indirect_levels, names found).
fn check_htree(dir: &DirBlocks) -> (u8, Vec<Vec<u8>>) {
    let blocks: Vec<&[u8]> = dir.blocks().collect();
    let root = blocks[0];
    assert_eq!(le32(root, 0), DIR_INODE);
    assert_eq!(
        (le16(root, 4), root[6], root[7], &root[8..9]),
        (12, 1, 2, &b"."[..])
    );
    assert_eq!(le32(root, 12), PARENT_INODE);
    assert_eq!(
        (le16(root, 16), root[18], root[19], &root[20..22]),
        (4084, 2, 2, &b".."[..])
    );
    assert_eq!(&root[24..32], &[0, 0, 0, 0, 1, 8, root[30], 0]);
    let levels = root[30];
    let (_, limit, root_entries) = read_index(root, 0x20);
    assert_eq!(limit, 507);

    // Expand to (lower hash bound, leaf block) in key order.
    let nodes = if levels == 0 { 0 } else { root_entries.len() };
    let mut leaves: Vec<(u32, u32)> = Vec::new();
    for (hash, child) in root_entries {
        if levels == 0 {
            leaves.push((hash, child));
            continue;
        }
        let node = blocks[child as usize];
        assert_eq!(&node[..8], &[0, 0, 0, 0, 0, 0x10, 0, 0]);
        let (_, node_limit, node_entries) = read_index(node, 8);
        assert_eq!(node_limit, 510);
        leaves.push((hash, node_entries[0].1));
        leaves.extend(node_entries.into_iter().skip(1));
    }
    assert_eq!(
        1 + leaves.len() + nodes,
        blocks.len(),
        "every block is referenced once"
    );

    let mut found = Vec::new();
    for (i, &(bound, block)) in leaves.iter().enumerate() {
        let upper = leaves
            .get(i + 1)
            .map_or(u64::MAX, |&(h, _)| u64::from(h & !1));
        for (inode, _, name, _) in walk_leaf(blocks[block as usize]) {
            assert_ne!(inode, 0);
            let (hash, _) = dx_hash(&name, &ctx().hash);
            assert!(
                hash >= bound & !1 && u64::from(hash) <= upper,
                "hash out of leaf range"
            );
            found.push(name);
        }
    }
    (levels, found)
}

#[test]
fn htree_leaves_partition_the_hash_space() {
    let names = names(3000, 20);
    let dir = build_directory(&entries(&names), &ctx(), 0).unwrap();
    assert!(dir.indexed);
    let (levels, mut found) = check_htree(&dir);
    assert_eq!(levels, 0);
    found.sort();
    assert_eq!(found, names);
}

#[test]
fn many_leaves_get_one_level_of_index_nodes() {
    // 255-byte names: 13 per leaf with e2fsck's slack, so 6604 names need 508 leaves.
    let names: Vec<Vec<u8>> = (0..6604)
        .map(|i| format!("{i:0255}").into_bytes())
        .collect();
    let dir = build_directory(&entries(&names), &ctx(), 0).unwrap();
    assert_eq!(dir.block_count(), 1 + 508 + 1, "root, leaves, one node");
    let (levels, mut found) = check_htree(&dir);
    assert_eq!(levels, 1);
    found.sort();
    assert_eq!(found, names);
}

#[test]
fn leaves_stop_filling_below_the_slack_and_mark_collisions() {
    let entry = DirEntry {
        name: &[b'n'; 100],
        inode: 5,
        file_type: 1,
    };
    // 108-byte records: after 30 a leaf has 844 bytes left, the 31st takes it
    // under the 816-byte slack (20% of 4084) and closes it.
    let items: Vec<Hashed> = (0..70u32)
        .map(|i| Hashed {
            hash: if i < 40 { 0x100 } else { 0x200 + 2 * i },
            minor: i,
            entry: &entry,
        })
        .collect();
    let plan = plan_leaves(&items);
    assert_eq!(plan.ranges, [0..31, 31..62, 62..70]);
    // Leaf 1 starts inside the 0x100 run: collision bit. Leaf 2 does not.
    assert_eq!(plan.hashes, [0x100, 0x101, 0x200 + 2 * 62]);
}

#[test]
fn index_depth_is_limited_without_large_dir() {
    assert_eq!(interior_nodes(507), Ok(0));
    assert_eq!(interior_nodes(508), Ok(1));
    assert_eq!(interior_nodes(507 * 510), Ok(507));
    assert_eq!(
        interior_nodes(507 * 510 + 1),
        Err(DirError::TooLarge {
            leaves: 507 * 510 + 1,
            max: 507 * 510
        })
    );
}

#[test]
fn rejects_bad_entries() {
    let long = [b'a'; 256];
    let cases: [(&[u8], u32, u8); 7] = [
        (b"", 5, 1),
        (&long, 5, 1),
        (b".", 5, 2),
        (b"..", 5, 2),
        (b"a/b", 5, 1),
        (b"a\0b", 5, 1),
        (b"x", 0, 1),
    ];
    for (name, inode, file_type) in cases {
        let entry = DirEntry {
            name,
            inode,
            file_type,
        };
        assert!(
            build_directory(&[entry], &ctx(), 0).is_err(),
            "{name:?} accepted"
        );
    }
    let bad_type = DirEntry {
        name: b"x",
        inode: 5,
        file_type: 8,
    };
    assert!(matches!(
        build_directory(&[bad_type], &ctx(), 0),
        Err(DirError::BadFileType { file_type: 8, .. })
    ));
    assert!(matches!(
        build_directory(
            &[DirEntry {
                name: &long,
                inode: 5,
                file_type: 1
            }],
            &ctx(),
            0
        ),
        Err(DirError::NameTooLong { len: 256, .. })
    ));
    let max = [b'a'; 255];
    assert!(build_directory(
        &[DirEntry {
            name: &max,
            inode: 5,
            file_type: 1
        }],
        &ctx(),
        0
    )
    .is_ok());
}

#[test]
fn rejects_duplicates_in_linear_and_indexed_directories() {
    for count in [3, 2000] {
        let names = names(count, 12);
        let mut list = entries(&names);
        list.push(DirEntry {
            name: &names[1],
            inode: 9,
            file_type: 1,
        });
        assert!(matches!(
            build_directory(&list, &ctx(), 0),
            Err(DirError::DuplicateName { .. })
        ));
    }
}
