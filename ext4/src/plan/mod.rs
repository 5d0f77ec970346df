//! Planning: everything measured about the tree before the geometry is
//! chosen (inode numbers, link counts, each inode's body and the blocks it
//! will need), the geometry itself, and where the fixed metadata goes.

use std::collections::HashMap;

use crate::tree::{FileContent, NodeId, NodeKind, PlacedData, Tree};

pub(crate) mod dirs;
pub mod geometry;
pub(crate) mod inodes;
pub(crate) mod layout;
pub(crate) mod links;
pub(crate) mod numbering;

/// Name of the directory e2fsck reconnects orphans into.
pub(crate) const LOST_FOUND: &[u8] = b"lost+found";

/// lost+found gets 16 KiB so e2fsck can reconnect files without allocating.
pub(crate) const LOST_FOUND_BLOCKS: usize = 4;

/// Where files whose tree content is a source were placed by
/// [`crate::builder::ImageBuilder::finish`]; a map, not a vector per node, since most
/// files arrive already placed.
pub(crate) type SourcePlacements = HashMap<NodeId, PlacedData>;

/// Where a reachable file's data is: in the tree if it was stored while
/// the tree was built, else where `finish` streamed it.
pub(crate) fn placed_of<'a>(
    tree: &'a Tree,
    contents: &'a SourcePlacements,
    node: NodeId,
) -> &'a PlacedData {
    match &tree.node(node).kind {
        NodeKind::File(FileContent::Placed(placed)) => placed,
        _ => contents
            .get(&node)
            .expect("every reachable file's source was placed before planning"),
    }
}
