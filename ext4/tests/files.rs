//! The inode, file type, hole and extent rows.

mod common;

use std::sync::Arc;

use banger_ext4::builder::Options;
use banger_ext4::tree::{DeviceNumber, FileContent, NodeKind, Timestamp, Tree};
use banger_testkit::{sample_tree, SparseSource};
use common::*;

#[test]
fn inodes_keep_owners_modes_and_nanosecond_times() {
    let mut tree = new_tree();
    let cases: [(&str, u16, u32, u32, Timestamp); 5] = [
        ("setuid", 0o4755, 0, 0, T),
        (
            "setgid",
            0o2755,
            1000,
            100_000,
            Timestamp {
                secs: -86_400,
                nanos: 1,
            },
        ),
        (
            "sticky",
            0o1777,
            4_000_000_000,
            65_536,
            Timestamp {
                secs: 1 << 32,
                nanos: 999_999_999,
            },
        ),
        (
            "wide-ids",
            0o640,
            3_000_000,
            42,
            Timestamp { secs: 0, nanos: 0 },
        ),
        (
            "y2038",
            0o600,
            65_535,
            65_535,
            Timestamp {
                secs: i32::MAX as i64 + 1,
                nanos: 500,
            },
        ),
    ];
    for (name, mode, uid, gid, time) in cases {
        let id = add_file(&mut tree, Tree::ROOT, name, name.as_bytes(), mode);
        let meta = &mut tree.node_mut(id).meta;
        (meta.uid, meta.gid) = (uid, gid);
        meta.mtime = time;
        meta.atime = Timestamp {
            secs: time.secs + 1,
            nanos: time.nanos,
        };
        meta.ctime = Timestamp {
            secs: time.secs + 2,
            nanos: 7,
        };
        meta.crtime = Timestamp {
            secs: time.secs - 3,
            nanos: 11,
        };
    }
    let img = write_checked(&tree, Options::default());
    let stat = debugfs(&img.path, "stat /sticky");
    assert!(stat.contains("Size of extra inode fields: 32"), "{stat}");
    // debugfs prints uids as signed 32-bit numbers: 4e9 shows as -294967296.
    assert!(stat.contains("User: -294967296   Group: 65536"), "{stat}");
}

#[test]
fn every_file_type_round_trips() {
    let tree = sample_tree();
    let img = write_checked(&tree, Options::default());
    let ls = debugfs(&img.path, "ls -l /");
    assert!(ls.contains("lost+found"), "{ls}");
}

#[test]
fn device_numbers_use_old_and_new_encodings() {
    let mut tree = new_tree();
    let cases = [
        ("null", 1, 3, false),
        ("wide", 300, 70_000, true),
        ("max", 4095, 1_048_575, true),
    ];
    for (name, major, minor, block) in cases {
        let dev = DeviceNumber { major, minor };
        let kind = if block {
            NodeKind::BlockDevice(dev)
        } else {
            NodeKind::CharDevice(dev)
        };
        let id = tree.add(kind, meta(0o660));
        tree.link(Tree::ROOT, name.as_bytes(), id).expect("link");
    }
    let img = write_checked(&tree, Options::default());
    for (name, major, minor, _) in cases {
        let stat = debugfs(&img.path, &format!("stat /{name}"));
        assert!(
            stat.contains(&format!("Device major/minor number: {major:02}:{minor:02}")),
            "{name}: {stat}"
        );
    }
    let mut bad = new_tree();
    let id = bad.add(
        NodeKind::CharDevice(DeviceNumber {
            major: 4096,
            minor: 0,
        }),
        meta(0o600),
    );
    bad.link(Tree::ROOT, b"bad", id).expect("link");
    let dir = tempfile::tempdir().expect("tmp");
    let err = banger_ext4::builder::write_image(&bad, &dir.path().join("x"), Options::default())
        .expect_err("major 4096 does not fit");
    assert!(err.to_string().contains("/bad"), "{err}");
}

#[test]
fn fast_and_slow_symlinks() {
    let mut tree = new_tree();
    for len in [1usize, 58, 59, 60, 61, 200, 4095] {
        // Components of 49 bytes: readers reject components over 255.
        let target: Vec<u8> = (0..len)
            .map(|i| {
                if i % 50 == 49 {
                    b'/'
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect();
        let id = tree.add(NodeKind::Symlink(target), meta(0o777));
        tree.link(Tree::ROOT, format!("l{len}").as_bytes(), id)
            .expect("link");
    }
    let img = write_checked(&tree, Options::default());
    let fast = debugfs(&img.path, "stat /l59");
    assert!(fast.contains("Fast link dest"), "{fast}");
    let slow = debugfs(&img.path, "stat /l60");
    assert!(slow.contains("EXTENTS"), "{slow}");
    let mut bad = new_tree();
    let id = bad.add(NodeKind::Symlink(vec![b'x'; 4096]), meta(0o777));
    bad.link(Tree::ROOT, b"long", id).expect("link");
    let dir = tempfile::tempdir().expect("tmp");
    assert!(
        banger_ext4::builder::write_image(&bad, &dir.path().join("x"), Options::default()).is_err()
    );
}

#[test]
fn three_hundred_hard_links_share_one_inode() {
    let mut tree = new_tree();
    let d = tree
        .ensure_dir(Tree::ROOT, b"links", meta(0o755))
        .expect("dir");
    let target = add_file(&mut tree, Tree::ROOT, "target", b"shared bytes", 0o644);
    for i in 0..299 {
        tree.link(d, format!("link{i:03}").as_bytes(), target)
            .expect("link");
    }
    let img = write_checked(&tree, Options::default());
    let stat = debugfs(&img.path, "stat /links/link123");
    assert!(stat.contains("Links: 300"), "{stat}");
}

#[test]
fn sparse_five_gib_file_is_mostly_holes() {
    const GIB: u64 = 1 << 30;
    let mut tree = new_tree();
    let ranges = vec![
        (0, b"head".to_vec()),
        (2 * GIB + 5, vec![0xAB; 10_000]),
        (5 * GIB - 3, b"end".to_vec()),
    ];
    let source = SparseSource::new(5 * GIB, ranges);
    let id = tree.add(
        NodeKind::File(FileContent::Source(Arc::new(source))),
        meta(0o644),
    );
    tree.link(Tree::ROOT, b"sparse", id).expect("link");
    let img = write_checked(&tree, Options::default());
    let stat = debugfs(&img.path, "stat /sparse");
    assert!(stat.contains("Size: 5368709120"), "{stat}");
    // 1 + 3 + 1 data blocks, no tree blocks.
    assert!(stat.contains("Blockcount: 40"), "{stat}");
    let on_disk = std::fs::metadata(&img.path).expect("stat");
    use std::os::unix::fs::MetadataExt;
    assert!(
        on_disk.blocks() * 512 < 8 << 20,
        "image uses {} bytes",
        on_disk.blocks() * 512
    );
}

#[test]
fn fragmented_file_gets_a_deep_extent_tree() {
    let mut tree = new_tree();
    // 2000 one-block runs separated by holes: more than one tree block of
    // leaves, so the tree has depth 2.
    let ranges: Vec<(u64, Vec<u8>)> = (0..2000u64)
        .map(|i| (i * 2 * 4096, vec![(i % 251 + 1) as u8; 4096]))
        .collect();
    let source = SparseSource::new(4000 * 4096, ranges);
    let id = tree.add(
        NodeKind::File(FileContent::Source(Arc::new(source))),
        meta(0o644),
    );
    tree.link(Tree::ROOT, b"fragmented", id).expect("link");
    let img = write_checked(&tree, Options::default());
    let ex = debugfs(&img.path, "ex /fragmented");
    assert!(
        ex.lines().any(|l| l.trim_start().starts_with("0/ 2")),
        "expected depth 2:\n{}",
        &ex[..ex.len().min(2000)]
    );
}

/// The kernel's `ext4_max_size` with 4 KiB blocks and extents: (2^32 − 1)
/// blocks, i.e. 16 TiB − 4 KiB (fs/ext4/super.c), written out by hand.
const EXT4_MAX_FILE_SIZE: u64 = 17_592_186_040_320;

/// A tree holding one sparse file of `size` bytes whose last 3 bytes are data.
fn tree_with_sparse_file(size: u64) -> Tree {
    let mut tree = new_tree();
    let source = SparseSource::new(size, vec![(size - 3, b"end".to_vec())]);
    let id = tree.add(
        NodeKind::File(FileContent::Source(Arc::new(source))),
        meta(0o644),
    );
    tree.link(Tree::ROOT, b"huge", id).expect("link");
    tree
}

#[test]
fn the_largest_file_ext4_allows_is_written_and_one_byte_more_is_refused() {
    // e2fsck only: reading back 16 TiB of holes would take hours.
    let img = write(
        &tree_with_sparse_file(EXT4_MAX_FILE_SIZE),
        Options::default(),
    );
    banger_testkit::assert_fsck_clean(&img.path);
    let stat = debugfs(&img.path, "stat /huge");
    assert!(stat.contains("Size: 17592186040320"), "{stat}");

    for size in [EXT4_MAX_FILE_SIZE + 1, 1 << 44, 1 << 50, i64::MAX as u64] {
        let dir = tempfile::tempdir().expect("tmp");
        let err = banger_ext4::builder::write_image(
            &tree_with_sparse_file(size),
            &dir.path().join("img"),
            Options::default(),
        )
        .expect_err("larger than ext4 allows");
        match &err {
            banger_ext4::builder::BuildError::Data(
                banger_ext4::builder::DataError::FileTooLarge { size: s },
            ) => assert_eq!(*s, size),
            other => panic!("{size}: unexpected error {other}"),
        }
        assert!(err.to_string().contains(&size.to_string()), "{err}");
    }
}
