//! How a pull's progress is shown: bars on a terminal, periodic plain lines
//! elsewhere. Which one a command uses is decided at the CLI edge.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::pipeline::{ProgressEvent, ProgressFn};
use crate::reference::Digest;
use crate::source::FetchEvent;

/// Bars on a terminal: one per blob while it downloads, which becomes its
/// layer's bar while the layer is read and written (bytes done of the
/// stored size, and speed), then a spinner for the metadata write. All are
/// cleared when the image is done.
pub fn terminal_reporter() -> ProgressFn {
    let bars = Mutex::new(TerminalBars::default());
    Arc::new(move |event| {
        bars.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .show(event)
    })
}

/// Plain lines on stderr, for when it is not a terminal: one when each blob
/// is found or starts and ends downloading, one when each layer starts
/// being written, and every [`LOG_INTERVAL`] one per transfer still going.
pub fn log_reporter() -> ProgressFn {
    let lines = Mutex::new(LogLines::default());
    Arc::new(move |event| {
        lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .show(event)
    })
}

/// How often a plain line repeats a transfer that is still going.
pub const LOG_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Default)]
struct TerminalBars {
    multi: MultiProgress,
    downloads: HashMap<Digest, ProgressBar>,
    layers: HashMap<usize, ProgressBar>,
    /// Blobs whose layer is open: their layer bar shows the rest.
    opened: HashSet<Digest>,
    writing: Option<usize>,
    metadata: Option<ProgressBar>,
}

impl TerminalBars {
    fn show(&mut self, event: ProgressEvent) {
        match event {
            ProgressEvent::Fetch(FetchEvent::Downloading { digest, size }) => {
                // When the layer opened first (it is written while it
                // downloads), this bar shows the download beside the layer's.
                let bar = self
                    .downloads
                    .entry(digest.clone())
                    .or_insert_with(|| self.multi.add(ProgressBar::hidden()));
                start_bar(bar, digest.short(), Some(size), "downloading");
            }
            ProgressEvent::Fetch(FetchEvent::Received { digest, bytes }) => {
                if let Some(bar) = self.downloads.get(&digest) {
                    bar.inc(bytes);
                }
            }
            ProgressEvent::Fetch(FetchEvent::Downloaded { digest, .. }) => {
                // A layer that opened before its download began has a bar
                // of its own; the download's goes once it is done.
                if self.opened.contains(&digest) {
                    if let Some(bar) = self.downloads.remove(&digest) {
                        bar.finish_and_clear();
                    }
                } else if let Some(bar) = self.downloads.get(&digest) {
                    bar.set_message("downloaded");
                }
            }
            ProgressEvent::Fetch(FetchEvent::Cached { .. }) => {}
            ProgressEvent::Opened {
                index,
                count,
                digest,
                size,
            } => {
                // A downloaded layer keeps its bar, now counting the write.
                let bar = digest
                    .and_then(|digest| {
                        let bar = self.downloads.remove(&digest);
                        self.opened.insert(digest);
                        bar
                    })
                    .unwrap_or_else(|| self.multi.add(ProgressBar::hidden()));
                start_bar(&bar, format!("layer {index}/{count}"), size, "reading");
                self.layers.insert(index, bar);
            }
            ProgressEvent::Read { index, bytes } => {
                if let Some(bar) = self.layers.get(&index) {
                    bar.inc(bytes);
                }
            }
            ProgressEvent::Applying { index, .. } => {
                self.finish_writing();
                if let Some(bar) = self.layers.get(&index) {
                    bar.set_message("writing");
                }
                self.writing = Some(index);
            }
            ProgressEvent::Finishing => {
                self.finish_writing();
                let spinner = self.multi.add(ProgressBar::new_spinner());
                spinner.set_message("writing metadata");
                spinner.enable_steady_tick(Duration::from_millis(120));
                self.metadata = Some(spinner);
            }
            ProgressEvent::Done => {
                let bars = self.downloads.drain().map(|(_, bar)| bar);
                let bars = bars.chain(self.layers.drain().map(|(_, bar)| bar));
                for bar in bars.chain(self.metadata.take()) {
                    bar.finish_and_clear();
                }
            }
        }
    }

    /// Marks the layer being written as written.
    fn finish_writing(&mut self) {
        if let Some(bar) = self.writing.take().and_then(|i| self.layers.get(&i)) {
            if let Some(length) = bar.length() {
                bar.set_position(length);
            }
            bar.set_message("written");
        }
    }
}

/// (Re)starts `bar` as a transfer of `size` bytes, or of unknown size.
/// The text comes first: a bar draws as soon as its length or position
/// changes.
fn start_bar(bar: &ProgressBar, prefix: String, size: Option<u64>, message: &'static str) {
    let template = match size {
        Some(_) => {
            "{prefix:<19} [{bar:24}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}"
        }
        None => "{prefix:<19} {spinner:^26} {bytes:>10}{binary_bytes_per_sec:>24} {msg}",
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar.set_message(message);
    match size {
        Some(size) => bar.set_length(size),
        None => bar.unset_length(),
    }
    bar.reset();
}

/// One transfer's state for its periodic line.
struct Transfer {
    label: String,
    done: u64,
    size: Option<u64>,
    last_line: Instant,
}

impl Transfer {
    fn new(label: String, size: Option<u64>) -> Self {
        Self {
            label,
            done: 0,
            size,
            last_line: Instant::now(),
        }
    }

    /// Counts `bytes`, printing a line when the last one is old enough.
    fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if self.last_line.elapsed() >= LOG_INTERVAL {
            self.last_line = Instant::now();
            match self.size {
                Some(size) => eprintln!("{}: {} of {size} bytes", self.label, self.done),
                None => eprintln!("{}: {} bytes", self.label, self.done),
            }
        }
    }
}

#[derive(Default)]
struct LogLines {
    downloads: HashMap<Digest, Transfer>,
    layers: HashMap<usize, Transfer>,
}

impl LogLines {
    fn show(&mut self, event: ProgressEvent) {
        match event {
            ProgressEvent::Fetch(FetchEvent::Cached { digest, size }) => {
                eprintln!("cached      {} ({size} bytes)", digest.short())
            }
            ProgressEvent::Fetch(FetchEvent::Downloading { digest, size }) => {
                eprintln!("downloading {} ({size} bytes)", digest.short());
                let label = format!("downloading {}", digest.short());
                self.downloads
                    .insert(digest, Transfer::new(label, Some(size)));
            }
            ProgressEvent::Fetch(FetchEvent::Received { digest, bytes }) => {
                if let Some(transfer) = self.downloads.get_mut(&digest) {
                    transfer.advance(bytes);
                }
            }
            ProgressEvent::Fetch(FetchEvent::Downloaded { digest, size }) => {
                self.downloads.remove(&digest);
                eprintln!("downloaded  {} ({size} bytes)", digest.short())
            }
            ProgressEvent::Opened {
                index, count, size, ..
            } => {
                let label = format!("layer {index}/{count}");
                self.layers.insert(index, Transfer::new(label, size));
            }
            ProgressEvent::Read { index, bytes } => {
                if let Some(transfer) = self.layers.get_mut(&index) {
                    transfer.advance(bytes);
                }
            }
            ProgressEvent::Applying { index, count } => {
                eprintln!("writing layer {index}/{count}")
            }
            ProgressEvent::Finishing => {
                self.layers.clear();
                eprintln!("writing metadata")
            }
            ProgressEvent::Done => {}
        }
    }
}
