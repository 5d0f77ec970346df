//! The directory row: linear small directories, htrees past one block,
//! lost+found.

mod common;

use banger_ext4::builder::Options;
use banger_ext4::tree::Tree;
use common::*;

#[test]
fn ten_thousand_entries_make_an_htree() {
    let mut tree = new_tree();
    let big = tree
        .ensure_dir(Tree::ROOT, b"big", meta(0o755))
        .expect("dir");
    for i in 0..10_000 {
        add_file(
            &mut tree,
            big,
            &format!("entry-{i:05}-{}", "x".repeat(i % 40)),
            b"",
            0o644,
        );
    }
    let small = tree
        .ensure_dir(Tree::ROOT, b"small", meta(0o755))
        .expect("dir");
    add_file(&mut tree, small, "one", b"1", 0o644);
    let img = write_checked(&tree, Options::default());
    let htree = debugfs(&img.path, "htree /big");
    assert!(htree.contains("Hash Version: 1"), "{htree}");
    let stat = debugfs(&img.path, "stat /big");
    assert!(
        stat.contains("Flags: 0x81000"),
        "INDEX and EXTENTS flags expected:\n{stat}"
    );
    let small_stat = debugfs(&img.path, "stat /small");
    assert!(
        small_stat.contains("Flags: 0x80000"),
        "a one-block directory stays linear:\n{small_stat}"
    );
}

#[test]
fn deep_htree_with_an_index_level() {
    let mut tree = new_tree();
    let big = tree
        .ensure_dir(Tree::ROOT, b"huge", meta(0o755))
        .expect("dir");
    // Long names push the leaf count past the root's 507 slots.
    for i in 0..60_000 {
        add_file(
            &mut tree,
            big,
            &format!("{i:06}-{}", "n".repeat(40)),
            b"",
            0o644,
        );
    }
    let img = write_checked(&tree, Options::default());
    let htree = debugfs(&img.path, "htree /huge");
    assert!(
        htree.contains("Indirect levels: 1"),
        "{}",
        &htree[..htree.len().min(1000)]
    );
}

#[test]
fn lost_and_found_exists_with_sixteen_kib() {
    let tree = new_tree();
    let img = write_checked(&tree, Options::default());
    let stat = debugfs(&img.path, "stat /lost+found");
    assert!(stat.contains("Size: 16384"), "{stat}");
    assert!(stat.contains("Mode:  0700"), "{stat}");
}

#[test]
fn dir_nlink_past_65000_subdirectories() {
    let mut tree = new_tree();
    let parent = tree.ensure_dir(Tree::ROOT, b"p", meta(0o755)).expect("dir");
    for i in 0..65_010 {
        tree.ensure_dir(parent, format!("{i}").as_bytes(), meta(0o755))
            .expect("dir");
    }
    let img = write_checked(&tree, Options::default());
    let stat = debugfs(&img.path, "stat /p");
    assert!(
        stat.contains("Links: 1"),
        "dir_nlink stores 1 past 65000:\n{stat}"
    );
}
