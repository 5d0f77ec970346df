//! The in-memory filesystem tree that the formatter writes.
//!
//! The tree keeps what a tar header says about each entry natively: numeric
//! uid/gid, the 12 permission bits (setuid, setgid and sticky included), times
//! with nanoseconds and raw extended attributes. Layers and agent injection
//! edit it; ownership and layout are only decided when the image is written.
//!
//! Nodes live in an arena and directories map names to [`NodeId`]s, so a hard
//! link is simply a second directory entry naming the same node. Nodes that
//! are no longer reachable from the root are ignored by the writer.

mod content;
mod lend;
mod meta;
mod node;
mod resolve;
mod store;

pub use content::{
    ContentSource, ContentStore, FileContent, MemorySource, MemoryStore, PlacedData, PlacedExtent,
};
pub use lend::{Copying, LendingRead, Lent};
pub use meta::{DeviceNumber, Metadata, Timestamp, Xattrs};
pub use node::{Directory, Node, NodeKind};
pub use resolve::{ResolveError, ResolvedPath, MAX_SYMLINK_FOLLOWS};
use store::NodeStore;

/// Index of a node in a [`Tree`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(u32);

impl NodeId {
    /// The arena index of this node.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Why an edit of the tree was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TreeError {
    /// The node is not a directory.
    #[error("not a directory")]
    NotADirectory,
    /// The name is empty, `.`, `..`, contains `/` or NUL, or exceeds 255 bytes.
    #[error("invalid file name {0:?}")]
    InvalidName(String),
    /// A directory may have only one parent.
    #[error("a directory cannot be linked twice")]
    DirectoryLinkedTwice,
    /// The root cannot be linked anywhere.
    #[error("the root directory cannot be linked")]
    RootLinked,
}

/// Longest file name ext4 stores.
pub const MAX_NAME_LEN: usize = 255;

/// An in-memory filesystem tree.
#[derive(Clone, Debug)]
pub struct Tree {
    nodes: NodeStore,
    /// Parent of each directory node (the root is its own parent). `None`
    /// for non-directories and detached directories.
    parents: Vec<Option<NodeId>>,
}

impl Tree {
    /// The root directory's id.
    pub const ROOT: NodeId = NodeId(0);

    /// A tree holding only a root directory with `root_meta`.
    pub fn new(root_meta: Metadata) -> Self {
        Self {
            nodes: NodeStore::from_root(Node {
                meta: root_meta,
                kind: NodeKind::Directory(Directory::default()),
            }),
            parents: vec![Some(Self::ROOT)],
        }
    }

    /// The root directory's id.
    pub fn root(&self) -> NodeId {
        Self::ROOT
    }

    /// Number of nodes in the arena, unreachable ones included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The node with `id`.
    pub fn node(&self, id: NodeId) -> &Node {
        self.nodes.get(id.index())
    }

    /// The node with `id`, mutably.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.nodes.get_mut(id.index())
    }

    /// Adds a node that is not yet linked into any directory.
    pub fn add(&mut self, kind: NodeKind, meta: Metadata) -> NodeId {
        let id = NodeId(u32::try_from(self.nodes.len()).expect("more than 2^32 nodes"));
        self.nodes.push(Node { meta, kind });
        self.parents.push(None);
        id
    }

    /// The directory payload of `id`, if it is a directory.
    pub fn dir(&self, id: NodeId) -> Option<&Directory> {
        match &self.node(id).kind {
            NodeKind::Directory(dir) => Some(dir),
            _ => None,
        }
    }

    /// The parent of directory `id` (the root is its own parent).
    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        self.parents[id.index()]
    }

    /// Looks `name` up in directory `dir`.
    pub fn lookup(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        self.dir(dir)?.get(name)
    }

    /// Links `child` into `dir` as `name`, replacing (and returning) any node
    /// that had that name. A directory can be linked only once.
    pub fn link(
        &mut self,
        dir: NodeId,
        name: &[u8],
        child: NodeId,
    ) -> Result<Option<NodeId>, TreeError> {
        validate_name(name)?;
        if child == Self::ROOT {
            return Err(TreeError::RootLinked);
        }
        if !self.node(dir).kind.is_dir() {
            return Err(TreeError::NotADirectory);
        }
        let child_is_dir = self.node(child).kind.is_dir();
        if child_is_dir {
            match self.parents[child.index()] {
                Some(p) if self.lookup(p, name) == Some(child) && p == dir => {}
                Some(_) => return Err(TreeError::DirectoryLinkedTwice),
                None => {}
            }
        }
        let previous = match &mut self.nodes.get_mut(dir.index()).kind {
            NodeKind::Directory(d) => d.entries.insert(name.to_vec(), child),
            _ => unreachable!("checked above"),
        };
        if child_is_dir {
            self.parents[child.index()] = Some(dir);
        }
        if let Some(old) = previous {
            if old != child && self.node(old).kind.is_dir() {
                self.parents[old.index()] = None;
            }
        }
        Ok(previous.filter(|old| *old != child))
    }

    /// Removes `name` from directory `dir`, returning the node it named.
    pub fn unlink(&mut self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        let removed = match &mut self.nodes.get_mut(dir.index()).kind {
            NodeKind::Directory(d) => d.entries.remove(name),
            _ => None,
        }?;
        if self.node(removed).kind.is_dir() {
            self.parents[removed.index()] = None;
        }
        Some(removed)
    }

    /// Removes every entry of directory `dir` (an opaque whiteout).
    pub fn clear_dir(&mut self, dir: NodeId) {
        let removed: Vec<NodeId> = match &mut self.nodes.get_mut(dir.index()).kind {
            NodeKind::Directory(d) => std::mem::take(&mut d.entries).into_values().collect(),
            _ => return,
        };
        for id in removed {
            if self.node(id).kind.is_dir() {
                self.parents[id.index()] = None;
            }
        }
    }

    /// Creates (or reuses) the directory `name` inside `dir` with `meta`; an
    /// existing non-directory under that name is replaced.
    pub fn ensure_dir(
        &mut self,
        dir: NodeId,
        name: &[u8],
        meta: Metadata,
    ) -> Result<NodeId, TreeError> {
        if let Some(existing) = self.lookup(dir, name) {
            if self.node(existing).kind.is_dir() {
                return Ok(existing);
            }
        }
        let id = self.add(NodeKind::Directory(Directory::default()), meta);
        self.link(dir, name, id)?;
        Ok(id)
    }

    /// Looks up a `/`-separated path from the root without following
    /// symlinks. Empty components and `.` are skipped.
    pub fn lookup_path(&self, path: &[u8]) -> Option<NodeId> {
        split_path(path).try_fold(Self::ROOT, |dir, name| self.lookup(dir, name))
    }

    /// Visits every node reachable from the root exactly once, parents before
    /// children, in name order.
    pub fn reachable(&self) -> Vec<NodeId> {
        let mut seen = vec![false; self.nodes.len()];
        let mut order = Vec::new();
        let mut stack = vec![Self::ROOT];
        seen[0] = true;
        while let Some(id) = stack.pop() {
            order.push(id);
            if let Some(dir) = self.dir(id) {
                // Reverse so children pop in name order.
                for (_, child) in dir.iter().rev() {
                    if !seen[child.index()] {
                        seen[child.index()] = true;
                        stack.push(child);
                    }
                }
            }
        }
        order
    }
}

/// The components of a `/`-separated path, empty ones and `.` dropped.
fn split_path(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// Checks that `name` is a valid single path component for ext4.
pub fn validate_name(name: &[u8]) -> Result<(), TreeError> {
    if name.is_empty()
        || name == b"."
        || name == b".."
        || name.len() > MAX_NAME_LEN
        || name.iter().any(|&b| b == b'/' || b == 0)
    {
        return Err(TreeError::InvalidName(
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Metadata {
        Metadata::new(0o755, Timestamp::from_secs(1))
    }

    #[test]
    fn hard_links_share_a_node_and_directories_cannot() {
        let mut tree = Tree::new(meta());
        let file = tree.add(
            NodeKind::File(FileContent::from_bytes(b"x".to_vec())),
            meta(),
        );
        tree.link(Tree::ROOT, b"a", file).unwrap();
        tree.link(Tree::ROOT, b"b", file).unwrap();
        assert_eq!(tree.lookup_path(b"/a"), tree.lookup_path(b"b"));
        let dir = tree.ensure_dir(Tree::ROOT, b"d", meta()).unwrap();
        assert_eq!(
            tree.link(Tree::ROOT, b"e", dir),
            Err(TreeError::DirectoryLinkedTwice)
        );
        assert_eq!(tree.parent(dir), Some(Tree::ROOT));
    }

    #[test]
    fn names_are_validated() {
        let mut tree = Tree::new(meta());
        let f = tree.add(NodeKind::Fifo, meta());
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b", &[b'x'; 256]] {
            assert!(tree.link(Tree::ROOT, bad, f).is_err(), "{bad:?}");
        }
        assert!(tree.link(Tree::ROOT, &[0xff, 0xfe], f).is_ok());
    }

    #[test]
    fn reachable_skips_unlinked_nodes() {
        let mut tree = Tree::new(meta());
        let d = tree.ensure_dir(Tree::ROOT, b"d", meta()).unwrap();
        let f = tree.add(NodeKind::Fifo, meta());
        tree.link(d, b"f", f).unwrap();
        assert_eq!(tree.reachable(), vec![Tree::ROOT, d, f]);
        tree.unlink(Tree::ROOT, b"d");
        assert_eq!(tree.reachable(), vec![Tree::ROOT]);
    }

    #[test]
    fn resolution_follows_symlinks_inside_the_root() {
        let mut tree = Tree::new(meta());
        let etc = tree.ensure_dir(Tree::ROOT, b"etc", meta()).unwrap();
        let l = tree.add(NodeKind::Symlink(b"/etc".to_vec()), meta());
        tree.link(Tree::ROOT, b"l", l).unwrap();
        let up = tree.add(NodeKind::Symlink(b"../../..".to_vec()), meta());
        tree.link(etc, b"up", up).unwrap();
        let r = tree.resolve_parent(b"l/passwd", None).unwrap();
        assert_eq!((r.parent, r.name.as_slice()), (etc, &b"passwd"[..]));
        let r = tree.resolve_parent(b"/etc/up/../x", None).unwrap();
        assert_eq!(r.parent, Tree::ROOT);
        let r = tree.resolve_parent(b"../../x", None).unwrap();
        assert_eq!(r.parent, Tree::ROOT);
        let r = tree.resolve_parent(b"new/dir/f", Some(&meta())).unwrap();
        assert_eq!(tree.lookup_path(b"new/dir"), Some(r.parent));
        assert!(matches!(
            tree.resolve_parent(b"gone/f", None),
            Err(ResolveError::Missing(_))
        ));
        let lp = tree.add(NodeKind::Symlink(b"loop".to_vec()), meta());
        tree.link(Tree::ROOT, b"loop", lp).unwrap();
        assert!(matches!(
            tree.resolve_parent(b"loop/x", None),
            Err(ResolveError::SymlinkLoop(_))
        ));
        assert_eq!(tree.resolve_parent(b"/", None), Err(ResolveError::Root));
    }
}
