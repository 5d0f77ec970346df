//! A real root filesystem nobody here wrote: a debootstrap'd Debian
//! bookworm, read from disk into a tree and written as an image.

mod common;

use banger_ext4::builder::Options;
use banger_testkit::debootstrap::debootstrap_tree;
use banger_testkit::materialize::tree_from_dir;

#[test]
fn debootstrapped_debian_round_trips() {
    let Some(root) = debootstrap_tree() else {
        return; // debootstrap_tree reported the skip (and fails under CI).
    };
    let tree = tree_from_dir(&root).expect("read the Debian tree");
    let img = common::write_checked(&tree, Options::default());
    let su = common::debugfs(&img.path, "stat /usr/bin/su");
    assert!(su.contains("Mode:  04755"), "{su}");
    let shadow = common::debugfs(&img.path, "stat /etc/shadow");
    assert!(shadow.contains("Mode:  0640"), "{shadow}");
}
