//! Reading extended attributes from the inode and its EA block.

use super::{Image, InodeView, ReadError};
use crate::acl::ext4_acl_to_vfs;
use crate::format::xattr::{
    Ext4XattrEntry, Ext4XattrHeader, EXT4_XATTR_INDEX_POSIX_ACL_ACCESS,
    EXT4_XATTR_INDEX_POSIX_ACL_DEFAULT, EXT4_XATTR_MAGIC,
};
use crate::xattr::{entry_len, full_name};
use zerocopy::FromBytes;

/// One extended attribute, by full name. POSIX ACLs are given in the VFS
/// format `getfattr` shows, converted back from ext4's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xattr {
    /// Full name: `user.foo`, `security.capability`, `system.posix_acl_access`.
    pub name: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

impl Image {
    /// The inode's xattrs, in-inode ones first, each in stored order.
    pub fn xattrs(&self, inode: &InodeView) -> Result<Vec<Xattr>, ReadError> {
        let corrupt = |what| ReadError::Corrupt {
            ino: inode.ino,
            what,
        };
        let mut out = Vec::new();
        let area = &inode.inline_xattrs;
        if area.len() >= 4 && area[..4] == EXT4_XATTR_MAGIC.to_le_bytes() {
            // In the inode, value offsets count from the first entry.
            parse_entries(&area[4..], &area[4..], &mut out).map_err(corrupt)?;
        }
        if inode.xattr_block != 0 {
            let block = self.read_block(inode.xattr_block, inode.ino)?;
            let (header, _) =
                Ext4XattrHeader::read_from_prefix(&block).map_err(|_| corrupt("short EA block"))?;
            if header.h_magic.get() != EXT4_XATTR_MAGIC || header.h_blocks.get() != 1 {
                return Err(corrupt("bad EA block header"));
            }
            let entries = &block[size_of::<Ext4XattrHeader>()..];
            parse_entries(entries, &block, &mut out).map_err(corrupt)?;
        }
        Ok(out)
    }
}

/// Parses entries from `entries` until the zero terminator; values live in
/// `values` at each entry's `e_value_offs`.
fn parse_entries(entries: &[u8], values: &[u8], out: &mut Vec<Xattr>) -> Result<(), &'static str> {
    let mut offset = 0;
    loop {
        let rest = &entries[offset.min(entries.len())..];
        if rest.len() < 4 || rest[..4] == [0; 4] {
            return Ok(());
        }
        let (entry, tail) =
            Ext4XattrEntry::read_from_prefix(rest).map_err(|_| "xattr entry cut short")?;
        let name_len = usize::from(entry.e_name_len);
        let suffix = tail.get(..name_len).ok_or("xattr name cut short")?;
        if entry.e_value_inum.get() != 0 {
            return Err("xattr value in an EA inode (ea_inode is not read)");
        }
        let start = usize::from(entry.e_value_offs.get());
        let len = entry.e_value_size.get() as usize;
        let value = start
            .checked_add(len)
            .and_then(|end| values.get(start..end))
            .ok_or("xattr value outside its block")?;
        let value = match entry.e_name_index {
            EXT4_XATTR_INDEX_POSIX_ACL_ACCESS | EXT4_XATTR_INDEX_POSIX_ACL_DEFAULT => {
                ext4_acl_to_vfs(value).map_err(|_| "malformed POSIX ACL")?
            }
            _ => value.to_vec(),
        };
        let name = full_name(entry.e_name_index, suffix).ok_or("unknown xattr name index")?;
        out.push(Xattr { name, value });
        offset += entry_len(name_len);
    }
}
