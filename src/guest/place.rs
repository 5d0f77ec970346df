//! Putting one file, link or directory at a guest path of the in-memory tree.

use banger_ext4::tree::{Metadata, NodeId, NodeKind, ResolveError, Tree, TreeError};

/// Why a guest path could not be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlaceError {
    /// A parent of `path` could not be resolved or created, e.g. because a
    /// regular file stands where a directory must be.
    #[error("cannot place {path}")]
    Resolve {
        /// The guest path being written.
        path: String,
        /// What went wrong.
        #[source]
        source: ResolveError,
    },
    /// Linking the new entry failed.
    #[error("cannot place {path}")]
    Link {
        /// The guest path being written.
        path: String,
        /// What went wrong.
        #[source]
        source: TreeError,
    },
}

/// Links a new node of `kind` at `path`, replacing whatever had that name.
/// Missing parents are created with `dir_meta`; symlinked parents (merged-usr
/// `/lib -> usr/lib`) are followed inside the tree, as the guest would.
pub fn place(
    tree: &mut Tree,
    path: &str,
    kind: NodeKind,
    meta: Metadata,
    dir_meta: &Metadata,
) -> Result<NodeId, PlaceError> {
    let resolved = tree
        .resolve_parent(path.as_bytes(), Some(dir_meta))
        .map_err(|source| PlaceError::Resolve {
            path: path.to_owned(),
            source,
        })?;
    let node = tree.add(kind, meta);
    tree.link(resolved.parent, &resolved.name, node)
        .map_err(|source| PlaceError::Link {
            path: path.to_owned(),
            source,
        })?;
    Ok(node)
}
