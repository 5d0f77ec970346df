//! Resolving `/`-separated paths inside the tree, following symlinks as
//! the kernel would inside a chroot.

use std::borrow::Cow;

use super::*;

/// Most symlinks followed while resolving one path, as Linux's `MAXSYMLINKS`.
pub const MAX_SYMLINK_FOLLOWS: usize = 40;

/// Why a path could not be resolved inside the tree.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    /// A non-directory stands where a directory is needed.
    #[error("{0:?} is not a directory")]
    NotADirectory(String),
    /// A parent directory does not exist and creating it was not asked for.
    #[error("{0:?} does not exist")]
    Missing(String),
    /// More than [`MAX_SYMLINK_FOLLOWS`] symlinks, or a loop.
    #[error("too many levels of symbolic links at {0:?}")]
    SymlinkLoop(String),
    /// The path names the root itself, which has no parent entry.
    #[error("the path names the root directory")]
    Root,
    /// A component is not a valid name.
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// Where a path leads: the directory that holds its last component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    /// The directory holding the final component.
    pub parent: NodeId,
    /// The final component's name.
    pub name: Vec<u8>,
    /// The node under that name, if any (not followed if it is a symlink).
    pub existing: Option<NodeId>,
}

impl Tree {
    /// Resolves `path` the way the kernel would inside a chroot at the root
    /// of this tree: `..` never leaves the root, absolute symlinks restart
    /// at the root, and symlinks in parent components are followed (the last
    /// component is not). Missing parents are created with `implied_parent`
    /// metadata when given, otherwise they are an error.
    pub fn resolve_parent(
        &mut self,
        path: &[u8],
        implied_parent: Option<&Metadata>,
    ) -> Result<ResolvedPath, ResolveError> {
        // Borrowed: this runs once per layer entry, and copying every
        // component made it a fifth of the flattener's time on small files.
        let components: Vec<&[u8]> = split_path(path).collect();
        self.resolve_components(&components, implied_parent)
    }

    /// [`Self::resolve_parent`] for a path already split at its `/`s, for a
    /// caller that has the components at hand (empty ones and `.` are
    /// skipped, as in a path).
    pub fn resolve_components(
        &mut self,
        components: &[&[u8]],
        implied_parent: Option<&Metadata>,
    ) -> Result<ResolvedPath, ResolveError> {
        let components = match components.iter().rposition(|c| !matches!(*c, b"" | b".")) {
            Some(last) => &components[..=last],
            None => return Err(ResolveError::Root),
        };
        let (name, parents) = match components.split_last() {
            None => return Err(ResolveError::Root),
            Some((last, _)) if *last == b".." => {
                // `a/..` as the final component names a directory: find the
                // entry that holds it.
                let dir = self.walk_dirs(components, implied_parent)?;
                if dir == Self::ROOT {
                    return Err(ResolveError::Root);
                }
                let parent = self.parent(dir).unwrap_or(Self::ROOT);
                let name = self
                    .dir(parent)
                    .and_then(|d| d.iter().find(|(_, id)| *id == dir).map(|(n, _)| n.to_vec()))
                    .ok_or(ResolveError::Root)?;
                return Ok(ResolvedPath {
                    parent,
                    existing: Some(dir),
                    name,
                });
            }
            Some((last, parents)) => (*last, parents),
        };
        validate_name(name)?;
        let parent = self.walk_dirs(parents, implied_parent)?;
        let existing = self.lookup(parent, name);
        Ok(ResolvedPath {
            parent,
            name: name.to_vec(),
            existing,
        })
    }

    /// Walks `components` as directories from the root, following symlinks.
    fn walk_dirs(
        &mut self,
        components: &[&[u8]],
        implied_parent: Option<&Metadata>,
    ) -> Result<NodeId, ResolveError> {
        // Most paths cross no symlink: walk those without a copy or an
        // allocation, and start again following symlinks at the first one
        // (the directories created on the way are found the second time).
        let mut dir = Self::ROOT;
        for (i, component) in components.iter().enumerate() {
            match *component {
                b"" | b"." => continue,
                b".." => {
                    dir = self.parent(dir).unwrap_or(Self::ROOT);
                    continue;
                }
                _ => {}
            }
            let next = match self.lookup(dir, component) {
                Some(id) => id,
                None => match implied_parent {
                    Some(meta) => self.ensure_dir(dir, component, meta.clone())?,
                    None => return Err(ResolveError::Missing(shown(&components[..=i]))),
                },
            };
            match &self.node(next).kind {
                NodeKind::Directory(_) => dir = next,
                NodeKind::Symlink(_) => {
                    return self.walk_dirs_following(components, implied_parent)
                }
                _ => return Err(ResolveError::NotADirectory(shown(&components[..=i]))),
            }
        }
        Ok(dir)
    }

    /// [`Self::walk_dirs`] for a path that crosses a symlink.
    fn walk_dirs_following(
        &mut self,
        components: &[&[u8]],
        implied_parent: Option<&Metadata>,
    ) -> Result<NodeId, ResolveError> {
        // Still to walk, next last; only a symlink's target is copied in.
        let mut pending: Vec<Cow<'_, [u8]>> =
            components.iter().rev().map(|c| Cow::Borrowed(*c)).collect();
        let mut dir = Self::ROOT;
        let mut follows = 0;
        let mut walked: Vec<u8> = Vec::new();
        while let Some(component) = pending.pop() {
            match component.as_ref() {
                b"" | b"." => continue,
                b".." => {
                    dir = self.parent(dir).unwrap_or(Self::ROOT);
                    continue;
                }
                _ => {}
            }
            walked.push(b'/');
            walked.extend_from_slice(&component);
            let shown = || String::from_utf8_lossy(&walked).into_owned();
            let next = match self.lookup(dir, &component) {
                Some(id) => id,
                None => match implied_parent {
                    Some(meta) => self.ensure_dir(dir, &component, meta.clone())?,
                    None => return Err(ResolveError::Missing(shown())),
                },
            };
            match &self.node(next).kind {
                NodeKind::Directory(_) => dir = next,
                NodeKind::Symlink(target) => {
                    follows += 1;
                    if follows > MAX_SYMLINK_FOLLOWS {
                        return Err(ResolveError::SymlinkLoop(shown()));
                    }
                    if target.first() == Some(&b'/') {
                        dir = Self::ROOT;
                    }
                    pending.extend(split_path(target).rev().map(|c| Cow::Owned(c.to_vec())));
                }
                _ => return Err(ResolveError::NotADirectory(shown())),
            }
        }
        Ok(dir)
    }
}

/// The components walked so far as an error shows them: `/` before each,
/// with empty ones, `.` and `..` left out.
fn shown(components: &[&[u8]]) -> String {
    let mut walked = Vec::new();
    for component in components {
        if !matches!(*component, b"" | b"." | b"..") {
            walked.push(b'/');
            walked.extend_from_slice(component);
        }
    }
    String::from_utf8_lossy(&walked).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Metadata {
        Metadata::new(0o755, Timestamp::from_secs(1))
    }

    /// `/d` (a directory holding the file `f`) and `/l`, a symlink to `/d`.
    fn sample() -> (Tree, NodeId) {
        let mut tree = Tree::new(meta());
        let d = tree.ensure_dir(Tree::ROOT, b"d", meta()).unwrap();
        let f = tree.add(NodeKind::Fifo, meta());
        tree.link(d, b"f", f).unwrap();
        let l = tree.add(NodeKind::Symlink(b"/d".to_vec()), meta());
        tree.link(Tree::ROOT, b"l", l).unwrap();
        (tree, d)
    }

    #[test]
    fn errors_name_the_path_walked_without_dot_components() {
        let (mut tree, _) = sample();
        assert_eq!(
            tree.resolve_parent(b"d/../d/./m/c", None),
            Err(ResolveError::Missing("/d/d/m".into()))
        );
        assert_eq!(
            tree.resolve_parent(b"d/f/x", None),
            Err(ResolveError::NotADirectory("/d/f".into()))
        );
        // Through the symlink, the walked path shows its target.
        assert_eq!(
            tree.resolve_parent(b"l/q/x", None),
            Err(ResolveError::Missing("/l/d/q".into()))
        );
    }

    #[test]
    fn a_symlinked_parent_is_followed_after_directories_made_before_it() {
        let (mut tree, d) = sample();
        let resolved = tree
            .resolve_components(&[b"l", b"n", b"x"], Some(&meta()))
            .unwrap();
        let n = tree.lookup(d, b"n").expect("n made inside /d");
        assert_eq!(resolved.parent, n);
        assert_eq!(resolved.name, b"x");
        assert_eq!(resolved.existing, None);
        assert_eq!(tree.lookup(Tree::ROOT, b"n"), None);
    }

    #[test]
    fn components_resolve_as_the_path_they_were_split_from() {
        let (mut tree, d) = sample();
        let f = tree.lookup(d, b"f");
        for components in [&[&b"d"[..], b"f", b""][..], &[b"", b"d", b".", b"f", b"."]] {
            let resolved = tree.resolve_components(components, None).unwrap();
            assert_eq!(
                (resolved.parent, &resolved.name[..], resolved.existing),
                (d, &b"f"[..], f)
            );
        }
        assert_eq!(
            tree.resolve_components(&[b"", b"."], None),
            Err(ResolveError::Root)
        );
        // `d/e/..` names `d` itself, held by the root; `d/f/..` crosses a file.
        tree.ensure_dir(d, b"e", meta()).unwrap();
        let up = tree.resolve_components(&[b"d", b"e", b".."], None).unwrap();
        assert_eq!(
            tree.resolve_components(&[b"d", b"f", b".."], None),
            Err(ResolveError::NotADirectory("/d/f".into()))
        );
        assert_eq!(
            (up.parent, &up.name[..], up.existing),
            (Tree::ROOT, &b"d"[..], Some(d))
        );
    }
}
