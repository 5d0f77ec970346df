//! What a tree says an image or mounted directory must contain, and the
//! comparison both readback paths share.

/// ext4's link limit (`EXT4_LINK_MAX`).
const EXT4_LINK_MAX: u32 = 65000;

use std::collections::{BTreeMap, HashMap};

use banger_ext4::tree::{DeviceNumber, FileContent, NodeId, NodeKind, Timestamp, Tree, Xattrs};

use crate::content::{digest_source, ContentDigest};
use crate::readback::{CompareOptions, PlacedContent};

/// The name the root may hold without the tree knowing.
pub const LOST_FOUND: &[u8] = b"lost+found";

/// File type as observed, named like `ls -l` would.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Character device.
    Char,
    /// Block device.
    Block,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

impl Kind {
    /// The kind of a tree node.
    pub fn of(kind: &NodeKind) -> Self {
        match kind {
            NodeKind::File(_) => Self::File,
            NodeKind::Directory(_) => Self::Dir,
            NodeKind::Symlink(_) => Self::Symlink,
            NodeKind::CharDevice(_) => Self::Char,
            NodeKind::BlockDevice(_) => Self::Block,
            NodeKind::Fifo => Self::Fifo,
            NodeKind::Socket => Self::Socket,
        }
    }

    /// The kind for the `S_IFMT` bits of a mode, if valid.
    pub fn from_mode(mode: u32) -> Option<Self> {
        Some(match mode & 0o170000 {
            0o100000 => Self::File,
            0o040000 => Self::Dir,
            0o120000 => Self::Symlink,
            0o020000 => Self::Char,
            0o060000 => Self::Block,
            0o010000 => Self::Fifo,
            0o140000 => Self::Socket,
            _ => return None,
        })
    }
}

/// Everything a reader found out about one path. Fields a reader could
/// not determine are `Err` with the reason, which is reported as a mismatch.
#[derive(Clone, Debug)]
pub struct Observed {
    /// Identity of the inode (inode number or st_ino), for hard-link checks.
    pub inode: u64,
    /// File type.
    pub kind: Kind,
    /// The 12 permission bits.
    pub permissions: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Link count.
    pub nlink: u32,
    /// Access time.
    pub atime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Change time.
    pub ctime: Timestamp,
    /// Creation time, if the reader can tell.
    pub crtime: Option<Timestamp>,
    /// Device number (devices only).
    pub device: Option<DeviceNumber>,
    /// Symlink target (symlinks only).
    pub symlink: Option<Result<Vec<u8>, String>>,
    /// Content digest (regular files only).
    pub content: Option<Result<ContentDigest, String>>,
    /// Extended attributes, in the encoding the comparison expects.
    pub xattrs: Result<Xattrs, String>,
    /// Disagreements between oracles reading the same path.
    pub disagreements: Vec<String>,
}

/// How the observed side encodes POSIX ACL xattrs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AclEncoding {
    /// VFS format version 2 (getxattr on a mount).
    Vfs,
    /// ext4 on-disk format version 1 (raw image bytes).
    Ext4,
}

/// Every path of the tree (`/` for the root, then `/a/b`), hard links
/// listed once per name, with the node each one names.
pub fn tree_paths(tree: &Tree) -> BTreeMap<Vec<u8>, NodeId> {
    let mut paths = BTreeMap::new();
    let mut stack = vec![(b"/".to_vec(), Tree::ROOT)];
    while let Some((path, id)) = stack.pop() {
        if let Some(dir) = tree.dir(id) {
            for (name, child) in dir.iter() {
                stack.push((join(&path, name), child));
            }
        }
        paths.insert(path, id);
    }
    paths
}

/// `dir/name` for a `/`-rooted path.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = dir.to_vec();
    if path.last() != Some(&b'/') {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// A path for messages: printable ASCII kept, other bytes escaped.
pub fn show(path: &[u8]) -> String {
    path.escape_ascii().to_string()
}

/// Compares observations against a tree, collecting every mismatch.
pub struct Checker<'a> {
    tree: &'a Tree,
    opts: &'a CompareOptions,
    acl_encoding: AclEncoding,
    expected: BTreeMap<Vec<u8>, NodeId>,
    /// Names per non-directory node and subdirectories per directory.
    link_counts: HashMap<NodeId, u32>,
    /// The mismatches found so far.
    pub mismatches: Vec<String>,
}

impl<'a> Checker<'a> {
    /// A checker for `tree`.
    pub fn new(tree: &'a Tree, opts: &'a CompareOptions, acl_encoding: AclEncoding) -> Self {
        let expected = tree_paths(tree);
        let mut link_counts: HashMap<NodeId, u32> = HashMap::new();
        for id in expected.values() {
            *link_counts.entry(*id).or_default() += 1;
        }
        for id in tree.reachable() {
            if let Some(dir) = tree.dir(id) {
                let subdirs = dir
                    .iter()
                    .filter(|(_, c)| tree.node(*c).kind.is_dir())
                    .count();
                link_counts.insert(id, 2 + subdirs as u32);
            }
        }
        Self {
            tree,
            opts,
            acl_encoding,
            expected,
            link_counts,
            mismatches: Vec::new(),
        }
    }

    fn report(&mut self, path: &[u8], what: impl std::fmt::Display) {
        self.mismatches.push(format!("{}: {what}", show(path)));
    }

    /// Compares the observed paths with the tree's, then every path's data.
    pub fn check_all(&mut self, observed: &BTreeMap<Vec<u8>, Observed>) {
        let lost_found_extra = self.tree.lookup(Tree::ROOT, LOST_FOUND).is_none()
            && observed.contains_key(&b"/lost+found"[..]);
        let ignored = |path: &[u8]| {
            lost_found_extra && (path == b"/lost+found" || path.starts_with(b"/lost+found/"))
        };
        for path in self.expected.keys().cloned().collect::<Vec<_>>() {
            if !observed.contains_key(&path) {
                self.report(&path, "missing");
            }
        }
        let mut inode_of: HashMap<NodeId, (u64, Vec<u8>)> = HashMap::new();
        let mut node_of: HashMap<u64, (NodeId, Vec<u8>)> = HashMap::new();
        for (path, seen) in observed {
            if ignored(path) {
                continue;
            }
            let Some(&id) = self.expected.get(path) else {
                self.report(path, format!("unexpected {:?}", seen.kind));
                continue;
            };
            match inode_of.get(&id) {
                Some((inode, first)) if *inode != seen.inode => {
                    let msg = format!(
                        "should be a hard link to {} but is another inode",
                        show(first)
                    );
                    self.report(path, msg);
                }
                _ => {
                    inode_of.entry(id).or_insert((seen.inode, path.clone()));
                }
            }
            match node_of.get(&seen.inode) {
                Some((other, first)) if *other != id => {
                    let msg = format!(
                        "shares inode {} with {} but should not",
                        seen.inode,
                        show(first)
                    );
                    self.report(path, msg);
                }
                _ => {
                    node_of.entry(seen.inode).or_insert((id, path.clone()));
                }
            }
            let extra_root_links = u32::from(path == b"/" && lost_found_extra);
            self.check_node(path, id, seen, extra_root_links);
        }
    }

    fn check_node(&mut self, path: &[u8], id: NodeId, seen: &Observed, extra_links: u32) {
        let node = self.tree.node(id);
        for d in &seen.disagreements {
            self.report(path, format!("oracles disagree: {d}"));
        }
        let kind = Kind::of(&node.kind);
        if kind != seen.kind {
            self.report(
                path,
                format!("type: expected {kind:?}, found {:?}", seen.kind),
            );
            return;
        }
        let mut field = |name: &str, expected: String, found: String| {
            if expected != found {
                self.mismatches.push(format!(
                    "{}: {name}: expected {expected}, found {found}",
                    show(path)
                ));
            }
        };
        let meta = &node.meta;
        field(
            "permissions",
            format!("{:04o}", meta.permissions & 0o7777),
            format!("{:04o}", seen.permissions),
        );
        field("uid", meta.uid.to_string(), seen.uid.to_string());
        field("gid", meta.gid.to_string(), seen.gid.to_string());
        let mut nlink = self.link_counts.get(&id).copied().unwrap_or(1) + extra_links;
        // dir_nlink: a directory past ext4's 65000-link limit stores 1.
        if node.kind.is_dir() && nlink > EXT4_LINK_MAX {
            nlink = 1;
        }
        field("link count", nlink.to_string(), seen.nlink.to_string());
        field("mtime", show_time(meta.mtime), show_time(seen.mtime));
        field("atime", show_time(meta.atime), show_time(seen.atime));
        if self.opts.ctime {
            field("ctime", show_time(meta.ctime), show_time(seen.ctime));
        }
        if self.opts.crtime {
            let found = seen.crtime.map_or("none".to_owned(), show_time);
            field("crtime", show_time(meta.crtime), found);
        }
        match &node.kind {
            NodeKind::File(content) => {
                field("size", content.size().to_string(), seen.size.to_string());
                let expected = match content {
                    FileContent::Source(source) => {
                        Some(digest_source(source.as_ref()).map_err(|e| e.to_string()))
                    }
                    FileContent::Placed(_) => match &self.opts.placed {
                        PlacedContent::Skip => None,
                        PlacedContent::Digests(map) => Some(
                            map.get(&id)
                                .copied()
                                .ok_or_else(|| "no digest given for placed content".to_owned()),
                        ),
                    },
                };
                if let Some(expected) = expected {
                    let show_digest = |d: Option<&Result<ContentDigest, String>>| match d {
                        Some(Ok(digest)) => format!("{digest:?}"),
                        Some(Err(err)) => format!("unreadable ({err})"),
                        None => "nothing".to_owned(),
                    };
                    field(
                        "content",
                        show_digest(Some(&expected)),
                        show_digest(seen.content.as_ref()),
                    );
                }
            }
            NodeKind::Symlink(target) => {
                field("size", target.len().to_string(), seen.size.to_string());
                let found = match &seen.symlink {
                    Some(Ok(t)) => show(t),
                    other => format!("{other:?}"),
                };
                field("symlink target", show(target), found);
            }
            NodeKind::CharDevice(dev) | NodeKind::BlockDevice(dev) => {
                let found = seen
                    .device
                    .map_or("none".to_owned(), |d| format!("{}:{}", d.major, d.minor));
                field("device", format!("{}:{}", dev.major, dev.minor), found);
            }
            NodeKind::Directory(_) | NodeKind::Fifo | NodeKind::Socket => {}
        }
        let expected = self.expected_xattrs(&meta.xattrs);
        match &seen.xattrs {
            Ok(found) => {
                for (name, value) in &expected {
                    match found.get(name) {
                        None => self.report(path, format!("xattr {} missing", show(name))),
                        Some(v) if v != value => self.report(
                            path,
                            format!(
                                "xattr {}: expected {}, found {}",
                                show(name),
                                hex::encode(value),
                                hex::encode(v)
                            ),
                        ),
                        Some(_) => {}
                    }
                }
                for name in found.keys().filter(|n| !expected.contains_key(*n)) {
                    self.report(path, format!("unexpected xattr {}", show(name)));
                }
            }
            Err(err) => self.report(path, format!("cannot read xattrs: {err}")),
        }
    }

    /// The tree's xattrs with ACLs in the observed side's encoding.
    fn expected_xattrs(&self, xattrs: &Xattrs) -> Xattrs {
        xattrs
            .iter()
            .map(|(name, value)| {
                let value = match self.acl_encoding {
                    AclEncoding::Ext4 if crate::acl::is_acl(name) => {
                        crate::acl::vfs_to_ext4(value).unwrap_or_else(|| value.clone())
                    }
                    _ => value.clone(),
                };
                (name.clone(), value)
            })
            .collect()
    }
}

/// `secs.nanos` with the sign on the seconds.
pub fn show_time(t: Timestamp) -> String {
    format!("{}.{:09}", t.secs, t.nanos)
}
