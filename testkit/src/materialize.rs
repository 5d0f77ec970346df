//! Writes a tree to a real directory, as root, with everything a tar
//! extraction would set: owners, setuid/setgid/sticky bits, device nodes,
//! FIFOs, sockets, hard links, xattrs and ACLs, and times to the
//! nanosecond. `mkfs.ext4 -d` then turns the directory into a reference
//! image built from the same input as banger's.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
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
    let mut created = std::collections::HashMap::new();
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
