//! Helpers shared by the formatter's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use banger_ext4::builder::{write_image, ImageSummary, Options};
use banger_ext4::tree::{FileContent, Metadata, NodeId, NodeKind, Timestamp, Tree};
use banger_testkit::{assert_fsck_clean, assert_image_matches_tree, CompareOptions};

/// A fixed time for test trees.
pub const T: Timestamp = Timestamp {
    secs: 1_700_000_000,
    nanos: 123_456_789,
};

/// An image written into a temporary directory that lives as long as it.
pub struct Written {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub summary: ImageSummary,
}

/// Metadata owned by root with `permissions`, every time at [`T`].
pub fn meta(permissions: u16) -> Metadata {
    Metadata::new(permissions, T)
}

/// An empty tree with a 0755 root.
pub fn new_tree() -> Tree {
    Tree::new(meta(0o755))
}

/// Adds a regular file holding `bytes` under `dir`.
pub fn add_file(
    tree: &mut Tree,
    dir: NodeId,
    name: &str,
    bytes: &[u8],
    permissions: u16,
) -> NodeId {
    let id = tree.add(
        NodeKind::File(FileContent::from_bytes(bytes.to_vec())),
        meta(permissions),
    );
    tree.link(dir, name.as_bytes(), id).expect("valid name");
    id
}

/// Writes `tree` with `options` into a fresh temporary file.
pub fn write(tree: &Tree, options: Options) -> Written {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("image.ext4");
    let summary = write_image(tree, &path, options).expect("image written");
    Written { dir, path, summary }
}

/// Writes `tree` and checks it with both oracles: `e2fsck -fn` must be
/// silent and ext4-view must read back exactly the tree.
pub fn write_checked(tree: &Tree, options: Options) -> Written {
    let written = write(tree, options);
    assert_fsck_clean(&written.path);
    assert_image_matches_tree(&written.path, tree, &CompareOptions::default());
    written
}

/// Runs a debugfs request against an image and returns what it printed.
pub fn debugfs(img: &Path, request: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", request])
        .arg(img)
        .output()
        .expect("debugfs runs (install e2fsprogs)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dumpe2fs -h` output.
pub fn dumpe2fs(img: &Path) -> String {
    let out = Command::new("dumpe2fs")
        .arg(img)
        .output()
        .expect("dumpe2fs runs (install e2fsprogs)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dumpe2fs -h`: the superblock only, without the per-group lines, which
/// for a terabyte-sized image take longer than e2fsck.
pub fn dumpe2fs_header(img: &Path) -> String {
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(img)
        .output()
        .expect("dumpe2fs runs (install e2fsprogs)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of a `Key:   value` line in dumpe2fs/debugfs output.
pub fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(':'))
        })
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key:?} in:\n{text}"))
}

/// Flips one byte of the image at `offset`.
pub fn corrupt(img: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(img)
        .expect("open");
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, offset).expect("read");
    byte[0] ^= 0xFF;
    file.write_all_at(&byte, offset).expect("write");
}

/// A file of non-zero bytes made on the fly, so tests can write large files
/// without holding them.
#[derive(Debug)]
pub struct Pattern(pub u64);

impl banger_ext4::tree::ContentSource for Pattern {
    fn len(&self) -> u64 {
        self.0
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        // Each 4 KiB block holds one non-zero byte value derived from its
        // index: cheap to make, and a misplaced block changes the digest.
        let n = buf.len().min((self.0 - offset.min(self.0)) as usize);
        let mut done = 0;
        while done < n {
            let at = offset + done as u64;
            let run = (4096 - (at % 4096) as usize).min(n - done);
            let block = at / 4096;
            buf[done..done + run].fill((block ^ (block >> 8)) as u8 | 1);
            done += run;
        }
        Ok(n)
    }
}

/// Adds a file of `len` pattern bytes under `dir`.
pub fn add_pattern_file(tree: &mut Tree, dir: NodeId, name: &str, len: u64) -> NodeId {
    let content = FileContent::Source(std::sync::Arc::new(Pattern(len)));
    let id = tree.add(NodeKind::File(content), meta(0o644));
    tree.link(dir, name.as_bytes(), id).expect("valid name");
    id
}
