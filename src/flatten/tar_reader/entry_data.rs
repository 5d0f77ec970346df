//! The current entry's data bytes, read out or lent, as a stream of their own.

use std::io::{self, Read};

use banger_ext4::tree::{LendingRead, Lent};

use super::TarReader;

/// A reader over the current entry's remaining data bytes.
pub(crate) struct EntryData<'a, R>(pub(super) &'a mut TarReader<R>);

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = self.at_most(buf.len());
        let n = loop {
            match self.0.inner.read(&mut buf[..max]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        if n == 0 {
            return Err(self.ended_inside_data());
        }
        self.consumed(n);
        Ok(n)
    }
}

impl<R: LendingRead> LendingRead for EntryData<'_, R> {
    fn lend(&mut self, max: usize) -> io::Result<Option<Lent>> {
        if self.0.remaining == 0 || max == 0 {
            return Ok(Some(Lent::empty()));
        }
        let max = self.at_most(max);
        let lent = loop {
            match self.0.inner.lend(max) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        let Some(lent) = lent else {
            return Ok(None);
        };
        if lent.is_empty() {
            return Err(self.ended_inside_data());
        }
        if lent.len() > max {
            return Err(io::Error::other(
                "the tar stream lent more bytes than asked",
            ));
        }
        self.consumed(lent.len());
        Ok(Some(lent))
    }
}

impl<R> EntryData<'_, R> {
    /// `max`, or the bytes the entry has left if fewer.
    fn at_most(&self, max: usize) -> usize {
        max.min(usize::try_from(self.0.remaining).unwrap_or(usize::MAX))
    }

    /// Counts `n` of the entry's bytes as taken.
    fn consumed(&mut self, n: usize) {
        self.0.remaining -= n as u64;
        self.0.offset += n as u64;
    }

    /// The stream ended with the entry's data unfinished: the tar is truncated.
    fn ended_inside_data(&mut self) -> io::Error {
        self.0.truncated = true;
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "tar stream ends inside file data",
        )
    }
}
