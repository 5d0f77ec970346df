//! A read-only ext4 reader: enough of the format to list, inspect and
//! export an image without e2fsprogs, a mount or root.
//!
//! It reads any ext4 with extents (not only banger's own images): block
//! sizes from 1 to 64 KiB, 32- and 64-byte group descriptors, extent trees
//! of any depth, htree directories (read linearly, as their leaves are plain
//! dirent blocks), fast and slow symlinks, both device encodings, and xattrs
//! in the inode and in an EA block. Images from a hostile source get a
//! [`ReadError`], never a panic: every offset and count read from disk is
//! checked before use. Checksums are not verified; `e2fsck` is the tool for
//! that.

mod dir;
mod extents;
mod inode;
mod path;
mod xattr;

pub use dir::DirEntry;
pub use extents::MappedExtent;
pub use inode::{FileKind, InodeView};
pub use xattr::Xattr;

use crate::format::{Ext4GroupDesc, Ext4Inode, Ext4SuperBlock};
use crate::spec::{
    EXT4_FEATURE_INCOMPAT_64BIT, EXT4_FEATURE_INCOMPAT_ENCRYPT, EXT4_FEATURE_INCOMPAT_INLINE_DATA,
    EXT4_FEATURE_INCOMPAT_META_BG, EXT4_ROOT_INO, EXT4_SUPER_MAGIC, SUPERBLOCK_OFFSET,
};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use zerocopy::FromBytes;

/// Incompatible features whose on-disk layout this reader does not follow.
const UNSUPPORTED_INCOMPAT: [(u32, &str); 3] = [
    (EXT4_FEATURE_INCOMPAT_INLINE_DATA, "inline_data"),
    (EXT4_FEATURE_INCOMPAT_ENCRYPT, "encrypt"),
    (EXT4_FEATURE_INCOMPAT_META_BG, "meta_bg"),
];

/// Why an image cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Reading the image file failed.
    #[error("cannot read the image")]
    Io(#[from] io::Error),
    /// The file has no ext4 superblock.
    #[error("not an ext4 filesystem (no superblock magic at byte 1080)")]
    NotExt4,
    /// The superblock holds values no valid filesystem has.
    #[error("corrupt superblock: {0}")]
    BadSuperblock(&'static str),
    /// The filesystem uses a feature this reader does not decode.
    #[error("the filesystem uses {0}, which banger cannot read")]
    Unsupported(&'static str),
    /// Metadata points outside the image or is malformed.
    #[error("corrupt inode {ino}: {what}")]
    Corrupt {
        /// The inode whose metadata is wrong.
        ino: u32,
        /// What is wrong.
        what: &'static str,
    },
    /// An inode number outside the filesystem.
    #[error("inode {0} does not exist")]
    NoSuchInode(u32),
    /// A path names nothing.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// A path component that must be a directory is not one.
    #[error("{0}: not a directory")]
    NotADirectory(String),
    /// Symlinks nest too deeply or loop.
    #[error("{0}: too many levels of symbolic links")]
    SymlinkLoop(String),
}

/// An ext4 image opened for reading.
#[derive(Debug)]
pub struct Image {
    file: File,
    file_len: u64,
    block_size: u64,
    blocks_count: u64,
    inode_size: u64,
    inodes_per_group: u32,
    inodes_count: u32,
    /// First block of each group's inode table.
    inode_tables: Vec<u64>,
}

impl Image {
    /// Opens `path` and reads its superblock and group descriptors.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        Self::from_file(File::open(path)?)
    }

    /// Reads the superblock and group descriptors of an open image.
    pub fn from_file(file: File) -> Result<Self, ReadError> {
        let file_len = file.metadata()?.len();
        let mut raw = [0u8; size_of::<Ext4SuperBlock>()];
        read_exact_at(&file, &mut raw, SUPERBLOCK_OFFSET).map_err(|error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                ReadError::NotExt4
            } else {
                ReadError::Io(error)
            }
        })?;
        let sb = Ext4SuperBlock::read_from_bytes(&raw).map_err(|_| ReadError::NotExt4)?;
        if sb.s_magic.get() != EXT4_SUPER_MAGIC {
            return Err(ReadError::NotExt4);
        }
        let incompat = sb.s_feature_incompat.get();
        if let Some(&(_, name)) = UNSUPPORTED_INCOMPAT
            .iter()
            .find(|(bit, _)| incompat & bit != 0)
        {
            return Err(ReadError::Unsupported(name));
        }
        let log = sb.s_log_block_size.get();
        if log > 6 {
            return Err(ReadError::BadSuperblock("block size above 64 KiB"));
        }
        let block_size = 1024u64 << log;
        let is_64bit = incompat & EXT4_FEATURE_INCOMPAT_64BIT != 0;
        let blocks_count = u64::from(sb.s_blocks_count_lo.get())
            | if is_64bit {
                u64::from(sb.s_blocks_count_hi.get()) << 32
            } else {
                0
            };
        let inode_size = match sb.s_rev_level.get() {
            0 => 128,
            _ => u64::from(sb.s_inode_size.get()),
        };
        if !(128..=block_size).contains(&inode_size) || !inode_size.is_power_of_two() {
            return Err(ReadError::BadSuperblock("inode size"));
        }
        let inodes_per_group = sb.s_inodes_per_group.get();
        let blocks_per_group = u64::from(sb.s_blocks_per_group.get());
        if inodes_per_group == 0 || blocks_per_group == 0 {
            return Err(ReadError::BadSuperblock("empty groups"));
        }
        let first_data_block = u64::from(sb.s_first_data_block.get());
        let groups = blocks_count
            .checked_sub(first_data_block)
            .ok_or(ReadError::BadSuperblock(
                "block count below the first data block",
            ))?
            .div_ceil(blocks_per_group);
        let inodes_count = sb.s_inodes_count.get();
        if groups.saturating_mul(u64::from(inodes_per_group)) < u64::from(inodes_count) {
            return Err(ReadError::BadSuperblock("more inodes than groups hold"));
        }
        let desc_size = if is_64bit {
            u64::from(sb.s_desc_size.get())
        } else {
            32
        };
        if !(32..=block_size).contains(&desc_size) {
            return Err(ReadError::BadSuperblock("group descriptor size"));
        }
        // Only groups that hold inodes matter; a table longer than the file is corrupt.
        let inode_groups = u64::from(inodes_count).div_ceil(u64::from(inodes_per_group));
        let table_bytes = inode_groups * desc_size;
        if table_bytes > file_len {
            return Err(ReadError::BadSuperblock(
                "group descriptors beyond the image",
            ));
        }
        let mut descs = vec![0u8; table_bytes as usize];
        read_exact_at(&file, &mut descs, (first_data_block + 1) * block_size)?;
        let mut desc = [0u8; size_of::<Ext4GroupDesc>()];
        let inode_tables = descs
            .chunks_exact(desc_size as usize)
            .map(|raw| {
                let len = raw.len().min(desc.len());
                desc.fill(0);
                desc[..len].copy_from_slice(&raw[..len]);
                let gd = Ext4GroupDesc::read_from_bytes(&desc).map_err(|_| ReadError::NotExt4)?;
                let hi = if desc_size >= 64 {
                    u64::from(gd.bg_inode_table_hi.get()) << 32
                } else {
                    0
                };
                Ok(u64::from(gd.bg_inode_table_lo.get()) | hi)
            })
            .collect::<Result<Vec<_>, ReadError>>()?;
        Ok(Self {
            file,
            file_len,
            block_size,
            blocks_count,
            inode_size,
            inodes_per_group,
            inodes_count,
            inode_tables,
        })
    }

    /// The block size in bytes.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// The root directory's inode.
    pub fn root(&self) -> Result<InodeView, ReadError> {
        self.inode(EXT4_ROOT_INO)
    }

    /// Reads and decodes inode `ino`.
    pub fn inode(&self, ino: u32) -> Result<InodeView, ReadError> {
        if ino == 0 || ino > self.inodes_count {
            return Err(ReadError::NoSuchInode(ino));
        }
        let index = u64::from(ino - 1);
        let group = (index / u64::from(self.inodes_per_group)) as usize;
        let within = index % u64::from(self.inodes_per_group);
        let table = *self
            .inode_tables
            .get(group)
            .ok_or(ReadError::NoSuchInode(ino))?;
        let offset = table
            .checked_mul(self.block_size)
            .and_then(|start| start.checked_add(within * self.inode_size))
            .ok_or(ReadError::Corrupt {
                ino,
                what: "inode table address overflows",
            })?;
        let mut raw = [0u8; size_of::<Ext4Inode>()];
        let len = (self.inode_size as usize).min(raw.len());
        self.read_bytes(&mut raw[..len], offset, ino)?;
        let inode = InodeView::decode(ino, &raw, len)?;
        // Extents address 2^32 blocks: no file is larger (ext4_max_size).
        if inode.size > self.block_size << 32 {
            return Err(ReadError::Corrupt {
                ino,
                what: "i_size beyond the largest file ext4 can hold",
            });
        }
        Ok(inode)
    }

    /// Reads `buf.len()` bytes at `offset`, which the caller took from inode
    /// `ino`'s metadata: past the end of the image is corruption, not EOF.
    fn read_bytes(&self, buf: &mut [u8], offset: u64, ino: u32) -> Result<(), ReadError> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.file_len) {
            return Err(ReadError::Corrupt {
                ino,
                what: "points beyond the end of the image",
            });
        }
        read_exact_at(&self.file, buf, offset)?;
        Ok(())
    }

    /// Reads filesystem block `block` on behalf of inode `ino`.
    fn read_block(&self, block: u64, ino: u32) -> Result<Vec<u8>, ReadError> {
        if block >= self.blocks_count {
            return Err(ReadError::Corrupt {
                ino,
                what: "points at a block beyond the filesystem",
            });
        }
        let mut buf = vec![0u8; self.block_size as usize];
        self.read_bytes(&mut buf, block * self.block_size, ino)?;
        Ok(buf)
    }

    /// Copies a regular file's bytes to `out`, holes and unwritten extents
    /// as zeros, one block-sized buffer at a time. Returns the bytes written.
    pub fn copy_data(&self, inode: &InodeView, out: &mut dyn Write) -> Result<u64, ReadError> {
        let extents = self.extents(inode)?;
        let mut position = 0u64;
        for region in data_regions(&extents, inode.size, self.block_size) {
            write_zeros(out, region.offset - position)?;
            self.copy_region(inode.ino, &region, out)?;
            position = region.offset + region.len;
        }
        write_zeros(out, inode.size - position)?;
        Ok(inode.size)
    }

    /// The byte ranges of a regular file that hold data (initialised extents
    /// clipped to the file size), in order: what a sparse tar entry maps.
    pub fn data_regions(&self, inode: &InodeView) -> Result<Vec<DataRegion>, ReadError> {
        let extents = self.extents(inode)?;
        Ok(data_regions(&extents, inode.size, self.block_size))
    }

    /// Copies one data region to `out`.
    pub fn copy_region(
        &self,
        ino: u32,
        region: &DataRegion,
        out: &mut dyn Write,
    ) -> Result<(), ReadError> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut done = 0u64;
        while done < region.len {
            let n = (region.len - done).min(buf.len() as u64) as usize;
            self.read_bytes(&mut buf[..n], region.disk_offset + done, ino)?;
            out.write_all(&buf[..n])?;
            done += n as u64;
        }
        Ok(())
    }
}

/// A run of file bytes stored contiguously on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRegion {
    /// Offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Offset in the image.
    pub disk_offset: u64,
}

/// Turns extents into byte regions: unwritten extents read as zeros (so
/// they are holes), and nothing reaches past the file size.
fn data_regions(extents: &[MappedExtent], size: u64, block_size: u64) -> Vec<DataRegion> {
    extents
        .iter()
        .filter(|extent| !extent.unwritten)
        .filter_map(|extent| {
            let offset = extent.logical * block_size;
            let len = (extent.len * block_size).min(size.saturating_sub(offset));
            (len > 0).then_some(DataRegion {
                offset,
                len,
                disk_offset: extent.physical * block_size,
            })
        })
        .collect()
}

fn write_zeros(out: &mut dyn Write, mut len: u64) -> io::Result<()> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    while len > 0 {
        let n = len.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..n])?;
        len -= n as u64;
    }
    Ok(())
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(buf, offset)
}
