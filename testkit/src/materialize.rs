//! Writes a tree to a real directory, as root, with everything a tar
//! extraction would set: owners, setuid/setgid/sticky bits, device nodes,
//! FIFOs, sockets, hard links, xattrs and ACLs, and times to the
//! nanosecond. `mkfs.ext4 -d` then turns the directory into a reference
//! image built from the same input as banger's.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use banger_ext4::tree::{ContentSource, FileContent, NodeKind, Timestamp, Tree};
use rustix::fs::{
    makedev, mknodat, utimensat, AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags, CWD,
};

use crate::expect::tree_paths;

/// Writes `tree` into `dir` (which must exist and becomes the tree's root;
/// everything else must not exist yet). Needs root for owners and devices.
///
/// Metadata is applied after every node exists, so a default ACL is never
/// inherited by children, and times last of all so nothing disturbs them.
/// Atimes survive only on a mount that does not update them (`noatime`).
pub fn materialize(tree: &Tree, dir: &Path) -> io::Result<()> {
    let paths = tree_paths(tree);
    let host = |path: &[u8]| -> PathBuf { dir.join(OsStr::from_bytes(&path[1..])) };
    // Parents sort before children, so one pass in path order creates everything.
    let mut created = HashMap::new();
    for (path, &id) in &paths {
        let target = host(path);
        if let Some(first) = created.get(&id) {
            fs::hard_link(first, &target).map_err(|e| context(e, "hard link", &target))?;
            continue;
        }
        if path != b"/" {
            create(&tree.node(id).kind, &target).map_err(|e| context(e, "create", &target))?;
        }
        created.insert(id, target);
    }
    let mut done = HashSet::new();
    for id in paths.values() {
        if done.insert(*id) {
            let target = &created[id];
            apply_metadata(tree, *id, target).map_err(|e| context(e, "set metadata of", target))?;
        }
    }
    Ok(())
}

fn context(err: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
}

fn create(kind: &NodeKind, path: &Path) -> io::Result<()> {
    let node = |ty, dev| mknodat(CWD, path, ty, Mode::from_raw_mode(0o600), dev);
    match kind {
        NodeKind::Directory(_) => fs::create_dir(path),
        NodeKind::File(FileContent::Source(source)) => write_file(source.as_ref(), path),
        NodeKind::File(FileContent::Placed(_)) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "placed contents live in an image and cannot be materialized",
        )),
        NodeKind::Symlink(target) => std::os::unix::fs::symlink(OsStr::from_bytes(target), path),
        NodeKind::CharDevice(d) => Ok(node(FileType::CharacterDevice, makedev(d.major, d.minor))?),
        NodeKind::BlockDevice(d) => Ok(node(FileType::BlockDevice, makedev(d.major, d.minor))?),
        NodeKind::Fifo => Ok(node(FileType::Fifo, 0)?),
        NodeKind::Socket => Ok(node(FileType::Socket, 0)?),
    }
}

/// Writes only the data ranges, leaving holes where the source has them.
fn write_file(source: &dyn ContentSource, path: &Path) -> io::Result<()> {
    let file = File::create_new(path)?;
    let mut buf = vec![0u8; 1 << 20];
    for range in source.data_ranges() {
        let mut offset = range.start;
        while offset < range.end {
            let want = buf.len().min((range.end - offset) as usize);
            let n = source.read_at(offset, &mut buf[..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            file.write_all_at(&buf[..n], offset)?;
            offset += n as u64;
        }
    }
    file.set_len(source.len())
}

fn apply_metadata(tree: &Tree, id: banger_ext4::tree::NodeId, path: &Path) -> io::Result<()> {
    let node = tree.node(id);
    let meta = &node.meta;
    // chown clears setuid bits and security.capability, so it goes first.
    std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))?;
    if !matches!(node.kind, NodeKind::Symlink(_)) {
        fs::set_permissions(
            path,
            Permissions::from_mode(u32::from(meta.permissions & 0o7777)),
        )?;
    }
    for (name, value) in &meta.xattrs {
        rustix::fs::lsetxattr(path, OsStr::from_bytes(name), value, XattrFlags::empty()).map_err(
            |e| {
                io::Error::new(
                    io::Error::from(e).kind(),
                    format!("setxattr {}: {e}", name.escape_ascii()),
                )
            },
        )?;
    }
    let times = Timestamps {
        last_access: timespec(meta.atime),
        last_modification: timespec(meta.mtime),
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

fn timespec(t: Timestamp) -> Timespec {
    Timespec {
        tv_sec: t.secs,
        tv_nsec: i64::from(t.nanos),
    }
}

/// Copies each node's ctime from the materialized directory into the tree.
/// Only the kernel sets ctimes, so tests that compare an image made from
/// `dir` adopt them instead of skipping the comparison.
pub fn adopt_ctimes(tree: &mut Tree, dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for (path, id) in tree_paths(tree) {
        let meta = fs::symlink_metadata(dir.join(OsStr::from_bytes(&path[1..])))?;
        tree.node_mut(id).meta.ctime = Timestamp {
            secs: meta.ctime(),
            nanos: meta.ctime_nsec() as u32,
        };
    }
    Ok(())
}

/// A regular file on the host, read when the tree is consumed.
#[derive(Debug)]
pub struct HostFile {
    path: PathBuf,
    len: u64,
}

impl ContentSource for HostFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        // Opened per call: a rootfs has more files than a process has descriptors.
        let want = buf.len().min(self.len.saturating_sub(offset) as usize);
        File::open(&self.path)?.read_at(&mut buf[..want], offset)
    }
}

/// The inverse of [`materialize`]: reads a directory (a debootstrap'd
/// rootfs, say) into a tree without holding file contents in memory.
/// Hard links become shared nodes, ACLs stay in the VFS format, crtime
/// is the birth time where the host filesystem reports one.
pub fn tree_from_dir(dir: &Path) -> io::Result<Tree> {
    use banger_ext4::tree::{DeviceNumber, Metadata, Xattrs};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::sync::Arc;

    let metadata = |path: &Path, meta: &fs::Metadata| -> io::Result<Metadata> {
        let time = |secs, nanos: i64| Timestamp {
            secs,
            nanos: nanos as u32,
        };
        let ctime = time(meta.ctime(), meta.ctime_nsec());
        let crtime = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(ctime, |d| {
                time(d.as_secs() as i64, i64::from(d.subsec_nanos()))
            });
        let mut xattrs = Xattrs::new();
        let mut names = vec![0u8; rustix::fs::llistxattr_query(path)?];
        let n = rustix::fs::llistxattr(path, &mut names[..])?;
        for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let name_os = OsStr::from_bytes(name);
            let mut value = vec![0u8; rustix::fs::lgetxattr_query(path, name_os)?];
            let len = rustix::fs::lgetxattr(path, name_os, &mut value[..])?;
            value.truncate(len);
            xattrs.insert(name.to_vec(), value);
        }
        Ok(Metadata {
            permissions: (meta.mode() & 0o7777) as u16,
            uid: meta.uid(),
            gid: meta.gid(),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime,
            crtime,
            xattrs,
        })
    };
    let root_meta = fs::symlink_metadata(dir)?;
    let mut tree = Tree::new(metadata(dir, &root_meta)?);
    let mut by_inode: HashMap<(u64, u64), banger_ext4::tree::NodeId> = HashMap::new();
    let mut stack = vec![(dir.to_path_buf(), Tree::ROOT)];
    while let Some((host, parent)) = stack.pop() {
        for entry in fs::read_dir(&host)? {
            let entry = entry?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path)?;
            let name = entry.file_name();
            if let Some(&id) = by_inode.get(&(meta.dev(), meta.ino())) {
                tree.link(parent, name.as_bytes(), id)
                    .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
                continue;
            }
            let ft = meta.file_type();
            let dev = || DeviceNumber {
                major: rustix::fs::major(meta.rdev()),
                minor: rustix::fs::minor(meta.rdev()),
            };
            let kind = if ft.is_dir() {
                NodeKind::Directory(Default::default())
            } else if ft.is_file() {
                NodeKind::File(FileContent::Source(Arc::new(HostFile {
                    path: path.clone(),
                    len: meta.len(),
                })))
            } else if ft.is_symlink() {
                NodeKind::Symlink(fs::read_link(&path)?.into_os_string().into_vec())
            } else if ft.is_char_device() {
                NodeKind::CharDevice(dev())
            } else if ft.is_block_device() {
                NodeKind::BlockDevice(dev())
            } else if ft.is_fifo() {
                NodeKind::Fifo
            } else {
                NodeKind::Socket
            };
            let is_dir = kind.is_dir();
            let id = tree.add(kind, metadata(&path, &meta)?);
            tree.link(parent, name.as_bytes(), id)
                .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
            if is_dir {
                stack.push((path, id));
            } else if meta.nlink() > 1 {
                by_inode.insert((meta.dev(), meta.ino()), id);
            }
        }
    }
    Ok(tree)
}
