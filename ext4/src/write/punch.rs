//! Discarding the data of files the tree no longer holds.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::alloc::Run;
use crate::error::{io_error, BuildError};
use crate::spec::BLOCK_SIZE;
use crate::write::bitmap::UsedBlocks;
use crate::write::data::DataWriter;

/// Punches holes where data was written for files no longer in the
/// tree (overwritten or whited out in a later layer), so their bytes do
/// not linger in the image, and makes the list of used blocks final.
pub(crate) fn punch_dead_data(
    image: &File,
    data: &DataWriter,
    used: &mut UsedBlocks,
) -> Result<(), BuildError> {
    used.normalize();
    let mut written: Vec<Run> = data
        .written()
        .iter()
        .map(|e| Run {
            start: e.physical_block,
            len: e.len,
        })
        .collect();
    written.sort_unstable();
    for dead in used.uncovered(&written) {
        punch_hole(image, dead.start * BLOCK_SIZE, dead.len * BLOCK_SIZE)
            .map_err(io_error("discarding data of removed files"))?;
    }
    Ok(())
}

/// Frees the blocks of `[offset, offset + len)` in the image file.
fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate only reads its integer arguments; the descriptor is
    // owned by `file` and open for writing.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() != Some(libc::EOPNOTSUPP) {
        return Err(error);
    }
    // No hole punching here: overwrite with zeros instead.
    let zeros = vec![0u8; BLOCK_SIZE as usize];
    for block in 0..len / BLOCK_SIZE {
        file.write_all_at(&zeros, offset + block * BLOCK_SIZE)?;
    }
    Ok(())
}
