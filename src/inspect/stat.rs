//! `banger image stat`: one inode in full, with its xattrs decoded.

use std::fmt::Write as _;

use banger_ext4::read::{Image, InodeView, Xattr};

use super::caps::describe_capability;
use super::format::{kind_name, mode_string, precise_time, value_text};

/// `stat`-like text for `inode`, reached as `path`: type, inode, links,
/// mode, owner, size, the four times, then each xattr with POSIX ACLs as
/// `getfacl` writes them and `security.capability` as `getcap` does.
pub fn describe(
    image: &Image,
    path: &str,
    inode: &InodeView,
    xattrs: &[Xattr],
) -> Result<String, banger_ext4::read::ReadError> {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "  File: {path}");
    if inode.kind == banger_ext4::read::FileKind::Symlink {
        let target = image.read_link(inode)?;
        let _ = writeln!(out, "Target: {}", String::from_utf8_lossy(&target));
    }
    let _ = writeln!(out, "  Type: {}", kind_name(inode.kind));
    let _ = writeln!(out, " Inode: {}  Links: {}", inode.ino, inode.links);
    let _ = writeln!(
        out,
        "  Mode: {:04o} ({})  Uid: {}  Gid: {}",
        inode.permissions,
        mode_string(inode.kind, inode.permissions),
        inode.uid,
        inode.gid
    );
    if let Some(dev) = inode.device {
        let _ = writeln!(out, "Device: {}:{}", dev.major, dev.minor);
    } else {
        let _ = writeln!(out, "  Size: {}  Blocks: {}", inode.size, inode.sectors);
    }
    let _ = writeln!(out, "Access: {}", precise_time(inode.atime));
    let _ = writeln!(out, "Modify: {}", precise_time(inode.mtime));
    let _ = writeln!(out, "Change: {}", precise_time(inode.ctime));
    if let Some(crtime) = inode.crtime {
        let _ = writeln!(out, " Birth: {}", precise_time(crtime));
    }
    if !xattrs.is_empty() {
        let _ = writeln!(out, "Xattrs:");
    }
    for xattr in xattrs {
        let name = String::from_utf8_lossy(&xattr.name);
        let _ = writeln!(out, "  {name} = {}", value_text(&xattr.value));
        let decoded = match xattr.name.as_slice() {
            b"security.capability" => describe_capability(&xattr.value),
            b"system.posix_acl_access" | b"system.posix_acl_default" => acl_text(&xattr.value),
            _ => None,
        };
        for line in decoded.iter().flat_map(|text| text.lines()) {
            let _ = writeln!(out, "    {line}");
        }
    }
    Ok(out)
}

/// A POSIX ACL in the VFS format as `getfacl` lists it: `user::rwx`,
/// `user:1000:rw-`, `group::r-x`, `mask::rwx`, `other::r--`.
pub fn acl_text(value: &[u8]) -> Option<String> {
    const HEADER: usize = 4;
    const ENTRY: usize = 8;
    if value.len() < HEADER || !(value.len() - HEADER).is_multiple_of(ENTRY) {
        return None;
    }
    let mut out = String::new();
    for entry in value[HEADER..].chunks_exact(ENTRY) {
        let tag = u16::from_le_bytes([entry[0], entry[1]]);
        let perm = u16::from_le_bytes([entry[2], entry[3]]);
        let id = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
        let (kind, qualifier) = match tag {
            0x01 => ("user", String::new()),
            0x02 => ("user", id.to_string()),
            0x04 => ("group", String::new()),
            0x08 => ("group", id.to_string()),
            0x10 => ("mask", String::new()),
            0x20 => ("other", String::new()),
            _ => return None,
        };
        let bit = |mask: u16, c: char| if perm & mask != 0 { c } else { '-' };
        let _ = writeln!(
            out,
            "{kind}:{qualifier}:{}{}{}",
            bit(4, 'r'),
            bit(2, 'w'),
            bit(1, 'x')
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::acl_text;

    #[test]
    fn acls_read_as_getfacl_lists_them() {
        // `setfacl -m u:1000:rw,g:100:r` as `getfattr -e hex` shows it (EXT4-FACTS §7).
        let hex = "02000000 01000600ffffffff 02000600e8030000 04000400ffffffff \
                   0800040064000000 10000600ffffffff 20000400ffffffff";
        let value = hex::decode(hex.replace(' ', "")).unwrap();
        assert_eq!(
            acl_text(&value).as_deref(),
            Some("user::rw-\nuser:1000:rw-\ngroup::r--\ngroup:100:r--\nmask::rw-\nother::r--\n")
        );
        assert_eq!(acl_text(&[2, 0, 0, 0, 1]), None);
    }
}
