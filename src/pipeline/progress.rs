//! Progress of one run of the pipeline: blobs fetched while the source is
//! resolved, then layers written into the image.

use std::fmt;
use std::sync::Arc;

use crate::reference::Digest;
use crate::source::{FetchEvent, FetchProgressFn, ResolveOptions};

/// Called for each step of a run, e.g. to draw progress.
pub type ProgressFn = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A blob was found in the cache, or more of it was downloaded.
    Fetch(FetchEvent),
    /// A layer's stream was opened. Layers are read ahead, so a layer may
    /// open while earlier ones are still being applied.
    Opened {
        /// Which layer (counting from 1).
        index: usize,
        /// Of how many.
        count: usize,
        /// The stored blob's digest, when it has one (a `tar:` layer has none).
        digest: Option<Digest>,
        /// The stored blob's length, when known (standard input's is not).
        size: Option<u64>,
    },
    /// More of a layer's stored (possibly compressed) blob was read.
    Read {
        /// Which layer (counting from 1).
        index: usize,
        /// Bytes since the last report of this layer.
        bytes: u64,
    },
    /// A layer started streaming into the image.
    Applying {
        /// Which layer (counting from 1).
        index: usize,
        /// Of how many.
        count: usize,
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
