//! Why an image could not be built.

use std::io;

use crate::alloc::OutOfSpace;
use crate::dir::DirError;
use crate::extent::ExtentError;
use crate::geometry::GeometryError;
use crate::spec::{EXT4_LINK_MAX, MAX_SYMLINK_LEN};
use crate::write::data::DataError;
use crate::xattr::XattrError;

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Reading or writing failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Streaming a file's data failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// No geometry fits the content.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    /// A file is too large for extents.
    #[error("{path}")]
    Extent {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: ExtentError,
    },
    /// A directory could not be encoded.
    #[error("directory {path}")]
    Directory {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: DirError,
    },
    /// Extended attributes could not be stored.
    #[error("{path}")]
    Xattr {
        /// The node.
        path: String,
        /// The cause.
        #[source]
        source: XattrError,
    },
    /// A symlink target is longer than ext4 allows.
    #[error("{path}: symlink target of {len} bytes exceeds {MAX_SYMLINK_LEN}")]
    SymlinkTooLong {
        /// The symlink.
        path: String,
        /// Target length.
        len: usize,
    },
    /// A device number does not fit ext4's 12:20-bit encoding.
    #[error(
        "{path}: device number {major}:{minor} does not fit ext4's 12-bit major, 20-bit minor"
    )]
    DeviceNumber {
        /// The device node.
        path: String,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A file has more hard links than ext4 allows.
    #[error("{path}: {links} hard links exceed ext4's limit of {EXT4_LINK_MAX}")]
    TooManyLinks {
        /// One of the names.
        path: String,
        /// Its link count.
        links: usize,
    },
    /// The planned layout did not fit (a bug: the geometry is chosen to fit).
    #[error("internal layout error")]
    NoSpace(#[from] OutOfSpace),
    /// A symlink with an empty target, which ext4 cannot store.
    #[error("{0}: symlink has an empty target")]
    EmptySymlink(String),
    /// More inodes than ext4 can number.
    #[error("{0} inodes exceed ext4's 2^32 limit")]
    TooManyInodes(usize),
}

/// Wraps an I/O error with what was being done.
pub(crate) fn io_error(context: &'static str) -> impl FnOnce(io::Error) -> BuildError {
    move |source| BuildError::Io { context, source }
}
