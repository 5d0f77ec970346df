//! Random trees: every one must pass e2fsck and read back exactly.

mod common;

use banger_ext4::builder::Options;
use banger_testkit::arb_tree;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_pass_fsck_and_read_back(tree in arb_tree()) {
        common::write_checked(&tree, Options { size: Some(64 << 20), ..Options::default() });
    }
}
