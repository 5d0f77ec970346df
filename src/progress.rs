//! Progress shown on a terminal; plain log lines are left to the caller.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::pipeline::{ProgressEvent, ProgressFn};
use crate::source::FetchEvent;

/// A spinner that follows a pull: each blob as it is found in the cache or
/// downloaded (bytes and speed), then each layer as it streams into the
/// image (bytes and speed), then the metadata write. Cleared when done.
pub fn download_reporter() -> ProgressFn {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bytes}, {binary_bytes_per_sec}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message("resolving");
    Arc::new(move |event| match event {
        ProgressEvent::Fetch(FetchEvent::Cached { digest, .. }) => {
            bar.set_message(format!("cached {}", digest.short()))
        }
        ProgressEvent::Fetch(FetchEvent::Downloaded { digest, size }) => {
            bar.inc(size);
            bar.set_message(format!("downloaded {}", digest.short()));
        }
        ProgressEvent::Applying { index, count } => {
            if index == 1 {
                bar.reset(); // From here on the bytes are the image's.
            }
            bar.set_message(format!("writing layer {index}/{count}"));
        }
        ProgressEvent::Applied { bytes } => bar.inc(bytes),
        ProgressEvent::Finishing => bar.set_message("writing metadata"),
        ProgressEvent::Done => bar.finish_and_clear(),
    })
}

/// Plain log lines on stderr, one per blob and per layer, for when stderr
/// is not a terminal.
pub fn log_reporter() -> ProgressFn {
    Arc::new(|event| match event {
        ProgressEvent::Fetch(FetchEvent::Cached { digest, size }) => {
            eprintln!("cached     {} ({size} bytes)", digest.short())
        }
        ProgressEvent::Fetch(FetchEvent::Downloaded { digest, size }) => {
            eprintln!("downloaded {} ({size} bytes)", digest.short())
        }
        ProgressEvent::Applying { index, count } => eprintln!("writing layer {index}/{count}"),
        ProgressEvent::Finishing => eprintln!("writing metadata"),
        ProgressEvent::Applied { .. } | ProgressEvent::Done => {}
    })
}
