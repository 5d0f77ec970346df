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
        let mut components: Vec<&[u8]> = split_path(path).collect();
        let name = match components.pop() {
            None => return Err(ResolveError::Root),
            Some(last) if last == b".." => {
                // `a/..` as the final component names a directory: find the
                // entry that holds it.
                components.push(last);
                let dir = self.walk_dirs(&components, implied_parent)?;
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
            Some(last) => last,
        };
        validate_name(name)?;
        let parent = self.walk_dirs(&components, implied_parent)?;
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
