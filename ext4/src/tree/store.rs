//! The node arena.

use super::Node;

/// Nodes in fixed-size chunks. A `Vec` doubles as it grows: a tree of
/// 300 000 nodes sat in room for 524 288 (over 70 MB at 136 bytes a node)
/// and every doubling copied all of them; chunks cost at most one chunk of
/// slack and never move a node.
#[derive(Clone, Debug)]
pub(super) struct NodeStore {
    chunks: Vec<Vec<Node>>,
    len: usize,
}

impl NodeStore {
    /// Nodes per chunk (about 550 KiB).
    const CHUNK: usize = 4096;

    pub(super) fn from_root(root: Node) -> Self {
        let mut store = Self {
            chunks: Vec::new(),
            len: 0,
        };
        store.push(root);
        store
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn push(&mut self, node: Node) {
        if self.len.is_multiple_of(Self::CHUNK) {
            self.chunks.push(Vec::with_capacity(Self::CHUNK));
        }
        let chunk = self.chunks.last_mut().expect("a chunk was just ensured");
        chunk.push(node);
        self.len += 1;
    }

    pub(super) fn get(&self, index: usize) -> &Node {
        &self.chunks[index / Self::CHUNK][index % Self::CHUNK]
    }

    pub(super) fn get_mut(&mut self, index: usize) -> &mut Node {
        &mut self.chunks[index / Self::CHUNK][index % Self::CHUNK]
    }
}
