//! Errors of the flattener. Every [`FlattenError`] names the layer and the
//! entry it happened at, so a user can find the offending file.

use std::io;

use banger_ext4::tree::{ResolveError, TreeError};

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum FlattenError {
    /// The tar stream is malformed, truncated or could not be read.
    #[error("layer {layer}: entry {entry:?}: {source}")]
    Tar {
        /// The layer being applied.
        layer: String,
        /// The entry being read, or where in the stream the reader was.
        entry: String,
        /// What is wrong with the stream.
        #[source]
        source: TarError,
    },
    /// A well-formed entry cannot be applied to the tree.
    #[error("layer {layer}: entry {entry:?}: {source}")]
    Entry {
        /// The layer being applied.
        layer: String,
        /// The entry's path as written in the tar.
        entry: String,
        /// What is wrong with the entry.
        #[source]
        source: EntryError,
    },
    /// A configured limit was exceeded (tar bomb protection).
    #[error("layer {layer}: entry {entry:?}: {source}")]
    Limit {
        /// The layer being applied.
        layer: String,
        /// The entry that crossed the limit.
        entry: String,
        /// Which limit.
        #[source]
        source: LimitError,
    },
    /// The content store failed to take a file's data.
    #[error("layer {layer}: entry {entry:?}: storing the file contents failed: {source}")]
    Store {
        /// The layer being applied.
        layer: String,
        /// The file being stored.
        entry: String,
        /// The store's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl FlattenError {
    /// The layer the error happened in.
    pub fn layer(&self) -> &str {
        match self {
            Self::Tar { layer, .. }
            | Self::Entry { layer, .. }
            | Self::Limit { layer, .. }
            | Self::Store { layer, .. } => layer,
        }
    }

    /// The entry the error happened at.
    pub fn entry(&self) -> &str {
        match self {
            Self::Tar { entry, .. }
            | Self::Entry { entry, .. }
            | Self::Limit { entry, .. }
            | Self::Store { entry, .. } => entry,
        }
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
    #[error("reading the tar stream failed: {0}")]
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
    #[error("cannot resolve the path: {0}")]
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

/// An error of one entry before the layer and entry name are attached.
#[derive(Debug)]
pub(crate) enum Failure {
    Tar(TarError),
    Entry(EntryError),
    Limit(LimitError),
    Store(Box<dyn std::error::Error + Send + Sync>),
}

impl Failure {
    /// Attaches the layer and entry names.
    pub(crate) fn at(self, layer: &str, entry: String) -> FlattenError {
        let layer = layer.to_owned();
        match self {
            Self::Tar(source) => FlattenError::Tar {
                layer,
                entry,
                source,
            },
            Self::Entry(source) => FlattenError::Entry {
                layer,
                entry,
                source,
            },
            Self::Limit(source) => FlattenError::Limit {
                layer,
                entry,
                source,
            },
            Self::Store(source) => FlattenError::Store {
                layer,
                entry,
                source,
            },
        }
    }
}

impl From<TarError> for Failure {
    fn from(e: TarError) -> Self {
        Self::Tar(e)
    }
}

impl From<EntryError> for Failure {
    fn from(e: EntryError) -> Self {
        Self::Entry(e)
    }
}

impl From<LimitError> for Failure {
    fn from(e: LimitError) -> Self {
        Self::Limit(e)
    }
}

impl From<ResolveError> for Failure {
    fn from(e: ResolveError) -> Self {
        Self::Entry(EntryError::Resolve(e))
    }
}

impl From<TreeError> for Failure {
    fn from(e: TreeError) -> Self {
        Self::Entry(EntryError::Tree(e))
    }
}
