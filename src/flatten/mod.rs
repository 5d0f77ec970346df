//! Flattening OCI image layers into one ext4 [`Tree`].
//!
//! Each layer is an already-decompressed tar stream, applied oldest first
//! with the OCI image-spec's rules (`layer.md`), as containerd and umoci
//! apply them:
//!
//! - Paths are cleaned lexically (`./a` is `a`; `..` and absolute paths
//!   stay inside the root) and their parents resolved inside the tree,
//!   following symlinks as a chroot would. Missing parents are created
//!   0755 root:root with the entry's mtime. An entry for `./` sets the
//!   root's metadata but never its type.
//! - A new entry replaces what had its name with a new node (hard-link
//!   siblings keep the old one), except that a directory over a directory
//!   only updates metadata: directories merge.
//! - `.wh.NAME` hides NAME from lower layers; `.wh..wh..opq` hides all
//!   lower children of its directory. Neither touches what the same layer
//!   adds, whatever the order in the tar. Other `.wh..wh.*` AUFS entries are
//!   skipped; no `.wh.` entry ever reaches the tree.
//! - Hard links resolve inside the tree to an existing non-directory node
//!   (the same [`NodeId`](banger_ext4::tree::NodeId)), which must come from
//!   a lower layer or earlier in the same one.
//! - File data is streamed into a [`ContentStore`], sparse files with their
//!   holes; nothing is buffered whole and nothing touches the host.
//! - Extended attributes: see [`keep_xattr`] for the policy.
//!
//! Every error names the layer and the entry; no input makes it panic.

mod apply;
mod error;
mod limits;
mod path;
mod pax;
mod sparse;
mod tar_header;
pub(crate) mod tar_reader;
mod whiteout;

use std::io::Read;

use banger_ext4::tree::{ContentStore, Copying, LendingRead, Metadata, Tree};

pub use apply::keep_xattr;
pub use error::{EntryError, FlattenError, FlattenErrorKind, LimitError, TarError};
pub use limits::Limits;

use limits::Usage;
use tar_reader::TarReader;
use whiteout::LayerState;

/// What one layer contained.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Entries read (extended headers not counted).
    pub entries: u64,
    /// Regular files stored.
    pub files: u64,
    /// Directory entries (created or merged).
    pub directories: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Hard links.
    pub hard_links: u64,
    /// Devices and FIFOs.
    pub special_files: u64,
    /// `.wh.NAME` whiteouts.
    pub whiteouts: u64,
    /// `.wh..wh..opq` opaque markers.
    pub opaque_dirs: u64,
    /// Entries ignored: AUFS metadata, entries below a whiteout, non-directory
    /// entries for the root.
    pub skipped: u64,
    /// Bytes of file data stored (holes excluded).
    pub data_bytes: u64,
}

/// Applies layers one after another onto a tree.
pub struct Flattener<'s, S: ContentStore> {
    store: &'s mut S,
    limits: Limits,
    tree: Tree,
    usage: Usage,
}

impl<'s, S: ContentStore> Flattener<'s, S> {
    /// A flattener whose tree starts as an empty root with `root_meta`;
    /// file contents go to `store`.
    pub fn new(store: &'s mut S, limits: Limits, root_meta: Metadata) -> Self {
        Self {
            store,
            limits,
            tree: Tree::new(root_meta),
            usage: Usage::default(),
        }
    }

    /// Applies one layer (oldest first) from its uncompressed tar stream.
    /// `layer_name` (a digest, say) appears in every error. The stream is
    /// read to its end, past the end-of-archive blocks, so that a digest
    /// computed by a wrapping reader covers all of it.
    ///
    /// On error the tree may hold part of the layer: discard it.
    pub fn apply_layer(
        &mut self,
        layer_name: &str,
        tar: impl Read,
    ) -> Result<LayerStats, FlattenError> {
        self.apply_layer_lending(layer_name, Copying(tar))
    }

    /// [`Self::apply_layer`] from a stream that may lend file data to the
    /// content store instead of copying it out ([`LendingRead`]).
    pub fn apply_layer_lending(
        &mut self,
        layer_name: &str,
        tar: impl LendingRead,
    ) -> Result<LayerStats, FlattenError> {
        let mut reader = TarReader::new(tar);
        let mut layer = LayerState::new(&self.tree);
        let mut stats = LayerStats::default();
        // The previous entry's path, kept as bytes (a buffer reused from
        // entry to entry) and made text only for an error message.
        let mut last: Option<Vec<u8>> = None;
        let position = |offset: u64, last: &Option<Vec<u8>>| match last {
            Some(name) => format!(
                "(header at byte {offset}, after {:?})",
                String::from_utf8_lossy(name)
            ),
            None => format!("(header at byte {offset})"),
        };
        loop {
            let header_at = reader.next_header_offset();
            let entry = match reader.next_entry() {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(e) => {
                    return Err(FlattenErrorKind::Tar(e).at(layer_name, position(header_at, &last)))
                }
            };
            self.apply_entry(&mut reader, &entry, &mut layer, &mut stats)
                .map_err(|f| {
                    f.at(
                        layer_name,
                        String::from_utf8_lossy(&entry.path).into_owned(),
                    )
                })?;
            let previous = last.get_or_insert_with(Vec::new);
            previous.clear();
            previous.extend_from_slice(&entry.path);
        }
        reader.drain().map_err(|e| {
            FlattenErrorKind::Tar(e).at(layer_name, position(reader.offset(), &last))
        })?;
        Ok(stats)
    }

    /// The tree built so far.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The finished tree.
    pub fn finish(self) -> Tree {
        self.tree
    }
}

/// Flattens `layers` (name and uncompressed tar stream, oldest first) into
/// a tree whose root starts with `root_meta`.
pub fn flatten_layers<S, I, N, R>(
    store: &mut S,
    limits: Limits,
    root_meta: Metadata,
    layers: I,
) -> Result<Tree, FlattenError>
where
    S: ContentStore,
    I: IntoIterator<Item = (N, R)>,
    N: AsRef<str>,
    R: Read,
{
    let mut flattener = Flattener::new(store, limits, root_meta);
    for (name, tar) in layers {
        flattener.apply_layer(name.as_ref(), tar)?;
    }
    Ok(flattener.finish())
}
