//! Reading a byte range of a file through a memory map that slides along it.
//!
//! A plain tar read with `read(2)` is copied twice before it reaches the
//! image's write buffer: by the kernel into a read-ahead chunk, then from
//! the chunk into the buffer. Read through a map, it is copied once, from
//! the page cache into the buffer, and no thread is needed to hide the
//! reads. Only a window of the range is mapped at a time, so the process
//! never maps (and `ps` never counts) more than [`WINDOW`] bytes of it.
//!
//! A mapped file that another process truncates below a mapped window
//! raises SIGBUS on the next access to the lost pages. The file's length
//! is therefore checked before each window is mapped, which narrows that
//! race to the time it takes to copy one window out; a file shorter than
//! the range reads as a stream that ends early, as `read(2)` would.

use std::fs::File;
use std::io::{self, Read};

use memmap2::{Advice, Mmap, MmapOptions};

/// Bytes mapped at a time.
pub const WINDOW: u64 = 4 << 20;

/// Reads `file[start..end]` through a sliding map.
#[derive(Debug)]
pub struct MappedReader {
    file: File,
    /// Next byte to read, as an offset in the file.
    pos: u64,
    /// End of the range.
    end: u64,
    /// The window holding `pos`, if mapped, and its offset in the file.
    window: Option<(Mmap, u64)>,
}

impl MappedReader {
    /// A reader of the `len` bytes at `offset`, or fewer if the file ends
    /// sooner.
    pub fn new(file: File, offset: u64, len: u64) -> io::Result<Self> {
        let size = file.metadata()?.len();
        Ok(Self {
            file,
            pos: offset.min(size),
            end: offset.saturating_add(len).min(size),
            window: None,
        })
    }

    /// The unread bytes of the current window, after mapping the window
    /// holding `pos` if needed; empty at the end.
    fn available(&mut self) -> io::Result<&[u8]> {
        let mapped = match &self.window {
            Some((map, start)) => self.pos < start + map.len() as u64,
            None => false,
        };
        if !mapped && self.pos < self.end {
            self.window = None;
            self.map_window()?;
        }
        Ok(match &self.window {
            Some((map, start)) if self.pos < self.end => {
                let at = (self.pos - start) as usize;
                let until = ((self.end - start) as usize).min(map.len());
                &map[at..until]
            }
            _ => &[],
        })
    }

    /// Maps the window starting at `pos`, clipped to the file's current
    /// length.
    fn map_window(&mut self) -> io::Result<()> {
        let size = self.file.metadata()?.len();
        // A file that shrank since it was opened ends here, as read(2) would.
        self.end = self.end.min(size);
        if self.pos >= self.end {
            return Ok(());
        }
        // memmap2 aligns the offset down to a page and hides the difference.
        let start = self.pos;
        let len = WINDOW.min(self.end - start);
        // SAFETY: the window lies within the file's length, checked just
        // above; what is left is the race the module doc describes, with a
        // writer truncating the file in the meantime.
        let map = unsafe {
            MmapOptions::new()
                .offset(start)
                .len(len as usize)
                .map(&self.file)?
        };
        // Only advice: the kernel then reads ahead further on a page fault.
        let _ = map.advise(Advice::Sequential);
        self.window = Some((map, start));
        Ok(())
    }
}

impl Read for MappedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.available()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn reads_an_unaligned_range_across_windows() {
        let bytes = pattern(WINDOW as usize * 2 + 12_345);
        let (offset, len) = (4_097usize, WINDOW as usize + 70_000);
        let mut reader = MappedReader::new(file_of(&bytes), offset as u64, len as u64).unwrap();
        let mut out = Vec::new();
        // Odd-sized reads so that some straddle a window's end.
        let mut buf = vec![0u8; 9_999];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, &bytes[offset..offset + len]);
    }

    #[test]
    fn a_range_past_the_end_reads_what_there_is() {
        let bytes = pattern(10_000);
        let mut out = Vec::new();
        MappedReader::new(file_of(&bytes), 9_000, 5_000)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, &bytes[9_000..]);
        let mut out = Vec::new();
        MappedReader::new(file_of(&bytes), 20_000, 5)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_file_that_shrinks_between_windows_ends_early_without_a_fault() {
        let bytes = pattern(WINDOW as usize * 3);
        let file = file_of(&bytes);
        let shrink = file.try_clone().unwrap();
        let mut reader = MappedReader::new(file, 0, bytes.len() as u64).unwrap();
        let mut first = vec![0u8; WINDOW as usize];
        reader.read_exact(&mut first).unwrap();
        shrink.set_len(WINDOW + 100).unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &bytes[WINDOW as usize..WINDOW as usize + 100]);
    }
}
