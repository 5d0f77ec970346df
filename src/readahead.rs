//! Decompression on its own thread, one step ahead of the consumer.
//!
//! A layer's inflate and the flattener's tar parsing and image writes then
//! run on different cores, and the next layer starts inflating while the
//! current one is still being applied. Memory is bounded by the channels:
//! per layer, the chunks in flight (the depth asked for, `CHUNKS` by
//! default), the one being read out, the one being filled and at most two
//! read out and waiting to be refilled, of [`CHUNK`] bytes each.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

/// Bytes per chunk handed across.
pub const CHUNK: usize = 1 << 20;
/// Chunks buffered ahead of the consumer.
const CHUNKS: usize = 4;

/// A reader fed by a background thread reading the wrapped reader.
#[derive(Debug)]
pub struct ReadAhead {
    chunks: Receiver<io::Result<Vec<u8>>>,
    /// Chunks read out, back to the thread to be filled again: a new chunk
    /// would cost an allocation and a memset of a MiB each.
    spent: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl ReadAhead {
    /// Starts reading `inner` on a new thread.
    pub fn spawn(inner: Box<dyn Read + Send>) -> Self {
        Self::with_depth(inner, CHUNKS)
    }

    /// Starts reading `inner` on a new thread that may run up to `chunks`
    /// chunks (of 1 MiB) ahead of the consumer.
    pub fn with_depth(mut inner: Box<dyn Read + Send>, chunks: usize) -> Self {
        let (tx, rx) = mpsc::sync_channel(chunks.max(1));
        let (spent, recycled) = mpsc::sync_channel::<Vec<u8>>(2);
        thread::spawn(move || loop {
            let mut chunk = match recycled.try_recv() {
                // Its bytes are overwritten before they are sent again.
                Ok(mut chunk) => {
                    chunk.resize(CHUNK, 0);
                    chunk
                }
                Err(_) => vec![0u8; CHUNK],
            };
            let mut filled = 0;
            let result = loop {
                match inner.read(&mut chunk[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == CHUNK {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            chunk.truncate(filled);
            let end = filled < CHUNK;
            let message = match result {
                Ok(()) => Ok(chunk),
                Err(e) => Err(e),
            };
            let failed = message.is_err();
            // A closed channel means the consumer stopped early: just stop.
            if tx.send(message).is_err() || end || failed {
                return;
            }
        });
        Self {
            chunks: rx,
            spent,
            current: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    self.done = chunk.len() < CHUNK;
                    let spent = std::mem::replace(&mut self.current, chunk);
                    if spent.capacity() == CHUNK {
                        // Dropped instead when the thread has enough.
                        let _ = self.spent.try_send(spent);
                    }
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("decompression thread ended unexpectedly"));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_bytes_through_in_order() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let mut reader = ReadAhead::spawn(Box::new(io::Cursor::new(data.clone())));
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn passes_errors_through() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt"))
            }
        }
        let mut reader = ReadAhead::spawn(Box::new(Failing));
        let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
