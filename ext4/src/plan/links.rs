//! Link counts as ext4 stores them.

use crate::tree::Tree;

use super::numbering::InodeMap;

/// Each reachable node's link count, by node index: its names for a
/// non-directory; 2 plus its subdirectories for a directory. The root gains
/// one for a lost+found banger adds. Counts are `u32`: a tree has fewer than
/// 2^32 nodes, so none can overflow.
pub(crate) fn link_counts(tree: &Tree, inodes: &InodeMap) -> Vec<u32> {
    let mut links = vec![0u32; tree.node_count()];
    for &id in &inodes.order {
        if let Some(d) = tree.dir(id) {
            links[id.index()] += 2;
            for (_, child) in d.iter() {
                if tree.node(child).kind.is_dir() {
                    links[id.index()] += 1;
                } else {
                    links[child.index()] += 1;
                }
            }
        }
    }
    if inodes.tree_lost_found.is_none() {
        links[Tree::ROOT.index()] += 1;
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{FileContent, Metadata, NodeKind, Timestamp};

    fn meta() -> Metadata {
        Metadata::new(0o755, Timestamp::from_secs(1_700_000_000))
    }

    #[test]
    fn directories_count_their_subdirectories_and_files_their_names() {
        let mut tree = Tree::new(meta());
        let a = tree.ensure_dir(Tree::ROOT, b"a", meta()).expect("dir");
        let b = tree.ensure_dir(a, b"b", meta()).expect("dir");
        let f = tree.add(NodeKind::File(FileContent::empty()), meta());
        for (dir, name) in [(Tree::ROOT, &b"f"[..]), (a, b"f"), (b, b"f")] {
            tree.link(dir, name, f).expect("link");
        }
        let inodes = InodeMap::assign(&tree).expect("numbered");
        let links = link_counts(&tree, &inodes);
        // The root: 2, a, and the lost+found banger adds.
        assert_eq!(links[Tree::ROOT.index()], 4);
        assert_eq!(links[a.index()], 3);
        assert_eq!(links[b.index()], 2);
        assert_eq!(links[f.index()], 3);
    }

    #[test]
    fn a_trees_own_lost_and_found_adds_no_link_of_its_own() {
        let mut tree = Tree::new(meta());
        tree.ensure_dir(Tree::ROOT, b"lost+found", meta())
            .expect("dir");
        let inodes = InodeMap::assign(&tree).expect("numbered");
        assert_eq!(link_counts(&tree, &inodes)[Tree::ROOT.index()], 3);
    }
}
