//! Byte-identity oracle: the SHA-256 of images written from fixed trees.
//!
//! A refactoring of the formatter must leave every written byte unchanged,
//! so these digests are pinned. A change that alters the on-disk format on
//! purpose updates them in the same commit and says why.

mod common;

use std::io::Read;
use std::sync::Arc;

use banger_ext4::builder::{write_image, BuildError, ImageBuilder, Options};
use banger_ext4::geometry::GeometryError;
use banger_ext4::tree::{ContentStore, FileContent, NodeKind, Tree};
use banger_testkit::{arb_tree, sample_tree, SparseSource};
use common::*;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use sha2::{Digest, Sha256};

/// SHA-256 of the image written from `tree` with `options`, in hex.
fn digest(tree: &Tree, options: Options) -> String {
    digest_file(&write(tree, options).path)
}

/// SHA-256 of the file at `path`, in hex.
fn digest_file(path: &std::path::Path) -> String {
    let mut file = std::fs::File::open(path).expect("open image");
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("read image");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

fn small(size_mib: u64) -> Options {
    Options {
        size: Some(size_mib << 20),
        ..Options::default()
    }
}

/// A directory of `n` files with names of varied length: an htree.
fn big_dir(n: usize) -> Tree {
    let mut tree = new_tree();
    let d = tree
        .ensure_dir(Tree::ROOT, b"big", meta(0o755))
        .expect("dir");
    for i in 0..n {
        let name = format!("{i:0width$}", width = 1 + i % 40);
        add_file(&mut tree, d, &name, name.as_bytes(), 0o644);
    }
    tree
}

/// Many subdirectories, spread over the groups, with hard links across them.
fn many_dirs() -> Tree {
    let mut tree = new_tree();
    let shared = add_file(&mut tree, Tree::ROOT, "shared", b"shared", 0o644);
    for i in 0..1500 {
        let d = tree
            .ensure_dir(Tree::ROOT, format!("d{i}").as_bytes(), meta(0o755))
            .expect("dir");
        if i % 5 == 0 {
            tree.link(d, b"link", shared).expect("link");
        }
        let link = tree.add(
            NodeKind::Symlink(vec![b'a' + (i % 26) as u8; 1 + i % 200]),
            meta(0o777),
        );
        tree.link(d, b"sym", link).expect("link");
    }
    tree
}

/// A file of one-block runs between holes: an extent tree of depth 2.
fn fragmented() -> Tree {
    let mut tree = new_tree();
    let ranges: Vec<(u64, Vec<u8>)> = (0..2000u64)
        .map(|i| (i * 2 * 4096, vec![(i % 251 + 1) as u8; 4096]))
        .collect();
    let source = SparseSource::new(4000 * 4096, ranges);
    let id = tree.add(
        NodeKind::File(FileContent::Source(Arc::new(source))),
        meta(0o644),
    );
    tree.link(Tree::ROOT, b"fragmented", id).expect("link");
    add_pattern_file(&mut tree, Tree::ROOT, "pattern", 3 << 20);
    tree
}

/// An image built as banger builds one: file data streamed into the image
/// while the tree grows, a file overwritten (its first data is dead and
/// punched out), a sparse file, and ids set after the data is in.
fn streamed_digest() -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("streamed.ext4");
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("create");
    let mut builder = ImageBuilder::new(file, small(64)).expect("builder");
    let mut tree = new_tree();
    let etc = tree
        .ensure_dir(Tree::ROOT, b"etc", meta(0o755))
        .expect("dir");
    let mut put =
        |tree: &mut Tree, dir, name: &[u8], bytes: &[u8], ranges: &[std::ops::Range<u64>]| {
            let content = builder
                .store(&mut &bytes[..], bytes.len() as u64, ranges)
                .expect("stored");
            if tree.lookup(dir, name).is_some() {
                tree.unlink(dir, name);
            }
            let id = tree.add(NodeKind::File(content), meta(0o644));
            tree.link(dir, name, id).expect("link");
        };
    let old = vec![0x5Au8; 300_000];
    put(&mut tree, etc, b"passwd", &old, &[0..old.len() as u64]);
    put(&mut tree, etc, b"hostname", b"streamed\n", &[0..9]);
    let new = vec![0xA5u8; 50_000];
    put(&mut tree, etc, b"passwd", &new, &[0..new.len() as u64]);
    let sparse: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8 | 1).collect();
    let content = builder
        .store(&mut &sparse[..], 1 << 20, &[4096..8192, 100_000..104_096])
        .expect("stored");
    let id = tree.add(NodeKind::File(content), meta(0o600));
    tree.link(Tree::ROOT, b"sparse", id).expect("link");
    builder.set_ids([3; 16], [4; 16]);
    builder.finish(&tree).expect("finished");
    digest_file(&path)
}

/// The smallest size the formatter accepts for `tree`.
fn needed_size(tree: &Tree) -> u64 {
    let dir = tempfile::tempdir().expect("tmp");
    match write_image(tree, &dir.path().join("x"), small(1)) {
        Err(BuildError::Geometry(GeometryError::TooSmall { needed, .. })) => needed,
        other => panic!("expected TooSmall, got {other:?}"),
    }
}

#[test]
fn images_are_byte_identical_to_the_pinned_digests() {
    let mut got = Vec::new();
    got.push(("sample", digest(&sample_tree(), Options::default())));
    let sample = sample_tree();
    let edge = needed_size(&sample);
    got.push((
        "sample-at-edge",
        digest(
            &sample,
            Options {
                size: Some(edge),
                ..Options::default()
            },
        ),
    ));
    got.push(("big-dir-3000", digest(&big_dir(3000), small(64))));
    got.push(("big-dir-40000", digest(&big_dir(40_000), small(256))));
    got.push(("many-dirs", digest(&many_dirs(), small(300))));
    got.push(("fragmented", digest(&fragmented(), small(64))));
    let tiny = new_tree();
    let tiny_edge = needed_size(&tiny);
    got.push((
        "empty-at-edge",
        digest(
            &tiny,
            Options {
                size: Some(tiny_edge),
                ..Options::default()
            },
        ),
    ));

    got.push(("streamed", streamed_digest()));

    let mut runner = TestRunner::deterministic();
    let mut random = Sha256::new();
    for _ in 0..24 {
        let tree = arb_tree().new_tree(&mut runner).expect("a tree").current();
        random.update(digest(&tree, small(48)).as_bytes());
    }
    let random = hex::encode(random.finalize());
    got.push(("random-24", random));

    let report: String = got
        .iter()
        .map(|(name, hash)| format!("{hash}  {name}\n"))
        .collect();
    println!("{report}");
    let expected: String = EXPECTED
        .iter()
        .map(|(name, hash)| format!("{hash}  {name}\n"))
        .collect();
    assert_eq!(report, expected, "image bytes changed");
}

/// Recorded before the builder was split up (issue 11).
const EXPECTED: &[(&str, &str)] = &[
    (
        "sample",
        "0ee1c14c500f05961f5f4c0dd70b06ea901b3b4dd340e665d2d4c16ad64488f1",
    ),
    (
        "sample-at-edge",
        "fb9e6fda805551dfd266ab7f412783e4cf498821a5f1c48118da14fb44618704",
    ),
    (
        "big-dir-3000",
        "c56e7505827e15181ab7d725dc6141f6169cff4a77d117238a2fd1100d35e611",
    ),
    (
        "big-dir-40000",
        "6522a7cb0d87c666a13b10d0b9872de617e3aeefc8cef628040e609e6a6aa693",
    ),
    (
        "many-dirs",
        "daa249e0ada154c350d52655ee2393210e878b883c135adf51a035d520542f84",
    ),
    (
        "fragmented",
        "dfb0e974ada419c9c63386dfea21dd360b0cae2084454c8f118a0a88c8c04fc8",
    ),
    (
        "empty-at-edge",
        "fabc14091c6eee16bfdeac7c1c0b7298755bff609ce013940913890559eeee49",
    ),
    (
        "streamed",
        "a5e2e27075832948d05277a48baf5e8cbdbc19ff47a466f4c5fb2eee2e60b9c1",
    ),
    (
        "random-24",
        "98a4eac6b9f6d7ba0bbf443768b2ba4d0567fccda58797c5cf493875bfa3b046",
    ),
];
