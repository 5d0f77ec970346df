//! Directory contents as directory blocks, and printable paths for errors.

use crate::dir::{self, DirBlocks, DirContext, DirEntry, HashParams};
use crate::error::BuildError;
use crate::spec::{EXT4_FIRST_INO, EXT4_ROOT_INO};
use crate::tree::{NodeId, NodeKind, Tree};

use super::numbering::InodeMap;
use super::{LOST_FOUND, LOST_FOUND_BLOCKS};

/// Encodes directories: once when planning (to count their blocks) and
/// again when writing, so no directory's bytes are held in between.
pub(crate) struct DirEncoder<'a> {
    pub(crate) tree: &'a Tree,
    pub(crate) inodes: &'a InodeMap,
    pub(crate) hash: HashParams,
    pub(crate) fs_seed: u32,
}

impl DirEncoder<'_> {
    /// The blocks of directory `node` (inode `ino`), or of the lost+found
    /// banger adds when `node` is `None`.
    pub(crate) fn encode(&self, node: Option<NodeId>, ino: u32) -> Result<DirBlocks, BuildError> {
        let tree = self.tree;
        let ino_of = |id: NodeId| self.inodes.ino_of(id);
        let (mut entries, parent): (Vec<DirEntry>, u32) = match node {
            None => (Vec::new(), EXT4_ROOT_INO),
            Some(id) => {
                let entries = tree
                    .dir(id)
                    .expect("only directories are encoded as directories")
                    .iter()
                    .map(|(name, child)| DirEntry {
                        name,
                        inode: ino_of(child),
                        file_type: file_type(&tree.node(child).kind),
                    })
                    .collect();
                let parent = ino_of(tree.parent(id).expect("a reachable node has a parent"));
                (entries, parent)
            }
        };
        if node == Some(Tree::ROOT) && self.inodes.tree_lost_found.is_none() {
            entries.push(DirEntry {
                name: LOST_FOUND,
                inode: EXT4_FIRST_INO,
                file_type: dir::EXT4_FT_DIR,
            });
        }
        let min_blocks = if ino == EXT4_FIRST_INO {
            LOST_FOUND_BLOCKS
        } else {
            1
        };
        let ctx = DirContext {
            dir_inode: ino,
            parent_inode: parent,
            generation: 0,
            fs_seed: self.fs_seed,
            hash: self.hash,
        };
        dir::build_directory(&entries, &ctx, min_blocks).map_err(|source| BuildError::Directory {
            path: node.map_or_else(|| "/lost+found".into(), |id| path_of(tree, id)),
            source,
        })
    }
}

/// Finds a printable path for `id`, for error messages.
pub(crate) fn path_of(tree: &Tree, id: NodeId) -> String {
    fn walk(tree: &Tree, dir: NodeId, target: NodeId, prefix: &mut Vec<u8>) -> bool {
        let Some(d) = tree.dir(dir) else { return false };
        for (name, child) in d.iter() {
            let len = prefix.len();
            prefix.push(b'/');
            prefix.extend_from_slice(name);
            if child == target
                || (tree.node(child).kind.is_dir() && walk(tree, child, target, prefix))
            {
                return true;
            }
            prefix.truncate(len);
        }
        false
    }
    let mut path = Vec::new();
    if id == Tree::ROOT || !walk(tree, Tree::ROOT, id, &mut path) {
        return "/".into();
    }
    String::from_utf8_lossy(&path).into_owned()
}

fn file_type(kind: &NodeKind) -> u8 {
    match kind {
        NodeKind::File(_) => dir::EXT4_FT_REG_FILE,
        NodeKind::Directory(_) => dir::EXT4_FT_DIR,
        NodeKind::Symlink(_) => dir::EXT4_FT_SYMLINK,
        NodeKind::CharDevice(_) => dir::EXT4_FT_CHRDEV,
        NodeKind::BlockDevice(_) => dir::EXT4_FT_BLKDEV,
        NodeKind::Fifo => dir::EXT4_FT_FIFO,
        NodeKind::Socket => dir::EXT4_FT_SOCK,
    }
}
