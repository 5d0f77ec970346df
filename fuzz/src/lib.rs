//! Helpers shared by the fuzz targets.

use std::io;
use std::ops::Range;

use banger::flatten::{FlattenError, Limits};
use banger_ext4::tree::{
    validate_name, ContentStore, FileContent, LendingRead, MemoryStore, Metadata, NodeKind,
    Timestamp, Tree,
};

/// Largest file the fuzz store keeps; bigger ones are refused with an error
/// so that a header claiming terabytes cannot exhaust memory.
pub const MAX_FILE: u64 = 1 << 20;

/// A [`MemoryStore`] that refuses files over [`MAX_FILE`] bytes.
#[derive(Debug, Default)]
pub struct BoundedStore;

impl ContentStore for BoundedStore {
    type Error = io::Error;

    fn store(
        &mut self,
        reader: &mut dyn LendingRead,
        size: u64,
        data_ranges: &[Range<u64>],
    ) -> io::Result<FileContent> {
        if size > MAX_FILE {
            return Err(io::Error::other("file too large for the fuzz store"));
        }
        MemoryStore.store(reader, size, data_ranges)
    }
}

/// Small limits so that one input cannot run for long.
pub fn limits() -> Limits {
    Limits {
        max_entries: 4096,
        max_total_bytes: 4 * MAX_FILE,
        ..Limits::default()
    }
}

/// Metadata of the root a flattener starts with.
pub fn root_meta() -> Metadata {
    Metadata::new(0o755, Timestamp::from_secs(0))
}

/// Flattens `layers` and checks the result's invariants; errors are fine.
pub fn flatten_and_check(layers: &[&[u8]]) -> Result<Tree, FlattenError> {
    let mut store = BoundedStore;
    let layers = layers
        .iter()
        .enumerate()
        .map(|(i, bytes)| (format!("layer{i}"), *bytes));
    let tree = banger::flatten::flatten_layers(&mut store, limits(), root_meta(), layers)?;
    check_tree(&tree);
    Ok(tree)
}

/// Panics unless every reachable entry has a valid name that is not a
/// whiteout, every directory's parent link points back at the directory
/// holding it, and every file's size matches its contents.
pub fn check_tree(tree: &Tree) {
    assert!(
        tree.node(Tree::ROOT).kind.is_dir(),
        "root is not a directory"
    );
    for id in tree.reachable() {
        let Some(dir) = tree.dir(id) else { continue };
        for (name, child) in dir.iter() {
            assert!(validate_name(name).is_ok(), "invalid name {name:?}");
            assert!(
                !name.starts_with(b".wh."),
                "whiteout {name:?} reached the tree"
            );
            assert_ne!(child, Tree::ROOT, "the root is linked as {name:?}");
            if tree.node(child).kind.is_dir() {
                assert_eq!(tree.parent(child), Some(id), "parent of {name:?}");
            }
            if let NodeKind::File(FileContent::Source(source)) = &tree.node(child).kind {
                let mut last = 0;
                for range in source.data_ranges() {
                    assert!(
                        range.start >= last
                            && range.start <= range.end
                            && range.end <= source.len(),
                        "bad data ranges for {name:?}"
                    );
                    last = range.end;
                }
            }
        }
    }
}
