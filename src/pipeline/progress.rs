//! Progress of one run of the pipeline: blobs fetched while the source is
//! resolved, then layers written into the image.

use std::fmt;
use std::sync::Arc;

use crate::source::{FetchEvent, FetchProgressFn, ResolveOptions};

/// Called for each step of a run, e.g. to draw progress.
pub type ProgressFn = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A blob was found in the cache or downloaded.
    Fetch(FetchEvent),
    /// A layer started streaming into the image (`index` counts from 1).
    Applying {
        /// Which layer.
        index: usize,
        /// Of how many.
        count: usize,
    },
    /// More of the current layer's tar was applied.
    Applied {
        /// Uncompressed bytes since the last report.
        bytes: u64,
    },
    /// Every layer is applied; the filesystem's metadata is being written.
    Finishing,
    /// The image is written and published.
    Done,
}

/// Where a run reports its progress: a hook, or nowhere.
#[derive(Clone, Default)]
pub struct Progress(Option<ProgressFn>);

impl Progress {
    /// Reports to `hook`.
    pub fn new(hook: ProgressFn) -> Self {
        Self(Some(hook))
    }

    /// Reports nowhere.
    pub fn none() -> Self {
        Self(None)
    }

    /// Passes `event` to the hook, if there is one.
    pub fn report(&self, event: ProgressEvent) {
        if let Some(hook) = &self.0 {
            hook(event);
        }
    }

    /// `options` with its fetches reported here, as [`ProgressEvent::Fetch`],
    /// in place of its own hook.
    pub fn for_resolve(&self, options: &ResolveOptions) -> ResolveOptions {
        let hook = self.0.clone().map(|hook| -> FetchProgressFn {
            Arc::new(move |event| hook(ProgressEvent::Fetch(event)))
        });
        ResolveOptions {
            progress: hook,
            ..options.clone()
        }
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(hook)"
        } else {
            "Progress(none)"
        })
    }
}
