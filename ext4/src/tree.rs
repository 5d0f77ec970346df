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

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::Arc;

/// Index of a node in a [`Tree`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(u32);

impl NodeId {
    /// The arena index of this node.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A point in time with nanosecond precision, in seconds since the Unix epoch.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z; negative before it.
    pub secs: i64,
    /// Nanoseconds within the second, below 1 000 000 000.
    pub nanos: u32,
}

impl Timestamp {
    /// A timestamp at a whole second.
    pub const fn from_secs(secs: i64) -> Self {
        Self { secs, nanos: 0 }
    }
}

/// Extended attributes by full name (`user.foo`, `security.capability`,
/// `system.posix_acl_access`, ...). POSIX ACLs are kept in the VFS
/// (`getfattr`) format; the writer converts them to ext4's own format.
pub type Xattrs = BTreeMap<Vec<u8>, Vec<u8>>;

/// Metadata shared by every kind of node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Permission bits including setuid (0o4000), setgid (0o2000) and sticky
    /// (0o1000). Only the low 12 bits are used; the file type comes from
    /// [`NodeKind`].
    pub permissions: u16,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Last access time.
    pub atime: Timestamp,
    /// Last content modification time.
    pub mtime: Timestamp,
    /// Last status change time.
    pub ctime: Timestamp,
    /// Creation time.
    pub crtime: Timestamp,
    /// Extended attributes.
    pub xattrs: Xattrs,
}

impl Metadata {
    /// Metadata with the given permission bits, owned by root, all times at `time`.
    pub fn new(permissions: u16, time: Timestamp) -> Self {
        Self {
            permissions: permissions & 0o7777,
            uid: 0,
            gid: 0,
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            xattrs: Xattrs::new(),
        }
    }
}

/// A device number as `major:minor`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeviceNumber {
    /// Major number (at most 12 bits on ext4's new encoding).
    pub major: u32,
    /// Minor number (at most 20 bits on ext4's new encoding).
    pub minor: u32,
}

/// Where the bytes of a regular file come from.
pub trait ContentSource: Send + Sync + fmt::Debug {
    /// Length of the file in bytes.
    fn len(&self) -> u64;

    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sorted, non-overlapping byte ranges that hold data. Everything outside
    /// them reads as zero and is written as a hole.
    fn data_ranges(&self) -> Vec<Range<u64>> {
        std::iter::once(0..self.len()).collect()
    }

    /// Reads bytes at `offset` into `buf`, returning how many were read
    /// (0 only at or past the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// A contiguous run of file blocks already written into an image.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlacedExtent {
    /// First file block (in filesystem blocks) the run covers.
    pub logical_block: u64,
    /// First physical block of the run in the image.
    pub physical_block: u64,
    /// Number of blocks in the run.
    pub len: u64,
}

/// File data that a [`ContentStore`] has already written into the image
/// under construction. Blocks not covered by an extent are holes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PlacedData {
    /// File size in bytes.
    pub size: u64,
    /// Runs in increasing logical order.
    pub extents: Vec<PlacedExtent>,
}

/// The contents of a regular file.
#[derive(Clone, Debug)]
pub enum FileContent {
    /// Bytes streamed from a source when the image is written.
    Source(Arc<dyn ContentSource>),
    /// Bytes already written into the image by the builder's content store.
    Placed(PlacedData),
}

impl FileContent {
    /// An empty file.
    pub fn empty() -> Self {
        Self::Source(Arc::new(MemorySource::new(Vec::new())))
    }

    /// A file holding `bytes`.
    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self::Source(Arc::new(MemorySource::new(bytes)))
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Self::Source(source) => source.len(),
            Self::Placed(placed) => placed.size,
        }
    }
}

/// Writes file contents somewhere durable while the tree is being built, so
/// that no file is ever held whole in memory. The image builder implements it
/// by writing straight into the image; tests may keep bytes in memory.
pub trait ContentStore {
    /// Error type of the store.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Consumes a file of `size` bytes whose data lies in `data_ranges`
    /// (sorted, non-overlapping; everything else is a hole). `reader` yields
    /// the bytes of each range one after another, and nothing else.
    fn store(
        &mut self,
        reader: &mut dyn io::Read,
        size: u64,
        data_ranges: &[Range<u64>],
    ) -> Result<FileContent, Self::Error>;
}

/// File contents held in memory: assets and test data.
#[derive(Clone)]
pub struct MemorySource {
    bytes: Arc<[u8]>,
}

impl MemorySource {
    /// A source over `bytes`.
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self {
            bytes: bytes.into(),
        }
    }

    /// The bytes of the file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for MemorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemorySource({} bytes)", self.bytes.len())
    }
}

impl ContentSource for MemorySource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        let n = buf.len().min(self.bytes.len() - start);
        buf[..n].copy_from_slice(&self.bytes[start..start + n]);
        Ok(n)
    }
}

/// A [`ContentStore`] that keeps every file in memory. For tests and small
/// trees only.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl ContentStore for MemoryStore {
    type Error = io::Error;

    fn store(
        &mut self,
        reader: &mut dyn io::Read,
        size: u64,
        data_ranges: &[Range<u64>],
    ) -> io::Result<FileContent> {
        let len = usize::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "file too large"))?;
        let mut bytes = vec![0u8; len];
        for range in data_ranges {
            let (start, end) = (range.start as usize, range.end as usize);
            if start > end || end > len {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "data range outside the file",
                ));
            }
            reader.read_exact(&mut bytes[start..end])?;
        }
        Ok(FileContent::from_bytes(bytes))
    }
}

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
    entries: BTreeMap<Vec<u8>, NodeId>,
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

/// Nodes in fixed-size chunks. A `Vec` doubles as it grows: a tree of
/// 300 000 nodes sat in room for 524 288 (over 70 MB at 136 bytes a node)
/// and every doubling copied all of them; chunks cost at most one chunk of
/// slack and never move a node.
#[derive(Clone, Debug)]
struct NodeStore {
    chunks: Vec<Vec<Node>>,
    len: usize,
}

impl NodeStore {
    /// Nodes per chunk (about 550 KiB).
    const CHUNK: usize = 4096;

    fn from_root(root: Node) -> Self {
        let mut store = Self {
            chunks: Vec::new(),
            len: 0,
        };
        store.push(root);
        store
    }

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, node: Node) {
        if self.len.is_multiple_of(Self::CHUNK) {
            self.chunks.push(Vec::with_capacity(Self::CHUNK));
        }
        let chunk = self.chunks.last_mut().expect("a chunk was just ensured");
        chunk.push(node);
        self.len += 1;
    }

    fn get(&self, index: usize) -> &Node {
        &self.chunks[index / Self::CHUNK][index % Self::CHUNK]
    }

    fn get_mut(&mut self, index: usize) -> &mut Node {
        &mut self.chunks[index / Self::CHUNK][index % Self::CHUNK]
    }
}

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

/// Most symlinks followed while resolving one path, as Linux's `MAXSYMLINKS`.
pub const MAX_SYMLINK_FOLLOWS: usize = 40;

/// Why a path could not be resolved inside the tree.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    /// A non-directory stands where a directory is needed.
    #[error("{0:?} is not a directory")]
    NotADirectory(String),
    /// A parent directory does not exist and creating it was not asked for.
    #[error("{0:?} does not exist")]
    Missing(String),
    /// More than [`MAX_SYMLINK_FOLLOWS`] symlinks, or a loop.
    #[error("too many levels of symbolic links at {0:?}")]
    SymlinkLoop(String),
    /// The path names the root itself, which has no parent entry.
    #[error("the path names the root directory")]
    Root,
    /// A component is not a valid name.
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// Where a path leads: the directory that holds its last component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    /// The directory holding the final component.
    pub parent: NodeId,
    /// The final component's name.
    pub name: Vec<u8>,
    /// The node under that name, if any (not followed if it is a symlink).
    pub existing: Option<NodeId>,
}

impl Tree {
    /// Resolves `path` the way the kernel would inside a chroot at the root
    /// of this tree: `..` never leaves the root, absolute symlinks restart
    /// at the root, and symlinks in parent components are followed (the last
    /// component is not). Missing parents are created with `implied_parent`
    /// metadata when given, otherwise they are an error.
    pub fn resolve_parent(
        &mut self,
        path: &[u8],
        implied_parent: Option<&Metadata>,
    ) -> Result<ResolvedPath, ResolveError> {
        let mut components: Vec<Vec<u8>> = split_path(path).map(<[u8]>::to_vec).collect();
        let name = match components.pop() {
            None => return Err(ResolveError::Root),
            Some(last) if last == b".." => {
                // `a/..` as the final component names a directory: find the
                // entry that holds it.
                components.push(last);
                let dir = self.walk_dirs(&components, implied_parent)?;
                if dir == Self::ROOT {
                    return Err(ResolveError::Root);
                }
                let parent = self.parent(dir).unwrap_or(Self::ROOT);
                let name = self
                    .dir(parent)
                    .and_then(|d| d.iter().find(|(_, id)| *id == dir).map(|(n, _)| n.to_vec()))
                    .ok_or(ResolveError::Root)?;
                return Ok(ResolvedPath {
                    parent,
                    existing: Some(dir),
                    name,
                });
            }
            Some(last) => last,
        };
        validate_name(&name)?;
        let parent = self.walk_dirs(&components, implied_parent)?;
        let existing = self.lookup(parent, &name);
        Ok(ResolvedPath {
            parent,
            name,
            existing,
        })
    }

    /// Walks `components` as directories from the root, following symlinks.
    fn walk_dirs(
        &mut self,
        components: &[Vec<u8>],
        implied_parent: Option<&Metadata>,
    ) -> Result<NodeId, ResolveError> {
        let mut pending: Vec<Vec<u8>> = components.iter().rev().cloned().collect();
        let mut dir = Self::ROOT;
        let mut follows = 0;
        let mut walked: Vec<u8> = Vec::new();
        while let Some(component) = pending.pop() {
            match component.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    dir = self.parent(dir).unwrap_or(Self::ROOT);
                    continue;
                }
                _ => {}
            }
            walked.push(b'/');
            walked.extend_from_slice(&component);
            let shown = || String::from_utf8_lossy(&walked).into_owned();
            let next = match self.lookup(dir, &component) {
                Some(id) => id,
                None => match implied_parent {
                    Some(meta) => self.ensure_dir(dir, &component, meta.clone())?,
                    None => return Err(ResolveError::Missing(shown())),
                },
            };
            match &self.node(next).kind {
                NodeKind::Directory(_) => dir = next,
                NodeKind::Symlink(target) => {
                    follows += 1;
                    if follows > MAX_SYMLINK_FOLLOWS {
                        return Err(ResolveError::SymlinkLoop(shown()));
                    }
                    if target.first() == Some(&b'/') {
                        dir = Self::ROOT;
                    }
                    pending.extend(split_path(target).rev().map(<[u8]>::to_vec));
                }
                _ => return Err(ResolveError::NotADirectory(shown())),
            }
        }
        Ok(dir)
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
