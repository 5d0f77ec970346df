//! POSIX ACLs: conversion between the VFS xattr format and ext4's on-disk format.
//!
//! `getxattr("system.posix_acl_access")` (and tar's `SCHILY.xattr.*`) yields
//! the VFS format: a version-2 header and 8-byte `{tag, perm, id}` entries.
//! ext4 stores a more compact version-1 format in which the entries that carry
//! no id (owner, owning group, mask, other) are only 4 bytes long. The kernel
//! converts in `fs/ext4/acl.c` (`ext4_acl_to_disk`, `ext4_acl_from_disk`);
//! e2fsprogs in `convert_posix_acl_to_disk_buffer`.

use zerocopy::{FromBytes, IntoBytes};

use crate::format::acl::*;

/// Why an ACL value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AclError {
    /// The value is shorter than the 4-byte header.
    #[error("ACL value of {0} bytes has no header")]
    MissingHeader(usize),
    /// The header carries another version than the format requires.
    #[error("ACL version {found}, expected {expected}")]
    BadVersion {
        /// Version in the value.
        found: u32,
        /// Version the format requires.
        expected: u32,
    },
    /// The entries do not divide into whole entries.
    #[error("ACL value of {0} bytes does not hold whole entries")]
    BadSize(usize),
    /// The ACL has no entries (the kernel treats that as "no ACL").
    #[error("ACL has no entries")]
    Empty,
    /// An entry's tag is none of the `ACL_*` tags.
    #[error("unknown ACL tag {0:#x}")]
    UnknownTag(u16),
    /// An entry grants bits other than read, write and execute.
    #[error("invalid ACL permissions {0:#x}")]
    BadPermissions(u16),
}

/// Whether entries with `tag` carry an id (and are stored in full by ext4).
fn tag_has_id(tag: u16) -> Result<bool, AclError> {
    match tag {
        ACL_USER_OBJ | ACL_GROUP_OBJ | ACL_MASK | ACL_OTHER => Ok(false),
        ACL_USER | ACL_GROUP => Ok(true),
        other => Err(AclError::UnknownTag(other)),
    }
}

fn check_perm(perm: u16) -> Result<(), AclError> {
    if perm & !(ACL_READ | ACL_WRITE | ACL_EXECUTE) != 0 {
        return Err(AclError::BadPermissions(perm));
    }
    Ok(())
}

/// Splits off the header and checks its version.
fn read_header(value: &[u8], expected: u32) -> Result<&[u8], AclError> {
    let (header, rest) =
        Ext4AclHeader::read_from_prefix(value).map_err(|_| AclError::MissingHeader(value.len()))?;
    let found = header.a_version.get();
    if found != expected {
        return Err(AclError::BadVersion { found, expected });
    }
    Ok(rest)
}

/// Converts an ACL from the VFS format (version 2, as `getfattr` shows it) to
/// ext4's on-disk format (version 1, short entries where no id is needed).
pub fn vfs_acl_to_ext4(value: &[u8]) -> Result<Vec<u8>, AclError> {
    let body = read_header(value, POSIX_ACL_XATTR_VERSION)?;
    let (entries, rest) = <[Ext4AclEntry]>::ref_from_prefix_with_elems(body, body.len() / 8)
        .map_err(|_| AclError::BadSize(value.len()))?;
    if !rest.is_empty() {
        return Err(AclError::BadSize(value.len()));
    }
    if entries.is_empty() {
        return Err(AclError::Empty);
    }
    let mut out = Ext4AclHeader {
        a_version: EXT4_ACL_VERSION.into(),
    }
    .as_bytes()
    .to_vec();
    for entry in entries {
        check_perm(entry.e_perm.get())?;
        if tag_has_id(entry.e_tag.get())? {
            out.extend_from_slice(entry.as_bytes());
        } else {
            let short = Ext4AclEntryShort {
                e_tag: entry.e_tag,
                e_perm: entry.e_perm,
            };
            out.extend_from_slice(short.as_bytes());
        }
    }
    Ok(out)
}

/// Converts an ACL from ext4's on-disk format back to the VFS format, writing
/// [`ACL_UNDEFINED_ID`] as the id of entries that name nobody, as the kernel does.
pub fn ext4_acl_to_vfs(value: &[u8]) -> Result<Vec<u8>, AclError> {
    let mut body = read_header(value, EXT4_ACL_VERSION)?;
    if body.is_empty() {
        return Err(AclError::Empty);
    }
    let mut out = Ext4AclHeader {
        a_version: POSIX_ACL_XATTR_VERSION.into(),
    }
    .as_bytes()
    .to_vec();
    while !body.is_empty() {
        let (short, _) = Ext4AclEntryShort::read_from_prefix(body)
            .map_err(|_| AclError::BadSize(value.len()))?;
        check_perm(short.e_perm.get())?;
        let entry = if tag_has_id(short.e_tag.get())? {
            let (full, rest) =
                Ext4AclEntry::read_from_prefix(body).map_err(|_| AclError::BadSize(value.len()))?;
            body = rest;
            full
        } else {
            body = &body[size_of::<Ext4AclEntryShort>()..];
            Ext4AclEntry {
                e_tag: short.e_tag,
                e_perm: short.e_perm,
                e_id: ACL_UNDEFINED_ID.into(),
            }
        };
        out.extend_from_slice(entry.as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `setfacl -m u:1000:rw,g:100:r` as `getfattr -e hex` shows it (EXT4-FACTS §7).
    const VFS: &str = "02000000 01000600ffffffff 02000600e8030000 04000400ffffffff \
                       0800040064000000 10000600ffffffff 20000400ffffffff";
    /// The same ACL as mke2fs stores it.
    const DISK: &str =
        "01000000 01000600 02000600e8030000 04000400 0800040064000000 10000600 20000400";

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn converts_to_disk_and_back() {
        assert_eq!(vfs_acl_to_ext4(&unhex(VFS)).unwrap(), unhex(DISK));
        assert_eq!(ext4_acl_to_vfs(&unhex(DISK)).unwrap(), unhex(VFS));
    }

    #[test]
    fn rejects_wrong_versions() {
        assert_eq!(
            vfs_acl_to_ext4(&unhex(DISK)),
            Err(AclError::BadVersion {
                found: 1,
                expected: 2
            })
        );
        assert_eq!(
            ext4_acl_to_vfs(&unhex(VFS)),
            Err(AclError::BadVersion {
                found: 2,
                expected: 1
            })
        );
    }

    #[test]
    fn rejects_malformed_values() {
        assert_eq!(vfs_acl_to_ext4(&[2, 0]), Err(AclError::MissingHeader(2)));
        assert_eq!(vfs_acl_to_ext4(&unhex("02000000")), Err(AclError::Empty));
        assert_eq!(
            vfs_acl_to_ext4(&unhex("02000000 01000600ff")),
            Err(AclError::BadSize(9))
        );
        assert_eq!(
            vfs_acl_to_ext4(&unhex("02000000 40000600ffffffff")),
            Err(AclError::UnknownTag(0x40))
        );
        assert_eq!(
            vfs_acl_to_ext4(&unhex("02000000 01000800ffffffff")),
            Err(AclError::BadPermissions(8))
        );
        // A named-user entry cut short after its tag and permissions.
        assert_eq!(
            ext4_acl_to_vfs(&unhex("01000000 01000600 02000600")),
            Err(AclError::BadSize(12))
        );
        assert_eq!(ext4_acl_to_vfs(&unhex("01000000")), Err(AclError::Empty));
        assert_eq!(
            ext4_acl_to_vfs(&unhex("01000000 03000600")),
            Err(AclError::UnknownTag(3))
        );
    }
}
