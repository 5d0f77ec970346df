//! Inode numbering: which inode each reachable node gets.

use crate::error::BuildError;
use crate::spec::{EXT4_FIRST_INO, EXT4_ROOT_INO};
use crate::tree::{NodeId, Tree};

use super::LOST_FOUND;

/// Inode numbers for reachable nodes: the root is 2, lost+found 11, the
/// rest from 12 in tree order.
pub(crate) struct InodeMap {
    /// Inode number by node index; 0 for unreachable nodes.
    by_node: Vec<u32>,
    /// Reachable nodes in tree order.
    pub(crate) order: Vec<NodeId>,
    /// The highest inode number used.
    pub(crate) max_ino: u32,
    /// Whether the tree has its own lost+found directory.
    pub(crate) tree_lost_found: Option<NodeId>,
    /// Directory inode numbers, sorted (for per-group counts).
    dir_inos: Vec<u32>,
}

impl InodeMap {
    /// Numbers the reachable nodes of `tree`.
    pub(crate) fn assign(tree: &Tree) -> Result<Self, BuildError> {
        let order = tree.reachable();
        // A tree's own /lost+found keeps inode 11, whatever it is.
        let tree_lost_found = tree.lookup(Tree::ROOT, LOST_FOUND);
        let mut by_node = vec![0u32; tree.node_count()];
        let mut next: u64 = u64::from(EXT4_FIRST_INO) + 1;
        let mut dir_inos = vec![EXT4_ROOT_INO];
        if tree_lost_found.is_none_or(|id| tree.node(id).kind.is_dir()) {
            dir_inos.push(EXT4_FIRST_INO);
        }
        for &id in &order {
            let ino = if id == Tree::ROOT {
                EXT4_ROOT_INO
            } else if Some(id) == tree_lost_found {
                EXT4_FIRST_INO
            } else {
                let ino =
                    u32::try_from(next).map_err(|_| BuildError::TooManyInodes(order.len()))?;
                next += 1;
                if tree.node(id).kind.is_dir() {
                    dir_inos.push(ino);
                }
                ino
            };
            by_node[id.index()] = ino;
        }
        Ok(Self {
            by_node,
            order,
            max_ino: (next - 1) as u32,
            tree_lost_found,
            dir_inos,
        })
    }

    /// The inode number of reachable node `id`.
    pub(crate) fn ino_of(&self, id: NodeId) -> u32 {
        let ino = self.by_node[id.index()];
        assert_ne!(
            ino,
            0,
            "node {} is unreachable but was asked for its inode",
            id.index()
        );
        ino
    }

    /// Inodes in use in `group` (reserved ones count as used).
    pub(crate) fn used_in_group(&self, group: u64, ipg: u64) -> u32 {
        (u64::from(self.max_ino).saturating_sub(group * ipg)).min(ipg) as u32
    }

    /// Directories in each group.
    pub(crate) fn dirs_per_group(&self, groups: u64, ipg: u64) -> Vec<u32> {
        let mut counts = vec![0u32; groups as usize];
        for &ino in &self.dir_inos {
            counts[(u64::from(ino - 1) / ipg) as usize] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{FileContent, Metadata, NodeKind, Timestamp};

    fn meta() -> Metadata {
        Metadata::new(0o755, Timestamp::from_secs(1_700_000_000))
    }

    fn file(tree: &mut Tree, dir: NodeId, name: &[u8]) -> NodeId {
        let id = tree.add(NodeKind::File(FileContent::empty()), meta());
        tree.link(dir, name, id).expect("valid name");
        id
    }

    #[test]
    fn the_root_is_2_and_the_rest_count_from_12_depth_first_in_name_order() {
        let mut tree = Tree::new(meta());
        let b = tree.ensure_dir(Tree::ROOT, b"b", meta()).expect("dir");
        let y = file(&mut tree, b, b"y");
        let a = file(&mut tree, Tree::ROOT, b"a");
        let c = file(&mut tree, Tree::ROOT, b"c");
        tree.link(b, b"a-again", a).expect("hard link");
        let orphan = tree.add(NodeKind::Fifo, meta());

        let map = InodeMap::assign(&tree).expect("numbered");
        let inos: Vec<u32> = [Tree::ROOT, a, b, y, c]
            .iter()
            .map(|&id| map.ino_of(id))
            .collect();
        assert_eq!(inos, [2, 12, 13, 14, 15]);
        assert_eq!(map.max_ino, 15);
        assert_eq!(map.tree_lost_found, None);
        assert_eq!(map.by_node[orphan.index()], 0, "unreachable nodes get none");
        // Root, the lost+found banger adds, and b.
        assert_eq!(map.dirs_per_group(1, 8192), [3]);
        assert_eq!(map.dirs_per_group(2, 12), [2, 1]);
        assert_eq!(map.used_in_group(0, 12), 12);
        assert_eq!(map.used_in_group(1, 12), 3);
        assert_eq!(map.used_in_group(2, 12), 0);
    }

    #[test]
    fn a_trees_own_lost_and_found_keeps_inode_11_whatever_it_is() {
        let mut tree = Tree::new(meta());
        let lf = file(&mut tree, Tree::ROOT, b"lost+found");
        let z = file(&mut tree, Tree::ROOT, b"z");
        let map = InodeMap::assign(&tree).expect("numbered");
        assert_eq!(map.tree_lost_found, Some(lf));
        assert_eq!((map.ino_of(lf), map.ino_of(z)), (11, 12));
        // A file named lost+found is not a directory.
        assert_eq!(map.dirs_per_group(1, 8192), [1]);
    }
}
