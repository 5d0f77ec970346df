//! Errors of the flattener. Every [`FlattenError`] names the layer and the
//! entry it happened at, so a user can find the offending file.

use std::io;

use banger_ext4::tree::{ResolveError, TreeError};

/// Why a layer could not be applied: what went wrong ([`FlattenErrorKind`],
/// its source) at which entry of which layer.
#[derive(Debug, thiserror::Error)]
#[error("layer {layer}: entry {entry:?}")]
pub struct FlattenError {
    /// The layer being applied.
    pub layer: String,
    /// The entry's path as written in the tar, or where in the stream the
    /// reader was when the stream itself failed.
    pub entry: String,
    /// What went wrong.
    #[source]
    pub kind: FlattenErrorKind,
}

/// What went wrong applying one entry.
#[derive(Debug, thiserror::Error)]
pub enum FlattenErrorKind {
    /// The tar stream is malformed, truncated or could not be read.
    #[error(transparent)]
    Tar(#[from] TarError),
    /// A well-formed entry cannot be applied to the tree.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// A configured limit was exceeded (tar bomb protection).
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The content store failed to take a file's data.
    #[error("storing the file contents failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl FlattenErrorKind {
    /// Attaches the layer and entry names.
    pub(crate) fn at(self, layer: &str, entry: String) -> FlattenError {
        FlattenError {
            layer: layer.to_owned(),
            entry,
            kind: self,
        }
    }
}

impl From<ResolveError> for FlattenErrorKind {
    fn from(e: ResolveError) -> Self {
        Self::Entry(EntryError::Resolve(e))
    }
}

impl From<TreeError> for FlattenErrorKind {
    fn from(e: TreeError) -> Self {
        Self::Entry(EntryError::Tree(e))
    }
}

/// A malformed tar stream.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// The stream ended inside a header, an extended header or file data.
    #[error("unexpected end of the tar stream (truncated layer)")]
    Truncated,
    /// A header block's checksum does not match its contents.
    #[error("header checksum mismatch at byte {offset} (not a tar stream, or corrupt)")]
    BadChecksum {
        /// Byte offset of the header in the stream.
        offset: u64,
    },
    /// A numeric header field is neither octal nor base-256.
    #[error("invalid numeric field {0}")]
    InvalidNumber(&'static str),
    /// A number is outside what the field may hold.
    #[error("{field} {value} is out of range")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value found.
        value: i128,
    },
    /// A pax extended header is malformed.
    #[error("invalid pax extended header: {0}")]
    InvalidPax(String),
    /// A pax `size` record disagrees with the header's size field.
    #[error("pax size {pax} contradicts the header size {header}")]
    SizeMismatch {
        /// Size from the pax record.
        pax: u64,
        /// Size from the header block.
        header: u64,
    },
    /// A GNU sparse map is malformed or does not match the data.
    #[error("invalid sparse map: {0}")]
    InvalidSparse(String),
    /// An entry type the flattener does not know.
    #[error("unsupported tar entry type {0:?}")]
    UnsupportedType(char),
    /// An extended header (pax, GNU long name) is larger than allowed.
    #[error("extended header of {size} bytes exceeds the {max}-byte limit")]
    ExtendedHeaderTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Too many extended headers precede one entry.
    #[error("more than {0} extended headers before one entry")]
    TooManyExtendedHeaders(usize),
    /// A non-zero block follows an end-of-archive block.
    #[error("data after an end-of-archive block")]
    DataAfterEnd,
    /// Reading the underlying stream failed.
    #[error("reading the tar stream failed")]
    Io(#[from] io::Error),
}

/// A well-formed entry that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// A whiteout names nothing valid (`.wh.`, `.wh..`, `.wh...`).
    #[error("invalid whiteout name")]
    InvalidWhiteout,
    /// A path component is longer than ext4's 255 bytes.
    #[error("a path component is {len} bytes long; ext4 allows 255")]
    NameTooLong {
        /// Length of the component.
        len: usize,
    },
    /// A hard link's target does not exist (it must come earlier in the
    /// same layer or from a lower layer).
    #[error("hard link target {target:?} does not exist")]
    HardLinkTargetMissing {
        /// The link name as written in the tar.
        target: String,
    },
    /// A hard link names a directory.
    #[error("hard link target {target:?} is a directory")]
    HardLinkToDirectory {
        /// The link name as written in the tar.
        target: String,
    },
    /// A symlink with an empty target, which Linux cannot create.
    #[error("symbolic link with an empty target")]
    EmptySymlink,
    /// A device number that ext4 cannot encode.
    #[error("device number {major}:{minor} out of range (major < 4096, minor < 1048576)")]
    DeviceNumberOutOfRange {
        /// Major number.
        major: u64,
        /// Minor number.
        minor: u64,
    },
    /// The path cannot be resolved inside the tree (a parent is not a
    /// directory, or symlinks loop).
    #[error("cannot resolve the path")]
    Resolve(#[from] ResolveError),
    /// The tree refused the edit.
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// A configured limit that an entry crossed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    /// Too many entries across the layers applied so far.
    #[error("more than {max} entries (--max-entries raises the limit)")]
    TooManyEntries {
        /// The limit.
        max: u64,
    },
    /// Too many bytes of file data across the layers applied so far.
    #[error("more than {max} bytes of file data")]
    TooManyBytes {
        /// The limit.
        max: u64,
    },
    /// A path with too many components.
    #[error("path depth {depth} exceeds {max}")]
    PathTooDeep {
        /// Components in the path.
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// A path (or link target) with too many bytes.
    #[error("path of {len} bytes exceeds {max}")]
    PathTooLong {
        /// Bytes in the path.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Extended attributes of one entry larger than allowed.
    #[error("extended attributes of {size} bytes exceed {max}")]
    XattrsTooLarge {
        /// Total bytes of names and values.
        size: usize,
        /// The limit.
        max: usize,
    },
}
