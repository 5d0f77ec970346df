//! Reading directory entries.

use super::{Image, InodeView, ReadError};
use crate::format::dir::Ext4DirEntry2;
use zerocopy::FromBytes;

/// One entry of a directory (`.` and `..` excluded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name, as stored (not necessarily UTF-8).
    pub name: Vec<u8>,
    /// The inode it links to.
    pub ino: u32,
}

impl Image {
    /// Lists a directory, in on-disk order. htree directories are read
    /// linearly: their index blocks are hidden inside dirents that span the
    /// block, so only leaf entries appear, each once.
    pub fn read_dir(&self, dir: &InodeView) -> Result<Vec<DirEntry>, ReadError> {
        let ino = dir.ino;
        let corrupt = |what| ReadError::Corrupt { ino, what };
        let mut entries = Vec::new();
        let mut block = vec![0u8; self.block_size as usize];
        for region in self.data_regions(dir)? {
            for start in (0..region.len).step_by(block.len()) {
                let len = (region.len - start).min(self.block_size) as usize;
                self.read_bytes(&mut block[..len], region.disk_offset + start, ino)?;
                parse_block(&block[..len], &mut entries).map_err(corrupt)?;
            }
        }
        Ok(entries)
    }
}

/// Appends one block's live entries.
fn parse_block(block: &[u8], entries: &mut Vec<DirEntry>) -> Result<(), &'static str> {
    let mut offset = 0;
    while offset < block.len() {
        let (header, rest) = Ext4DirEntry2::read_from_prefix(&block[offset..])
            .map_err(|_| "directory entry cut short")?;
        let rec_len = usize::from(header.rec_len.get());
        let name_len = usize::from(header.name_len);
        if rec_len < size_of::<Ext4DirEntry2>()
            || !rec_len.is_multiple_of(4)
            || offset + rec_len > block.len()
        {
            return Err("bad directory record length");
        }
        if size_of::<Ext4DirEntry2>() + name_len > rec_len {
            return Err("directory entry name longer than its record");
        }
        let name = &rest[..name_len];
        let live = header.inode.get() != 0;
        // Such a name would let a listing or an export name another path.
        if live && (name.is_empty() || name.iter().any(|&b| b == b'/' || b == 0)) {
            return Err("directory entry name is empty or holds '/' or NUL");
        }
        if live && name != b"." && name != b".." {
            entries.push(DirEntry {
                name: name.to_vec(),
                ino: header.inode.get(),
            });
        }
        offset += rec_len;
    }
    Ok(())
}
