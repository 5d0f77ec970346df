//! Test oracles shared by every banger test.
//!
//! An image the formatter writes is judged by tools nobody on this project
//! wrote: `e2fsck -fn` ([`e2fsck`]), the `ext4-view` reader and `debugfs`
//! ([`readback`]), and the kernel itself through a loop mount ([`mount`]).
//! [`trees`] generates random trees for property tests and [`materialize()`]
//! writes a tree to a real directory so `mkfs.ext4 -d` can build reference
//! images from the same input.
//!
//! e2fsprogs is a test oracle only; the product never runs it.

pub mod acl;
pub mod content;
pub mod debootstrap;
pub mod debugfs;
pub mod e2fsck;
mod expect;
pub mod materialize;
pub mod mount;
pub mod readback;
pub mod reference;
pub mod skip;
pub mod trees;

pub use content::{ContentDigest, SparseSource};
pub use e2fsck::{assert_fsck_clean, fsck, FsckReport};
pub use materialize::materialize;
pub use mount::{assert_mounted_matches_tree, loop_mount_ro, loop_mount_rw, MountGuard, Tmpfs};
pub use readback::{assert_image_matches_tree, image_mismatches, CompareOptions, PlacedContent};
pub use skip::Skip;
pub use trees::{arb_tree, sample_tree};
