//! The sizing and determinism rows.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use banger_ext4::builder::BuildError;
use banger_ext4::builder::{write_image, Options};
use banger_ext4::geometry::GeometryError;
use banger_ext4::tree::Tree;
use banger_testkit::skip::Skip;
use banger_testkit::{sample_tree, Tmpfs};
use common::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A tree with one file of `len` non-zero bytes.
fn tree_with_data(len: u64) -> Tree {
    let mut tree = new_tree();
    add_pattern_file(&mut tree, Tree::ROOT, "data", len);
    tree
}

#[test]
fn default_size_has_a_one_gib_floor_and_is_sparse() {
    let img = write_checked(&sample_tree(), Options::default());
    let on_disk = std::fs::metadata(&img.path).expect("stat");
    assert_eq!(on_disk.len(), GIB);
    assert!(
        on_disk.blocks() * 512 < 16 * MIB,
        "{} bytes allocated",
        on_disk.blocks() * 512
    );
    let info = dumpe2fs(&img.path);
    assert_eq!(field(&info, "Inode count"), "65536");
}

#[test]
fn default_size_is_one_and_a_half_times_the_content() {
    let img = write_checked(&tree_with_data(800 * MIB), Options::default());
    let len = std::fs::metadata(&img.path).expect("stat").len();
    // 800 MiB of data plus ~40 MiB of metadata and journal, × 1.5, in whole
    // 128 MiB groups: 1280 MiB.
    assert_eq!(len, 1280 * MIB, "size {len}");
}

#[test]
fn explicit_size_overrides_and_too_small_names_the_need() {
    let tree = tree_with_data(40 * MIB);
    let img = write_checked(
        &tree,
        Options {
            size: Some(300 * MIB),
            ..Options::default()
        },
    );
    assert_eq!(std::fs::metadata(&img.path).expect("stat").len(), 300 * MIB);

    let dir = tempfile::tempdir().expect("tmp");
    let err = write_image(
        &tree,
        &dir.path().join("small"),
        Options {
            size: Some(20 * MIB),
            ..Options::default()
        },
    )
    .expect_err("20 MiB cannot hold 40 MiB");
    match err {
        BuildError::Geometry(GeometryError::TooSmall { requested, needed }) => {
            assert_eq!(requested, 20 * MIB);
            assert!(needed > 40 * MIB, "needed {needed}");
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn inode_count_follows_the_tree() {
    let mut tree = new_tree();
    let d = tree
        .ensure_dir(Tree::ROOT, b"many", meta(0o755))
        .expect("dir");
    for i in 0..100_000 {
        add_file(&mut tree, d, &format!("{i}"), b"", 0o644);
    }
    let img = write_checked(&tree, Options::default());
    let info = dumpe2fs(&img.path);
    let inodes: u64 = field(&info, "Inode count").parse().expect("number");
    assert!(
        inodes >= 150_000,
        "{inodes} inodes leave no headroom for 100 000 files"
    );
}

#[test]
fn same_tree_and_options_give_identical_bytes() {
    let tree = sample_tree();
    let a = write(&tree, Options::default());
    let b = write(&tree, Options::default());
    assert_eq!(
        std::fs::read(&a.path).expect("read"),
        std::fs::read(&b.path).expect("read")
    );
    let other = write(
        &tree,
        Options {
            uuid: [7; 16],
            ..Options::default()
        },
    );
    assert_ne!(
        std::fs::read(&a.path).expect("read"),
        std::fs::read(&other.path).expect("read")
    );
}

/// The largest image file the host filesystem under the temporary directory
/// accepts is the largest size this test can check with e2fsck: on ext4 that
/// is its own 16 TiB − 4 KiB file limit (below banger's 64 TiB, which the
/// test after the next writes on a tmpfs).
#[test]
fn sixteen_tib_minus_one_block_is_e2fsck_clean() {
    const SIZE: u64 = (1 << 44) - 4096;
    let dir = tempfile::tempdir().expect("tmp");
    let probe = std::fs::File::create(dir.path().join("probe")).expect("probe");
    if probe.set_len(SIZE).is_err() {
        eprintln!(
            "SKIPPED sixteen_tib_minus_one_block_is_e2fsck_clean: {} cannot hold a {SIZE}-byte sparse file",
            dir.path().display()
        );
        return;
    }
    drop(probe);
    let img = write(
        &sample_tree(),
        Options {
            size: Some(SIZE),
            ..Options::default()
        },
    );
    banger_testkit::assert_fsck_clean(&img.path);
    let info = dumpe2fs_header(&img.path);
    // 2^32 − 1 blocks in 131072 groups, the last one block short; 2^30
    // inodes (one per 16 KiB), 8192 per group.
    assert_eq!(field(&info, "Block count"), "4294967295");
    assert_eq!(field(&info, "Inode count"), "1073741824");
    assert_eq!(field(&info, "Inodes per group"), "8192");
}

#[test]
fn sizes_past_the_largest_are_refused_before_anything_is_written() {
    for size in [(64u64 << 40) + (128 << 20), 1 << 62, u64::MAX] {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("img");
        let err = write_image(
            &sample_tree(),
            &path,
            Options {
                size: Some(size),
                ..Options::default()
            },
        )
        .expect_err("too large");
        match err {
            BuildError::Geometry(GeometryError::TooLarge { bytes, max }) => {
                assert_eq!(bytes, size);
                assert_eq!(max, 64 << 40);
            }
            other => panic!("{size}: unexpected error {other}"),
        }
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 0);
    }
}

/// A tmpfs of `tmpfs_size` (root needed) holding the image file, if the
/// host has `needed` bytes of memory available for it and e2fsck (tmpfs
/// pages are memory); otherwise the test says why it is skipped.
fn image_on_tmpfs(tmpfs_size: &str, needed: u64, test: &str) -> Option<(Tmpfs, PathBuf)> {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib << 10)
        })
        .unwrap_or(0);
    if available < needed {
        Skip(format!(
            "{test}: {available} bytes of memory available, {needed} needed"
        ))
        .report();
        return None;
    }
    let tmpfs = Tmpfs::mount(tmpfs_size, test)?;
    let path = tmpfs.path().join("image.ext4");
    Some((tmpfs, path))
}

/// The largest size banger accepts, 64 TiB, written on a tmpfs (the
/// host's ext4 cannot hold a file past 16 TiB − 4 KiB) and checked with
/// e2fsck in every run. It is where the inode count first reaches 2^32
/// (one inode per 16 KiB) and must be capped, and 2^34 blocks need the
/// 64bit feature's high words. Measured on 2 cores: the write takes 7 s and
/// puts 4.9 GiB of bitmaps and descriptors on the tmpfs, e2fsck -fn 83 s
/// (up to 190 s on a busy machine) with 1.3 GB of memory.
#[test]
fn sixty_four_tib_on_tmpfs_caps_the_inodes_and_is_e2fsck_clean() {
    const SIZE: u64 = 64 << 40;
    let Some((_tmpfs, path)) = image_on_tmpfs(
        "6g",
        8 << 30,
        "sixty_four_tib_on_tmpfs_caps_the_inodes_and_is_e2fsck_clean",
    ) else {
        return;
    };
    write_image(
        &sample_tree(),
        &path,
        Options {
            size: Some(SIZE),
            ..Options::default()
        },
    )
    .expect("64 TiB image");
    banger_testkit::assert_fsck_clean(&path);
    let info = dumpe2fs_header(&path);
    // 524288 groups of 8176 inodes: (2^32 − 1) / 524288, down to whole
    // inode-table blocks of 16.
    assert_eq!(field(&info, "Inode count"), "4286578688");
    assert_eq!(field(&info, "Inodes per group"), "8176");
    assert_eq!(field(&info, "Block count"), "17179869184");
    assert!(
        field(&info, "Filesystem features")
            .split_whitespace()
            .any(|f| f == "64bit"),
        "{}",
        field(&info, "Filesystem features")
    );
}
