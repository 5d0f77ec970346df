//! Writing gathered data blocks on a thread of their own.
//!
//! A buffered write into the image costs the kernel a page-cache copy,
//! delayed allocation and, with [`start_writeback`], the start of
//! writeback: about as much CPU as parsing the layers that produced the
//! bytes. Done on the parsing thread, it would make that thread the
//! bottleneck of a many-small-files image; here it overlaps with it.
//! Writes land at fixed offsets, so their order does not matter, and
//! [`BackgroundWriter::wait`] is the barrier before anything reads the
//! image or writes metadata.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

/// Buffers in rotation: one being filled, one queued, one being written.
const BUFFERS: usize = 3;

/// A buffer's bytes to write at an offset of the image.
struct Job {
    buffer: Vec<u8>,
    len: usize,
    offset: u64,
}

/// A buffer back from the thread, with how its write went.
struct Done {
    buffer: Vec<u8>,
    result: io::Result<()>,
}

/// A thread writing buffers into the image, and the buffers it hands back.
#[derive(Debug)]
pub(crate) struct BackgroundWriter {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
    /// Buffers handed to the thread and not yet back.
    in_flight: usize,
    /// Buffers made so far (at most [`BUFFERS`]).
    made: usize,
    /// Buffers back from the thread, ready to be filled again.
    spare: Vec<Vec<u8>>,
    /// The first write that failed, reported until the writer is dropped.
    failed: Option<io::ErrorKind>,
    buffer_len: usize,
}

impl BackgroundWriter {
    /// Starts the thread, writing through its own handle of `image`.
    /// `buffer_len` is the length of every buffer it hands out; the caller's
    /// own first buffer counts as one of them.
    pub(crate) fn spawn(image: &File, buffer_len: usize) -> io::Result<Self> {
        let image = image.try_clone()?;
        let (jobs, queue) = mpsc::sync_channel::<Job>(1);
        let (finished, done) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("ext4-data-writer".into())
            .spawn(move || {
                for job in queue {
                    let result = image.write_all_at(&job.buffer[..job.len], job.offset);
                    if result.is_ok() {
                        start_writeback(&image, job.offset, job.len as u64);
                    }
                    let back = Done {
                        buffer: job.buffer,
                        result,
                    };
                    if finished.send(back).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            in_flight: 0,
            made: 1,
            spare: Vec::new(),
            failed: None,
            buffer_len,
        })
    }

    /// A buffer of `buffer_len` bytes (contents unspecified) to fill next,
    /// waiting for one to come back when all are in use.
    pub(crate) fn take_buffer(&mut self) -> io::Result<Vec<u8>> {
        self.collect(false)?;
        if let Some(buffer) = self.spare.pop() {
            return Ok(buffer);
        }
        if self.made < BUFFERS {
            self.made += 1;
            return Ok(vec![0u8; self.buffer_len]);
        }
        self.collect(true)?;
        Ok(self
            .spare
            .pop()
            .expect("a blocking collect returns a buffer while one is in flight"))
    }

    /// Queues `buffer[..len]` to be written at byte `offset`.
    pub(crate) fn submit(&mut self, buffer: Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
        self.check()?;
        let jobs = self.jobs.as_ref().expect("jobs close only on drop");
        if jobs
            .send(Job {
                buffer,
                len,
                offset,
            })
            .is_err()
        {
            return Err(self.thread_gone());
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Waits until every queued buffer is written; the first failure.
    pub(crate) fn wait(&mut self) -> io::Result<()> {
        while self.in_flight > 0 {
            self.collect(true)?;
        }
        self.check()
    }

    /// Takes back finished buffers: those already back, or (with `block`)
    /// at least one, if any is in flight.
    fn collect(&mut self, block: bool) -> io::Result<()> {
        let mut wait = block && self.in_flight > 0;
        while self.in_flight > 0 {
            let done = if wait {
                match self.done.recv() {
                    Ok(done) => done,
                    Err(_) => return Err(self.thread_gone()),
                }
            } else {
                match self.done.try_recv() {
                    Ok(done) => done,
                    Err(_) => break,
                }
            };
            wait = false;
            self.in_flight -= 1;
            if let Err(error) = done.result {
                self.failed.get_or_insert(error.kind());
                return Err(error);
            }
            self.spare.push(done.buffer);
        }
        self.check()
    }

    /// Fails once any write failed: the image is incomplete from then on.
    fn check(&self) -> io::Result<()> {
        match self.failed {
            Some(kind) => Err(io::Error::new(kind, "an earlier data write failed")),
            None => Ok(()),
        }
    }

    /// The thread ended without being asked to: it panicked.
    fn thread_gone(&mut self) -> io::Error {
        self.failed = Some(io::ErrorKind::Other);
        io::Error::other("the data writer thread stopped")
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written what it has.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Asks the kernel to start writing a range out now, without waiting for
/// it, so that the fsync that publishes the image finds little left to do
/// instead of the whole image. Purely an optimisation: failures (tmpfs,
/// old kernels) are ignored.
fn start_writeback(image: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads its integer arguments; the
    // descriptor is owned by `image` and stays open for the call.
    unsafe {
        libc::sync_file_range(
            image.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_written_where_asked_and_recycled() {
        let file = tempfile::tempfile().unwrap();
        let mut writer = BackgroundWriter::spawn(&file, 8).unwrap();
        let mut first = vec![0u8; 8];
        for round in 0..10u8 {
            first.fill(round + 1);
            writer.submit(first, 8, u64::from(round) * 8).unwrap();
            first = writer.take_buffer().unwrap();
            assert_eq!(first.len(), 8);
        }
        writer.wait().unwrap();
        assert!(writer.made <= BUFFERS);
        let mut back = vec![0u8; 80];
        file.read_exact_at(&mut back, 0).unwrap();
        let expected: Vec<u8> = (1..=10u8).flat_map(|r| [r; 8]).collect();
        assert_eq!(back, expected);
    }

    #[test]
    fn a_failed_write_is_reported_and_sticks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read-only");
        std::fs::write(&path, b"").unwrap();
        let read_only = File::open(&path).unwrap();
        let mut writer = BackgroundWriter::spawn(&read_only, 4).unwrap();
        writer.submit(vec![1u8; 4], 4, 0).unwrap();
        assert!(writer.wait().is_err());
        assert!(writer.take_buffer().is_err());
        assert!(writer.submit(vec![1u8; 4], 4, 0).is_err());
    }
}
