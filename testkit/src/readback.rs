//! Reads an image back with two independent readers and compares it with
//! the tree it was made from.
//!
//! `ext4-view` walks the directories, verifying metadata checksums as it
//! goes, and supplies types, permissions, owners, sizes, times, symlink
//! targets and contents. `debugfs` supplies what `ext4-view` cannot: inode
//! numbers (hard links), link counts, ctime, device numbers and xattrs
//! (raw, so ACLs are checked in ext4's own encoding). Where both readers
//! see a field, they must agree.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use banger_ext4::tree::{NodeId, Timestamp, Tree, Xattrs};
use ext4_view::{Ext4, FileType};

use crate::content::{digest_reader, ContentDigest};
use crate::debugfs::{self, InodeStat};
use crate::expect::{join, show, AclEncoding, Checker, Kind, Observed};

/// What to compare beyond the always-checked fields.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Compare creation times (`mkfs.ext4 -d` cannot set them).
    pub crtime: bool,
    /// Compare change times (nothing but a formatter can set them).
    pub ctime: bool,
    /// How to check files whose contents the tree holds as [`PlacedContent`].
    pub placed: PlacedContent,
}

impl Default for CompareOptions {
    /// Everything compared; placed contents skipped (only their size is checked).
    fn default() -> Self {
        Self {
            crtime: true,
            ctime: true,
            placed: PlacedContent::Skip,
        }
    }
}

/// Expected contents of files that are `FileContent::Placed` in the tree,
/// whose bytes a test cannot read back from the tree itself.
#[derive(Clone, Debug, Default)]
pub enum PlacedContent {
    /// Check only their size.
    #[default]
    Skip,
    /// Expected digests by node (see [`crate::content::digest_source`]);
    /// a placed file missing from the map is a mismatch.
    Digests(HashMap<NodeId, ContentDigest>),
}

/// Every difference between the image at `img` and `tree`, as readable lines.
pub fn image_mismatches(img: &Path, tree: &Tree, opts: &CompareOptions) -> Vec<String> {
    match observe_image(img) {
        Ok(observed) => {
            let mut checker = Checker::new(tree, opts, AclEncoding::Ext4);
            checker.check_all(&observed);
            checker.mismatches
        }
        Err(errors) => errors,
    }
}

/// Panics, listing every mismatch, unless the image holds exactly `tree`:
/// the same paths (a root `lost+found` may be extra), types, permissions,
/// owners, sizes, contents, symlink targets, device numbers, link counts
/// and hard links, times to the nanosecond, and xattrs.
pub fn assert_image_matches_tree(img: &Path, tree: &Tree, opts: &CompareOptions) {
    let mismatches = image_mismatches(img, tree, opts);
    assert!(
        mismatches.is_empty(),
        "image {} does not match the tree ({} mismatches):\n  {}",
        img.display(),
        mismatches.len(),
        mismatches.join("\n  ")
    );
}

/// What ext4-view makes of one path.
enum View {
    /// It read the inode.
    Seen(ViewEntry),
    /// It could not read the inode (the error).
    Unreadable(String),
}

/// What ext4-view sees at one path.
struct ViewEntry {
    meta: ext4_view::Metadata,
    dirent_type: Result<FileType, String>,
    symlink: Option<Result<Vec<u8>, String>>,
    content: Option<Result<ContentDigest, String>>,
}

/// Reads every path of the image with both readers.
fn observe_image(img: &Path) -> Result<BTreeMap<Vec<u8>, Observed>, Vec<String>> {
    let mut errors = Vec::new();
    let mut view = walk_view(img, &mut errors).map_err(|e| vec![e])?;
    let inodes = walk_debugfs(img).map_err(|e| vec![e])?;
    let stats = stat_inodes(img, &inodes).map_err(|e| vec![e])?;
    let xattrs = read_xattrs(img, &stats).map_err(|e| vec![e])?;

    // Paths ext4-view cannot read only because of its timestamp bug are
    // read with debugfs alone; any other gap is an error.
    let mut fallback = Vec::new();
    for (path, ino) in &inodes {
        let stat = stats.get(ino);
        match view.get(path) {
            Some(View::Seen(_)) => {}
            Some(View::Unreadable(err)) => {
                if err.contains("invalid timestamp") && stat.is_some_and(has_negative_base) {
                    fallback.push(path.clone());
                } else {
                    errors.push(format!(
                        "{}: ext4-view cannot read its inode: {err}",
                        show(path)
                    ));
                }
            }
            None if hidden_by_timestamp_bug(path, &view, &inodes, &stats) => {
                fallback.push(path.clone())
            }
            None => errors.push(format!(
                "{}: debugfs lists it, ext4-view does not",
                show(path)
            )),
        }
    }
    for path in view.keys().filter(|p| !inodes.contains_key(*p)) {
        errors.push(format!(
            "{}: ext4-view lists it, debugfs does not",
            show(path)
        ));
    }
    let dumped = dump_fallbacks(img, &fallback, &inodes, &stats).map_err(|e| vec![e])?;

    let mut observed = BTreeMap::new();
    for (path, ino) in &inodes {
        let (Some(stat), Some(xattrs)) = (stats.get(ino), xattrs.get(ino)) else {
            errors.push(format!(
                "{}: debugfs could not stat inode {ino}",
                show(path)
            ));
            continue;
        };
        let seen = match view.remove(path) {
            Some(View::Seen(entry)) => combine(*ino, entry, stat, xattrs.clone()),
            _ => match dumped.get(path) {
                Some(d) => from_debugfs(*ino, stat, d.clone(), xattrs.clone()),
                None => continue,
            },
        };
        observed.insert(path.clone(), seen);
    }
    if errors.is_empty() {
        Ok(observed)
    } else {
        Err(errors)
    }
}

/// ext4-view 1.0.0 rejects any time whose low 32 bits, read as signed, are
/// negative (`i32::try_from(u32)`): every time before 1970 and half of
/// those after 2038. Such inodes are valid ext4.
fn has_negative_base(stat: &InodeStat) -> bool {
    let negative = |t: &Timestamp| (t.secs as u32) >= 1 << 31;
    [&stat.atime, &stat.mtime, &stat.ctime]
        .into_iter()
        .any(negative)
        || stat.crtime.as_ref().is_some_and(negative)
}

/// Whether an ancestor of `path` is a directory ext4-view could not read
/// because of its timestamp bug (so it never saw `path`).
fn hidden_by_timestamp_bug(
    path: &[u8],
    view: &BTreeMap<Vec<u8>, View>,
    inodes: &BTreeMap<Vec<u8>, u32>,
    stats: &HashMap<u32, InodeStat>,
) -> bool {
    let mut ancestor = path;
    while let Some(cut) = ancestor.iter().rposition(|&b| b == b'/') {
        ancestor = &ancestor[..cut.max(1)];
        if let Some(View::Unreadable(err)) = view.get(ancestor) {
            let stat = inodes.get(ancestor).and_then(|ino| stats.get(ino));
            return err.contains("invalid timestamp") && stat.is_some_and(has_negative_base);
        }
        if ancestor == b"/" {
            break;
        }
    }
    false
}

/// Symlink target and content digest of a path read with debugfs alone.
#[derive(Clone, Debug, Default)]
struct Dumped {
    symlink: Option<Result<Vec<u8>, String>>,
    content: Option<Result<ContentDigest, String>>,
}

/// Reads contents and symlink targets of `paths` with `debugfs dump`.
fn dump_fallbacks(
    img: &Path,
    paths: &[Vec<u8>],
    inodes: &BTreeMap<Vec<u8>, u32>,
    stats: &HashMap<u32, InodeStat>,
) -> Result<HashMap<Vec<u8>, Dumped>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut commands = Vec::new();
    let mut files = Vec::new();
    let mut result = HashMap::new();
    for path in paths {
        let ino = inodes[path];
        let stat = &stats[&ino];
        let kind = debugfs_kind(&stat.file_type);
        let mut dumped = Dumped::default();
        if kind == Some(Kind::Symlink) && stat.fast_link.is_some() {
            dumped.symlink = stat.fast_link.clone().map(Ok);
        } else if matches!(kind, Some(Kind::File | Kind::Symlink)) {
            let file = dir.path().join(commands.len().to_string());
            commands.push(format!("dump <{ino}> {}", file.display()).into_bytes());
            files.push((path.clone(), kind, stat.size, file));
        }
        result.insert(path.clone(), dumped);
    }
    let batch = debugfs::run_batch(img, &commands).map_err(|e| e.to_string())?;
    if !batch.errors.is_empty() {
        return Err(format!("debugfs dump failed: {}", batch.errors));
    }
    for (path, kind, size, file) in files {
        let read = || -> std::io::Result<(Vec<u8>, ContentDigest)> {
            let mut f = std::fs::File::open(&file)?;
            let digest = digest_reader(size, |buf| std::io::Read::read(&mut f, buf))?;
            let head = if kind == Some(Kind::Symlink) {
                std::fs::read(&file)?
            } else {
                Vec::new()
            };
            Ok((head, digest))
        };
        let slot = result.entry(path).or_default();
        match (read(), kind) {
            (Ok((target, _)), Some(Kind::Symlink)) => slot.symlink = Some(Ok(target)),
            (Ok((_, digest)), _) => slot.content = Some(Ok(digest)),
            (Err(e), Some(Kind::Symlink)) => slot.symlink = Some(Err(e.to_string())),
            (Err(e), _) => slot.content = Some(Err(e.to_string())),
        }
    }
    Ok(result)
}

fn debugfs_kind(name: &str) -> Option<Kind> {
    [
        Kind::File,
        Kind::Dir,
        Kind::Symlink,
        Kind::Char,
        Kind::Block,
        Kind::Fifo,
        Kind::Socket,
    ]
    .into_iter()
    .find(|k| debugfs_type_name(*k) == name)
}

/// An observation from debugfs alone.
fn from_debugfs(
    ino: u32,
    stat: &InodeStat,
    dumped: Dumped,
    xattrs: Result<Xattrs, String>,
) -> Observed {
    let kind = debugfs_kind(&stat.file_type);
    let mut disagreements = Vec::new();
    if kind.is_none() {
        disagreements.push(format!(
            "debugfs reports an unknown type {:?}",
            stat.file_type
        ));
    }
    Observed {
        inode: u64::from(ino),
        kind: kind.unwrap_or(Kind::File),
        permissions: stat.permissions,
        uid: stat.uid,
        gid: stat.gid,
        size: stat.size,
        nlink: stat.links,
        atime: stat.atime,
        mtime: stat.mtime,
        ctime: stat.ctime,
        crtime: stat.crtime,
        device: stat.device,
        symlink: dumped
            .symlink
            .or_else(|| (kind == Some(Kind::Symlink)).then(|| Err("unread".into()))),
        content: dumped
            .content
            .or_else(|| (kind == Some(Kind::File)).then(|| Err("unread".into()))),
        xattrs,
        disagreements,
    }
}

fn kind_of(ty: FileType) -> Kind {
    match ty {
        FileType::BlockDevice => Kind::Block,
        FileType::CharacterDevice => Kind::Char,
        FileType::Directory => Kind::Dir,
        FileType::Fifo => Kind::Fifo,
        FileType::Regular => Kind::File,
        FileType::Socket => Kind::Socket,
        FileType::Symlink => Kind::Symlink,
    }
}

fn debugfs_type_name(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "regular",
        Kind::Dir => "directory",
        Kind::Symlink => "symlink",
        Kind::Char => "character special",
        Kind::Block => "block special",
        Kind::Fifo => "FIFO",
        Kind::Socket => "socket",
    }
}

fn view_time(t: ext4_view::Timestamp) -> Timestamp {
    Timestamp {
        secs: t.seconds(),
        nanos: t.nanoseconds(),
    }
}

/// Merges both readers' views of one inode, noting where they disagree.
fn combine(
    ino: u32,
    entry: ViewEntry,
    stat: &InodeStat,
    xattrs: Result<Xattrs, String>,
) -> Observed {
    let meta = &entry.meta;
    let kind = kind_of(meta.file_type());
    let mut disagreements = Vec::new();
    match &entry.dirent_type {
        Ok(ty) if *ty != meta.file_type() => disagreements.push(format!(
            "directory entry says {ty:?}, inode says {:?}",
            meta.file_type()
        )),
        Ok(_) => {}
        Err(e) => disagreements.push(format!("directory entry type: {e}")),
    }
    let mut agree = |what: &str, view: String, dbg: String| {
        if view != dbg {
            disagreements.push(format!("{what}: ext4-view {view}, debugfs {dbg}"));
        }
    };
    agree(
        "type",
        debugfs_type_name(kind).into(),
        stat.file_type.clone(),
    );
    agree(
        "permissions",
        format!("{:o}", meta.mode()),
        format!("{:o}", stat.permissions),
    );
    agree("uid", meta.uid().to_string(), stat.uid.to_string());
    agree("gid", meta.gid().to_string(), stat.gid.to_string());
    agree("size", meta.len().to_string(), stat.size.to_string());
    agree(
        "atime",
        format!("{:?}", view_time(meta.accessed())),
        format!("{:?}", stat.atime),
    );
    agree(
        "mtime",
        format!("{:?}", view_time(meta.modified())),
        format!("{:?}", stat.mtime),
    );
    agree(
        "crtime",
        format!("{:?}", meta.created().map(view_time)),
        format!("{:?}", stat.crtime),
    );
    Observed {
        inode: u64::from(ino),
        kind,
        permissions: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.len(),
        nlink: stat.links,
        atime: view_time(meta.accessed()),
        mtime: view_time(meta.modified()),
        ctime: stat.ctime,
        crtime: meta.created().map(view_time),
        device: stat.device,
        symlink: entry.symlink,
        content: entry.content,
        xattrs,
        disagreements,
    }
}

/// Walks the image with ext4-view: metadata, symlink targets and content digests by path.
fn walk_view(img: &Path, errors: &mut Vec<String>) -> Result<BTreeMap<Vec<u8>, View>, String> {
    let fs =
        Ext4::load_from_path(img).map_err(|e| format!("ext4-view cannot load the image: {e}"))?;
    let mut entries = BTreeMap::new();
    let root_meta = match fs.symlink_metadata("/") {
        Ok(meta) => meta,
        Err(e) => {
            entries.insert(b"/".to_vec(), View::Unreadable(e.to_string()));
            return Ok(entries);
        }
    };
    entries.insert(
        b"/".to_vec(),
        View::Seen(ViewEntry {
            meta: root_meta,
            dirent_type: Ok(FileType::Directory),
            symlink: None,
            content: None,
        }),
    );
    let mut dirs = vec![b"/".to_vec()];
    while let Some(dir) = dirs.pop() {
        let read_dir = match fs.read_dir(dir.as_slice()) {
            Ok(read_dir) => read_dir,
            Err(e) => {
                errors.push(format!("{}: ext4-view cannot list it: {e}", show(&dir)));
                continue;
            }
        };
        for item in read_dir {
            let entry = match item {
                Ok(entry) => entry,
                Err(e) => {
                    errors.push(format!("{}: ext4-view entry error: {e}", show(&dir)));
                    continue;
                }
            };
            let name = entry.file_name().as_ref().to_vec();
            if name == b"." || name == b".." {
                continue;
            }
            let path = join(&dir, &name);
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) => {
                    entries.insert(path, View::Unreadable(e.to_string()));
                    continue;
                }
            };
            let ty = meta.file_type();
            let symlink = (ty == FileType::Symlink).then(|| {
                fs.read_link(path.as_slice())
                    .map(|t| t.as_ref().to_vec())
                    .map_err(|e| e.to_string())
            });
            let content = (ty == FileType::Regular).then(|| digest_file(&fs, &path, meta.len()));
            if ty == FileType::Directory {
                dirs.push(path.clone());
            }
            let dirent_type = entry.file_type().map_err(|e| e.to_string());
            entries.insert(
                path,
                View::Seen(ViewEntry {
                    meta,
                    dirent_type,
                    symlink,
                    content,
                }),
            );
        }
    }
    Ok(entries)
}

fn digest_file(fs: &Ext4, path: &[u8], len: u64) -> Result<ContentDigest, String> {
    let mut file = fs.open(path).map_err(|e| e.to_string())?;
    digest_reader(len, |buf| {
        file.read_bytes(buf).map_err(std::io::Error::other)
    })
    .map_err(|e| e.to_string())
}

/// Inode number of every path, found by listing directories level by level with debugfs.
fn walk_debugfs(img: &Path) -> Result<BTreeMap<Vec<u8>, u32>, String> {
    const ROOT_INO: u32 = 2;
    let mut inodes = BTreeMap::from([(b"/".to_vec(), ROOT_INO)]);
    let mut level = vec![(b"/".to_vec(), ROOT_INO)];
    while !level.is_empty() {
        let commands: Vec<Vec<u8>> = level
            .iter()
            .map(|(_, ino)| format!("ls -p <{ino}>").into_bytes())
            .collect();
        let batch = debugfs::run_batch(img, &commands).map_err(|e| e.to_string())?;
        if !batch.errors.is_empty() {
            return Err(format!("debugfs ls failed: {}", batch.errors));
        }
        let mut next = Vec::new();
        for ((dir, _), out) in level.iter().zip(&batch.outputs) {
            for entry in debugfs::parse_ls(out)? {
                // Unused slots (inode 0) show up too, e.g. in lost+found.
                if entry.ino == 0 || entry.name == b"." || entry.name == b".." {
                    continue;
                }
                let path = join(dir, &entry.name);
                if Kind::from_mode(entry.mode) == Some(Kind::Dir) {
                    next.push((path.clone(), entry.ino));
                }
                inodes.insert(path, entry.ino);
            }
        }
        level = next;
    }
    Ok(inodes)
}

/// `stat` of every distinct inode.
fn stat_inodes(
    img: &Path,
    inodes: &BTreeMap<Vec<u8>, u32>,
) -> Result<HashMap<u32, InodeStat>, String> {
    let mut unique: Vec<u32> = inodes.values().copied().collect();
    unique.sort_unstable();
    unique.dedup();
    let commands: Vec<Vec<u8>> = unique
        .iter()
        .map(|ino| format!("stat <{ino}>").into_bytes())
        .collect();
    let batch = debugfs::run_batch(img, &commands).map_err(|e| e.to_string())?;
    if !batch.errors.is_empty() {
        return Err(format!("debugfs stat failed: {}", batch.errors));
    }
    unique
        .iter()
        .zip(&batch.outputs)
        .map(|(ino, out)| {
            let stat = debugfs::parse_stat(out).map_err(|e| format!("inode {ino}: {e}"))?;
            Ok((*ino, stat))
        })
        .collect()
}

/// Raw values of every xattr of every inode, via `ea_get -r` (no ACL translation).
fn read_xattrs(
    img: &Path,
    stats: &HashMap<u32, InodeStat>,
) -> Result<HashMap<u32, Result<Xattrs, String>>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut commands = Vec::new();
    let mut wanted = Vec::new();
    for (ino, stat) in stats {
        for (name, size) in &stat.xattrs {
            let file = dir.path().join(commands.len().to_string());
            let mut command = format!("ea_get -r -f {} <{ino}> ", file.display()).into_bytes();
            command.extend_from_slice(&debugfs::quote(name));
            commands.push(command);
            wanted.push((*ino, name.clone(), *size, file));
        }
    }
    let batch = debugfs::run_batch(img, &commands).map_err(|e| e.to_string())?;
    let mut result: HashMap<u32, Result<Xattrs, String>> =
        stats.keys().map(|ino| (*ino, Ok(Xattrs::new()))).collect();
    if !batch.errors.is_empty() {
        // ea_get still creates its output file on failure, so errors are
        // only visible here: blame every inode with xattrs.
        for (ino, ..) in &wanted {
            result.insert(
                *ino,
                Err(format!("debugfs ea_get failed: {}", batch.errors)),
            );
        }
        return Ok(result);
    }
    for (ino, name, size, file) in wanted {
        let value = std::fs::read(&file).map_err(|e| e.to_string())?;
        let slot = result.entry(ino).or_insert(Ok(Xattrs::new()));
        if value.len() != size {
            *slot = Err(format!(
                "{}: ea_get returned {} bytes, stat says {size}",
                show(&name),
                value.len()
            ));
        } else if let Ok(map) = slot {
            map.insert(name, value);
        }
    }
    Ok(result)
}
