//! Encoding tree metadata into on-disk inode fields.

use crate::format::Ext4Inode;
use crate::spec::{EXTRA_ISIZE, INODE_SIZE};
use crate::tree::{DeviceNumber, Metadata, Timestamp};
use zerocopy::little_endian::U32;
use zerocopy::FromZeros;

/// Earliest second ext4 can store: the 32-bit signed base with epoch 0.
pub const MIN_TIME: i64 = i32::MIN as i64;
/// Latest second ext4 can store: epoch bits 3 on top of the signed base.
pub const MAX_TIME: i64 = (3 << 32) + i32::MAX as i64;

/// Encodes a time as the 32-bit base and the `*_extra` word (nanoseconds
/// << 2 and two epoch bits). Times outside ext4's range are clamped.
pub fn encode_time(time: Timestamp) -> (u32, u32) {
    let secs = time.secs.clamp(MIN_TIME, MAX_TIME);
    let nanos = time.nanos.min(999_999_999);
    let epoch = ((secs - i64::from(secs as i32)) >> 32) as u32 & 3;
    (secs as u32, nanos << 2 | epoch)
}

/// Stores `time` in an inode's base and `*_extra` fields.
fn put_time(base: &mut U32, extra: &mut U32, time: Timestamp) {
    let (secs, nanos_and_epoch) = encode_time(time);
    *base = secs.into();
    *extra = nanos_and_epoch.into();
}

/// Decodes [`encode_time`]'s output.
pub fn decode_time(base: u32, extra: u32) -> Timestamp {
    let secs = i64::from(base as i32) + (i64::from(extra & 3) << 32);
    Timestamp {
        secs,
        nanos: extra >> 2,
    }
}

/// Encodes a device number into `i_block` as the kernel does: the old
/// 16-bit form in word 0 when both halves fit a byte, else the new 32-bit
/// form in word 1. Returns `None` when the number exceeds 12:20 bits.
pub fn encode_device(dev: DeviceNumber) -> Option<[u8; 60]> {
    let mut block = [0u8; 60];
    if dev.major >= 1 << 12 || dev.minor >= 1 << 20 {
        return None;
    }
    if dev.major < 256 && dev.minor < 256 {
        block[..4].copy_from_slice(&(dev.major << 8 | dev.minor).to_le_bytes());
    } else {
        let new = (dev.minor & 0xFF) | (dev.major << 8) | ((dev.minor & !0xFF) << 12);
        block[4..8].copy_from_slice(&new.to_le_bytes());
    }
    Some(block)
}

/// What varies between inodes beyond their metadata.
#[derive(Clone, Debug)]
pub struct InodeFields {
    /// Full `i_mode`: file type and permission bits.
    pub mode: u16,
    /// Size in bytes.
    pub size: u64,
    /// Link count as stored.
    pub links: u16,
    /// Blocks charged to the inode (data, tree and xattr blocks).
    pub fs_blocks: u64,
    /// `i_flags`.
    pub flags: u32,
    /// `i_block`.
    pub i_block: [u8; 60],
    /// The xattr block, or 0.
    pub xattr_block: u64,
    /// The in-inode xattr area.
    pub xattrs: [u8; 96],
}

/// Builds a checksummed inode.
pub fn build_inode(meta: &Metadata, fields: &InodeFields, ino: u32, fs_seed: u32) -> Ext4Inode {
    let mut inode = Ext4Inode::new_zeroed();
    inode.i_mode = fields.mode.into();
    inode.i_uid = (meta.uid as u16).into();
    inode.l_i_uid_high = ((meta.uid >> 16) as u16).into();
    inode.i_gid = (meta.gid as u16).into();
    inode.l_i_gid_high = ((meta.gid >> 16) as u16).into();
    inode.i_size_lo = (fields.size as u32).into();
    inode.i_size_high = ((fields.size >> 32) as u32).into();
    put_time(&mut inode.i_atime, &mut inode.i_atime_extra, meta.atime);
    put_time(&mut inode.i_ctime, &mut inode.i_ctime_extra, meta.ctime);
    put_time(&mut inode.i_mtime, &mut inode.i_mtime_extra, meta.mtime);
    put_time(&mut inode.i_crtime, &mut inode.i_crtime_extra, meta.crtime);
    inode.i_links_count = fields.links.into();
    // i_blocks counts 512-byte sectors in 48 bits (huge_file without the
    // per-inode flag), enough for any file ext4's extents can map.
    let sectors = fields.fs_blocks * (crate::spec::BLOCK_SIZE / 512);
    inode.i_blocks_lo = (sectors as u32).into();
    inode.l_i_blocks_high = ((sectors >> 32) as u16).into();
    inode.i_flags = fields.flags.into();
    inode.i_block = fields.i_block;
    inode.i_file_acl_lo = (fields.xattr_block as u32).into();
    inode.l_i_file_acl_high = ((fields.xattr_block >> 32) as u16).into();
    inode.i_extra_isize = EXTRA_ISIZE.into();
    inode.i_xattrs = fields.xattrs;
    inode.update_checksum(ino, fs_seed);
    debug_assert_eq!(size_of::<Ext4Inode>() as u64, INODE_SIZE);
    inode
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_across_epochs() {
        for secs in [0, -1, MIN_TIME, i32::MAX as i64 + 1, 1 << 33, MAX_TIME] {
            let t = Timestamp {
                secs,
                nanos: 123_456_789,
            };
            let (base, extra) = encode_time(t);
            assert_eq!(decode_time(base, extra), t, "{secs}");
        }
        let (_, extra) = encode_time(Timestamp {
            secs: MAX_TIME + 10,
            nanos: 0,
        });
        assert_eq!(extra & 3, 3);
    }

    #[test]
    fn devices_use_old_and_new_encodings() {
        let old = encode_device(DeviceNumber { major: 1, minor: 3 }).unwrap();
        assert_eq!(&old[..4], &[3, 1, 0, 0]);
        let new = encode_device(DeviceNumber {
            major: 300,
            minor: 70000,
        })
        .unwrap();
        assert_eq!(&new[..4], &[0; 4]);
        assert_eq!(
            u32::from_le_bytes(new[4..8].try_into().unwrap()),
            0x1111_2C70
        );
        assert!(encode_device(DeviceNumber {
            major: 4096,
            minor: 0
        })
        .is_none());
    }
}
