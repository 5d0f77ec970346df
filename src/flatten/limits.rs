//! Limits that stop tar bombs: entry count, data size, path depth and
//! length, xattr size.

use super::error::LimitError;

/// Limits applied while flattening. Entry count and data bytes add up over
/// every layer a [`super::Flattener`] applies, since a bomb can be split
/// across layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most tar entries (whiteouts included, extended headers not).
    pub max_entries: u64,
    /// Most bytes of file data actually stored; holes of sparse files do not
    /// count.
    pub max_total_bytes: u64,
    /// Most components in one (cleaned) path.
    pub max_path_depth: usize,
    /// Most bytes in one path or link target as written in the tar.
    pub max_name_bytes: usize,
    /// Most bytes of xattr names plus values on one entry.
    pub max_xattr_bytes: usize,
}

impl Default for Limits {
    /// Generous limits that no real image reaches.
    fn default() -> Self {
        Self {
            // About 1.2 GB of tree in memory (310 bytes an entry plus names).
            max_entries: 4_000_000,
            max_total_bytes: 1 << 40,
            max_path_depth: 256,
            max_name_bytes: 4096,
            max_xattr_bytes: 64 << 10,
        }
    }
}

/// Running totals checked against [`Limits`].
#[derive(Debug, Default)]
pub(crate) struct Usage {
    pub(crate) entries: u64,
    pub(crate) bytes: u64,
}

impl Limits {
    /// Counts one more entry.
    pub(crate) fn count_entry(&self, usage: &mut Usage) -> Result<(), LimitError> {
        usage.entries += 1;
        if usage.entries > self.max_entries {
            return Err(LimitError::TooManyEntries {
                max: self.max_entries,
            });
        }
        Ok(())
    }

    /// Counts `bytes` more bytes of file data, before they are read.
    pub(crate) fn count_bytes(&self, usage: &mut Usage, bytes: u64) -> Result<(), LimitError> {
        usage.bytes = usage.bytes.saturating_add(bytes);
        if usage.bytes > self.max_total_bytes {
            return Err(LimitError::TooManyBytes {
                max: self.max_total_bytes,
            });
        }
        Ok(())
    }

    /// Checks a path's length and its depth once cleaned.
    pub(crate) fn check_path(&self, raw: &[u8], depth: usize) -> Result<(), LimitError> {
        if raw.len() > self.max_name_bytes {
            return Err(LimitError::PathTooLong {
                len: raw.len(),
                max: self.max_name_bytes,
            });
        }
        if depth > self.max_path_depth {
            return Err(LimitError::PathTooDeep {
                depth,
                max: self.max_path_depth,
            });
        }
        Ok(())
    }

    /// Checks the total size of one entry's xattrs.
    pub(crate) fn check_xattrs<'a>(
        &self,
        xattrs: impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>,
    ) -> Result<(), LimitError> {
        let size = xattrs.map(|(k, v)| k.len() + v.len()).sum();
        if size > self.max_xattr_bytes {
            return Err(LimitError::XattrsTooLarge {
                size,
                max: self.max_xattr_bytes,
            });
        }
        Ok(())
    }
}
