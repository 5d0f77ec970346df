//! The image's own files as the guest will see them, read from the
//! in-memory tree while the image is being written: what decides the init
//! system, and what first boot will find in `/etc/os-release`.

use banger_ext4::builder::ImageBuilder;
use banger_ext4::tree::{NodeKind, Tree};

use crate::initsys::{EntryKind, ImageFiles};

/// Reads through the tree; file contents already streamed into the image
/// are read back from it through the builder.
pub struct TreeFiles<'a> {
    /// The flattened tree.
    pub tree: &'a mut Tree,
    /// The builder the tree's contents went into.
    pub builder: &'a mut ImageBuilder,
}

impl ImageFiles for TreeFiles<'_> {
    fn entry(&mut self, path: &str) -> Option<EntryKind> {
        let id = self
            .tree
            .resolve_parent(path.as_bytes(), None)
            .ok()?
            .existing?;
        Some(match &self.tree.node(id).kind {
            NodeKind::File(_) => EntryKind::File {
                mode: u32::from(self.tree.node(id).meta.permissions),
            },
            NodeKind::Directory(_) => EntryKind::Dir,
            NodeKind::Symlink(target) => {
                EntryKind::Symlink(String::from_utf8_lossy(target).into_owned())
            }
            _ => EntryKind::Other,
        })
    }

    fn read(&mut self, path: &str, max: usize) -> Option<Vec<u8>> {
        let id = crate::inject::lookup_following(self.tree, path)?;
        let NodeKind::File(content) = &self.tree.node(id).kind else {
            return None;
        };
        let content = content.clone();
        self.builder.read_content(&content, max as u64).ok()
    }

    fn list_dir(&mut self, path: &str) -> Option<Vec<String>> {
        let id = crate::inject::lookup_following(self.tree, path)?;
        let dir = self.tree.dir(id)?;
        Some(
            dir.iter()
                .map(|(name, _)| String::from_utf8_lossy(name).into_owned())
                .collect(),
        )
    }
}
