//! The flattening cases of CASES.md (1-33, 35, 36), each as a named test.
//! Tars are written by hand here, header by header, so every format detail
//! (pax, GNU long names, sparse maps, base-256) is exactly what the test
//! says; `real_gnu_tar_*` cross-checks against archives GNU tar writes.

use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;

use banger::ext4::tree::{
    ContentSource, ContentStore, FileContent, LendingRead, MemoryStore, Metadata, Node, NodeId,
    NodeKind, PlacedData, Timestamp, Tree,
};
use banger::flatten::{
    flatten_layers, EntryError, FlattenError, FlattenErrorKind, Flattener, LimitError, Limits,
    TarError,
};
use support::message;

mod support;

// ---------------------------------------------------------------- tar writer

/// One header's fields.
#[derive(Clone)]
struct H {
    path: Vec<u8>,
    kind: u8,
    mode: u64,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: Vec<u8>,
    major: u64,
    minor: u64,
}

impl H {
    fn new(path: impl AsRef<[u8]>, kind: u8) -> Self {
        Self {
            path: path.as_ref().to_vec(),
            kind,
            mode: if kind == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 1_600_000_000,
            link: Vec::new(),
            major: 0,
            minor: 0,
        }
    }
}

/// Writes a number as octal, or base-256 when it does not fit.
fn put_num(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    if v < 1u64 << (3 * digits) {
        let text = format!("{v:0digits$o}");
        field[..digits].copy_from_slice(text.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        let n = field.len();
        field[n - 8..].copy_from_slice(&v.to_be_bytes());
        field[0] = 0x80;
    }
}

fn put_str(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
}

fn encode(h: &H, patch: impl FnOnce(&mut [u8; 512])) -> [u8; 512] {
    let mut b = [0u8; 512];
    put_str(&mut b[0..100], &h.path);
    put_num(&mut b[100..108], h.mode);
    put_num(&mut b[108..116], h.uid);
    put_num(&mut b[116..124], h.gid);
    put_num(&mut b[124..136], h.size);
    put_num(&mut b[136..148], h.mtime);
    b[156] = h.kind;
    put_str(&mut b[157..257], &h.link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    put_num(&mut b[329..337], h.major);
    put_num(&mut b[337..345], h.minor);
    patch(&mut b);
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

fn pad(v: &mut Vec<u8>) {
    v.resize(v.len().div_ceil(512) * 512, 0);
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

#[derive(Default, Clone)]
struct Tar(Vec<u8>);

impl Tar {
    fn new() -> Self {
        Self::default()
    }
    fn raw(&mut self, h: &H, data: &[u8]) -> &mut Self {
        self.raw_patched(h, data, |_| {})
    }
    fn raw_patched(&mut self, h: &H, data: &[u8], patch: impl FnOnce(&mut [u8; 512])) -> &mut Self {
        self.0.extend_from_slice(&encode(h, patch));
        self.0.extend_from_slice(data);
        pad(&mut self.0);
        self
    }
    fn file(&mut self, path: impl AsRef<[u8]>, data: &[u8]) -> &mut Self {
        let mut h = H::new(path, b'0');
        h.size = data.len() as u64;
        self.raw(&h, data)
    }
    fn dir(&mut self, path: impl AsRef<[u8]>) -> &mut Self {
        self.raw(&H::new(path, b'5'), &[])
    }
    fn symlink(&mut self, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Self {
        let mut h = H::new(path, b'2');
        h.link = target.as_ref().to_vec();
        self.raw(&h, &[])
    }
    fn link(&mut self, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Self {
        let mut h = H::new(path, b'1');
        h.link = target.as_ref().to_vec();
        self.raw(&h, &[])
    }
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let body: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        let mut h = H::new("PaxHeaders/x", b'x');
        h.size = body.len() as u64;
        self.raw(&h, &body)
    }
    fn gnu_long(&mut self, kind: u8, name: &[u8]) -> &mut Self {
        let mut body = name.to_vec();
        body.push(0);
        let mut h = H::new("././@LongLink", kind);
        h.size = body.len() as u64;
        self.raw(&h, &body)
    }
    fn build(&self) -> Vec<u8> {
        let mut v = self.0.clone();
        v.extend_from_slice(&[0; 1024]);
        v
    }
}

// ---------------------------------------------------------------- helpers

fn root_meta() -> Metadata {
    Metadata::new(0o755, Timestamp::from_secs(0))
}

fn flatten(layers: &[Vec<u8>]) -> Result<Tree, FlattenError> {
    let mut store = MemoryStore;
    flatten_layers(
        &mut store,
        Limits::default(),
        root_meta(),
        layers
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("layer{i}"), &l[..])),
    )
}

fn ok(layers: &[Vec<u8>]) -> Tree {
    flatten(layers).unwrap_or_else(|e| panic!("flatten failed: {e}"))
}

fn err(layers: &[Vec<u8>]) -> FlattenError {
    match flatten(layers) {
        Ok(_) => panic!("flatten succeeded but should have failed"),
        Err(e) => e,
    }
}

/// Asserts that a [`FlattenError`]'s kind matches a pattern; the failure
/// message is the optional context, then the whole error chain.
macro_rules! assert_kind {
    ($e:expr, $kind:pat) => {{
        let e: &FlattenError = &$e;
        assert!(matches!(&e.kind, $kind), "{}", message(e));
    }};
    ($e:expr, $kind:pat, $context:expr) => {{
        let e: &FlattenError = &$e;
        assert!(matches!(&e.kind, $kind), "{}: {}", $context, message(e));
    }};
}

fn id(tree: &Tree, path: &str) -> NodeId {
    tree.lookup_path(path.as_bytes())
        .unwrap_or_else(|| panic!("{path} is missing"))
}

fn node<'t>(tree: &'t Tree, path: &str) -> &'t Node {
    tree.node(id(tree, path))
}

fn exists(tree: &Tree, path: &str) -> bool {
    tree.lookup_path(path.as_bytes()).is_some()
}

fn source(tree: &Tree, path: &str) -> Arc<dyn ContentSource> {
    match &node(tree, path).kind {
        NodeKind::File(FileContent::Source(s)) => s.clone(),
        other => panic!("{path} is not an in-memory file: {other:?}"),
    }
}

fn content(tree: &Tree, path: &str) -> Vec<u8> {
    let src = source(tree, path);
    let mut out = vec![0; src.len() as usize];
    let mut at = 0;
    while at < out.len() {
        let n = src.read_at(at as u64, &mut out[at..]).unwrap();
        assert!(n > 0);
        at += n;
    }
    out
}

fn names(tree: &Tree, path: &str) -> Vec<String> {
    tree.dir(id(tree, path))
        .unwrap_or_else(|| panic!("{path} is not a directory"))
        .iter()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect()
}

fn symlink_target(tree: &Tree, path: &str) -> Vec<u8> {
    match &node(tree, path).kind {
        NodeKind::Symlink(t) => t.clone(),
        other => panic!("{path} is not a symlink: {other:?}"),
    }
}

/// Directory entries naming `target` anywhere in the tree (its link count).
fn link_count(tree: &Tree, target: NodeId) -> usize {
    tree.reachable()
        .into_iter()
        .filter_map(|d| tree.dir(d))
        .flat_map(|d| d.iter().map(|(_, id)| id).collect::<Vec<_>>())
        .filter(|&id| id == target)
        .count()
}

fn all_names(tree: &Tree) -> Vec<Vec<u8>> {
    tree.reachable()
        .into_iter()
        .filter_map(|d| tree.dir(d))
        .flat_map(|d| d.iter().map(|(n, _)| n.to_vec()).collect::<Vec<_>>())
        .collect()
}

/// A store that keeps bytes and the data ranges it was given, so tests can
/// check that holes stayed holes.
#[derive(Default)]
struct SparseStore;

#[derive(Debug)]
struct SparseSource {
    bytes: Vec<u8>,
    ranges: Vec<Range<u64>>,
}

impl ContentSource for SparseSource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn data_ranges(&self) -> Vec<Range<u64>> {
        self.ranges.clone()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = (offset as usize).min(self.bytes.len());
        let n = buf.len().min(self.bytes.len() - start);
        buf[..n].copy_from_slice(&self.bytes[start..start + n]);
        Ok(n)
    }
}

impl ContentStore for SparseStore {
    type Error = io::Error;
    fn store(
        &mut self,
        reader: &mut dyn LendingRead,
        size: u64,
        data_ranges: &[Range<u64>],
    ) -> io::Result<FileContent> {
        let mut bytes = vec![0; size as usize];
        for r in data_ranges {
            reader.read_exact(&mut bytes[r.start as usize..r.end as usize])?;
        }
        Ok(FileContent::Source(Arc::new(SparseSource {
            bytes,
            ranges: data_ranges.to_vec(),
        })))
    }
}

fn flatten_sparse(layer: &[u8]) -> Result<Tree, FlattenError> {
    let mut store = SparseStore;
    let mut f = Flattener::new(&mut store, Limits::default(), root_meta());
    f.apply_layer("sparse-layer", layer)?;
    Ok(f.finish())
}

// ---------------------------------------------------------------- paths and links

#[test]
fn case_01_dotdot_and_absolute_paths_land_inside_root() {
    let tree = ok(&[Tar::new()
        .file("../x", b"1")
        .file("a/../../y", b"2")
        .file("/abs/z", b"3")
        .file("../../../../w/../v", b"4")
        .build()]);
    assert_eq!(content(&tree, "x"), b"1");
    assert_eq!(content(&tree, "y"), b"2");
    assert_eq!(content(&tree, "abs/z"), b"3");
    assert_eq!(content(&tree, "v"), b"4");
    assert_eq!(names(&tree, "/"), ["abs", "v", "x", "y"]);
}

#[test]
fn case_02_symlink_parent_resolves_inside_tree() {
    let tree = ok(&[Tar::new()
        .dir("etc")
        .symlink("l", "/etc")
        .file("l/passwd", b"root:x:0:0")
        .build()]);
    assert_eq!(content(&tree, "etc/passwd"), b"root:x:0:0");
    assert_eq!(symlink_target(&tree, "l"), b"/etc");
    assert_eq!(names(&tree, "/"), ["etc", "l"]);
}

#[test]
fn case_03_dotdot_symlink_stays_inside_root() {
    let tree = ok(&[Tar::new()
        .dir("a/b")
        .symlink("a/b/l", "../../../../..")
        .file("a/b/l/x", b"inside")
        .symlink("up", "../..")
        .file("up/etc/y", b"also")
        .build()]);
    assert_eq!(content(&tree, "x"), b"inside");
    assert_eq!(content(&tree, "etc/y"), b"also");
}

#[test]
fn case_04_symlink_and_directory_replace_each_other_across_layers() {
    let l1 = Tar::new()
        .symlink("a", "target")
        .dir("b")
        .file("b/y", b"y")
        .build();
    let l2 = Tar::new()
        .dir("a")
        .file("a/x", b"x")
        .symlink("b", "/elsewhere")
        .build();
    let tree = ok(&[l1, l2]);
    assert!(node(&tree, "a").kind.is_dir());
    assert_eq!(names(&tree, "a"), ["x"]);
    assert_eq!(symlink_target(&tree, "b"), b"/elsewhere");
    assert!(!exists(&tree, "b/y"));
}

#[test]
fn case_05_symlink_then_directory_then_file_under_one_name() {
    let l1 = Tar::new().symlink("n", "/x").build();
    let l2 = Tar::new().dir("n").file("n/child", b"c").build();
    let l3 = Tar::new().file("n", b"file").build();
    let tree = ok(std::slice::from_ref(&l1));
    assert_eq!(symlink_target(&tree, "n"), b"/x");
    let tree = ok(&[l1.clone(), l2.clone()]);
    assert_eq!(names(&tree, "n"), ["child"]);
    let tree = ok(&[l1, l2, l3]);
    assert_eq!(content(&tree, "n"), b"file");
    assert_eq!(names(&tree, "/"), ["n"]);
}

#[test]
fn case_06_hard_link_targets_resolve_inside_tree_and_missing_is_an_error() {
    let l1 = Tar::new().file("etc/passwd", b"pw").file("x", b"x").build();
    let l2 = Tar::new()
        .link("h1", "/etc/passwd")
        .link("d/h2", "../x")
        .link("h3", "../../etc/../etc/passwd")
        .build();
    let tree = ok(&[l1.clone(), l2]);
    assert_eq!(id(&tree, "h1"), id(&tree, "etc/passwd"));
    assert_eq!(id(&tree, "h3"), id(&tree, "etc/passwd"));
    assert_eq!(id(&tree, "d/h2"), id(&tree, "x"));
    let e = err(&[l1, Tar::new().link("h", "/etc/nope").build()]);
    assert_kind!(
        e,
        FlattenErrorKind::Entry(EntryError::HardLinkTargetMissing { .. })
    );
    assert_eq!((e.layer.as_str(), e.entry.as_str()), ("layer1", "h"));
    assert!(
        message(&e).contains("layer1") && message(&e).contains("/etc/nope"),
        "{}",
        message(&e)
    );
}

#[test]
fn case_07_hard_link_through_symlinked_parent() {
    let tree = ok(&[Tar::new()
        .file("real/f", b"data")
        .symlink("l", "/real")
        .link("h", "l/f")
        .build()]);
    assert_eq!(id(&tree, "h"), id(&tree, "real/f"));
    assert_eq!(content(&tree, "h"), b"data");
}

#[test]
fn case_08_hard_link_to_symlink_links_the_symlink_itself() {
    let tree = ok(&[Tar::new()
        .file("f", b"f")
        .symlink("s", "f")
        .link("h", "s")
        .build()]);
    assert_eq!(id(&tree, "h"), id(&tree, "s"));
    assert_eq!(symlink_target(&tree, "h"), b"f");
    assert_ne!(id(&tree, "h"), id(&tree, "f"));
}

#[test]
fn case_09_hard_link_to_a_later_entry_is_an_error() {
    let e = err(&[Tar::new().link("h", "f").file("f", b"later").build()]);
    assert_kind!(
        e,
        FlattenErrorKind::Entry(EntryError::HardLinkTargetMissing { .. })
    );
    assert_eq!(e.entry.as_str(), "h");
}

#[test]
fn case_10_hard_link_to_a_directory_is_an_error() {
    for target in ["d", "/", "."] {
        let e = err(&[Tar::new().dir("d").link("h", target).build()]);
        assert_kind!(
            e,
            FlattenErrorKind::Entry(EntryError::HardLinkToDirectory { .. }),
            target
        );
    }
}

#[test]
fn case_11_hard_link_over_an_existing_file_replaces_it() {
    let tree = ok(&[Tar::new()
        .file("a", b"A")
        .file("b", b"B")
        .link("b", "a")
        .build()]);
    assert_eq!(id(&tree, "a"), id(&tree, "b"));
    assert_eq!(content(&tree, "b"), b"A");
    let tree = ok(&[
        Tar::new()
            .file("a", b"A")
            .dir("b")
            .file("b/inner", b"i")
            .build(),
        Tar::new().link("b", "a").build(),
    ]);
    assert_eq!(id(&tree, "a"), id(&tree, "b"));
}

#[test]
fn case_12_whited_out_hard_link_target_keeps_the_other_name() {
    let l1 = Tar::new().file("a", b"shared").link("b", "a").build();
    let tree = ok(std::slice::from_ref(&l1));
    assert_eq!(link_count(&tree, id(&tree, "a")), 2);
    let tree = ok(&[l1, Tar::new().file(".wh.a", b"").build()]);
    assert!(!exists(&tree, "a"));
    assert_eq!(content(&tree, "b"), b"shared");
    assert_eq!(link_count(&tree, id(&tree, "b")), 1);
}

#[test]
fn case_13_overwritten_hard_link_target_keeps_old_content_in_the_other_name() {
    let l1 = Tar::new().file("a", b"old").link("b", "a").build();
    let tree = ok(&[l1, Tar::new().file("a", b"new").build()]);
    assert_eq!(content(&tree, "a"), b"new");
    assert_eq!(content(&tree, "b"), b"old");
    assert_ne!(id(&tree, "a"), id(&tree, "b"));
}

#[test]
fn case_14_hard_link_chains_and_links_across_layers() {
    let tree = ok(&[
        Tar::new().file("a", b"x").build(),
        Tar::new().link("b", "a").link("c", "b").build(),
        Tar::new().link("d/e", "c").build(),
    ]);
    let a = id(&tree, "a");
    for p in ["b", "c", "d/e"] {
        assert_eq!(id(&tree, p), a, "{p}");
    }
    assert_eq!(link_count(&tree, a), 4);
}

// ---------------------------------------------------------------- whiteouts

#[test]
fn case_15_invalid_whiteouts_are_errors() {
    for name in [".wh.", ".wh..", ".wh...", "d/.wh...", "d/.wh."] {
        let e = err(&[Tar::new().dir("d").file(name, b"").build()]);
        assert_kind!(
            e,
            FlattenErrorKind::Entry(EntryError::InvalidWhiteout),
            name
        );
        assert_eq!(e.entry.as_str(), name);
    }
}

#[test]
fn case_16_whiteout_through_symlinked_parent_acts_inside_tree() {
    let l1 = Tar::new()
        .file("real/f", b"f")
        .file("real/g", b"g")
        .symlink("l", "/real")
        .build();
    let tree = ok(&[l1, Tar::new().file("l/.wh.f", b"").build()]);
    assert_eq!(names(&tree, "real"), ["g"]);
    assert_eq!(symlink_target(&tree, "l"), b"/real");
}

#[test]
fn case_17_opaque_marker_placed_last_still_applies_first() {
    let l1 = Tar::new()
        .file("d/old", b"o")
        .dir("d/olddir")
        .file("d/olddir/x", b"x")
        .build();
    let l2 = Tar::new()
        .dir("d")
        .file("d/new", b"n")
        .dir("d/olddir")
        .file("d/olddir/y", b"y")
        .file("d/.wh..wh..opq", b"")
        .build();
    let tree = ok(&[l1, l2]);
    assert_eq!(names(&tree, "d"), ["new", "olddir"]);
    // The re-declared directory survives, but its lower children do not.
    assert_eq!(names(&tree, "d/olddir"), ["y"]);
}

#[test]
fn case_18_whiteout_and_entry_of_one_layer_in_either_order() {
    let l1 = Tar::new().file("a/old", b"o").build();
    let before = Tar::new().file(".wh.a", b"").file("a/x", b"x").build();
    let after = Tar::new().file("a/x", b"x").file(".wh.a", b"").build();
    for layer in [before, after] {
        let tree = ok(&[l1.clone(), layer]);
        assert_eq!(names(&tree, "a"), ["x"]);
        assert_eq!(content(&tree, "a/x"), b"x");
    }
    // A file added in the same layer survives a later whiteout of it.
    let tree = ok(&[Tar::new().file("f", b"1").file(".wh.f", b"").build()]);
    assert_eq!(content(&tree, "f"), b"1");
}

#[test]
fn case_19_directory_whited_out_then_re_added() {
    let l1 = Tar::new().file("d/f", b"f").build();
    let l2 = Tar::new().file(".wh.d", b"").build();
    let l3 = Tar::new().dir("d").file("d/g", b"g").build();
    let tree = ok(&[l1.clone(), l2.clone()]);
    assert!(!exists(&tree, "d"));
    let tree = ok(&[l1, l2, l3]);
    assert_eq!(names(&tree, "d"), ["g"]);
}

#[test]
fn case_20_nested_opaque_directories_and_opaque_on_a_new_directory() {
    let l1 = Tar::new()
        .file("a/x", b"x")
        .file("a/b/y", b"y")
        .file("keep", b"k")
        .build();
    let l2 = Tar::new()
        .file("a/.wh..wh..opq", b"")
        .file("a/b/.wh..wh..opq", b"")
        .file("a/b/z", b"z")
        .file("fresh/.wh..wh..opq", b"")
        .build();
    let tree = ok(&[l1, l2]);
    assert_eq!(names(&tree, "a"), ["b"]);
    assert_eq!(names(&tree, "a/b"), ["z"]);
    assert!(names(&tree, "fresh").is_empty());
    assert_eq!(names(&tree, "/"), ["a", "fresh", "keep"]);
}

#[test]
fn case_21_whiteout_of_a_missing_path_is_a_no_op() {
    let l1 = Tar::new().file("f", b"x").build();
    let l2 = Tar::new()
        .file(".wh.nothere", b"")
        .file("gone/deeper/.wh.x", b"")
        .file("f/.wh.under-a-file", b"")
        .build();
    let tree = ok(&[l1, l2]);
    assert_eq!(names(&tree, "/"), ["f"]);
}

#[test]
fn case_22_whiteouts_typed_as_link_or_directory_act_and_aufs_metadata_is_skipped() {
    let l1 = Tar::new()
        .file("a", b"a")
        .file("b", b"b")
        .file("c", b"c")
        .build();
    let l2 = Tar::new()
        .link(".wh.a", "nonexistent")
        .dir(".wh.b")
        .dir(".wh..wh.plnk")
        .file(".wh..wh.plnk/1234.5", b"aufs")
        .file(".wh..wh.aufs", b"")
        .file(".wh..wh.orph", b"")
        .build();
    let tree = ok(&[l1, l2]);
    assert_eq!(names(&tree, "/"), ["c"]);
}

#[test]
fn case_23_no_whiteout_marker_ever_appears_in_the_output() {
    let l1 = Tar::new().file("d/a", b"").file("e/b", b"").build();
    let l2 = Tar::new()
        .file("d/.wh.a", b"")
        .file("e/.wh..wh..opq", b"")
        .file("n/.wh.never-existed", b"")
        .dir(".wh..wh.plnk")
        .file(".wh.x/y", b"")
        .build();
    let tree = ok(&[l1, l2]);
    let all = all_names(&tree);
    assert!(!all.is_empty());
    assert!(all.iter().all(|n| !n.starts_with(b".wh.")), "{all:?}");
}

// ---------------------------------------------------------------- metadata

#[test]
fn case_24_duplicate_entry_in_one_layer_last_wins() {
    let mut d1 = H::new("d", b'5');
    d1.mode = 0o700;
    let mut d2 = H::new("d", b'5');
    d2.mode = 0o750;
    d2.uid = 7;
    let tree = ok(&[Tar::new()
        .file("a", b"first")
        .file("a", b"second")
        .raw(&d1, &[])
        .file("d/child", b"c")
        .raw(&d2, &[])
        .build()]);
    assert_eq!(content(&tree, "a"), b"second");
    assert_eq!(node(&tree, "d").meta.permissions, 0o750);
    assert_eq!(node(&tree, "d").meta.uid, 7);
    assert_eq!(names(&tree, "d"), ["child"]);
}

#[test]
fn case_25_dot_slash_is_stripped_and_root_entry_sets_only_attributes() {
    let mut root = H::new("./", b'5');
    root.mode = 0o700;
    root.uid = 5;
    root.mtime = 42;
    let tree = ok(&[Tar::new().raw(&root, &[]).file("./a", b"a").build()]);
    assert_eq!(content(&tree, "a"), b"a");
    let meta = &tree.node(Tree::ROOT).meta;
    assert_eq!(
        (meta.permissions, meta.uid, meta.mtime.secs),
        (0o700, 5, 42)
    );
    let tree = ok(&[Tar::new()
        .file("./", b"not a dir")
        .symlink(".", "/x")
        .file("b", b"")
        .build()]);
    assert!(tree.node(Tree::ROOT).kind.is_dir());
    assert_eq!(names(&tree, "/"), ["b"]);
}

#[test]
fn case_26_implied_parents_are_0755_root_owned() {
    let mut h = H::new("a/b/c", b'0');
    h.uid = 1000;
    h.gid = 1000;
    h.mtime = 1234;
    let tree = ok(&[Tar::new().raw(&h, &[]).build()]);
    for p in ["a", "a/b"] {
        let m = &node(&tree, p).meta;
        assert!(node(&tree, p).kind.is_dir());
        assert_eq!(
            (m.permissions, m.uid, m.gid, m.mtime.secs),
            (0o755, 0, 0, 1234),
            "{p}"
        );
    }
    assert_eq!(node(&tree, "a/b/c").meta.uid, 1000);
}

#[test]
fn case_27_special_mode_bits_and_large_ids_survive() {
    let mut tmp = H::new("tmp", b'5');
    tmp.mode = 0o1777;
    let mut su = H::new("bin/su", b'0');
    su.mode = 0o4755;
    let mut sg = H::new("bin/sg", b'0');
    sg.mode = 0o2711;
    let mut big = H::new("big", b'0');
    big.uid = 0o7777777; // 2097151, the octal maximum
    let tree = ok(&[Tar::new()
        .raw(&tmp, &[])
        .raw(&su, &[])
        .raw(&sg, &[])
        .raw(&big, &[])
        .pax(&[("uid", b"3000000000"), ("gid", b"4294967295")])
        .file("pax-ids", b"")
        .build()]);
    assert_eq!(node(&tree, "tmp").meta.permissions, 0o1777);
    assert_eq!(node(&tree, "bin/su").meta.permissions, 0o4755);
    assert_eq!(node(&tree, "bin/sg").meta.permissions, 0o2711);
    assert_eq!(node(&tree, "big").meta.uid, 2_097_151);
    let m = &node(&tree, "pax-ids").meta;
    assert_eq!((m.uid, m.gid), (3_000_000_000, 4_294_967_295));
    let e = err(&[Tar::new()
        .pax(&[("uid", b"4294967296")])
        .file("f", b"")
        .build()]);
    assert_kind!(e, FlattenErrorKind::Tar(TarError::OutOfRange { .. }));
}

#[test]
fn case_28_xattrs_survive_with_documented_policy_and_a_size_limit() {
    let cap = b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    // VFS ACL: version 2, ACL_USER_OBJ rwx, ACL_USER 1000 r--, ...
    let acl = b"\x02\x00\x00\x00\x01\x00\x07\x00\xff\xff\xff\xff\x02\x00\x04\x00\xe8\x03\x00\x00";
    let tree = ok(&[Tar::new()
        .pax(&[
            ("SCHILY.xattr.security.capability", cap),
            ("SCHILY.xattr.user.empty", b""),
            ("SCHILY.xattr.user.bin", b"\x00\xff\n="),
            ("SCHILY.xattr.system.posix_acl_access", acl),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            (
                "SCHILY.xattr.security.selinux",
                b"system_u:object_r:bin_t:s0\0",
            ),
            ("LIBARCHIVE.xattr.user.from%20libarchive", b"aGVsbG8="),
        ])
        .file("f", b"")
        .build()]);
    let x = &node(&tree, "f").meta.xattrs;
    let get = |k: &str| x.get(k.as_bytes()).map(Vec::as_slice);
    assert_eq!(get("security.capability"), Some(&cap[..]));
    assert_eq!(get("user.empty"), Some(&b""[..]));
    assert_eq!(get("user.bin"), Some(&b"\x00\xff\n="[..]));
    assert_eq!(
        get("system.posix_acl_access"),
        Some(&acl[..]),
        "kept in VFS format"
    );
    assert_eq!(
        get("trusted.overlay.opaque"),
        None,
        "overlayfs internals are dropped"
    );
    assert_eq!(
        get("security.selinux"),
        Some(&b"system_u:object_r:bin_t:s0\0"[..])
    );
    assert_eq!(get("user.from libarchive"), Some(&b"hello"[..]));
    assert_eq!(x.len(), 6);

    let huge = vec![b'v'; 70_000];
    let e = err(&[Tar::new()
        .pax(&[("SCHILY.xattr.user.big", &huge)])
        .file("big", b"")
        .build()]);
    assert_kind!(
        e,
        FlattenErrorKind::Limit(LimitError::XattrsTooLarge { .. })
    );
    assert_eq!(e.entry.as_str(), "big");
}

#[test]
fn case_29_long_names_and_non_utf8_names_are_kept_exact() {
    let long_dir = "d".repeat(200);
    let long_path = format!("{long_dir}/{}", "f".repeat(250));
    let long_target = format!("/{}", "t/".repeat(200));
    let pax_path = format!("{}/{}", "p".repeat(120), "q".repeat(100));
    let pax_target = "x".repeat(300);
    let non_utf8: &[u8] = b"caf\xe9-\xff\xfe";
    let mut sym = H::new("ignored", b'2');
    sym.link = b"ignored".to_vec();
    let tree = ok(&[Tar::new()
        .gnu_long(b'L', long_path.as_bytes())
        .file("truncated-name", b"gnu")
        .gnu_long(b'L', b"gnu-link")
        .gnu_long(b'K', long_target.as_bytes())
        .raw(&sym, &[])
        .pax(&[
            ("path", pax_path.as_bytes()),
            ("linkpath", pax_target.as_bytes()),
        ])
        .raw(&sym, &[])
        .file(non_utf8, b"bytes")
        .pax(&[("path", b"pax-\x80\x81")])
        .file("x", b"pax bytes")
        .build()]);
    assert_eq!(content(&tree, &long_path), b"gnu");
    assert_eq!(symlink_target(&tree, "gnu-link"), long_target.as_bytes());
    assert_eq!(symlink_target(&tree, &pax_path), pax_target.as_bytes());
    let root = tree.dir(Tree::ROOT).unwrap();
    let f = root
        .get(non_utf8)
        .expect("non-UTF-8 name kept byte for byte");
    assert!(matches!(tree.node(f).kind, NodeKind::File(_)));
    assert!(root.get(b"pax-\x80\x81").is_some());

    let too_long = format!("ok/{}", "n".repeat(256));
    let e = err(&[Tar::new()
        .pax(&[("path", too_long.as_bytes())])
        .file("x", b"")
        .build()]);
    assert_kind!(
        e,
        FlattenErrorKind::Entry(EntryError::NameTooLong { len: 256 })
    );
}

#[test]
fn case_30_pax_subsecond_times_are_kept_to_the_nanosecond() {
    let tree = ok(&[Tar::new()
        .pax(&[
            ("mtime", b"1700000000.123456789"),
            ("atime", b"1700000001.987654321"),
            ("ctime", b"1700000002.000000001"),
        ])
        .file("f", b"")
        .pax(&[("mtime", b"1700000000.5")])
        .file("g", b"")
        .build()]);
    let m = &node(&tree, "f").meta;
    assert_eq!(
        m.mtime,
        Timestamp {
            secs: 1_700_000_000,
            nanos: 123_456_789
        }
    );
    assert_eq!(
        m.atime,
        Timestamp {
            secs: 1_700_000_001,
            nanos: 987_654_321
        }
    );
    assert_eq!(
        m.ctime,
        Timestamp {
            secs: 1_700_000_002,
            nanos: 1
        }
    );
    assert_eq!(m.crtime, m.mtime);
    let g = &node(&tree, "g").meta;
    let half = Timestamp {
        secs: 1_700_000_000,
        nanos: 500_000_000,
    };
    assert_eq!((g.mtime, g.atime, g.ctime), (half, half, half));
}

/// Consumes file data without keeping it; the file becomes all holes.
struct CountingStore {
    bytes: u64,
}

impl ContentStore for CountingStore {
    type Error = io::Error;
    fn store(
        &mut self,
        reader: &mut dyn LendingRead,
        size: u64,
        _: &[Range<u64>],
    ) -> io::Result<FileContent> {
        let mut buf = vec![0; 1 << 20];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            self.bytes += n as u64;
        }
        Ok(FileContent::Placed(PlacedData {
            size,
            extents: Vec::new(),
        }))
    }
}

#[test]
fn case_31_files_over_8_gib_and_contradicting_pax_sizes() {
    const BIG: u64 = (8 << 30) + 1;
    let pad = (512 - BIG % 512) % 512;
    let mut header = H::new("big-base256", b'0');
    header.size = BIG; // does not fit 11 octal digits: base-256
    let mut head = Tar::new().raw(&header, &[]).0.clone();
    // A pax size with the header's field left zero, as Go writes it.
    let mut pax = Tar::new();
    pax.pax(&[("size", BIG.to_string().as_bytes())]);
    let mut h2 = H::new("big-pax", b'0');
    h2.size = 0;
    pax.raw(&h2, &[]);
    head.truncate(512);
    let stream = io::Cursor::new(head)
        .chain(io::repeat(0x5a).take(BIG))
        .chain(io::repeat(0).take(pad))
        .chain(io::Cursor::new(pax.0))
        .chain(io::repeat(0x5a).take(BIG))
        .chain(io::repeat(0).take(pad + 1024));
    let mut store = CountingStore { bytes: 0 };
    let mut f = Flattener::new(&mut store, Limits::default(), root_meta());
    let stats = f.apply_layer("big", stream).unwrap();
    let tree = f.finish();
    assert_eq!(stats.data_bytes, 2 * BIG);
    for p in ["big-base256", "big-pax"] {
        match &node(&tree, p).kind {
            NodeKind::File(c) => assert_eq!(c.size(), BIG, "{p}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(store.bytes, 2 * BIG);

    let e = err(&[Tar::new()
        .pax(&[("size", b"3")])
        .file("f", b"12345")
        .build()]);
    assert_kind!(
        e,
        FlattenErrorKind::Tar(TarError::SizeMismatch { pax: 3, header: 5 })
    );
}

/// Builds an old-GNU sparse ('S') entry: runs beyond the fourth go into an
/// extension block.
fn old_gnu_sparse(tar: &mut Tar, name: &str, real: u64, runs: &[(u64, &[u8])]) {
    let data: Vec<u8> = runs.iter().flat_map(|(_, d)| d.to_vec()).collect();
    let mut h = H::new(name, b'S');
    h.size = data.len() as u64;
    let slot = |b: &mut [u8], (off, d): &(u64, &[u8])| {
        put_num(&mut b[..12], *off);
        put_num(&mut b[12..24], d.len() as u64);
    };
    tar.0.extend_from_slice(&encode(&h, |b| {
        b[257..265].copy_from_slice(b"ustar  \0");
        for (i, run) in runs.iter().take(4).enumerate() {
            slot(&mut b[386 + 24 * i..386 + 24 * (i + 1)], run);
        }
        b[482] = u8::from(runs.len() > 4);
        put_num(&mut b[483..495], real);
    }));
    if runs.len() > 4 {
        let mut ext = [0u8; 512];
        for (i, run) in runs[4..].iter().enumerate() {
            slot(&mut ext[24 * i..24 * (i + 1)], run);
        }
        tar.0.extend_from_slice(&ext);
    }
    tar.0.extend_from_slice(&data);
    pad(&mut tar.0);
}

fn expected_sparse(real: u64, runs: &[(u64, &[u8])]) -> Vec<u8> {
    let mut v = vec![0; real as usize];
    for (off, d) in runs {
        v[*off as usize..*off as usize + d.len()].copy_from_slice(d);
    }
    v
}

#[test]
fn case_32_gnu_old_sparse_and_pax_sparse_files_keep_their_holes() {
    let runs: &[(u64, &[u8])] = &[
        (0, b"head"),
        (4096, b"a"),
        (8192, b"bb"),
        (12288, b"ccc"),
        (16384, b"dddd"),
        (65536, b"tail"),
    ];
    let real = 100_000;
    let ranges: Vec<Range<u64>> = runs.iter().map(|(o, d)| *o..*o + d.len() as u64).collect();
    let data: Vec<u8> = runs.iter().flat_map(|(_, d)| d.to_vec()).collect();
    let flat: Vec<String> = runs
        .iter()
        .flat_map(|(o, d)| [o.to_string(), d.len().to_string()])
        .collect();

    let mut tar = Tar::new();
    old_gnu_sparse(&mut tar, "old", real, runs);
    // pax 0.0: repeated offset/numbytes records.
    let mut records: Vec<(&str, Vec<u8>)> = vec![
        ("GNU.sparse.size", real.to_string().into_bytes()),
        ("GNU.sparse.numblocks", runs.len().to_string().into_bytes()),
    ];
    for pair in flat.chunks(2) {
        records.push(("GNU.sparse.offset", pair[0].clone().into_bytes()));
        records.push(("GNU.sparse.numbytes", pair[1].clone().into_bytes()));
    }
    let records: Vec<(&str, &[u8])> = records.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    tar.pax(&records).file("pax00", &data);
    // pax 0.1: one map record, the real name in GNU.sparse.name.
    let map = flat.join(",");
    tar.pax(&[
        ("GNU.sparse.size", real.to_string().as_bytes()),
        ("GNU.sparse.name", b"pax01"),
        ("GNU.sparse.map", map.as_bytes()),
    ])
    .file("GNUSparseFile.1/pax01", &data);
    // pax 1.0: the map is at the start of the data.
    let mut body = format!("{}\n{}\n", runs.len(), flat.join("\n")).into_bytes();
    pad(&mut body);
    body.extend_from_slice(&data);
    tar.pax(&[
        ("GNU.sparse.major", b"1"),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.name", b"pax10"),
        ("GNU.sparse.realsize", real.to_string().as_bytes()),
    ])
    .file("GNUSparseFile.1/pax10", &body);

    let tree = flatten_sparse(&tar.build()).unwrap();
    assert_eq!(names(&tree, "/"), ["old", "pax00", "pax01", "pax10"]);
    for p in ["old", "pax00", "pax01", "pax10"] {
        assert_eq!(source(&tree, p).data_ranges(), ranges, "{p}");
        assert_eq!(content(&tree, p), expected_sparse(real, runs), "{p}");
    }

    // A map that claims more data than the archive holds.
    let mut bad = Tar::new();
    bad.pax(&[("GNU.sparse.size", b"100"), ("GNU.sparse.map", b"0,10")])
        .file("f", b"12345");
    let e = flatten_sparse(&bad.build()).unwrap_err();
    assert_kind!(e, FlattenErrorKind::Tar(TarError::InvalidSparse(_)));
}

#[test]
fn case_33_devices_and_fifos_with_range_checks() {
    let dev = |path: &str, kind: u8, major: u64, minor: u64| {
        let mut h = H::new(path, kind);
        h.major = major;
        h.minor = minor;
        h
    };
    let tree = ok(&[Tar::new()
        .raw(&dev("dev/null", b'3', 1, 3), &[])
        .raw(&dev("dev/sda", b'4', 8, 0), &[])
        .raw(&dev("dev/max", b'3', 4095, (1 << 20) - 1), &[])
        .raw(&H::new("run/fifo", b'6'), &[])
        .build()]);
    let dn = |p: &str| match &node(&tree, p).kind {
        NodeKind::CharDevice(d) => ('c', d.major, d.minor),
        NodeKind::BlockDevice(d) => ('b', d.major, d.minor),
        other => panic!("{other:?}"),
    };
    assert_eq!(dn("dev/null"), ('c', 1, 3));
    assert_eq!(dn("dev/sda"), ('b', 8, 0));
    assert_eq!(dn("dev/max"), ('c', 4095, (1 << 20) - 1));
    assert!(matches!(node(&tree, "run/fifo").kind, NodeKind::Fifo));
    for (major, minor) in [(4096, 0), (0, 1 << 20)] {
        let e = err(&[Tar::new()
            .raw(&dev("dev/bad", b'4', major, minor), &[])
            .build()]);
        assert_kind!(
            e,
            FlattenErrorKind::Entry(EntryError::DeviceNumberOutOfRange { .. })
        );
        assert_eq!(e.entry.as_str(), "dev/bad");
    }
    // tar has no socket type: sockets cannot come from a layer.
}

// ---------------------------------------------------------------- streams and limits

#[test]
fn case_35_truncated_or_corrupt_streams_are_errors_naming_layer_and_entry() {
    let full = Tar::new()
        .file("first", b"1")
        .file("victim", &[7u8; 2000])
        .build();
    // Cut inside the victim's data.
    let e = err(&[full[..512 * 3 + 100].to_vec()]);
    assert_kind!(e, FlattenErrorKind::Tar(TarError::Truncated));
    assert_eq!((e.layer.as_str(), e.entry.as_str()), ("layer0", "victim"));
    // Cut inside a header.
    let e = err(&[full[..512 * 2 + 100].to_vec()]);
    assert_kind!(e, FlattenErrorKind::Tar(TarError::Truncated));
    assert!(e.entry.as_str().contains("first"), "{e}");
    // Cut inside a pax header's body.
    let pax = Tar::new().pax(&[("path", b"x")]).file("y", b"").build();
    let e = err(&[pax[..600].to_vec()]);
    assert_kind!(e, FlattenErrorKind::Tar(TarError::Truncated));
    // Corrupt header.
    let mut corrupt = full.clone();
    corrupt[512 * 2 + 10] ^= 0x55;
    let e = err(&[corrupt]);
    assert_kind!(
        e,
        FlattenErrorKind::Tar(TarError::BadChecksum { offset: 1024 })
    );
    // Not a tar at all (a gzip stream passed undecompressed).
    let e = err(&[[0x1f, 0x8b, 0x08, 0].repeat(200)]);
    assert_kind!(
        e,
        FlattenErrorKind::Tar(TarError::BadChecksum { offset: 0 })
    );
    // A clean stream without end-of-archive blocks is accepted (as Go's
    // archive/tar does); the layer digest guards against that truncation.
    let tree = ok(&[full[..512 * 3 + 2048].to_vec()]);
    assert_eq!(content(&tree, "victim"), vec![7u8; 2000]);
}

#[test]
fn case_36_limits_stop_tar_bombs() {
    let run = |limits: Limits, layers: &[Vec<u8>]| {
        let mut store = MemoryStore;
        let mut f = Flattener::new(&mut store, limits, root_meta());
        for l in layers {
            f.apply_layer("bomb", &l[..])?;
        }
        Ok::<_, FlattenError>(f.finish())
    };
    let mut many = Tar::new();
    for i in 0..6 {
        many.file(format!("f{i}"), b"");
    }
    let limits = Limits {
        max_entries: 5,
        ..Limits::default()
    };
    let e = run(limits.clone(), &[many.build()]).unwrap_err();
    assert_kind!(
        e,
        FlattenErrorKind::Limit(LimitError::TooManyEntries { max: 5 })
    );
    assert_eq!(e.entry.as_str(), "f5");
    // The count spans layers.
    let three = Tar::new()
        .file("a", b"")
        .file("b", b"")
        .file("c", b"")
        .build();
    assert!(run(limits, &[three.clone(), three]).is_err());

    let limits = Limits {
        max_total_bytes: 1000,
        ..Limits::default()
    };
    let e = run(
        limits,
        &[Tar::new().file("a", &[0; 600]).file("b", &[0; 600]).build()],
    )
    .unwrap_err();
    assert_kind!(
        e,
        FlattenErrorKind::Limit(LimitError::TooManyBytes { max: 1000 })
    );
    assert_eq!(e.entry.as_str(), "b");

    let deep = format!("{}f", "d/".repeat(10));
    let limits = Limits {
        max_path_depth: 10,
        ..Limits::default()
    };
    let e = run(limits, &[Tar::new().file(&deep, b"").build()]).unwrap_err();
    assert_kind!(
        e,
        FlattenErrorKind::Limit(LimitError::PathTooDeep { depth: 11, max: 10 })
    );

    let limits = Limits {
        max_name_bytes: 50,
        ..Limits::default()
    };
    let e = run(limits, &[Tar::new().symlink("s", "t".repeat(51)).build()]).unwrap_err();
    assert_kind!(
        e,
        FlattenErrorKind::Limit(LimitError::PathTooLong { len: 51, max: 50 })
    );
}

// ---------------------------------------------------------------- robustness

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let mut t = Tar::new();
        t.pax(&[("mtime", b"1.5"), ("SCHILY.xattr.user.a", b"b")])
            .file("a/b", b"hello")
            .symlink("l", "/a")
            .link("h", "a/b")
            .file("a/.wh..wh..opq", b"")
            .gnu_long(b'L', &[b'n'; 300]);
        old_gnu_sparse(&mut t, "s", 9000, &[(0, b"x"), (8192, b"y")]);
        t.build()
    }

    fn checksum_ok(block: &[u8]) -> bool {
        let mut copy = block.to_vec();
        fix_checksum(&mut copy);
        copy == block && block.iter().any(|&b| b != 0)
    }

    fn fix_checksum(block: &mut [u8]) {
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&x| u32::from(x)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn mutated_archives_never_panic(edits in proptest::collection::vec((0usize..4096, any::<u8>()), 1..8), cut in 0usize..5000) {
            let original = sample();
            let mut tar = original.clone();
            for (at, byte) in edits {
                let at = at % tar.len();
                tar[at] = byte;
                // Keep mutated headers' checksums valid so the edit reaches
                // the field parsers instead of stopping at the checksum.
                let block = at / 512 * 512;
                if checksum_ok(&original[block..block + 512]) {
                    fix_checksum(&mut tar[block..block + 512]);
                }
            }
            tar.truncate(cut.min(tar.len()).max(1));
            let _ = flatten(&[tar]);
        }
    }
}

// ---------------------------------------------------------------- GNU tar as an oracle

/// Runs a command, or returns `None` when the tool is not installed.
fn run_tool(cmd: &mut std::process::Command) -> Option<Vec<u8>> {
    match cmd.output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(out.stdout)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}

#[test]
fn real_gnu_tar_archives_flatten_with_sparse_files_long_names_and_xattrs() {
    use std::os::unix::fs::{symlink, MetadataExt};
    use std::process::Command;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // An 8 MiB file with data at 1 MiB and at the very end.
    let sparse = root.join("sparse");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(&sparse).unwrap();
        f.set_len(8 << 20).unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(b"hello").unwrap();
        f.seek(SeekFrom::Start((8 << 20) - 5)).unwrap();
        f.write_all(b"world").unwrap();
    }
    let long_rel = format!("long/{}", "n".repeat(150));
    std::fs::create_dir(root.join("long")).unwrap();
    std::fs::write(root.join(&long_rel), b"long name").unwrap();
    std::fs::write(root.join("x"), b"xattr file").unwrap();
    std::fs::hard_link(root.join("x"), root.join("hard")).unwrap();
    symlink("sparse", root.join("lnk")).unwrap();
    let Some(_) = run_tool(
        Command::new("setfattr")
            .args(["-n", "user.test", "-v", "hello"])
            .arg(root.join("x")),
    ) else {
        eprintln!("SKIPPED: setfattr (package attr) is not installed");
        return;
    };
    let Some(_) = run_tool(
        Command::new("touch")
            .args(["-h", "-d", "@1700000000.123456789"])
            .arg(root.join("x")),
    ) else {
        eprintln!("SKIPPED: touch is not installed");
        return;
    };
    let expected_sparse = std::fs::read(&sparse).unwrap();
    let x_meta = std::fs::metadata(root.join("x")).unwrap();

    let formats: [(&str, &[&str]); 4] = [
        ("gnu", &["--format=gnu"]),
        (
            "pax-0.0",
            &[
                "--format=pax",
                "--sparse-version=0.0",
                "--xattrs",
                "--xattrs-include=*",
            ],
        ),
        (
            "pax-0.1",
            &[
                "--format=pax",
                "--sparse-version=0.1",
                "--xattrs",
                "--xattrs-include=*",
            ],
        ),
        (
            "pax-1.0",
            &[
                "--format=pax",
                "--sparse-version=1.0",
                "--xattrs",
                "--xattrs-include=*",
            ],
        ),
    ];
    for (label, args) in formats {
        let Some(archive) = run_tool(
            Command::new("tar")
                .args(args)
                .args(["--sparse", "--hole-detection=raw", "--numeric-owner", "-C"])
                .arg(&root)
                .args(["-cf", "-", "."]),
        ) else {
            eprintln!("SKIPPED: GNU tar is not installed");
            return;
        };
        let tree = flatten_sparse(&archive).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(
            names(&tree, "/"),
            ["hard", "lnk", "long", "sparse", "x"],
            "{label}"
        );

        assert_eq!(content(&tree, "sparse"), expected_sparse, "{label}");
        let ranges = source(&tree, "sparse").data_ranges();
        let stored: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        assert!(stored <= 4096, "{label}: {ranges:?} stores {stored} bytes");
        assert!(
            ranges.iter().all(|r| r.start >= 1 << 20),
            "{label}: {ranges:?}"
        );
        assert!(
            ranges.iter().any(|r| r.end == 8 << 20),
            "{label}: {ranges:?}"
        );

        assert_eq!(content(&tree, &long_rel), b"long name", "{label}");
        assert_eq!(id(&tree, "hard"), id(&tree, "x"), "{label}");
        assert_eq!(symlink_target(&tree, "lnk"), b"sparse", "{label}");
        let m = &node(&tree, "x").meta;
        assert_eq!(u32::from(m.permissions), x_meta.mode() & 0o7777, "{label}");
        assert_eq!((m.uid, m.gid), (x_meta.uid(), x_meta.gid()), "{label}");
        assert_eq!(m.mtime.secs, 1_700_000_000, "{label}");
        if label.starts_with("pax") {
            assert_eq!(m.mtime.nanos, 123_456_789, "{label}");
            assert_eq!(
                m.xattrs.get(&b"user.test"[..]).map(Vec::as_slice),
                Some(&b"hello"[..]),
                "{label}"
            );
        }
    }
}
