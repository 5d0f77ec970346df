//! The ext4 formatter against an independent reader: an arbitrary small
//! tree (every node kind, odd names, hard links, xattrs, sparse files, big
//! directories) is written with `write_image` and read back with
//! `ext4-view`. Paths, types, permissions, owners, times, sizes, contents,
//! symlink targets and directory listings must all match. A write error is
//! accepted only when it is the typed refusal of input ext4 cannot hold;
//! any other error, panic or mismatch is a crash.
//!
//! Set `BANGER_FUZZ_E2FSCK=1` to also run `e2fsck -fn` on every image (slow,
//! but it checks what ext4-view does not read: xattrs, bitmaps, counts).
#![no_main]

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use banger_ext4::builder::{write_image, BuildError, Options};
use banger_ext4::tree::{
    ContentSource, DeviceNumber, Directory, FileContent, Metadata, NodeId, NodeKind, Timestamp,
    Tree, MAX_NAME_LEN,
};
use libfuzzer_sys::fuzz_target;

/// Image size: far more than the content caps below can fill.
const IMAGE_SIZE: u64 = 64 << 20;
/// Most bytes of file data (holes excluded) in one tree.
const MAX_DATA: u64 = 8 << 20;
/// Largest sparse file.
const MAX_SPARSE: u64 = 64 << 20;
/// Most operations per input.
const MAX_OPS: usize = 48;
/// ext4's longest symlink target ([`banger_ext4::spec`]).
const MAX_SYMLINK_LEN: usize = 4095;

#[derive(Arbitrary, Debug)]
enum Name {
    Short(u8),
    Raw(Vec<u8>),
    Long(u8),
}

impl Name {
    /// A valid ext4 name derived from the fuzzer's choice.
    fn bytes(&self) -> Vec<u8> {
        let mut name = match self {
            Name::Short(n) => format!("f{n}").into_bytes(),
            Name::Raw(raw) => raw
                .iter()
                .map(|&b| if b == b'/' || b == 0 { b'_' } else { b })
                .collect(),
            Name::Long(b) => vec![b'a' + b % 26; MAX_NAME_LEN],
        };
        name.truncate(MAX_NAME_LEN);
        if name.is_empty() || name == b"." || name == b".." {
            name = b"n".to_vec();
        }
        name
    }
}

#[derive(Arbitrary, Debug)]
struct Meta {
    permissions: u16,
    uid: u32,
    gid: u32,
    mtime: i64,
    nanos: u32,
}

impl Meta {
    fn metadata(&self) -> Metadata {
        // ext4-view 1.0 refuses any on-disk time whose 32-bit base field has
        // its sign bit set (it converts with `i32::try_from` where the kernel
        // casts), so every time before 1970 reads as corruption there. Keep
        // to times it can read: a non-negative base under each epoch value.
        let epoch = self.mtime.rem_euclid(4) << 32;
        let secs = epoch + (self.mtime >> 2).rem_euclid(1 << 31);
        let mut meta = Metadata::new(
            self.permissions,
            Timestamp {
                secs,
                nanos: self.nanos,
            },
        );
        meta.uid = self.uid;
        meta.gid = self.gid;
        meta
    }
}

#[derive(Arbitrary, Debug)]
enum Data {
    Bytes(Vec<u8>),
    Pattern { seed: u8, len: u32 },
}

#[derive(Arbitrary, Debug)]
enum XattrName {
    User(Vec<u8>),
    Trusted(Vec<u8>),
    Security(Vec<u8>),
    AclAccess,
    AclDefault,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Op {
    File {
        dir: u8,
        name: Name,
        meta: Meta,
        data: Data,
    },
    Sparse {
        dir: u8,
        name: Name,
        meta: Meta,
        size: u32,
        runs: Vec<(u32, u16, u8)>,
    },
    Dir {
        dir: u8,
        name: Name,
        meta: Meta,
    },
    Symlink {
        dir: u8,
        name: Name,
        meta: Meta,
        target: Vec<u8>,
        pad: u16,
    },
    HardLink {
        dir: u8,
        name: Name,
        node: u8,
    },
    Device {
        dir: u8,
        name: Name,
        meta: Meta,
        block: bool,
        major: u32,
        minor: u32,
    },
    Fifo {
        dir: u8,
        name: Name,
        meta: Meta,
    },
    Socket {
        dir: u8,
        name: Name,
        meta: Meta,
    },
    ManyEntries {
        dir: u8,
        count: u16,
        long: bool,
    },
    Xattr {
        node: u8,
        name: XattrName,
        value: Vec<u8>,
        big: u16,
    },
    Unlink {
        dir: u8,
        entry: u8,
    },
}

/// A file of zeros with data at a few ranges, each filled with one byte.
#[derive(Debug)]
struct SparseSource {
    len: u64,
    runs: Vec<(Range<u64>, u8)>,
}

impl ContentSource for SparseSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn data_ranges(&self) -> Vec<Range<u64>> {
        self.runs.iter().map(|(r, _)| r.clone()).collect()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let end = self.len.min(offset.saturating_add(buf.len() as u64));
        if offset >= end {
            return Ok(0);
        }
        let n = (end - offset) as usize;
        buf[..n].fill(0);
        for (range, byte) in &self.runs {
            let (s, e) = (range.start.max(offset), range.end.min(end));
            if s < e {
                buf[(s - offset) as usize..(e - offset) as usize].fill(*byte);
            }
        }
        Ok(n)
    }
}

/// Builds a tree from the operations, keeping within the content caps.
struct Builder {
    tree: Tree,
    dirs: Vec<NodeId>,
    nodes: Vec<NodeId>,
    data: u64,
}

impl Builder {
    fn pick_dir(&self, dir: u8) -> NodeId {
        self.dirs[dir as usize % self.dirs.len()]
    }

    fn put(&mut self, dir: u8, name: &Name, kind: NodeKind, meta: Metadata) {
        let parent = self.pick_dir(dir);
        let is_dir = kind.is_dir();
        let id = self.tree.add(kind, meta);
        // A directory whose parent was unlinked is still a valid place to
        // link into; only the reachable part is written.
        if self.tree.link(parent, &name.bytes(), id).is_ok() {
            if is_dir {
                self.dirs.push(id);
            }
            self.nodes.push(id);
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::File {
                dir,
                name,
                meta,
                data,
            } => {
                let bytes = match data {
                    Data::Bytes(bytes) => bytes,
                    Data::Pattern { seed, len } => {
                        let len = u64::from(len) % (MAX_DATA / 4);
                        (0..len)
                            .map(|i| (i as u8).wrapping_mul(seed) ^ (i >> 12) as u8)
                            .collect()
                    }
                };
                if self.data + bytes.len() as u64 > MAX_DATA {
                    return;
                }
                self.data += bytes.len() as u64;
                self.put(
                    dir,
                    &name,
                    NodeKind::File(FileContent::from_bytes(bytes)),
                    meta.metadata(),
                );
            }
            Op::Sparse {
                dir,
                name,
                meta,
                size,
                runs,
            } => {
                let len = u64::from(size) % MAX_SPARSE;
                let mut sorted: Vec<(Range<u64>, u8)> = Vec::new();
                let mut starts: Vec<(u64, u64, u8)> = runs
                    .iter()
                    .take(16)
                    .filter(|_| len > 0)
                    .map(|&(at, n, b)| (u64::from(at) % len, u64::from(n) * 7, b))
                    .collect();
                starts.sort();
                let mut last = 0;
                for (start, n, byte) in starts {
                    let start = start.max(last);
                    let end = (start + n).min(len);
                    if start < end {
                        sorted.push((start..end, byte));
                        last = end;
                    }
                }
                let data: u64 = sorted.iter().map(|(r, _)| r.end - r.start).sum();
                if self.data + data > MAX_DATA {
                    return;
                }
                self.data += data;
                let source = SparseSource { len, runs: sorted };
                self.put(
                    dir,
                    &name,
                    NodeKind::File(FileContent::Source(Arc::new(source))),
                    meta.metadata(),
                );
            }
            Op::Dir { dir, name, meta } => {
                self.put(
                    dir,
                    &name,
                    NodeKind::Directory(Directory::default()),
                    meta.metadata(),
                );
            }
            Op::Symlink {
                dir,
                name,
                meta,
                mut target,
                pad,
            } => {
                target.retain(|&b| b != 0);
                target.resize(target.len() + usize::from(pad % 4200), b'x');
                self.put(dir, &name, NodeKind::Symlink(target), meta.metadata());
            }
            Op::HardLink { dir, name, node } => {
                let candidates: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .copied()
                    .filter(|&id| !self.tree.node(id).kind.is_dir())
                    .collect();
                if candidates.is_empty() {
                    return;
                }
                let target = candidates[node as usize % candidates.len()];
                let parent = self.pick_dir(dir);
                let _ = self.tree.link(parent, &name.bytes(), target);
            }
            Op::Device {
                dir,
                name,
                meta,
                block,
                major,
                minor,
            } => {
                let number = DeviceNumber {
                    major: major % 5000,
                    minor: minor % (1 << 21),
                };
                let kind = if block {
                    NodeKind::BlockDevice(number)
                } else {
                    NodeKind::CharDevice(number)
                };
                self.put(dir, &name, kind, meta.metadata());
            }
            Op::Fifo { dir, name, meta } => self.put(dir, &name, NodeKind::Fifo, meta.metadata()),
            Op::Socket { dir, name, meta } => {
                self.put(dir, &name, NodeKind::Socket, meta.metadata())
            }
            Op::ManyEntries { dir, count, long } => {
                let parent = self.pick_dir(dir);
                for i in 0..count % 1500 {
                    let mut name = format!("entry-{i:05}").into_bytes();
                    if long {
                        name.resize(200, b'z');
                    }
                    let id = self.tree.add(
                        NodeKind::File(FileContent::empty()),
                        Metadata::new(0o644, Timestamp::default()),
                    );
                    let _ = self.tree.link(parent, &name, id);
                }
            }
            Op::Xattr {
                node,
                name,
                mut value,
                big,
            } => {
                let all: Vec<NodeId> = std::iter::once(Tree::ROOT)
                    .chain(self.nodes.iter().copied())
                    .collect();
                let id = all[node as usize % all.len()];
                let full = match name {
                    XattrName::User(s) => [b"user.".as_slice(), &s].concat(),
                    XattrName::Trusted(s) => [b"trusted.".as_slice(), &s].concat(),
                    XattrName::Security(s) => [b"security.".as_slice(), &s].concat(),
                    XattrName::AclAccess => b"system.posix_acl_access".to_vec(),
                    XattrName::AclDefault => b"system.posix_acl_default".to_vec(),
                    XattrName::Raw(s) => s,
                };
                value.resize(value.len() + usize::from(big % 5000), 0xa5);
                self.tree.node_mut(id).meta.xattrs.insert(full, value);
            }
            Op::Unlink { dir, entry } => {
                let parent = self.pick_dir(dir);
                let name = self.tree.dir(parent).and_then(|d| {
                    d.iter()
                        .nth(entry as usize % d.len().max(1))
                        .map(|(n, _)| n.to_vec())
                });
                if let Some(name) = name {
                    self.tree.unlink(parent, &name);
                }
            }
        }
    }
}

/// What about the reachable tree makes ext4 refuse it legitimately.
#[derive(Debug, Default)]
struct Unrepresentable {
    long_symlink: bool,
    empty_symlink: bool,
    big_device: bool,
    xattrs: bool,
}

fn unrepresentable(tree: &Tree) -> Unrepresentable {
    let mut u = Unrepresentable::default();
    for id in tree.reachable() {
        let node = tree.node(id);
        u.xattrs |= !node.meta.xattrs.is_empty();
        match &node.kind {
            NodeKind::Symlink(t) => {
                u.long_symlink |= t.len() > MAX_SYMLINK_LEN;
                u.empty_symlink |= t.is_empty();
            }
            NodeKind::CharDevice(d) | NodeKind::BlockDevice(d) => {
                u.big_device |= d.major >= 1 << 12 || d.minor >= 1 << 20;
            }
            _ => {}
        }
    }
    u
}

fn accepted(err: &BuildError, u: &Unrepresentable) -> bool {
    match err {
        BuildError::SymlinkTooLong { .. } => u.long_symlink,
        BuildError::EmptySymlink(_) => u.empty_symlink,
        BuildError::DeviceNumber { .. } => u.big_device,
        BuildError::Xattr { .. } => u.xattrs,
        _ => false,
    }
}

fn contents(content: &FileContent) -> Vec<u8> {
    let FileContent::Source(source) = content else {
        panic!("placed content in a fuzz tree");
    };
    let mut buf = vec![0u8; source.len() as usize];
    let mut done = 0;
    while done < buf.len() {
        let n = source
            .read_at(done as u64, &mut buf[done..])
            .expect("memory read");
        assert!(n > 0, "short source");
        done += n;
    }
    buf
}

fn expected_time(t: Timestamp) -> (i64, u32) {
    (
        t.secs
            .clamp(i64::from(i32::MIN), (3 << 32) + i64::from(i32::MAX)),
        t.nanos.min(999_999_999),
    )
}

/// Compares `dir` of `tree` with `path` in the image, recursively.
fn compare_dir(fs: &ext4_view::Ext4, tree: &Tree, dir: NodeId, path: &[u8]) {
    let shown = String::from_utf8_lossy(path).into_owned();
    let listing: BTreeSet<Vec<u8>> = fs
        .read_dir(ext4_view::Path::try_from(path).expect("valid path"))
        .unwrap_or_else(|e| panic!("read_dir {shown}: {e}"))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("entry in {shown}: {e}"))
                .file_name()
                .as_ref()
                .to_vec()
        })
        .filter(|name| name != b"." && name != b"..")
        .collect();
    let entries = tree.dir(dir).expect("a directory");
    let mut expected: BTreeSet<Vec<u8>> = entries.iter().map(|(n, _)| n.to_vec()).collect();
    if dir == Tree::ROOT {
        expected.insert(b"lost+found".to_vec());
    }
    assert_eq!(listing, expected, "listing of {shown}");

    for (name, id) in entries.iter() {
        let mut child_path = path.to_vec();
        if child_path != b"/" {
            child_path.push(b'/');
        }
        child_path.extend_from_slice(name);
        let shown = String::from_utf8_lossy(&child_path).into_owned();
        let p = ext4_view::Path::try_from(child_path.as_slice()).expect("valid path");
        let meta = fs
            .symlink_metadata(p)
            .unwrap_or_else(|e| panic!("stat {shown}: {e}"));
        let node = tree.node(id);
        let ft = meta.file_type();
        let type_ok = match &node.kind {
            NodeKind::File(_) => ft.is_regular_file(),
            NodeKind::Directory(_) => ft.is_dir(),
            NodeKind::Symlink(_) => ft.is_symlink(),
            NodeKind::CharDevice(_) => ft.is_char_dev(),
            NodeKind::BlockDevice(_) => ft.is_block_dev(),
            NodeKind::Fifo => ft.is_fifo(),
            NodeKind::Socket => ft.is_socket(),
        };
        assert!(type_ok, "{shown}: type {ft:?} for {:?}", node.kind);
        if !ft.is_symlink() {
            assert_eq!(meta.mode(), node.meta.permissions & 0o7777, "{shown}: mode");
        }
        assert_eq!(
            (meta.uid(), meta.gid()),
            (node.meta.uid, node.meta.gid),
            "{shown}: owner"
        );
        let mtime = meta.modified();
        assert_eq!(
            (mtime.seconds(), mtime.nanoseconds()),
            expected_time(node.meta.mtime),
            "{shown}: mtime"
        );
        match &node.kind {
            NodeKind::File(content) => {
                assert_eq!(meta.len(), content.size(), "{shown}: size");
                let data = fs.read(p).unwrap_or_else(|e| panic!("read {shown}: {e}"));
                assert!(data == contents(content), "{shown}: contents differ");
            }
            NodeKind::Symlink(target) => {
                assert_eq!(meta.len(), target.len() as u64, "{shown}: target length");
                // ext4-view's paths cannot hold a component over 255 bytes,
                // so it refuses to return such a target (Linux returns it).
                if target
                    .split(|&b| b == b'/')
                    .all(|c| c.len() <= MAX_NAME_LEN)
                {
                    let read = fs
                        .read_link(p)
                        .unwrap_or_else(|e| panic!("readlink {shown}: {e}"));
                    assert_eq!(read.as_ref(), target.as_slice(), "{shown}: target");
                }
            }
            NodeKind::Directory(_) => compare_dir(fs, tree, id, &child_path),
            _ => {}
        }
    }
}

/// The image file, on tmpfs when there is one; reused by every run.
fn image_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("banger-fuzz-formatter-{}.img", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(root_meta) = Meta::arbitrary(&mut u) else {
        return;
    };
    let mut builder = Builder {
        tree: Tree::new(root_meta.metadata()),
        dirs: vec![Tree::ROOT],
        nodes: Vec::new(),
        data: 0,
    };
    for _ in 0..MAX_OPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => builder.apply(op),
            Err(_) => break,
        }
    }
    let tree = builder.tree;
    let options = Options {
        size: Some(IMAGE_SIZE),
        max_size: IMAGE_SIZE,
        ..Options::default()
    };
    let path = image_path();
    let result = write_image(&tree, path, options);
    if let Err(err) = &result {
        let u = unrepresentable(&tree);
        let _ = std::fs::remove_file(path);
        assert!(accepted(err, &u), "write failed: {err} ({err:?}); {u:?}");
        return;
    }
    let fs =
        ext4_view::Ext4::load_from_path(path).unwrap_or_else(|e| panic!("ext4-view load: {e}"));
    compare_dir(&fs, &tree, Tree::ROOT, b"/");
    if std::env::var_os("BANGER_FUZZ_E2FSCK").is_some() {
        let out = std::process::Command::new("e2fsck")
            .args(["-fn"])
            .arg(path)
            .output()
            .expect("e2fsck runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let noisy = text.lines().any(|l| {
            !(l.starts_with("e2fsck ")
                || l.starts_with("Pass ")
                || l.contains(" files, ")
                || l.trim().is_empty())
        });
        assert!(out.status.success() && !noisy, "e2fsck:\n{text}");
    }
    let _ = std::fs::remove_file(path);
});
