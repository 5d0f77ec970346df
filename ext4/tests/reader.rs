//! The read-only reader against random trees (the expectation is the tree
//! the formatter was given, never the reader's own output) and against
//! corrupted images (errors, never panics).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use banger_ext4::builder::Options;
use banger_ext4::read::{FileKind, Image, InodeView};
use banger_ext4::tree::{FileContent, NodeId, NodeKind, Tree};
use banger_testkit::arb_tree;
use proptest::prelude::*;

fn expected_kind(kind: &NodeKind) -> FileKind {
    match kind {
        NodeKind::File(_) => FileKind::Regular,
        NodeKind::Directory(_) => FileKind::Directory,
        NodeKind::Symlink(_) => FileKind::Symlink,
        NodeKind::CharDevice(_) => FileKind::CharDevice,
        NodeKind::BlockDevice(_) => FileKind::BlockDevice,
        NodeKind::Fifo => FileKind::Fifo,
        NodeKind::Socket => FileKind::Socket,
    }
}

fn tree_bytes(content: &FileContent) -> Vec<u8> {
    let FileContent::Source(source) = content else {
        panic!("random trees hold their bytes");
    };
    let mut bytes = vec![0u8; source.len() as usize];
    let n = banger_testkit::content::read_full(|o, b| source.read_at(o, b), 0, &mut bytes).unwrap();
    assert_eq!(n, bytes.len());
    bytes
}

/// Checks one node against the inode the reader found at the same path.
fn check_node(
    image: &Image,
    tree: &Tree,
    id: NodeId,
    inode: &InodeView,
    raw_path: &[u8],
    seen: &mut HashMap<NodeId, u32>,
) {
    let path = &raw_path.escape_ascii().to_string();
    let node = tree.node(id);
    assert_eq!(inode.kind, expected_kind(&node.kind), "{path}: kind");
    assert_eq!(
        inode.permissions, node.meta.permissions,
        "{path}: permissions"
    );
    assert_eq!(
        (inode.uid, inode.gid),
        (node.meta.uid, node.meta.gid),
        "{path}: owner"
    );
    assert_eq!(inode.mtime, node.meta.mtime, "{path}: mtime");
    assert_eq!(inode.atime, node.meta.atime, "{path}: atime");
    assert_eq!(inode.ctime, node.meta.ctime, "{path}: ctime");
    assert_eq!(inode.crtime, Some(node.meta.crtime), "{path}: crtime");
    let xattrs: BTreeMap<Vec<u8>, Vec<u8>> = image
        .xattrs(inode)
        .unwrap()
        .into_iter()
        .map(|x| (x.name, x.value))
        .collect();
    assert_eq!(xattrs, node.meta.xattrs, "{path}: xattrs");
    // Hard links: one inode per node, whichever path reaches it.
    if let Some(&ino) = seen.get(&id) {
        assert_eq!(inode.ino, ino, "{path}: hard link to another inode");
        return;
    }
    seen.insert(id, inode.ino);
    match &node.kind {
        NodeKind::File(content) => {
            let mut read = Vec::new();
            image.copy_data(inode, &mut read).unwrap();
            assert!(read == tree_bytes(content), "{path}: contents");
        }
        NodeKind::Symlink(target) => {
            assert_eq!(&image.read_link(inode).unwrap(), target, "{path}: target");
        }
        NodeKind::CharDevice(dev) | NodeKind::BlockDevice(dev) => {
            assert_eq!(inode.device, Some(*dev), "{path}: device");
        }
        NodeKind::Directory(dir) => {
            let mut names: Vec<Vec<u8>> = image
                .read_dir(inode)
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .filter(|n| !(id == tree.root() && n == b"lost+found"))
                .collect();
            names.sort();
            let expected: Vec<Vec<u8>> = dir.iter().map(|(n, _)| n.to_vec()).collect();
            assert_eq!(names, expected, "{path}: entries");
            for (name, child) in dir.iter() {
                let child_path = [raw_path, b"/", name].concat();
                let found = image.lookup(&child_path, false).unwrap();
                check_node(image, tree, child, &found, &child_path, seen);
            }
        }
        NodeKind::Fifo | NodeKind::Socket => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_reader_reads_back_random_trees(tree in arb_tree()) {
        let written = common::write(&tree, Options { size: Some(64 << 20), ..Options::default() });
        let image = Image::open(&written.path).unwrap();
        let root = image.root().unwrap();
        check_node(&image, &tree, tree.root(), &root, b"", &mut HashMap::new());
    }
}

/// Reads everything reachable, ignoring errors: what `ls -R`, `stat` and
/// `export` do on an image of unknown origin.
fn walk_everything(image: &Image, dir: &InodeView, depth: u32) {
    let Ok(entries) = image.read_dir(dir) else {
        return;
    };
    for entry in entries {
        let Ok(inode) = image.inode(entry.ino) else {
            continue;
        };
        let _ = image.xattrs(&inode);
        match inode.kind {
            FileKind::Directory if depth < 8 => walk_everything(image, &inode, depth + 1),
            FileKind::Symlink => drop(image.read_link(&inode)),
            // A corrupt size may claim terabytes of holes; reading those proves nothing.
            FileKind::Regular if inode.size < 64 << 20 => {
                drop(image.copy_data(&inode, &mut std::io::sink()))
            }
            _ => {}
        }
    }
}

#[test]
fn corrupt_images_give_errors_not_panics() {
    let tree = banger_testkit::sample_tree();
    let written = common::write(
        &tree,
        Options {
            size: Some(16 << 20),
            ..Options::default()
        },
    );
    let pristine = std::fs::read(&written.path).unwrap();
    let file = OpenOptions::new().write(true).open(&written.path).unwrap();
    // Deterministic noise over the metadata the reader follows: superblock,
    // descriptors, inode tables, directory, extent and xattr blocks.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Only blocks that hold something: noise over zeros tests little.
    let used: Vec<u64> = pristine
        .chunks(4096)
        .enumerate()
        .filter(|(_, block)| block.iter().any(|&b| b != 0))
        .map(|(i, _)| i as u64 * 4096)
        .collect();
    for round in 0..300 {
        file.write_all_at(&pristine, 0).unwrap();
        for _ in 0..1 + round % 16 {
            let block = used[(next() % used.len() as u64) as usize];
            let offset = block + next() % 4096;
            file.write_all_at(&next().to_le_bytes()[..1 + (round % 8) as usize], offset)
                .unwrap();
        }
        if let Ok(image) = Image::open(&written.path) {
            if let Ok(root) = image.root() {
                walk_everything(&image, &root, 0);
            }
            let _ = image.lookup(b"/a/b/../../c", true);
        }
    }
}
