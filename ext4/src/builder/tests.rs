//! Sizing against writing: the blocks the geometry was chosen for are the
//! blocks the writer took, and sizes at the edge behave.

use super::*;
use crate::geometry::GeometryError;
use crate::tree::{DeviceNumber, FileContent, Metadata, NodeId, NodeKind, Timestamp};

fn meta(permissions: u16) -> Metadata {
    Metadata::new(permissions, Timestamp::from_secs(1_700_000_000))
}

fn add(tree: &mut Tree, dir: NodeId, name: &[u8], kind: NodeKind) -> NodeId {
    let id = tree.add(kind, meta(0o644));
    tree.link(dir, name, id).expect("valid name");
    id
}

fn bytes(bytes: Vec<u8>) -> NodeKind {
    NodeKind::File(FileContent::from_bytes(bytes))
}

/// Writes `tree` into a temporary file.
fn measure(tree: &Tree, options: Options) -> Result<(ImageSummary, Span), BuildError> {
    let image = tempfile::tempfile().expect("temp file");
    ImageBuilder::new(image, options)?.finish_measured(tree)
}

fn sized(bytes: u64) -> Options {
    Options {
        size: Some(bytes),
        ..Options::default()
    }
}

/// Files, symlinks of both kinds, devices, hard links and xattrs, one set
/// large enough for a block and shared.
fn mixed() -> Tree {
    let mut tree = Tree::new(meta(0o755));
    let etc = tree
        .ensure_dir(Tree::ROOT, b"etc", meta(0o755))
        .expect("dir");
    let passwd = add(&mut tree, etc, b"passwd", bytes(vec![b'p'; 10_000]));
    tree.link(Tree::ROOT, b"passwd-link", passwd).expect("link");
    add(
        &mut tree,
        etc,
        b"short",
        NodeKind::Symlink(b"passwd".to_vec()),
    );
    add(&mut tree, etc, b"long", NodeKind::Symlink(vec![b'l'; 300]));
    let dev = DeviceNumber {
        major: 259,
        minor: 70_000,
    };
    add(&mut tree, Tree::ROOT, b"nvme", NodeKind::BlockDevice(dev));
    let mut xattrs = meta(0o644);
    xattrs.xattrs.insert(b"user.big".to_vec(), vec![b'x'; 2000]);
    for name in [&b"x1"[..], b"x2"] {
        let id = tree.add(bytes(b"x".to_vec()), xattrs.clone());
        tree.link(Tree::ROOT, name, id).expect("link");
    }
    tree
}

/// One directory of `n` entries.
fn wide(n: usize) -> Tree {
    let mut tree = Tree::new(meta(0o755));
    let d = tree.ensure_dir(Tree::ROOT, b"d", meta(0o755)).expect("dir");
    for i in 0..n {
        add(
            &mut tree,
            d,
            format!("entry-{i}").as_bytes(),
            NodeKind::Fifo,
        );
    }
    tree
}

/// `n` directories nested in one another.
fn deep(n: usize) -> Tree {
    let mut tree = Tree::new(meta(0o755));
    let mut dir = Tree::ROOT;
    for _ in 0..n {
        dir = tree.ensure_dir(dir, b"d", meta(0o755)).expect("dir");
    }
    tree
}

/// A file of 300 one-block runs between holes: an extent tree block.
fn fragmented() -> Tree {
    let mut tree = Tree::new(meta(0o755));
    let mut data = vec![0u8; 600 * BLOCK_SIZE as usize];
    for block in data.chunks_mut(2 * BLOCK_SIZE as usize) {
        block[0] = 1;
    }
    add(&mut tree, Tree::ROOT, b"fragmented", bytes(data));
    tree
}

#[test]
fn sizing_predicts_exactly_the_blocks_the_writer_takes() {
    let trees = [
        ("empty", Tree::new(meta(0o755))),
        ("mixed", mixed()),
        ("htree", wide(5000)),
        ("deep", deep(2000)),
        ("fragmented", fragmented()),
    ];
    for (name, tree) in &trees {
        for options in [Options::default(), sized(64 << 20)] {
            let (_, span) = measure(tree, options).expect(name);
            assert_eq!(span.predicted, span.written, "{name}");
        }
    }
}

#[test]
fn an_image_at_the_size_edge_is_written_and_one_block_less_is_refused() {
    for (name, tree) in [("empty", Tree::new(meta(0o755))), ("mixed", mixed())] {
        let needed = match measure(&tree, sized(BLOCK_SIZE)) {
            Err(BuildError::Geometry(GeometryError::TooSmall { needed, .. })) => needed,
            other => panic!("{name}: one block is too small, got {other:?}"),
        };
        let (summary, span) = measure(&tree, sized(needed)).expect(name);
        assert_eq!(summary.geometry.blocks_count * BLOCK_SIZE, needed, "{name}");
        assert!(span.written <= summary.geometry.blocks_count, "{name}");
        match measure(&tree, sized(needed - BLOCK_SIZE)) {
            Err(BuildError::Geometry(GeometryError::TooSmall {
                needed: again,
                requested,
            })) => {
                assert_eq!((again, requested), (needed, needed - BLOCK_SIZE), "{name}");
            }
            other => panic!("{name}: one block less than needed, got {other:?}"),
        }
    }
}

#[test]
fn the_summary_counts_inodes_and_blocks_in_use() {
    let (summary, span) = measure(&mixed(), sized(64 << 20)).expect("written");
    // Reserved inodes 1–11, then etc, long, passwd, short, nvme, x1, x2.
    assert_eq!(summary.used_inodes, 18);
    assert!(summary.used_blocks >= span.written - summary.geometry.gdt_blocks);
    assert_eq!(summary.geometry.blocks_count, (64 << 20) / BLOCK_SIZE);
}
