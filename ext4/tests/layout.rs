//! The layout, checksum and journal rows: what `dumpe2fs` and `e2fsck`
//! say about the filesystem as a whole.

mod common;

use banger_ext4::builder::Options;
use banger_testkit::{fsck, sample_tree};
use common::*;

#[test]
fn layout_4k_blocks_flex_bg_sparse_super_64bit() {
    let tree = sample_tree();
    let img = write_checked(&tree, Options::default());
    let info = dumpe2fs(&img.path);
    assert_eq!(field(&info, "Block size"), "4096");
    assert_eq!(field(&info, "Inode size"), "256");
    assert_eq!(field(&info, "Flex block group size"), "16");
    assert_eq!(field(&info, "Blocks per group"), "32768");
    let features: Vec<&str> = field(&info, "Filesystem features")
        .split_whitespace()
        .collect();
    for wanted in [
        "has_journal",
        "ext_attr",
        "dir_index",
        "filetype",
        "extent",
        "64bit",
        "flex_bg",
        "sparse_super",
        "large_file",
        "huge_file",
        "dir_nlink",
        "extra_isize",
        "metadata_csum",
    ] {
        assert!(
            features.contains(&wanted),
            "{wanted} missing from {features:?}"
        );
    }
    assert_eq!(field(&info, "Group descriptor size"), "64");
    // Superblock copies exactly in groups 0, 1 and powers of 3, 5, 7.
    let with_super: Vec<u64> = info
        .lines()
        .filter(|l| l.contains("superblock at"))
        .map(|l| {
            let at = l.split("superblock at ").nth(1).expect("block number");
            let block: u64 = at
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap_or("")
                .parse()
                .expect("number");
            block / 32768
        })
        .collect();
    assert_eq!(with_super, [0, 1, 3, 5, 7]);
}

#[test]
fn checksums_on_every_kind_of_metadata_are_verified() {
    let tree = sample_tree();
    let img = write_checked(&tree, Options::default());
    assert!(dumpe2fs(&img.path).contains("Checksum type:            crc32c"));
    // Each corruption below must be caught by e2fsck: proof the checksums
    // are real and checked, not just present.
    let targets = [
        ("superblock", 1024 + 0x3FC),
        ("group descriptor", 4096 + 0x1E),
    ];
    for (what, offset) in targets {
        let copy = img.dir.path().join(format!("{what}.img"));
        std::fs::copy(&img.path, &copy).expect("copy");
        corrupt(&copy, offset);
        let report = fsck(&copy);
        assert!(
            !report.is_clean(),
            "corrupting the {what} went unnoticed:\n{}",
            report.output
        );
    }
    for path in ["/", "/etc"] {
        let stat = debugfs(&img.path, &format!("stat {path}"));
        let block: u64 = stat
            .lines()
            .skip_while(|l| !l.starts_with("EXTENTS:"))
            .nth(1)
            .and_then(|l| l.split(':').nth(1))
            .and_then(|b| b.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| panic!("no extent for {path}:\n{stat}"));
        let copy = img.dir.path().join("dir.img");
        std::fs::copy(&img.path, &copy).expect("copy");
        corrupt(&copy, block * 4096 + 4096 - 1); // inside the dirent tail checksum
        let report = fsck(&copy);
        assert!(
            report.output.contains("checksum"),
            "a bad directory block checksum in {path} went unnoticed:\n{}",
            report.output
        );
    }
}

#[test]
fn journal_is_empty_valid_and_sized_like_mke2fs() {
    let tree = sample_tree();
    let img = write_checked(&tree, Options::default());
    let info = dumpe2fs(&img.path);
    assert_eq!(field(&info, "Journal inode"), "8");
    assert_eq!(field(&info, "Total journal size"), "32M");
    assert_eq!(field(&info, "Total journal blocks"), "8192"); // mke2fs's size for a 1 GiB filesystem
    assert_eq!(field(&info, "Journal backup"), "inode blocks");
    assert_eq!(field(&info, "Journal start"), "0");
    assert_eq!(field(&info, "Journal sequence"), "0x00000001");
    let logdump = debugfs(&img.path, "logdump");
    assert!(
        logdump.contains("Journal starts at block 0, transaction 1"),
        "{logdump}"
    );
    let stat = debugfs(&img.path, "stat <8>");
    assert!(stat.contains("Mode:  0600"), "{stat}");
}
