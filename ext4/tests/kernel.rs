//! The kernel as an oracle: loop mounts, read-only and read-write.

mod common;

use banger_ext4::builder::Options;
use banger_testkit::{
    assert_fsck_clean, assert_mounted_matches_tree, loop_mount_ro, loop_mount_rw, sample_tree,
};

#[test]
fn kernel_mounts_read_only_and_sees_the_tree() {
    let tree = sample_tree();
    let img = common::write_checked(&tree, Options::default());
    let mount = match loop_mount_ro(&img.path) {
        Ok(m) => m,
        Err(skip) => {
            eprintln!(
                "SKIPPED kernel_mounts_read_only_and_sees_the_tree: {}",
                skip.0
            );
            return;
        }
    };
    assert_mounted_matches_tree(mount.path(), &tree);
}

#[test]
fn kernel_writes_through_a_read_write_mount_and_fsck_stays_clean() {
    let tree = sample_tree();
    let img = common::write_checked(&tree, Options::default());
    {
        let mount = match loop_mount_rw(&img.path) {
            Ok(m) => m,
            Err(skip) => {
                eprintln!(
                    "SKIPPED kernel_writes_through_a_read_write_mount: {}",
                    skip.0
                );
                return;
            }
        };
        let root = mount.path();
        std::fs::write(root.join("written-by-kernel"), vec![42u8; 1 << 20]).expect("write");
        std::fs::create_dir(root.join("new-dir")).expect("mkdir");
        for i in 0..200 {
            std::fs::write(root.join("new-dir").join(format!("f{i}")), b"x").expect("write");
        }
        std::fs::remove_file(root.join("new-dir/f7")).expect("unlink");
    }
    assert_fsck_clean(&img.path);
}
