//! Nodes: their kinds and the entries of directories.

use std::collections::BTreeMap;

use super::{DeviceNumber, FileContent, Metadata, NodeId};

/// The kind of a node, with its kind-specific payload.
#[derive(Clone, Debug)]
pub enum NodeKind {
    /// A regular file.
    File(FileContent),
    /// A directory.
    Directory(Directory),
    /// A symbolic link with its raw target.
    Symlink(Vec<u8>),
    /// A character device.
    CharDevice(DeviceNumber),
    /// A block device.
    BlockDevice(DeviceNumber),
    /// A named pipe.
    Fifo,
    /// A Unix domain socket.
    Socket,
}

impl NodeKind {
    /// The file-type bits of `st_mode` for this kind (`S_IFREG`, ...).
    pub fn mode_type(&self) -> u16 {
        match self {
            Self::File(_) => 0o100000,
            Self::Directory(_) => 0o040000,
            Self::Symlink(_) => 0o120000,
            Self::CharDevice(_) => 0o020000,
            Self::BlockDevice(_) => 0o060000,
            Self::Fifo => 0o010000,
            Self::Socket => 0o140000,
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self, Self::Directory(_))
    }
}

/// A directory's entries by raw name, kept sorted so images are deterministic.
/// `.` and `..` are implicit and never stored.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    pub(super) entries: BTreeMap<Vec<u8>, NodeId>,
}

impl Directory {
    /// The node named `name`, if any.
    pub fn get(&self, name: &[u8]) -> Option<NodeId> {
        self.entries.get(name).copied()
    }

    /// Entries in name order.
    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&[u8], NodeId)> + ExactSizeIterator + '_ {
        self.entries.iter().map(|(name, id)| (name.as_slice(), *id))
    }

    /// Number of entries, `.` and `..` excluded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the directory has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One node of the tree.
#[derive(Clone, Debug)]
pub struct Node {
    /// Ownership, permissions, times and xattrs.
    pub meta: Metadata,
    /// What the node is.
    pub kind: NodeKind,
}
