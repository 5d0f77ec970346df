//! The kernel as an oracle: loop-mount an image and compare what the VFS
//! shows with the tree.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use banger_ext4::tree::{DeviceNumber, Timestamp, Tree, Xattrs};

use crate::content::{read_full, ContentDigest, DigestBuilder, CHUNK};
use crate::expect::{join, show, AclEncoding, Checker, Kind, Observed};
use crate::readback::CompareOptions;
use crate::skip::{is_root, system_tool, Skip};

/// A tmpfs mounted on a fresh directory, unmounted on drop (a panicking test too).
#[derive(Debug)]
pub struct Tmpfs {
    dir: Option<tempfile::TempDir>,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`), or says why not and
    /// gives `None`. `why` names the test in the skip message.
    pub fn mount(size: &str, why: &str) -> Option<Self> {
        if !is_root() {
            Skip(format!("{why} needs root to mount a tmpfs")).report();
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(status.success(), "mount -t tmpfs: {status}");
        Some(Tmpfs { dir: Some(dir) })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        let umount = |lazy: bool| {
            let mut command = Command::new("umount");
            if lazy {
                // A process left running by a failed assertion keeps it busy.
                command.arg("--lazy");
            }
            command.arg(dir.path()).status().is_ok_and(|s| s.success())
        };
        if !umount(false) && !umount(true) {
            eprintln!("could not unmount the tmpfs at {}", dir.path().display());
            // Removing the mount point would delete the tmpfs's contents instead.
            std::mem::forget(dir);
        }
    }
}

/// A loop-mounted image, unmounted (and its mount point removed) on drop.
#[derive(Debug)]
pub struct MountGuard {
    dir: Option<tempfile::TempDir>,
}

impl MountGuard {
    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }

    /// Unmounts now, reporting failure (drop only logs it).
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> io::Result<()> {
        let Some(dir) = self.dir.take() else {
            return Ok(());
        };
        let status = Command::new(system_tool("umount"))
            .arg(dir.path())
            .status()?;
        if !status.success() {
            // Keep the mount point directory rather than deleting into a live mount.
            let kept = dir.keep();
            return Err(io::Error::other(format!(
                "umount {} failed: {status}",
                kept.display()
            )));
        }
        Ok(())
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Err(err) = self.unmount_inner() {
            eprintln!("warning: {err}");
        }
    }
}

/// Why loop mounts are impossible here, if they are.
fn mount_unavailable() -> Option<Skip> {
    if !is_root() {
        return Some(Skip("loop mounts need root".into()));
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some(Skip("loop mounts need /dev/loop-control".into()));
    }
    None
}

fn loop_mount(img: &Path, options: &str) -> Result<MountGuard, Skip> {
    if let Some(skip) = mount_unavailable() {
        return Err(skip);
    }
    let dir = tempfile::Builder::new()
        .prefix("banger-mnt-")
        .tempdir()
        .map_err(|e| Skip(format!("cannot create a mount point: {e}")))?;
    let output = Command::new(system_tool("mount"))
        .arg("-t")
        .arg("ext4")
        .arg("-o")
        .arg(format!("loop,{options}"))
        .arg(img)
        .arg(dir.path())
        .output()
        .map_err(|e| Skip(format!("cannot run mount: {e}")))?;
    // The environment allows mounts, so a refusal is the image's fault.
    assert!(
        output.status.success(),
        "the kernel refused to mount {} ({options}): {}{}",
        img.display(),
        String::from_utf8_lossy(&output.stderr),
        kernel_log_tail()
    );
    Ok(MountGuard { dir: Some(dir) })
}

fn kernel_log_tail() -> String {
    Command::new("dmesg")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let lines: Vec<&str> = text.lines().rev().take(10).collect();
            let lines: Vec<&str> = lines.into_iter().rev().collect();
            format!("\nkernel log:\n{}", lines.join("\n"))
        })
        .unwrap_or_default()
}

/// Mounts `img` read-only through a loop device. `Err(Skip)` when not root
/// or without `/dev/loop-control`; panics if the kernel rejects the image.
pub fn loop_mount_ro(img: &Path) -> Result<MountGuard, Skip> {
    loop_mount(img, "ro")
}

/// Mounts `img` read-write (`noatime`, so reads leave atimes alone).
/// Same conditions as [`loop_mount_ro`].
pub fn loop_mount_rw(img: &Path) -> Result<MountGuard, Skip> {
    loop_mount(img, "rw,noatime")
}

/// Panics, listing every mismatch, unless the directory `dir` (typically a
/// mount point) holds exactly `tree`; all fields compared as in
/// [`crate::assert_image_matches_tree`] with default options.
pub fn assert_mounted_matches_tree(dir: &Path, tree: &Tree) {
    assert_mounted_matches_tree_with(dir, tree, &CompareOptions::default());
}

/// [`assert_mounted_matches_tree`] with explicit options.
pub fn assert_mounted_matches_tree_with(dir: &Path, tree: &Tree, opts: &CompareOptions) {
    let mismatches = mounted_mismatches(dir, tree, opts);
    assert!(
        mismatches.is_empty(),
        "{} does not match the tree ({} mismatches):\n  {}",
        dir.display(),
        mismatches.len(),
        mismatches.join("\n  ")
    );
}

/// Every difference between the directory `dir` and `tree`, read via std::fs and getxattr.
pub fn mounted_mismatches(dir: &Path, tree: &Tree, opts: &CompareOptions) -> Vec<String> {
    let mut errors = Vec::new();
    let mut observed = BTreeMap::new();
    let mut stack = vec![b"/".to_vec()];
    while let Some(path) = stack.pop() {
        let host = dir.join(OsStr::from_bytes(&path[1..]));
        match observe(&host) {
            Ok(seen) => {
                if seen.kind == Kind::Dir {
                    match fs::read_dir(&host) {
                        Ok(entries) => {
                            for entry in entries {
                                match entry {
                                    Ok(e) => stack.push(join(&path, e.file_name().as_bytes())),
                                    Err(e) => errors.push(format!("{}: readdir: {e}", show(&path))),
                                }
                            }
                        }
                        Err(e) => errors.push(format!("{}: readdir: {e}", show(&path))),
                    }
                }
                observed.insert(path, seen);
            }
            Err(e) => errors.push(format!("{}: {e}", show(&path))),
        }
    }
    let mut checker = Checker::new(tree, opts, AclEncoding::Vfs);
    checker.check_all(&observed);
    errors.extend(checker.mismatches);
    errors
}

fn observe(path: &Path) -> io::Result<Observed> {
    let meta = fs::symlink_metadata(path)?;
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_char_device() {
        Kind::Char
    } else if ft.is_block_device() {
        Kind::Block
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Socket
    };
    let time = |secs: i64, nanos: i64| Timestamp {
        secs,
        nanos: nanos as u32,
    };
    let crtime = meta
        .created()
        .ok()
        .map(|t| match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timestamp {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let (secs, nanos) = (d.as_secs() as i64, d.subsec_nanos());
                if nanos == 0 {
                    Timestamp {
                        secs: -secs,
                        nanos: 0,
                    }
                } else {
                    Timestamp {
                        secs: -secs - 1,
                        nanos: 1_000_000_000 - nanos,
                    }
                }
            }
        });
    let device = matches!(kind, Kind::Char | Kind::Block).then(|| DeviceNumber {
        major: rustix::fs::major(meta.rdev()),
        minor: rustix::fs::minor(meta.rdev()),
    });
    Ok(Observed {
        inode: meta.ino(),
        kind,
        permissions: (meta.mode() & 0o7777) as u16,
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.size(),
        nlink: meta.nlink() as u32,
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        crtime,
        device,
        symlink: (kind == Kind::Symlink).then(|| {
            fs::read_link(path)
                .map(|t| t.as_os_str().as_bytes().to_vec())
                .map_err(|e| e.to_string())
        }),
        content: (kind == Kind::File)
            .then(|| digest_skipping_holes(path, meta.size()).map_err(|e| e.to_string())),
        xattrs: read_xattrs(path).map_err(|e| e.to_string()),
        disagreements: Vec::new(),
    })
}

/// Digests a file reading only its data regions (`SEEK_DATA`/`SEEK_HOLE`):
/// reading a 4 GiB hole through the page cache takes seconds.
fn digest_skipping_holes(path: &Path, len: u64) -> io::Result<ContentDigest> {
    use rustix::fs::{seek, SeekFrom};
    use std::os::unix::fs::FileExt;
    let file = fs::File::open(path)?;
    let mut builder = DigestBuilder::default();
    let mut buf = vec![0u8; CHUNK as usize];
    let mut next_chunk = 0u64;
    let mut at = 0u64;
    while at < len {
        let data = match seek(&file, SeekFrom::Data(at)) {
            Ok(data) => data,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let hole = seek(&file, SeekFrom::Hole(data))?.min(len);
        let first = (data / CHUNK).max(next_chunk);
        let end = hole.div_ceil(CHUNK);
        for index in first..end {
            let offset = index * CHUNK;
            let want = CHUNK.min(len - offset) as usize;
            let got = read_full(|o, b| file.read_at(b, o), offset, &mut buf[..want])?;
            if got != want {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            builder.chunk(offset, &buf[..want]);
        }
        next_chunk = next_chunk.max(end);
        at = hole;
    }
    Ok(builder.finish(len))
}

fn read_xattrs(path: &Path) -> io::Result<Xattrs> {
    let mut names = vec![0u8; rustix::fs::llistxattr_query(path)?];
    let n = rustix::fs::llistxattr(path, &mut names[..])?;
    let mut xattrs = Xattrs::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name_os = OsStr::from_bytes(name);
        let mut value = vec![0u8; rustix::fs::lgetxattr_query(path, name_os)?];
        let len = rustix::fs::lgetxattr(path, name_os, &mut value[..])?;
        value.truncate(len);
        xattrs.insert(name.to_vec(), value);
    }
    Ok(xattrs)
}
