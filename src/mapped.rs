//! Reading a byte range of a file through memory-mapped windows.
//!
//! A plain tar read with `read(2)` is copied twice before it reaches the
//! image's write buffer: by the kernel into a read-ahead chunk, then from
//! the chunk into the buffer. Read through a map, its headers are copied
//! out and its file data is lent ([`LendingRead`]): the image's writer
//! hands the mapped bytes to the kernel, which copies them once, from the
//! tar's page cache into the image's. A lent window stays mapped until the
//! last of its lent bytes has been written. What a map costs instead
//! (mapping and faulting its pages in, hashing them, unmapping) happens on
//! two helper threads: one maps and populates the next window while the
//! reader goes through this one, the other hands each window the reader is
//! done with to a [`ByteSink`] and lets it go.
//!
//! Memory: at most [`WINDOWS_IN_FLIGHT`] windows of [`WINDOW`] bytes are
//! mapped at once, whatever the range's length, besides windows whose
//! bytes were lent and wait in the image writer's queue (which can hold
//! 128 MiB). Those stay mapped but not resident: once the reader and the
//! sink are done with a window, its pages leave this process's page tables
//! (they stay in the page cache), and the writer maps back in only the
//! bytes it is about to copy.
//!
//! A mapped file that another process truncates below a mapped window
//! raises SIGBUS on the next access to the lost pages. The file's length
//! is therefore checked before each window is mapped, which narrows that
//! race to the few windows in flight; a file shorter than the range reads
//! as a stream that ends early, as `read(2)` would.

use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use banger_ext4::tree::{LendingRead, Lent};
use memmap2::{Mmap, MmapOptions, UncheckedAdvice};

/// Bytes mapped at a time.
pub const WINDOW: u64 = 2 << 20;
/// Windows mapped at once: one being populated, one queued, one being
/// read, one queued for the sink, one in the sink.
pub const WINDOWS_IN_FLIGHT: usize = 5;

/// Sees every byte of the range, in order, off the reader's thread.
pub trait ByteSink: Send + 'static {
    /// The next bytes of the range.
    fn update(&mut self, bytes: &[u8]);
    /// Called once the reader reached the end of the range (not when it is
    /// dropped before).
    fn finish(&mut self);
}

/// One mapped window and how many of its bytes belong to the range;
/// unmapped when dropped.
struct Window {
    map: Mmap,
    len: usize,
}

impl Window {
    /// Takes the window's pages out of this process's page tables; they stay
    /// in the page cache. Lent bytes can wait in the image writer's queue
    /// for a while, and their pages would count as this process's memory.
    fn release_pages(&self) {
        // SAFETY: the map is a shared, read-only map of a file. A page that
        // is touched again (the writer's copy of lent bytes) is faulted back
        // in from the page cache with the same bytes, so no borrow of the map
        // sees a change.
        let _ = unsafe { self.map.unchecked_advise(UncheckedAdvice::DontNeed) };
    }
}

impl AsRef<[u8]> for Window {
    fn as_ref(&self) -> &[u8] {
        &self.map[..self.len]
    }
}

/// What the reader sends its sink thread.
enum Spent {
    Window(Arc<Window>),
    End,
}

/// Reads `file[offset..offset + len]` through windows mapped ahead of it.
pub struct MappedReader {
    /// Windows in order, from the mapping thread; closed after the last.
    windows: Receiver<io::Result<Window>>,
    /// The window being read and the offset of the next byte in it.
    current: Option<(Arc<Window>, usize)>,
    /// Windows read out, to the sink thread.
    spent: Option<SyncSender<Spent>>,
    sink: Option<JoinHandle<()>>,
    finished: bool,
    /// The error a window failed with, returned again by every later read
    /// (a retried read must not reach an end the sink would call finished).
    failed: Option<io::ErrorKind>,
}

impl std::fmt::Debug for MappedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedReader")
            .field("finished", &self.finished)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl MappedReader {
    /// A reader of the `len` bytes at `offset` (or fewer, if the file ends
    /// sooner) that shows every byte read to `sink`, if given.
    pub fn new(
        file: File,
        offset: u64,
        len: u64,
        sink: Option<Box<dyn ByteSink>>,
    ) -> io::Result<Self> {
        let end = offset.saturating_add(len);
        let (window_tx, windows) = mpsc::sync_channel(1);
        thread::Builder::new()
            .name("banger-map".into())
            .spawn(move || map_windows(&file, offset, end, &window_tx))?;
        let (spent, sink) = match sink {
            Some(sink) => {
                let (spent_tx, spent_rx) = mpsc::sync_channel(1);
                let thread = thread::Builder::new()
                    .name("banger-sink".into())
                    .spawn(move || drain(sink, &spent_rx))?;
                (Some(spent_tx), Some(thread))
            }
            None => (None, None),
        };
        Ok(Self {
            windows,
            current: None,
            spent,
            sink,
            finished: false,
            failed: None,
        })
    }

    /// Passes the window read out to the sink (or unmaps it) and takes the
    /// next; `false` at the end of the range.
    fn advance(&mut self) -> io::Result<bool> {
        if let Some((window, _)) = self.current.take() {
            match &self.spent {
                // A gone sink thread panicked; its join below reports it.
                Some(spent) => drop(spent.send(Spent::Window(window))),
                None => window.release_pages(),
            }
        }
        match self.windows.recv() {
            Ok(Ok(window)) => {
                self.current = Some((Arc::new(window), 0));
                Ok(true)
            }
            Ok(Err(error)) => {
                self.failed = Some(error.kind());
                Err(error)
            }
            Err(mpsc::RecvError) => {
                self.finish()?;
                Ok(false)
            }
        }
    }

    /// The next `max` (> 0) bytes or fewer, within one window, handed to
    /// `take` with the window and the offset in it; `None` at the end.
    fn next_bytes<T>(
        &mut self,
        max: usize,
        take: impl FnOnce(&Arc<Window>, std::ops::Range<usize>) -> T,
    ) -> io::Result<Option<T>> {
        if let Some(kind) = self.failed {
            return Err(io::Error::new(
                kind,
                "an earlier read of the mapped file failed",
            ));
        }
        if self.finished {
            return Ok(None);
        }
        loop {
            if let Some((window, at)) = &mut self.current {
                let n = (window.len - *at).min(max);
                if n > 0 {
                    let range = *at..*at + n;
                    *at += n;
                    return Ok(Some(take(window, range)));
                }
            }
            if !self.advance()? {
                return Ok(None);
            }
        }
    }

    /// Tells the sink the range ended and waits until it has seen it all.
    fn finish(&mut self) -> io::Result<()> {
        self.finished = true;
        if let Some(spent) = self.spent.take() {
            let _ = spent.send(Spent::End);
        }
        match self.sink.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(io::Error::other("the mapped range's sink thread panicked")),
            _ => Ok(()),
        }
    }
}

impl Read for MappedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let copied = self.next_bytes(buf.len(), |window, range| {
            buf[..range.len()].copy_from_slice(&window.map[range.clone()]);
            range.len()
        })?;
        Ok(copied.unwrap_or(0))
    }
}

impl LendingRead for MappedReader {
    fn lend(&mut self, max: usize) -> io::Result<Option<Lent>> {
        if max == 0 {
            return Ok(Some(Lent::empty()));
        }
        let lent = self.next_bytes(max, |window, range| {
            let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::clone(window) as _;
            Lent::new(owner, range).expect("a range within the window's bytes")
        })?;
        Ok(Some(lent.unwrap_or_else(Lent::empty)))
    }
}

impl Drop for MappedReader {
    fn drop(&mut self) {
        // Dropping the channels ends both threads: the mapper's next send
        // fails, and the sink sees its queue close without an End.
        self.spent = None;
        if let Some(sink) = self.sink.take() {
            let _ = sink.join();
        }
    }
}

/// The mapping thread: maps `file[offset..end]` window by window, each
/// clipped to the file's length at that moment, until the range ends or
/// the reader goes away.
fn map_windows(file: &File, mut pos: u64, mut end: u64, windows: &SyncSender<io::Result<Window>>) {
    loop {
        let window = match file.metadata() {
            Ok(meta) => {
                // A file that shrank ends here, as read(2) would.
                end = end.min(meta.len());
                if pos >= end {
                    return;
                }
                map_window(file, pos, WINDOW.min(end - pos))
            }
            Err(error) => Err(error),
        };
        let failed = window.is_err();
        if let Ok(window) = &window {
            pos += window.len as u64;
        }
        if windows.send(window).is_err() || failed {
            return;
        }
    }
}

/// Maps `len` bytes at `pos` and faults them in (reading them from the
/// disk if they are not cached), here rather than on the reader's thread.
fn map_window(file: &File, pos: u64, len: u64) -> io::Result<Window> {
    // SAFETY: the window lies within the file's length, checked just
    // before; what is left is the race the module doc describes, with a
    // writer truncating the file in the meantime.
    let map = unsafe {
        MmapOptions::new()
            // memmap2 aligns the offset down to a page and hides the difference.
            .offset(pos)
            .len(len as usize)
            .populate()
            .map(file)?
    };
    Ok(Window {
        map,
        len: len as usize,
    })
}

/// The sink thread: shows each window to the sink, then takes its pages out
/// of our page tables and lets it go (unmapped once no lent bytes of it wait).
fn drain(mut sink: Box<dyn ByteSink>, spent: &Receiver<Spent>) {
    while let Ok(message) = spent.recv() {
        match message {
            Spent::Window(window) => {
                sink.update((*window).as_ref());
                window.release_pages();
            }
            Spent::End => {
                sink.finish();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    fn file_of(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Collects what it is shown, and whether it was told the range ended.
    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<(Vec<u8>, bool)>>);

    impl ByteSink for Collect {
        fn update(&mut self, bytes: &[u8]) {
            self.0.lock().unwrap().0.extend_from_slice(bytes);
        }
        fn finish(&mut self) {
            self.0.lock().unwrap().1 = true;
        }
    }

    /// Reads to the end in odd-sized steps, so that some straddle windows.
    fn read_all(reader: &mut MappedReader) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 9_999];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn reads_an_unaligned_range_across_windows_and_shows_the_sink_all_of_it() {
        let bytes = pattern(WINDOW as usize * 3 + 12_345);
        let (offset, len) = (4_097usize, WINDOW as usize * 2 + 70_000);
        let seen = Collect::default();
        let mut reader = MappedReader::new(
            file_of(&bytes),
            offset as u64,
            len as u64,
            Some(Box::new(seen.clone())),
        )
        .unwrap();
        let expected = &bytes[offset..offset + len];
        assert_eq!(read_all(&mut reader), expected);
        // EOF is reported only once the sink has seen every byte.
        let (sunk, finished) = seen.0.lock().unwrap().clone();
        assert!(finished);
        assert_eq!(sunk, expected);
        assert_eq!(reader.read(&mut [0u8; 10]).unwrap(), 0);
    }

    /// Lends the rest of the range, `max` bytes or fewer at a time.
    fn lend_all(reader: &mut MappedReader, max: usize) -> Vec<Lent> {
        let mut kept = Vec::new();
        loop {
            let lent = reader.lend(max).unwrap().expect("a mapped file lends");
            if lent.is_empty() {
                return kept;
            }
            assert!(lent.len() <= max);
            kept.push(lent);
        }
    }

    #[test]
    fn lent_bytes_stay_valid_after_the_reader_moved_past_their_window() {
        let bytes = pattern(WINDOW as usize * 3 + 5_000);
        let seen = Collect::default();
        let mut reader = MappedReader::new(
            file_of(&bytes),
            100,
            bytes.len() as u64 - 100,
            Some(Box::new(seen.clone())),
        )
        .unwrap();
        // Headers copied, data lent, as the flattener reads a tar.
        let mut head = [0u8; 512];
        reader.read_exact(&mut head).unwrap();
        let kept = lend_all(&mut reader, 700_000);
        // Every window was handed to the sink and let go by the reader.
        let (sunk, finished) = seen.0.lock().unwrap().clone();
        assert!(finished);
        assert_eq!(sunk, &bytes[100..]);
        let mut back = head.to_vec();
        for lent in &kept {
            back.extend_from_slice(lent.bytes());
        }
        assert_eq!(back, &bytes[100..]);
    }

    /// KiB of the maps of `path` in our page tables, from /proc/self/smaps.
    fn resident_kib_of(path: &std::path::Path) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_file = false;
        let mut total = 0;
        for line in smaps.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields
                .first()
                .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
            {
                in_file = fields
                    .get(5)
                    .is_some_and(|p| std::path::Path::new(p) == path);
            } else if in_file && fields.first() == Some(&"Rss:") {
                total += fields[1].parse::<u64>().unwrap();
            }
        }
        total
    }

    #[test]
    fn windows_whose_bytes_wait_lent_leave_our_page_tables() {
        let bytes = pattern(WINDOW as usize * 12);
        for with_sink in [true, false] {
            let named = tempfile::NamedTempFile::new().unwrap();
            named.as_file().write_all(&bytes).unwrap();
            let path = std::fs::canonicalize(named.path()).unwrap();
            let sink = with_sink.then(|| Box::new(Collect::default()) as Box<dyn ByteSink>);
            let mut reader =
                MappedReader::new(named.reopen().unwrap(), 0, bytes.len() as u64, sink).unwrap();
            let kept = lend_all(&mut reader, WINDOW as usize);
            // Every window is still mapped, kept by its lent bytes, but none
            // is resident; read again, the bytes fault back in.
            let resident = resident_kib_of(&path) * 1024;
            assert!(
                resident < WINDOW,
                "sink {with_sink}: {resident} bytes resident"
            );
            let back: Vec<u8> = kept.iter().flat_map(|l| l.bytes().to_vec()).collect();
            assert_eq!(back, bytes);
            assert!(resident_kib_of(&path) * 1024 >= bytes.len() as u64);
        }
    }

    #[test]
    fn a_range_past_the_end_reads_what_there_is() {
        let bytes = pattern(10_000);
        let mut reader = MappedReader::new(file_of(&bytes), 9_000, 5_000, None).unwrap();
        assert_eq!(read_all(&mut reader), &bytes[9_000..]);
        let mut reader = MappedReader::new(file_of(&bytes), 20_000, 5, None).unwrap();
        assert!(read_all(&mut reader).is_empty());
    }

    #[test]
    fn a_file_that_shrinks_ends_early_without_a_fault() {
        let bytes = pattern(WINDOW as usize * 40);
        let file = file_of(&bytes);
        let shrink = file.try_clone().unwrap();
        let mut reader = MappedReader::new(file, 0, bytes.len() as u64, None).unwrap();
        let mut first = vec![0u8; 10];
        reader.read_exact(&mut first).unwrap();
        // Beyond the windows already mapped (at most WINDOWS_IN_FLIGHT).
        let kept = WINDOW * (WINDOWS_IN_FLIGHT as u64 + 2) + 100;
        shrink.set_len(kept).unwrap();
        let rest = read_all(&mut reader);
        assert_eq!(rest, &bytes[10..kept as usize]);
    }

    #[test]
    fn a_reader_dropped_early_does_not_finish_its_sink() {
        let bytes = pattern(WINDOW as usize * 4);
        let seen = Collect::default();
        let mut reader = MappedReader::new(
            file_of(&bytes),
            0,
            bytes.len() as u64,
            Some(Box::new(seen.clone())),
        )
        .unwrap();
        let mut some = vec![0u8; WINDOW as usize + 1];
        reader.read_exact(&mut some).unwrap();
        drop(reader);
        assert!(!seen.0.lock().unwrap().1, "told a partial range ended");
    }
}
