//! Read access to an image's files, and path resolution the way the guest
//! kernel does it.
//!
//! The image is not mounted while banger writes it: the caller implements
//! [`ImageFiles`] over its in-memory tree. The trait only answers literal
//! questions ("what is at this exact path?"); [`resolve`] follows symlinks
//! on top of it, so every implementation gets the same semantics
//! (merged-usr `/sbin -> usr/sbin`, relative and absolute targets, `..`)
//! and the detection can report which links it went through.

use std::collections::BTreeMap;

/// What is at a path, without following a symlink there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file with these permission bits (`0o755`); insserv skips
    /// scripts without the owner's execute bit, so the mode matters.
    File {
        /// Permission bits, without the file type.
        mode: u32,
    },
    /// A directory.
    Dir,
    /// A symbolic link with this target, as stored.
    Symlink(String),
    /// Anything else: device, FIFO, socket.
    Other,
}

/// The image's files, as the caller holds them.
///
/// Paths are absolute and already normalised (no `.`, `..` or doubled
/// slashes): [`resolve`] produces them. Implementations need not follow
/// symlinks in [`ImageFiles::entry`] and [`ImageFiles::list_dir`], not even
/// in parent components; [`resolve`] calls them on real paths only.
pub trait ImageFiles {
    /// What is at exactly `path` (parents and the last component taken
    /// literally, nothing followed); `None` when nothing is there.
    fn entry(&mut self, path: &str) -> Option<EntryKind>;

    /// Up to `max` bytes of the regular file at `path`, following symlinks;
    /// `None` when it is missing, not a regular file or unreadable.
    fn read(&mut self, path: &str, max: usize) -> Option<Vec<u8>>;

    /// The names in the directory at `path` (not `.` or `..`), in any
    /// order; `None` when it is not a directory.
    fn list_dir(&mut self, path: &str) -> Option<Vec<String>>;
}

/// Most symlinks followed in one lookup, as Linux (`MAXSYMLINKS`).
pub const MAX_SYMLINK_FOLLOWS: usize = 40;

/// Where a path leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The real path, every symlink followed.
    pub path: String,
    /// What is there (never a symlink).
    pub kind: EntryKind,
    /// Each symlink followed on the way, as `link -> target`.
    pub hops: Vec<String>,
}

/// Why a path does not lead anywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// Nothing at `path` (which may be the target of a symlink).
    Missing {
        /// The first path component that does not exist.
        path: String,
        /// Symlinks followed before that.
        hops: Vec<String>,
    },
    /// A component that must be a directory is not one.
    NotADirectory(String),
    /// More than [`MAX_SYMLINK_FOLLOWS`] symlinks.
    Loop(String),
}

/// Follows `path` to what it names, like the kernel's path walk: every
/// symlink, in any component, the last one included; relative targets are
/// relative to the directory holding the link; `..` at `/` stays at `/`.
pub fn resolve(files: &mut dyn ImageFiles, path: &str) -> Result<Resolved, Unresolved> {
    let mut hops = Vec::new();
    // Components still to walk, in reverse so the next one is at the end.
    let mut todo: Vec<String> = components(path).rev().map(str::to_owned).collect();
    let mut at: Vec<String> = Vec::new();
    let mut follows = 0;
    let mut kind = EntryKind::Dir;
    while let Some(name) = todo.pop() {
        if !matches!(kind, EntryKind::Dir) {
            return Err(Unresolved::NotADirectory(join(&at)));
        }
        match name.as_str() {
            "." => continue,
            ".." => {
                at.pop();
                continue;
            }
            _ => {}
        }
        at.push(name);
        let here = join(&at);
        match files.entry(&here) {
            None => return Err(Unresolved::Missing { path: here, hops }),
            Some(EntryKind::Symlink(target)) => {
                follows += 1;
                if follows > MAX_SYMLINK_FOLLOWS {
                    return Err(Unresolved::Loop(here));
                }
                hops.push(format!("{here} -> {target}"));
                at.pop();
                if target.starts_with('/') {
                    at.clear();
                }
                todo.extend(components(&target).rev().map(str::to_owned));
                kind = EntryKind::Dir;
            }
            Some(other) => kind = other,
        }
    }
    Ok(Resolved {
        path: join(&at),
        kind,
        hops,
    })
}

/// The regular file `path` leads to, read through its real path.
pub fn read_file(files: &mut dyn ImageFiles, path: &str, max: usize) -> Option<Vec<u8>> {
    match resolve(files, path) {
        Ok(Resolved {
            path,
            kind: EntryKind::File { .. },
            ..
        }) => files.read(&path, max),
        _ => None,
    }
}

/// Whether `path` leads to a regular file.
pub fn is_file(files: &mut dyn ImageFiles, path: &str) -> bool {
    matches!(resolve(files, path), Ok(r) if matches!(r.kind, EntryKind::File { .. }))
}

/// Whether `path` leads to a directory.
pub fn is_dir(files: &mut dyn ImageFiles, path: &str) -> bool {
    matches!(resolve(files, path), Ok(r) if r.kind == EntryKind::Dir)
}

/// The names in the directory `path` leads to, sorted.
pub fn list_sorted(files: &mut dyn ImageFiles, path: &str) -> Vec<String> {
    let mut names = list_as_given(files, path);
    names.sort();
    names
}

/// The names in the directory `path` leads to, in the order
/// [`ImageFiles::list_dir`] gives them (where a tool's result depends on
/// `readdir` order, the caller can reproduce it).
pub fn list_as_given(files: &mut dyn ImageFiles, path: &str) -> Vec<String> {
    match resolve(files, path) {
        Ok(Resolved {
            path,
            kind: EntryKind::Dir,
            ..
        }) => files.list_dir(&path).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

fn join(parts: &[String]) -> String {
    if parts.is_empty() {
        "/".to_owned()
    } else {
        parts.iter().map(|p| format!("/{p}")).collect()
    }
}

/// One entry of [`MemFiles`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemEntry {
    /// A regular file: mode and contents.
    File(u32, Vec<u8>),
    /// A directory.
    Dir,
    /// A symlink and its target.
    Symlink(String),
}

/// An in-memory [`ImageFiles`] for tests: a map from absolute path to entry.
/// Parent directories are implied by deeper paths.
#[derive(Clone, Debug, Default)]
pub struct MemFiles {
    entries: BTreeMap<String, MemEntry>,
}

impl MemFiles {
    /// An empty image (only `/`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file with mode 0644.
    pub fn file(&mut self, path: &str, contents: impl Into<Vec<u8>>) -> &mut Self {
        self.insert(path, MemEntry::File(0o644, contents.into()))
    }

    /// Adds a regular file with mode 0755.
    pub fn exec(&mut self, path: &str, contents: impl Into<Vec<u8>>) -> &mut Self {
        self.insert(path, MemEntry::File(0o755, contents.into()))
    }

    /// Adds an (empty) directory.
    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.insert(path, MemEntry::Dir)
    }

    /// Adds a symlink.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.insert(path, MemEntry::Symlink(target.to_owned()))
    }

    /// Removes `path` (not what is below it).
    pub fn remove(&mut self, path: &str) -> &mut Self {
        self.entries.remove(path);
        self
    }

    /// Adds an entry of any kind, replacing what was there.
    pub fn insert(&mut self, path: &str, entry: MemEntry) -> &mut Self {
        self.entries.insert(path.to_owned(), entry);
        self
    }

    fn is_parent(&self, path: &str) -> bool {
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        self.entries
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(p, _)| p.starts_with(&prefix))
    }
}

impl ImageFiles for MemFiles {
    fn entry(&mut self, path: &str) -> Option<EntryKind> {
        match self.entries.get(path) {
            Some(MemEntry::File(mode, _)) => Some(EntryKind::File { mode: *mode }),
            Some(MemEntry::Dir) => Some(EntryKind::Dir),
            Some(MemEntry::Symlink(t)) => Some(EntryKind::Symlink(t.clone())),
            None if path == "/" || self.is_parent(path) => Some(EntryKind::Dir),
            None => None,
        }
    }

    fn read(&mut self, path: &str, max: usize) -> Option<Vec<u8>> {
        let real = resolve(self, path).ok()?;
        match self.entries.get(&real.path) {
            Some(MemEntry::File(_, bytes)) => Some(bytes[..bytes.len().min(max)].to_vec()),
            _ => None,
        }
    }

    fn list_dir(&mut self, path: &str) -> Option<Vec<String>> {
        if self.entry(path) != Some(EntryKind::Dir) {
            return None;
        }
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        let mut names: Vec<String> = self
            .entries
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter_map(|(p, _)| p[prefix.len()..].split('/').next().map(str::to_owned))
            .collect();
        // "/d/x" and "/d/x/y" both name x; a sibling "/d/x-1" can sort
        // between them.
        names.sort();
        names.dedup();
        Some(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_follows_parents_relative_and_absolute_links() {
        let mut files = MemFiles::new();
        files
            .symlink("/sbin", "usr/sbin")
            .symlink("/usr/sbin/init", "../lib/systemd/systemd")
            .exec("/usr/lib/systemd/systemd", "")
            .symlink("/lib", "/usr/lib");
        let r = resolve(&mut files, "/sbin/init").unwrap();
        assert_eq!(r.path, "/usr/lib/systemd/systemd");
        assert_eq!(r.kind, EntryKind::File { mode: 0o755 });
        assert_eq!(
            r.hops,
            [
                "/sbin -> usr/sbin",
                "/usr/sbin/init -> ../lib/systemd/systemd"
            ]
        );
        assert_eq!(
            resolve(&mut files, "/lib/systemd/../systemd/./systemd")
                .unwrap()
                .path,
            "/usr/lib/systemd/systemd"
        );
        assert!(is_dir(&mut files, "/lib"));
        assert!(is_file(&mut files, "/sbin/init"));
    }

    #[test]
    fn resolve_reports_missing_loops_and_non_directories() {
        let mut files = MemFiles::new();
        files
            .symlink("/a", "b")
            .symlink("/b", "a")
            .symlink("/dangling", "/nowhere/x")
            .file("/f", "x");
        assert!(matches!(
            resolve(&mut files, "/a"),
            Err(Unresolved::Loop(_))
        ));
        assert_eq!(
            resolve(&mut files, "/dangling"),
            Err(Unresolved::Missing {
                path: "/nowhere".into(),
                hops: vec!["/dangling -> /nowhere/x".into()]
            })
        );
        assert_eq!(
            resolve(&mut files, "/f/x"),
            Err(Unresolved::NotADirectory("/f".into()))
        );
        assert_eq!(read_file(&mut files, "/f", 10), Some(b"x".to_vec()));
        assert_eq!(read_file(&mut files, "/dangling", 10), None);
    }

    #[test]
    fn mem_files_list_implied_directories() {
        let mut files = MemFiles::new();
        files.file("/etc/init.d/b", "").file("/etc/init.d/a", "");
        files.dir("/etc/rc2.d");
        assert_eq!(list_sorted(&mut files, "/etc/init.d"), ["a", "b"]);
        assert_eq!(list_sorted(&mut files, "/etc"), ["init.d", "rc2.d"]);
        assert_eq!(files.list_dir("/etc/init.d/a"), None);
        assert!(list_sorted(&mut files, "/etc/rc2.d").is_empty());
    }
}
