//! Writing gathered blocks (file data, and metadata through
//! [`super::queue`]) on a thread of their own.
//!
//! A buffered write into the image costs the kernel a page-cache copy,
//! delayed allocation and, with [`start_writeback`], the start of
//! writeback: about as much CPU as parsing the layers that produced the
//! bytes. Done on the parsing thread, it would make that thread the
//! bottleneck of a many-small-files image; here it overlaps with it.
//! Writes land at fixed offsets, so their order does not matter, and
//! [`BackgroundWriter::wait`] is the barrier before anything reads the
//! image or writes metadata.
//!
//! Jobs whose bytes are all lent take none of our buffers, and up to
//! [`QUEUE_DEPTH`] of them wait in the queue: a lending parser (a mapped
//! tar) finishes well before the writer does, and the image's metadata is
//! encoded meanwhile instead of after the last data write. A second thread
//! faults the next job's lent bytes in ([`fault_in`]), since a lender may
//! have taken them out of our page tables while they waited.

use std::fs::File;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crate::spec::BLOCK_SIZE;
use crate::tree::Lent;

/// Buffers in rotation: one being filled, one queued, one being written.
const BUFFERS: usize = 3;

/// Jobs queued ahead of the one being written. A lent job holds no buffer
/// of ours, only the bytes it lends, so a parser that lends (a mapped tar)
/// can run this far ahead and have the metadata encoded while its data is
/// still going out; copied jobs are held back by the [`BUFFERS`] in rotation.
const QUEUE_DEPTH: usize = 128;

/// Most iovecs one `pwritev` takes (Linux's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// Zeros to fill out a file's last block, shared by every write.
static ZEROS: [u8; BLOCK_SIZE as usize] = [0; BLOCK_SIZE as usize];

/// A part of one write, in order: bytes in the job's buffer, bytes lent
/// by the stream they came from (kept valid until written), or zeros.
#[derive(Debug)]
pub(crate) enum Piece {
    /// A range of the job's buffer.
    Buffer(Range<usize>),
    /// Bytes a stream lent.
    Lent(Lent),
    /// That many zeros (at most a block).
    Zeros(usize),
}

/// Pieces to write back to back from an offset of the image, with the
/// buffer that `Piece::Buffer` ranges index.
struct Job {
    buffer: Vec<u8>,
    pieces: Vec<Piece>,
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
    /// The thread faulting lent bytes in, then the writing thread.
    threads: [Option<JoinHandle<()>>; 2],
    /// Jobs handed to the threads and not yet back.
    in_flight: usize,
    /// Set when the writer is dropped: jobs still queued are not written.
    abandoned: Arc<AtomicBool>,
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
        let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUE_DEPTH);
        // Lent bytes deep in the queue may have left our page tables: the
        // next job's are faulted in on a thread of their own, ahead of the
        // writer's copy.
        let (ready_tx, ready) = mpsc::sync_channel::<Job>(1);
        let faulter = thread::Builder::new()
            .name("ext4-data-fault".into())
            .spawn(move || {
                for job in queue {
                    fault_in(&job.pieces);
                    if ready_tx.send(job).is_err() {
                        break;
                    }
                }
            })?;
        let (finished, done) = mpsc::channel();
        let abandoned = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&abandoned);
        let thread = thread::Builder::new()
            .name("ext4-data-writer".into())
            .spawn(move || {
                for job in ready {
                    // The image is incomplete anyway: do not make a failed or
                    // interrupted run wait for up to QUEUE_DEPTH more writes.
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let result = write_pieces(&image, &job.buffer, &job.pieces, job.offset);
                    if let Ok(len) = result {
                        start_writeback(&image, job.offset, len);
                    }
                    // Lent bytes are let go (a map unmapped, say) once written.
                    drop(job.pieces);
                    let result = result.map(drop);
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
            threads: [Some(faulter), Some(thread)],
            in_flight: 0,
            abandoned,
            made: 1,
            spare: Vec::new(),
            failed: None,
            buffer_len,
        })
    }

    /// The writer in `slot`, started first (through `image`, with buffers of
    /// `buffer_len` bytes) if there is none yet.
    pub(crate) fn started<'a>(
        slot: &'a mut Option<Self>,
        image: &File,
        buffer_len: usize,
    ) -> io::Result<&'a mut Self> {
        match slot {
            Some(writer) => Ok(writer),
            None => Ok(slot.insert(Self::spawn(image, buffer_len)?)),
        }
    }

    /// A buffer of `buffer_len` bytes (contents unspecified) to fill next,
    /// waiting for one to come back when all are in use.
    pub(crate) fn take_buffer(&mut self) -> io::Result<Vec<u8>> {
        self.collect(false)?;
        loop {
            if let Some(buffer) = self.spare.pop() {
                return Ok(buffer);
            }
            if self.made < BUFFERS {
                self.made += 1;
                return Ok(vec![0u8; self.buffer_len]);
            }
            // Jobs submitted without a buffer may come back first.
            assert!(
                self.in_flight > 0,
                "every buffer made is spare, in flight or the caller's"
            );
            self.collect(true)?;
        }
    }

    /// Queues `pieces` (whose `Piece::Buffer` ranges index `buffer`) to be
    /// written back to back from byte `offset`. `buffer` may be an empty
    /// vector, not one of ours, when no piece is `Piece::Buffer`.
    pub(crate) fn submit(
        &mut self,
        buffer: Vec<u8>,
        pieces: Vec<Piece>,
        offset: u64,
    ) -> io::Result<()> {
        self.check()?;
        let jobs = self.jobs.as_ref().expect("jobs close only on drop");
        if jobs
            .send(Job {
                buffer,
                pieces,
                offset,
            })
            .is_err()
        {
            return Err(self.thread_gone());
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Waits until every queued job is written; the first failure.
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
            if !done.buffer.is_empty() {
                self.spare.push(done.buffer);
            }
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
        // Only a writer waited for has written everything: the jobs still
        // queued now belong to an image that will not be finished. Closing
        // the queue then ends both threads.
        self.abandoned.store(true, Ordering::Release);
        drop(self.jobs.take());
        for thread in self.threads.iter_mut().filter_map(Option::take) {
            let _ = thread.join();
        }
    }
}

/// Writes `pieces` back to back from `offset` with as few `pwritev` calls
/// as the iovec limit allows; returns the bytes written.
fn write_pieces(image: &File, buffer: &[u8], pieces: &[Piece], mut offset: u64) -> io::Result<u64> {
    let mut slices: Vec<IoSlice<'_>> = pieces
        .iter()
        .map(|piece| {
            IoSlice::new(match piece {
                Piece::Buffer(range) => &buffer[range.clone()],
                Piece::Lent(lent) => lent.bytes(),
                Piece::Zeros(len) => &ZEROS[..*len],
            })
        })
        .collect();
    let start = offset;
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let count = rest.len().min(IOV_MAX);
        // SAFETY: IoSlice is ABI-compatible with iovec on Unix, and the
        // `count` slices point into `buffer`, lent bytes whose owners
        // `pieces` holds, or `ZEROS`, all alive for the call.
        let written = unsafe {
            libc::pwritev(
                image.as_raw_fd(),
                rest.as_ptr().cast::<libc::iovec>(),
                count as libc::c_int,
                offset as libc::off_t,
            )
        };
        match written {
            -1 => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => {
                offset += n as u64;
                IoSlice::advance_slices(&mut rest, n as usize);
            }
        }
    }
    Ok(offset - start)
}

/// Asks the kernel to map in the pages of the lent pieces now. A mapped
/// tar's pages leave our page tables once read ([`Lent`]'s owners may do
/// that), and a buffered write copying from a missing page fails, faults it
/// in and starts that part of the write again. Purely an optimisation:
/// failures (kernels before 5.14) are ignored, and the copy faults instead.
fn fault_in(pieces: &[Piece]) {
    let page = page_size();
    // A piece that starts within the page after the span's last joins it:
    // every page of the span then holds lent bytes, so none is unmapped.
    let mut span: Option<Range<usize>> = None;
    for piece in pieces {
        let Piece::Lent(lent) = piece else { continue };
        let bytes = lent.bytes();
        let start = bytes.as_ptr() as usize & !(page - 1);
        let end = bytes.as_ptr() as usize + bytes.len();
        match &mut span {
            Some(span) if start >= span.start && start <= span.end.next_multiple_of(page) => {
                span.end = span.end.max(end)
            }
            _ => {
                if let Some(done) = span.replace(start..end) {
                    populate(done);
                }
            }
        }
    }
    if let Some(last) = span {
        populate(last);
    }
}

/// `MADV_POPULATE_READ` over `range` of our address space.
fn populate(range: Range<usize>) {
    // SAFETY: populating only maps pages in for reading, changing no byte;
    // the range starts at a page boundary and covers pieces whose owners
    // keep them mapped for the call.
    unsafe {
        libc::madvise(
            range.start as *mut libc::c_void,
            range.end - range.start,
            libc::MADV_POPULATE_READ,
        );
    }
}

/// The size of a memory page.
fn page_size() -> usize {
    // SAFETY: sysconf only reads its integer argument.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        size if size > 0 => size as usize,
        _ => 4096,
    }
}

/// Asks the kernel to start writing a range out now, without waiting for
/// it, so that the fsync that publishes the image finds little left to do
/// instead of the whole image. Purely an optimisation: failures (tmpfs,
/// old kernels) are ignored.
fn start_writeback(image: &File, offset: u64, len: u64) {
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
    use std::os::unix::fs::FileExt;

    #[test]
    fn buffers_are_written_where_asked_and_recycled() {
        let file = tempfile::tempfile().unwrap();
        let mut writer = BackgroundWriter::spawn(&file, 8).unwrap();
        let mut first = vec![0u8; 8];
        for round in 0..10u8 {
            first.fill(round + 1);
            writer
                .submit(first, vec![Piece::Buffer(0..8)], u64::from(round) * 8)
                .unwrap();
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
        writer
            .submit(vec![1u8; 4], vec![Piece::Buffer(0..4)], 0)
            .unwrap();
        assert!(writer.wait().is_err());
        assert!(writer.take_buffer().is_err());
        assert!(writer
            .submit(vec![1u8; 4], vec![Piece::Buffer(0..4)], 0)
            .is_err());
    }

    #[test]
    fn pieces_beyond_one_pwritev_land_back_to_back() {
        let file = tempfile::tempfile().unwrap();
        let mut writer = BackgroundWriter::spawn(&file, 8).unwrap();
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(b"lent".to_vec());
        // 3 pieces a round, 3 bytes each: more iovecs than one call takes.
        let rounds = IOV_MAX;
        let mut pieces = Vec::new();
        for _ in 0..rounds {
            pieces.push(Piece::Buffer(2..3));
            pieces.push(Piece::Lent(Lent::new(Arc::clone(&owner), 1..2).unwrap()));
            pieces.push(Piece::Zeros(1));
        }
        writer.submit(b"abcdefgh".to_vec(), pieces, 5).unwrap();
        writer.wait().unwrap();
        drop(writer);
        let mut back = vec![9u8; 5 + 3 * rounds];
        file.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(&back[..5], &[0; 5]);
        for chunk in back[5..].chunks(3) {
            assert_eq!(chunk, b"ce\0");
        }
    }

    #[test]
    fn jobs_without_a_buffer_wait_in_the_queue_and_leave_the_buffers_be() {
        let file = tempfile::tempfile().unwrap();
        let mut writer = BackgroundWriter::spawn(&file, 4).unwrap();
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(b"LENT".to_vec());
        let mut buffer = vec![0u8; 4];
        // Lent jobs, more than the buffers, come back empty-handed before and
        // after each buffer job: taking a buffer must wait for a real one.
        for round in 0..40u64 {
            let lent = Lent::new(Arc::clone(&owner), 0..4).unwrap();
            writer
                .submit(Vec::new(), vec![Piece::Lent(lent)], round * 8)
                .unwrap();
            buffer.fill(b'a' + round as u8 % 26);
            writer
                .submit(buffer, vec![Piece::Buffer(0..4)], round * 8 + 4)
                .unwrap();
            buffer = writer.take_buffer().unwrap();
            assert_eq!(buffer.len(), 4);
        }
        writer.wait().unwrap();
        assert!(writer.made <= BUFFERS);
        assert!(writer.spare.iter().all(|b| b.len() == 4));
        drop(writer);
        let mut back = vec![0u8; 40 * 8];
        file.read_exact_at(&mut back, 0).unwrap();
        for (round, chunk) in back.chunks(8).enumerate() {
            let letter = b'a' + round as u8 % 26;
            assert_eq!(chunk[..4], *b"LENT");
            assert_eq!(chunk[4..], [letter; 4]);
        }
    }

    /// A shared, read-only map of a whole file, for lending.
    struct Mapping {
        ptr: *mut u8,
        len: usize,
    }

    // SAFETY: the map is read-only and lives until dropped.
    unsafe impl Send for Mapping {}
    unsafe impl Sync for Mapping {}

    impl Mapping {
        fn of(file: &File, len: usize) -> Self {
            // SAFETY: a fresh shared read-only map of `len` bytes of the file.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(ptr, libc::MAP_FAILED);
            Self {
                ptr: ptr.cast(),
                len,
            }
        }

        /// KiB of the map in our page tables, from /proc/self/smaps.
        fn resident_kib(&self) -> u64 {
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
            let start = format!("{:x}-", self.ptr as usize);
            let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
            lines.next().expect("the map is listed");
            let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
            rss.split_whitespace().nth(1).unwrap().parse().unwrap()
        }
    }

    impl AsRef<[u8]> for Mapping {
        fn as_ref(&self) -> &[u8] {
            // SAFETY: the map is `len` readable bytes until dropped.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: unmapping the map this value made.
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
        }
    }

    #[test]
    fn lent_pages_out_of_our_page_tables_are_faulted_back_in() {
        let page = page_size();
        let len = 64 * page;
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(&bytes, 0).unwrap();
        let map = Arc::new(Mapping::of(&file, len));
        // SAFETY: dropping a shared file map's pages from our page tables;
        // reading them again faults the same bytes back in.
        unsafe { libc::madvise(map.ptr.cast(), len, libc::MADV_DONTNEED) };
        assert_eq!(map.resident_kib(), 0);
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = map.clone();
        // Tar-like pieces: data runs with small gaps (headers) between them,
        // the last run far from the rest.
        let pieces = vec![
            Piece::Lent(Lent::new(Arc::clone(&owner), 512..3 * page).unwrap()),
            Piece::Zeros(7),
            Piece::Lent(Lent::new(Arc::clone(&owner), 3 * page + 512..8 * page).unwrap()),
            Piece::Lent(Lent::new(Arc::clone(&owner), 40 * page..41 * page).unwrap()),
        ];
        fault_in(&pieces);
        let resident = map.resident_kib() as usize * 1024;
        assert!(resident >= 9 * page, "{resident} bytes resident");
        assert_eq!((*map).as_ref(), &bytes[..]);
    }

    /// Bytes whose reading, once armed, blocks until the test opens the gate.
    struct Gated {
        bytes: Vec<u8>,
        armed: AtomicBool,
        open: std::sync::Mutex<bool>,
        opened: std::sync::Condvar,
    }

    impl AsRef<[u8]> for Gated {
        fn as_ref(&self) -> &[u8] {
            let mut open = self.open.lock().unwrap();
            while self.armed.load(Ordering::Acquire) && !*open {
                open = self.opened.wait(open).unwrap();
            }
            &self.bytes
        }
    }

    #[test]
    fn a_writer_dropped_before_its_queue_is_written_leaves_the_rest_unwritten() {
        let file = tempfile::tempfile().unwrap();
        file.set_len(44).unwrap();
        let mut writer = BackgroundWriter::spawn(&file, 4).unwrap();
        let gated = Arc::new(Gated {
            bytes: b"gate".to_vec(),
            armed: AtomicBool::new(false),
            open: std::sync::Mutex::new(false),
            opened: std::sync::Condvar::new(),
        });
        let first: Arc<dyn AsRef<[u8]> + Send + Sync> = gated.clone();
        let rest: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(b"late".to_vec());
        // The first job holds the threads up; ten more wait behind it.
        let lent = Lent::new(first, 0..4).unwrap();
        gated.armed.store(true, Ordering::Release);
        writer
            .submit(Vec::new(), vec![Piece::Lent(lent)], 0)
            .unwrap();
        for job in 1..=10u64 {
            let lent = Lent::new(Arc::clone(&rest), 0..4).unwrap();
            writer
                .submit(Vec::new(), vec![Piece::Lent(lent)], job * 4)
                .unwrap();
        }
        let abandoned = Arc::clone(&writer.abandoned);
        let dropping = std::thread::spawn(move || drop(writer));
        // Open the gate once the drop has begun; it then waits for the threads.
        while !abandoned.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        *gated.open.lock().unwrap() = true;
        gated.opened.notify_all();
        dropping.join().unwrap();
        let mut back = vec![0u8; 44];
        file.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(
            back[4..],
            [0; 40],
            "jobs queued behind the first were written"
        );
    }
}
