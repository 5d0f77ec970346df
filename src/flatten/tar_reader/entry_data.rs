//! The current entry's data bytes, read out or lent, as a stream of their own.

use std::io::{self, Read};

use banger_ext4::tree::{LendingRead, Lent};

use super::TarReader;

/// A reader over the current entry's remaining data bytes.
pub(crate) struct EntryData<'a, R>(pub(super) &'a mut TarReader<R>);

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let reader = &mut *self.0;
        if reader.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(reader.remaining).unwrap_or(usize::MAX));
        let n = loop {
            match reader.inner.read(&mut buf[..max]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        if n == 0 {
            reader.truncated = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar stream ends inside file data",
            ));
        }
        reader.remaining -= n as u64;
        reader.offset += n as u64;
        Ok(n)
    }
}

impl<R: LendingRead> LendingRead for EntryData<'_, R> {
    fn lend(&mut self, max: usize) -> io::Result<Option<Lent>> {
        let reader = &mut *self.0;
        if reader.remaining == 0 || max == 0 {
            return Ok(Some(Lent::empty()));
        }
        let max = max.min(usize::try_from(reader.remaining).unwrap_or(usize::MAX));
        let lent = loop {
            match reader.inner.lend(max) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        let Some(lent) = lent else {
            return Ok(None);
        };
        if lent.is_empty() {
            reader.truncated = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar stream ends inside file data",
            ));
        }
        if lent.len() > max {
            return Err(io::Error::other(
                "the tar stream lent more bytes than asked",
            ));
        }
        reader.remaining -= lent.len() as u64;
        reader.offset += lent.len() as u64;
        Ok(Some(lent))
    }
}
