//! POSIX ACLs in their two encodings.
//!
//! The tree (like tar and `getfattr`) holds ACLs in the VFS format, version
//! 2, every entry 8 bytes. ext4 stores its own format, version 1, with 4-byte
//! entries for the tags that carry no id. The oracles compare the on-disk
//! bytes against [`vfs_to_ext4`] of the tree's value.

/// Name of the access ACL xattr.
pub const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
/// Name of the default ACL xattr (directories only).
pub const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

/// `ACL_USER_OBJ`: the owner.
pub const ACL_USER_OBJ: u16 = 0x01;
/// `ACL_USER`: a named user.
pub const ACL_USER: u16 = 0x02;
/// `ACL_GROUP_OBJ`: the owning group.
pub const ACL_GROUP_OBJ: u16 = 0x04;
/// `ACL_GROUP`: a named group.
pub const ACL_GROUP: u16 = 0x08;
/// `ACL_MASK`: upper bound for group-class entries.
pub const ACL_MASK: u16 = 0x10;
/// `ACL_OTHER`: everyone else.
pub const ACL_OTHER: u16 = 0x20;

const VFS_VERSION: u32 = 2;
const EXT4_VERSION: u32 = 1;
/// The VFS format's id for entries that have none.
const UNDEFINED_ID: u32 = u32::MAX;

/// One ACL entry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AclEntry {
    /// One of the `ACL_*` tags.
    pub tag: u16,
    /// rwx bits (4, 2, 1).
    pub perm: u16,
    /// The uid or gid for [`ACL_USER`] and [`ACL_GROUP`]; `None` otherwise.
    pub id: Option<u32>,
}

fn tag_has_id(tag: u16) -> bool {
    tag == ACL_USER || tag == ACL_GROUP
}

/// Whether `name` is one of the two ACL xattrs.
pub fn is_acl(name: &[u8]) -> bool {
    name == ACL_ACCESS || name == ACL_DEFAULT
}

/// Parses the VFS format (`getfattr`, tar `SCHILY.xattr.system.posix_acl_*`).
pub fn parse_vfs(bytes: &[u8]) -> Option<Vec<AclEntry>> {
    let (version, body) = bytes.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != VFS_VERSION || body.len() % 8 != 0 {
        return None;
    }
    body.chunks_exact(8)
        .map(|e| {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            Some(AclEntry {
                tag,
                perm: u16::from_le_bytes([e[2], e[3]]),
                id: tag_has_id(tag).then_some(id),
            })
        })
        .collect()
}

/// Encodes entries in the VFS format.
pub fn to_vfs(entries: &[AclEntry]) -> Vec<u8> {
    let mut out = VFS_VERSION.to_le_bytes().to_vec();
    for e in entries {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.perm.to_le_bytes());
        out.extend_from_slice(&e.id.unwrap_or(UNDEFINED_ID).to_le_bytes());
    }
    out
}

/// Parses ext4's on-disk format.
pub fn parse_ext4(bytes: &[u8]) -> Option<Vec<AclEntry>> {
    let (version, mut rest) = bytes.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != EXT4_VERSION {
        return None;
    }
    let mut entries = Vec::new();
    while !rest.is_empty() {
        let (short, after) = rest.split_first_chunk::<4>()?;
        let tag = u16::from_le_bytes([short[0], short[1]]);
        let perm = u16::from_le_bytes([short[2], short[3]]);
        let id = if tag_has_id(tag) {
            let (id, after) = after.split_first_chunk::<4>()?;
            rest = after;
            Some(u32::from_le_bytes(*id))
        } else {
            rest = after;
            None
        };
        entries.push(AclEntry { tag, perm, id });
    }
    Some(entries)
}

/// Encodes entries in ext4's on-disk format.
pub fn to_ext4(entries: &[AclEntry]) -> Vec<u8> {
    let mut out = EXT4_VERSION.to_le_bytes().to_vec();
    for e in entries {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.perm.to_le_bytes());
        if tag_has_id(e.tag) {
            out.extend_from_slice(&e.id.unwrap_or(UNDEFINED_ID).to_le_bytes());
        }
    }
    out
}

/// The ext4 on-disk bytes for a VFS-format ACL, `None` if it does not parse.
pub fn vfs_to_ext4(bytes: &[u8]) -> Option<Vec<u8>> {
    parse_vfs(bytes).map(|entries| to_ext4(&entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `u:1000:rw,g:100:r` as in EXT4-FACTS §7, verified against setfacl and mkfs.ext4 -d.
    #[test]
    fn converts_the_documented_example() {
        let vfs = hex::decode(concat!(
            "02000000",
            "01000600ffffffff02000600e803000004000400ffffffff",
            "080004006400000010000600ffffffff20000400ffffffff"
        ))
        .unwrap();
        let disk = hex::decode(concat!(
            "01000000",
            "0100060002000600e80300000400040008000400",
            "640000001000060020000400"
        ))
        .unwrap();
        assert_eq!(vfs_to_ext4(&vfs).unwrap(), disk);
        assert_eq!(to_vfs(&parse_ext4(&disk).unwrap()), vfs);
        assert_eq!(parse_vfs(&disk), None);
    }
}
