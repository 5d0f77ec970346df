//! Decoding an on-disk inode into the fields a reader needs.

use super::ReadError;
use crate::format::Ext4Inode;
use crate::inode::decode_time;
use crate::spec::{EXT4_EXTENTS_FL, EXT4_HUGE_FILE_FL, EXT4_INLINE_DATA_FL};
use crate::tree::{DeviceNumber, Timestamp};
use zerocopy::FromBytes;

/// `S_IFMT` and the file types it encodes.
const S_IFMT: u16 = 0o170_000;
const S_IFSOCK: u16 = 0o140_000;
const S_IFLNK: u16 = 0o120_000;
const S_IFREG: u16 = 0o100_000;
const S_IFBLK: u16 = 0o060_000;
const S_IFDIR: u16 = 0o040_000;
const S_IFCHR: u16 = 0o020_000;
const S_IFIFO: u16 = 0o010_000;
/// The end of the fixed 128-byte inode, where `i_extra_isize` counts from.
const GOOD_OLD_INODE_SIZE: usize = 128;

/// The type of an inode, from `i_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

impl FileKind {
    fn from_mode(mode: u16) -> Option<Self> {
        Some(match mode & S_IFMT {
            S_IFREG => Self::Regular,
            S_IFDIR => Self::Directory,
            S_IFLNK => Self::Symlink,
            S_IFCHR => Self::CharDevice,
            S_IFBLK => Self::BlockDevice,
            S_IFIFO => Self::Fifo,
            S_IFSOCK => Self::Socket,
            _ => return None,
        })
    }

    /// The letter `ls -l` shows for this type.
    pub fn letter(self) -> char {
        match self {
            Self::Regular => '-',
            Self::Directory => 'd',
            Self::Symlink => 'l',
            Self::CharDevice => 'c',
            Self::BlockDevice => 'b',
            Self::Fifo => 'p',
            Self::Socket => 's',
        }
    }
}

/// One inode, decoded.
#[derive(Clone, Debug)]
pub struct InodeView {
    /// Inode number.
    pub ino: u32,
    /// The type, from `i_mode`.
    pub kind: FileKind,
    /// Permission bits, setuid/setgid/sticky included.
    pub permissions: u16,
    /// Owner user id (32 bits).
    pub uid: u32,
    /// Owner group id (32 bits).
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Hard link count (1 for a directory whose count overflowed, as `dir_nlink` stores it).
    pub links: u16,
    /// 512-byte sectors charged to the inode (`i_blocks`), as `stat` shows them.
    pub sectors: u64,
    /// Last access.
    pub atime: Timestamp,
    /// Last modification.
    pub mtime: Timestamp,
    /// Last status change.
    pub ctime: Timestamp,
    /// Creation, when the inode is large enough to hold it.
    pub crtime: Option<Timestamp>,
    /// `i_flags`.
    pub flags: u32,
    /// Device number, for character and block devices.
    pub device: Option<DeviceNumber>,
    /// The EA block, or 0.
    pub(super) xattr_block: u64,
    /// `i_block`: extent root, fast symlink target or device number.
    pub(super) i_block: [u8; 60],
    /// The in-inode xattr area (after `i_extra_isize`), possibly empty.
    pub(super) inline_xattrs: Vec<u8>,
}

impl InodeView {
    /// Decodes the first `len` bytes of `raw` (the on-disk inode size, capped
    /// at 256) as inode `ino`.
    pub(super) fn decode(
        ino: u32,
        raw: &[u8; size_of::<Ext4Inode>()],
        len: usize,
    ) -> Result<Self, ReadError> {
        let corrupt = |what| ReadError::Corrupt { ino, what };
        let inode = Ext4Inode::read_from_bytes(raw).map_err(|_| corrupt("short inode"))?;
        let mode = inode.i_mode.get();
        let kind = FileKind::from_mode(mode).ok_or(corrupt("unknown file type in i_mode"))?;
        let flags = inode.i_flags.get();
        if flags & EXT4_INLINE_DATA_FL != 0 {
            return Err(ReadError::Unsupported("inline data"));
        }
        let extra = if len > GOOD_OLD_INODE_SIZE {
            usize::from(inode.i_extra_isize.get())
        } else {
            0
        };
        if GOOD_OLD_INODE_SIZE + extra > len || !extra.is_multiple_of(4) {
            return Err(corrupt("i_extra_isize runs past the inode"));
        }
        // A field of the extra area exists only when i_extra_isize covers it.
        let has = |end: usize| extra >= end - GOOD_OLD_INODE_SIZE;
        let time = |base: u32, extra_word: u32, end: usize| {
            decode_time(base, if has(end) { extra_word } else { 0 })
        };
        let sectors =
            u64::from(inode.i_blocks_lo.get()) | u64::from(inode.l_i_blocks_high.get()) << 32;
        let device = matches!(kind, FileKind::CharDevice | FileKind::BlockDevice)
            .then(|| decode_device(&inode.i_block));
        Ok(Self {
            ino,
            kind,
            permissions: mode & 0o7777,
            uid: u32::from(inode.i_uid.get()) | u32::from(inode.l_i_uid_high.get()) << 16,
            gid: u32::from(inode.i_gid.get()) | u32::from(inode.l_i_gid_high.get()) << 16,
            size: u64::from(inode.i_size_lo.get()) | u64::from(inode.i_size_high.get()) << 32,
            links: inode.i_links_count.get(),
            // HUGE_FILE counts in filesystem blocks; report what the kernel would.
            sectors: if flags & EXT4_HUGE_FILE_FL != 0 {
                sectors.saturating_mul(8)
            } else {
                sectors
            },
            atime: time(inode.i_atime.get(), inode.i_atime_extra.get(), 0x90),
            mtime: time(inode.i_mtime.get(), inode.i_mtime_extra.get(), 0x8C),
            ctime: time(inode.i_ctime.get(), inode.i_ctime_extra.get(), 0x88),
            crtime: has(0x98)
                .then(|| decode_time(inode.i_crtime.get(), inode.i_crtime_extra.get())),
            flags,
            device,
            xattr_block: u64::from(inode.i_file_acl_lo.get())
                | u64::from(inode.l_i_file_acl_high.get()) << 32,
            i_block: inode.i_block,
            inline_xattrs: raw[GOOD_OLD_INODE_SIZE + extra..len].to_vec(),
        })
    }

    /// Whether the data is mapped by an extent tree (else by block maps).
    pub fn uses_extents(&self) -> bool {
        self.flags & EXT4_EXTENTS_FL != 0
    }

    /// The full `st_mode`: type bits and permissions.
    pub fn mode(&self) -> u32 {
        let type_bits = match self.kind {
            FileKind::Regular => S_IFREG,
            FileKind::Directory => S_IFDIR,
            FileKind::Symlink => S_IFLNK,
            FileKind::CharDevice => S_IFCHR,
            FileKind::BlockDevice => S_IFBLK,
            FileKind::Fifo => S_IFIFO,
            FileKind::Socket => S_IFSOCK,
        };
        u32::from(type_bits | self.permissions)
    }
}

/// Decodes a device number from `i_block`: the old 8:8 form in word 0 when
/// it is non-zero, else the new 12:20 form in word 1 (`ext4_iget`'s order).
fn decode_device(i_block: &[u8; 60]) -> DeviceNumber {
    let word =
        |i: usize| u32::from_le_bytes([i_block[i], i_block[i + 1], i_block[i + 2], i_block[i + 3]]);
    let old = word(0);
    if old != 0 {
        return DeviceNumber {
            major: (old >> 8) & 0xFF,
            minor: old & 0xFF,
        };
    }
    let new = word(4);
    DeviceNumber {
        major: (new & 0xF_FF00) >> 8,
        minor: (new & 0xFF) | ((new >> 12) & 0xF_FF00),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inode::encode_device;

    #[test]
    fn devices_decode_from_both_encodings() {
        for (major, minor) in [(1, 3), (8, 0), (259, 7), (4095, 1_048_575), (0, 0)] {
            let dev = DeviceNumber { major, minor };
            let block = encode_device(dev).expect("encodable");
            assert_eq!(decode_device(&block), dev, "{major}:{minor}");
        }
    }
}
