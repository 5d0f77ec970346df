//! Metadata writes gathered into large positioned writes, made on a thread
//! of their own.
//!
//! Once the data is in, what is left is encoding directories, extent trees
//! and inodes, and writing them. The writes cost the kernel about as much
//! as the encoding costs us; gathered here and made by a
//! [`BackgroundWriter`], they overlap with it instead of following it.

use std::fs::File;
use std::io;

use super::background::{BackgroundWriter, Piece};

/// Bytes gathered before one write.
const QUEUE_BUFFER: usize = 1 << 20;

/// Writes queued at byte offsets of an image; contiguous ones are merged.
#[derive(Debug)]
pub(crate) struct WriteQueue {
    buffer: Vec<u8>,
    /// Image offset of `buffer[0]`.
    start: u64,
    /// Bytes of `buffer` gathered.
    len: usize,
    /// Started by the first full or flushed buffer.
    writer: Option<BackgroundWriter>,
}

impl WriteQueue {
    pub(crate) fn new() -> Self {
        Self {
            buffer: vec![0u8; QUEUE_BUFFER],
            start: 0,
            len: 0,
            writer: None,
        }
    }

    /// Queues `bytes` to be written at byte `offset` of `image`. A failure
    /// may be an earlier write's.
    pub(crate) fn write(
        &mut self,
        image: &File,
        mut offset: u64,
        mut bytes: &[u8],
    ) -> io::Result<()> {
        while !bytes.is_empty() {
            let follows = self.start + self.len as u64 == offset;
            if self.len > 0 && (!follows || self.len == QUEUE_BUFFER) {
                self.submit(image)?;
            }
            if self.len == 0 {
                self.start = offset;
            }
            let n = bytes.len().min(QUEUE_BUFFER - self.len);
            self.buffer[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            offset += n as u64;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Hands the gathered bytes to the writer thread.
    fn submit(&mut self, image: &File) -> io::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let writer = BackgroundWriter::started(&mut self.writer, image, QUEUE_BUFFER)?;
        let next = writer.take_buffer()?;
        let full = std::mem::replace(&mut self.buffer, next);
        writer.submit(full, vec![Piece::Buffer(0..self.len)], self.start)?;
        self.len = 0;
        Ok(())
    }

    /// Writes everything queued and waits until it is written.
    pub(crate) fn flush(&mut self, image: &File) -> io::Result<()> {
        self.submit(image)?;
        match &mut self.writer {
            Some(writer) => writer.wait(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn queued_writes_land_where_asked_merged_or_not() {
        let file = tempfile::tempfile().unwrap();
        let mut queue = WriteQueue::new();
        // Contiguous pieces, a gap, and one larger than the buffer.
        queue.write(&file, 10, b"abc").unwrap();
        queue.write(&file, 13, b"def").unwrap();
        queue.write(&file, 100, b"xyz").unwrap();
        let big: Vec<u8> = (0..QUEUE_BUFFER * 2 + 5).map(|i| (i % 251) as u8).collect();
        queue.write(&file, 200, &big).unwrap();
        queue.flush(&file).unwrap();
        let mut back = vec![0u8; 6];
        file.read_exact_at(&mut back, 10).unwrap();
        assert_eq!(back, b"abcdef");
        file.read_exact_at(&mut back[..3], 100).unwrap();
        assert_eq!(&back[..3], b"xyz");
        let mut big_back = vec![0u8; big.len()];
        file.read_exact_at(&mut big_back, 200).unwrap();
        assert_eq!(big_back, big);
        let mut gap = [9u8; 84];
        file.read_exact_at(&mut gap, 16).unwrap();
        assert_eq!(gap, [0u8; 84]);
    }
}
