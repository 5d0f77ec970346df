//! Reference images from e2fsprogs: `mkfs.ext4 -d` over a materialized
//! tree, and scratch filesystems to materialize into.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use std::collections::HashSet;

use banger_ext4::tree::{NodeKind, Timestamp, Tree};

use crate::debugfs;
use crate::expect::tree_paths;
use crate::mount::{loop_mount_rw, MountGuard};
use crate::skip::{system_tool, Skip};

/// Runs `mkfs.ext4 -q -F -b 4096 -I 256 -O metadata_csum,64bit -E
/// root_owner=0:0 IMG SIZE [-d SOURCE]`, the reference format settings.
pub fn mkfs_ext4(img: &Path, size: &str, source: Option<&Path>) -> io::Result<()> {
    let mut cmd = Command::new(system_tool("mkfs.ext4"));
    cmd.args([
        "-q",
        "-F",
        "-b",
        "4096",
        "-I",
        "256",
        "-O",
        "metadata_csum,64bit",
    ])
    .args(["-E", "root_owner=0:0"])
    .arg(img)
    .arg(size)
    .env("LC_ALL", "C");
    if let Some(source) = source {
        cmd.arg("-d").arg(source);
    }
    let output = cmd.output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "mkfs.ext4 failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}

/// `tree` as `mkfs.ext4 -d` 1.47.0 stored it in `img`: times as whole
/// seconds truncated to 32 bits (no nanoseconds, no epoch bits), the root
/// directory's permissions, owner and times its own (read back from `img`;
/// only the root's xattrs are copied), and every name of a hard-linked
/// symlink a separate inode.
pub fn as_mkfs_stores_it(tree: &Tree, img: &Path) -> io::Result<Tree> {
    let mut tree = tree.clone();
    let truncate = |t: Timestamp| Timestamp::from_secs(i64::from(t.secs as i32));
    let paths = tree_paths(&tree);
    let mut seen = HashSet::new();
    for (path, &id) in &paths {
        if !seen.insert(id) {
            if let NodeKind::Symlink(_) = tree.node(id).kind {
                let copy = tree.node(id).clone();
                let fresh = tree.add(copy.kind, copy.meta);
                let cut = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
                let parent = tree.lookup_path(&path[..cut]).unwrap_or(Tree::ROOT);
                tree.link(parent, &path[cut + 1..], fresh)
                    .map_err(|e| io::Error::other(e.to_string()))?;
            }
        }
    }
    for (_, id) in tree_paths(&tree) {
        let meta = &mut tree.node_mut(id).meta;
        meta.atime = truncate(meta.atime);
        meta.mtime = truncate(meta.mtime);
        meta.ctime = truncate(meta.ctime);
    }
    let batch = debugfs::run_batch(img, &[b"stat <2>".to_vec()])?;
    let root = batch
        .outputs
        .first()
        .map(|out| debugfs::parse_stat(out))
        .transpose()
        .map_err(io::Error::other)?
        .ok_or_else(|| io::Error::other("debugfs printed nothing for the root"))?;
    let meta = &mut tree.node_mut(Tree::ROOT).meta;
    (meta.atime, meta.mtime, meta.ctime) = (root.atime, root.mtime, root.ctime);
    (meta.permissions, meta.uid, meta.gid) = (root.permissions, root.uid, root.gid);
    Ok(tree)
}

/// An empty ext4 filesystem mounted read-write (`noatime`) in a temporary
/// directory: xattr-, ACL- and device-capable, so a tree can be
/// materialized into it whatever the host's /tmp is.
#[derive(Debug)]
pub struct ScratchFs {
    // Field order matters: unmount before the image's directory goes away.
    mount: Option<MountGuard>,
    img: PathBuf,
    _dir: tempfile::TempDir,
}

impl ScratchFs {
    /// Creates and mounts a scratch filesystem of `size` (`mkfs.ext4` syntax, e.g. `256M`).
    pub fn new(size: &str) -> Result<Self, Skip> {
        let dir = tempfile::Builder::new()
            .prefix("banger-scratch-")
            .tempdir()
            .map_err(|e| Skip(format!("no temporary directory: {e}")))?;
        let img = dir.path().join("scratch.img");
        mkfs_ext4(&img, size, None).map_err(|e| Skip(format!("cannot make a scratch fs: {e}")))?;
        let mount = loop_mount_rw(&img)?;
        Ok(Self {
            mount: Some(mount),
            img,
            _dir: dir,
        })
    }

    /// The mount point (the filesystem's root directory).
    pub fn path(&self) -> &Path {
        self.mount.as_ref().map_or(Path::new(""), MountGuard::path)
    }

    /// Unmounts and returns the image, which lives as long as `self`.
    pub fn unmount(&mut self) -> io::Result<&Path> {
        if let Some(mount) = self.mount.take() {
            mount.unmount()?;
        }
        Ok(&self.img)
    }
}
