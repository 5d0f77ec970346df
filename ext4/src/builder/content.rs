//! File data on its way into the image: stored while the tree is built,
//! streamed from sources when it is finished, and read back on request.

use std::ops::Range;
use std::os::unix::fs::FileExt;

use super::ImageBuilder;
use crate::error::{io_error, BuildError};
use crate::plan::numbering::InodeMap;
use crate::plan::SourcePlacements;
use crate::spec::BLOCK_SIZE;
use crate::tree::{ContentStore, FileContent, LendingRead, NodeKind, Tree};

impl ContentStore for ImageBuilder {
    type Error = BuildError;

    fn store(
        &mut self,
        reader: &mut dyn LendingRead,
        size: u64,
        data_ranges: &[Range<u64>],
    ) -> Result<FileContent, BuildError> {
        let placed = self
            .data
            .store(&self.image, &mut self.alloc, reader, size, data_ranges)?;
        Ok(FileContent::Placed(placed))
    }
}

impl ImageBuilder {
    /// Streams every reachable file that still has a source.
    pub(super) fn place_sources(
        &mut self,
        tree: &Tree,
        inodes: &InodeMap,
    ) -> Result<SourcePlacements, BuildError> {
        let mut contents = SourcePlacements::new();
        for &id in &inodes.order {
            if let NodeKind::File(FileContent::Source(source)) = &tree.node(id).kind {
                let placed =
                    self.data
                        .store_source(&self.image, &mut self.alloc, source.as_ref())?;
                contents.insert(id, placed);
            }
        }
        Ok(contents)
    }

    /// Reads up to `max` bytes from the start of a file whose contents were
    /// stored through this builder (or are still a source), so that callers
    /// can look at what the layers put in place (`/etc/os-release`, the
    /// image's init) before the metadata is written. Holes read as zeros.
    pub fn read_content(&mut self, content: &FileContent, max: u64) -> Result<Vec<u8>, BuildError> {
        let len = usize::try_from(content.size().min(max)).unwrap_or(usize::MAX);
        let mut bytes = vec![0u8; len];
        match content {
            FileContent::Source(source) => {
                let mut done = 0;
                while done < len {
                    match source.read_at(done as u64, &mut bytes[done..]) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) => return Err(io_error("reading a file's contents")(e)),
                    }
                }
                bytes.truncate(done);
            }
            FileContent::Placed(placed) => {
                // Blocks of this file may still sit in the write buffer.
                self.data.flush(&self.image)?;
                for extent in &placed.extents {
                    let start = extent.logical_block * BLOCK_SIZE;
                    if start >= len as u64 {
                        break;
                    }
                    let end = (start + extent.len * BLOCK_SIZE).min(len as u64);
                    self.image
                        .read_exact_at(
                            &mut bytes[start as usize..end as usize],
                            extent.physical_block * BLOCK_SIZE,
                        )
                        .map_err(io_error("reading back a file's contents"))?;
                }
            }
        }
        Ok(bytes)
    }
}
