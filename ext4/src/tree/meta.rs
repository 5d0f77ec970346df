//! What every node carries: ownership, permissions, times and xattrs.

use std::collections::BTreeMap;

/// A point in time with nanosecond precision, in seconds since the Unix epoch.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z; negative before it.
    pub secs: i64,
    /// Nanoseconds within the second, below 1 000 000 000.
    pub nanos: u32,
}

impl Timestamp {
    /// A timestamp at a whole second.
    pub const fn from_secs(secs: i64) -> Self {
        Self { secs, nanos: 0 }
    }
}

/// Extended attributes by full name (`user.foo`, `security.capability`,
/// `system.posix_acl_access`, ...). POSIX ACLs are kept in the VFS
/// (`getfattr`) format; the writer converts them to ext4's own format.
pub type Xattrs = BTreeMap<Vec<u8>, Vec<u8>>;

/// Metadata shared by every kind of node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Permission bits including setuid (0o4000), setgid (0o2000) and sticky
    /// (0o1000). Only the low 12 bits are used; the file type comes from
    /// [`NodeKind`](super::NodeKind).
    pub permissions: u16,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Last access time.
    pub atime: Timestamp,
    /// Last content modification time.
    pub mtime: Timestamp,
    /// Last status change time.
    pub ctime: Timestamp,
    /// Creation time.
    pub crtime: Timestamp,
    /// Extended attributes.
    pub xattrs: Xattrs,
}

impl Metadata {
    /// Metadata with the given permission bits, owned by root, all times at `time`.
    pub fn new(permissions: u16, time: Timestamp) -> Self {
        Self {
            permissions: permissions & 0o7777,
            uid: 0,
            gid: 0,
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            xattrs: Xattrs::new(),
        }
    }
}

/// A device number as `major:minor`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeviceNumber {
    /// Major number (at most 12 bits on ext4's new encoding).
    pub major: u32,
    /// Minor number (at most 20 bits on ext4's new encoding).
    pub minor: u32,
}
