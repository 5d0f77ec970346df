//! OCI whiteouts: `.wh.NAME` hides NAME from lower layers and
//! `.wh..wh..opq` hides every lower-layer child of its directory.
//!
//! A whiteout only ever hides what *lower* layers made: entries the current
//! layer adds survive it whichever comes first in the tar (as umoci and
//! containerd do). So the layer being applied records what it added: every
//! node it created (arena indices at or past `first_new`) and every
//! directory entry it pointed at an older node (hard links, directory
//! entries merged into an existing directory).

use std::collections::HashSet;

use banger_ext4::tree::{NodeId, Tree};

use super::error::EntryError;

/// Prefix of a whiteout file name.
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of AUFS metadata entries, which are not whiteouts.
pub(crate) const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// Name of the opaque-directory marker.
pub(crate) const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";

/// What a path's final component means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Marker<'a> {
    /// An ordinary name.
    None,
    /// `.wh.NAME`: hide NAME.
    Whiteout(&'a [u8]),
    /// `.wh..wh..opq`: hide the directory's lower children.
    Opaque,
    /// Another `.wh..wh.*` AUFS metadata entry: skipped.
    AufsMeta,
}

/// Classifies a final path component.
pub(crate) fn classify(name: &[u8]) -> Result<Marker<'_>, EntryError> {
    if name == WHITEOUT_OPAQUE {
        return Ok(Marker::Opaque);
    }
    if name.starts_with(WHITEOUT_META_PREFIX) {
        return Ok(Marker::AufsMeta);
    }
    match name.strip_prefix(WHITEOUT_PREFIX) {
        None => Ok(Marker::None),
        Some(b"" | b"." | b"..") => Err(EntryError::InvalidWhiteout),
        Some(target) => Ok(Marker::Whiteout(target)),
    }
}

/// What the layer being applied has added so far.
#[derive(Debug)]
pub(crate) struct LayerState {
    /// Nodes with an index at or past this were created by this layer.
    first_new: usize,
    /// Directory entries this layer pointed at older nodes.
    touched: HashSet<(NodeId, Vec<u8>)>,
}

impl LayerState {
    /// State for a layer about to be applied to `tree`.
    pub(crate) fn new(tree: &Tree) -> Self {
        Self {
            first_new: tree.node_count(),
            touched: HashSet::new(),
        }
    }

    /// Whether this layer created node `id`.
    pub(crate) fn is_new(&self, id: NodeId) -> bool {
        id.index() >= self.first_new
    }

    /// Records that this layer wrote the entry `name` of `dir`.
    pub(crate) fn touch(&mut self, dir: NodeId, name: &[u8], child: NodeId) {
        if !self.is_new(child) {
            self.touched.insert((dir, name.to_vec()));
        }
    }

    fn added(&self, dir: NodeId, name: &[u8], child: NodeId) -> bool {
        // Avoid allocating a key for the common case of a new node.
        self.is_new(child) || self.touched.contains(&(dir, name.to_vec()))
    }
}

/// Hides the entry `name` of `dir` as far as lower layers made it: a lower
/// entry goes away, except that a lower directory holding something this
/// layer added stays, emptied of everything else.
pub(crate) fn whiteout(tree: &mut Tree, layer: &LayerState, dir: NodeId, name: &[u8]) {
    if let Some(child) = tree.lookup(dir, name) {
        hide_lower(tree, layer, vec![(dir, name.to_vec(), child)]);
    }
}

/// Hides every lower-layer child of `dir`.
pub(crate) fn make_opaque(tree: &mut Tree, layer: &LayerState, dir: NodeId) {
    let children = match tree.dir(dir) {
        Some(d) => d
            .iter()
            .map(|(name, id)| (dir, name.to_vec(), id))
            .collect(),
        None => return,
    };
    hide_lower(tree, layer, children);
}

/// Walks the given entries and, below them, every directory a lower layer
/// made; then, children before parents, unlinks each entry that neither
/// this layer added nor holds something this layer added. Iterative, so a
/// deep tree cannot overflow the stack.
fn hide_lower(tree: &mut Tree, layer: &LayerState, roots: Vec<(NodeId, Vec<u8>, NodeId)>) {
    let mut order = roots;
    let mut i = 0;
    while i < order.len() {
        let node = order[i].2;
        // A directory this layer created holds only this layer's entries.
        if !layer.is_new(node) {
            if let Some(d) = tree.dir(node) {
                order.extend(d.iter().map(|(name, id)| (node, name.to_vec(), id)));
            }
        }
        i += 1;
    }
    let mut keeps_something: HashSet<NodeId> = HashSet::new();
    for (dir, name, child) in order.into_iter().rev() {
        if layer.added(dir, &name, child) || keeps_something.contains(&child) {
            keeps_something.insert(dir);
        } else {
            tree.unlink(dir, &name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_classified() {
        assert_eq!(classify(b"a").unwrap(), Marker::None);
        assert_eq!(classify(b".wh.a").unwrap(), Marker::Whiteout(b"a"));
        assert_eq!(classify(b".wh..wh..opq").unwrap(), Marker::Opaque);
        assert_eq!(classify(b".wh..wh.plnk").unwrap(), Marker::AufsMeta);
        for bad in [&b".wh."[..], b".wh..", b".wh..."] {
            assert!(classify(bad).is_err());
        }
    }
}
