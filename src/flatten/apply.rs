//! Applying one tar entry to the tree.

use std::io;

use banger_ext4::tree::{
    DeviceNumber, Directory, FileContent, LendingRead, Metadata, NodeId, NodeKind, ResolveError,
    Tree, MAX_NAME_LEN,
};

use super::error::{EntryError, FlattenErrorKind, LimitError, TarError};
use super::path;
use super::tar_reader::{Entry, EntryKind, TarReader};
use super::whiteout::{self, LayerState, Marker, WHITEOUT_PREFIX};
use super::{Flattener, LayerStats};
use banger_ext4::tree::ContentStore;

/// Largest device major number ext4's inode encoding holds (12 bits).
const MAX_DEV_MAJOR: u64 = (1 << 12) - 1;
/// Largest device minor number ext4's inode encoding holds (20 bits).
const MAX_DEV_MINOR: u64 = (1 << 20) - 1;

/// Which extended attributes from a layer are kept.
///
/// - `trusted.overlay.*` is dropped: those are overlayfs's own bookkeeping
///   (opaque flags, redirects, origin handles) that leak into layers built
///   from an overlay upper directory. They mean nothing on a plain ext4
///   root and would confuse an overlayfs later mounted on top of it.
/// - `security.selinux` is kept as the image says: the guest's policy
///   decides whether it is used, and relabelling is its job, not ours.
/// - Everything else (`user.*`, `security.capability`, POSIX ACLs in the
///   VFS format, `trusted.*`) is kept byte for byte.
pub fn keep_xattr(name: &[u8]) -> bool {
    !name.starts_with(b"trusted.overlay.")
}

impl<S: ContentStore> Flattener<'_, S> {
    /// Applies one entry; its data, if any, is read from `reader`.
    pub(super) fn apply_entry<R: LendingRead>(
        &mut self,
        reader: &mut TarReader<R>,
        entry: &Entry,
        layer: &mut LayerState,
        stats: &mut LayerStats,
    ) -> Result<(), FlattenErrorKind> {
        self.limits.count_entry(&mut self.usage)?;
        stats.entries += 1;
        let components = path::clean(&entry.path);
        self.limits.check_path(&entry.path, components.len())?;
        if let Some(long) = components.iter().find(|c| c.len() > MAX_NAME_LEN) {
            return Err(EntryError::NameTooLong { len: long.len() }.into());
        }
        let Some((name, parents)) = components.split_last() else {
            return self.apply_root(entry, stats);
        };
        // Nothing below a whiteout or an AUFS metadata directory (such as
        // `.wh..wh.plnk/`) is part of the image.
        if parents.iter().any(|c| c.starts_with(WHITEOUT_PREFIX)) {
            stats.skipped += 1;
            return Ok(());
        }
        let implied = Metadata::new(0o755, entry.mtime);
        match whiteout::classify(name)? {
            Marker::None => {}
            Marker::AufsMeta => {
                stats.skipped += 1;
                return Ok(());
            }
            Marker::Opaque => {
                // The marker implies its directory, like any entry would.
                let marker = self.tree.resolve_components(&components, Some(&implied))?;
                whiteout::make_opaque(&mut self.tree, layer, marker.parent);
                stats.opaque_dirs += 1;
                return Ok(());
            }
            Marker::Whiteout(target) => {
                let hidden: Vec<&[u8]> = parents.iter().copied().chain([target]).collect();
                match self.tree.resolve_components(&hidden, None) {
                    Ok(r) => whiteout::whiteout(&mut self.tree, layer, r.parent, &r.name),
                    // Nothing there: nothing to hide.
                    Err(ResolveError::Missing(_) | ResolveError::NotADirectory(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                stats.whiteouts += 1;
                return Ok(());
            }
        }

        if entry.link_name.len() > self.limits.max_name_bytes {
            return Err(LimitError::PathTooLong {
                len: entry.link_name.len(),
                max: self.limits.max_name_bytes,
            }
            .into());
        }
        let meta = self.metadata(entry)?;
        // Look the target up before this entry creates any parent, so that
        // a link can never reach something that appears later in the tar.
        let link_target = match entry.kind {
            EntryKind::HardLink => Some(self.hard_link_target(entry)?),
            _ => None,
        };
        let resolved = self.tree.resolve_components(&components, Some(&implied))?;
        let (parent, name) = (resolved.parent, resolved.name);

        let node = match entry.kind {
            EntryKind::Directory => {
                stats.directories += 1;
                // Directories merge: a directory entry over a directory only
                // updates its metadata and keeps its children.
                if let Some(existing) = resolved.existing {
                    if self.tree.node(existing).kind.is_dir() {
                        self.tree.node_mut(existing).meta = meta;
                        layer.touch(parent, &name, existing);
                        return Ok(());
                    }
                }
                self.tree
                    .add(NodeKind::Directory(Directory::default()), meta)
            }
            EntryKind::Regular => {
                stats.files += 1;
                let content = self.store_content(reader, entry)?;
                stats.data_bytes += entry
                    .data_ranges
                    .iter()
                    .map(|r| r.end - r.start)
                    .sum::<u64>();
                self.tree.add(NodeKind::File(content), meta)
            }
            EntryKind::Symlink => {
                if entry.link_name.is_empty() {
                    return Err(EntryError::EmptySymlink.into());
                }
                stats.symlinks += 1;
                self.tree
                    .add(NodeKind::Symlink(entry.link_name.clone()), meta)
            }
            EntryKind::HardLink => {
                stats.hard_links += 1;
                // A hard link keeps its target's metadata, as link(2) does.
                let target = link_target.ok_or(EntryError::HardLinkTargetMissing {
                    target: lossy(&entry.link_name),
                })?;
                self.tree.link(parent, &name, target)?;
                layer.touch(parent, &name, target);
                return Ok(());
            }
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                stats.special_files += 1;
                let (major, minor) = entry.device;
                if major > MAX_DEV_MAJOR || minor > MAX_DEV_MINOR {
                    return Err(EntryError::DeviceNumberOutOfRange { major, minor }.into());
                }
                let device = DeviceNumber {
                    major: major as u32,
                    minor: minor as u32,
                };
                let kind = match entry.kind {
                    EntryKind::CharDevice => NodeKind::CharDevice(device),
                    _ => NodeKind::BlockDevice(device),
                };
                self.tree.add(kind, meta)
            }
            EntryKind::Fifo => {
                stats.special_files += 1;
                self.tree.add(NodeKind::Fifo, meta)
            }
        };
        // A new node replaces whatever had the name, whole subtree included;
        // hard-link siblings of a replaced file keep the old node.
        self.tree.link(parent, &name, node)?;
        Ok(())
    }

    /// An entry for `./`: it sets the root's metadata; anything but a
    /// directory there is ignored, since the root must stay a directory.
    fn apply_root(
        &mut self,
        entry: &Entry,
        stats: &mut LayerStats,
    ) -> Result<(), FlattenErrorKind> {
        if entry.kind != EntryKind::Directory {
            stats.skipped += 1;
            return Ok(());
        }
        let meta = self.metadata(entry)?;
        self.tree.node_mut(Tree::ROOT).meta = meta;
        stats.directories += 1;
        Ok(())
    }

    /// Finds the node a hard link names: resolved inside the tree following
    /// symlinked parents but not a symlink in the final component (a hard
    /// link to a symlink links the symlink, as `link(2)` does).
    fn hard_link_target(&mut self, entry: &Entry) -> Result<NodeId, FlattenErrorKind> {
        let missing = || EntryError::HardLinkTargetMissing {
            target: lossy(&entry.link_name),
        };
        let components = path::clean(&entry.link_name);
        if components.is_empty() {
            return Err(EntryError::HardLinkToDirectory {
                target: lossy(&entry.link_name),
            }
            .into());
        }
        let resolved = match self.tree.resolve_components(&components, None) {
            Ok(resolved) => resolved,
            Err(ResolveError::Missing(_) | ResolveError::NotADirectory(_)) => {
                return Err(missing().into())
            }
            Err(e) => return Err(e.into()),
        };
        let target = resolved.existing.ok_or_else(missing)?;
        if self.tree.node(target).kind.is_dir() {
            return Err(EntryError::HardLinkToDirectory {
                target: lossy(&entry.link_name),
            }
            .into());
        }
        Ok(target)
    }

    /// The node metadata an entry describes.
    fn metadata(&self, entry: &Entry) -> Result<Metadata, FlattenErrorKind> {
        let xattrs: banger_ext4::tree::Xattrs = entry
            .xattrs
            .iter()
            .filter(|(name, _)| keep_xattr(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        self.limits.check_xattrs(xattrs.iter())?;
        let mtime = entry.mtime;
        Ok(Metadata {
            permissions: entry.permissions,
            uid: entry.uid,
            gid: entry.gid,
            atime: entry.atime.unwrap_or(mtime),
            mtime,
            ctime: entry.ctime.unwrap_or(mtime),
            crtime: mtime,
            xattrs,
        })
    }

    /// Streams a regular file's data into the content store.
    fn store_content<R: LendingRead>(
        &mut self,
        reader: &mut TarReader<R>,
        entry: &Entry,
    ) -> Result<FileContent, FlattenErrorKind> {
        self.limits
            .count_bytes(&mut self.usage, reader.remaining())?;
        let result = self
            .store
            .store(&mut reader.data(), entry.size, &entry.data_ranges);
        if reader.truncated() {
            return Err(TarError::Truncated.into());
        }
        let content = result.map_err(|e| FlattenErrorKind::Store(Box::new(e)))?;
        if reader.remaining() > 0 {
            let unread = io::Error::other(format!(
                "the content store left {} bytes unread",
                reader.remaining()
            ));
            return Err(FlattenErrorKind::Store(Box::new(unread)));
        }
        Ok(content)
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
