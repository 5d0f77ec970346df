//! Why an image could not be resolved.

use std::io;

use thiserror::Error;

use crate::io_error::{with_context, IoError};
use crate::reference::ReferenceError;

/// Why an image could not be resolved. Messages say what to do about it.
#[derive(Debug, Error)]
pub enum SourceError {
    /// A malformed image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A malformed source string.
    #[error("invalid image source {input:?}: {reason}")]
    InvalidSource {
        /// As given.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// Local I/O failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The registry could not be reached or the connection broke.
    #[error("could not fetch {url} ({})", network_hint(url))]
    Http {
        /// The request.
        url: String,
        /// The error, with its causes.
        #[source]
        source: reqwest::Error,
    },
    /// The registry sent too little for too long.
    #[error("{url}: only {bytes} bytes arrived in {secs} s, below the minimum of {bytes_per_sec} bytes/s; retry, or lower --min-speed")]
    TooSlow {
        /// The request.
        url: String,
        /// Bytes received in the window.
        bytes: u64,
        /// The window's length in seconds.
        secs: u64,
        /// The least average speed.
        bytes_per_sec: u64,
    },
    /// The registry answered with an error status.
    #[error("registry answered {status} for {url}: {message}")]
    Registry {
        /// The request.
        url: String,
        /// HTTP status.
        status: u16,
        /// The registry's own error text.
        message: String,
    },
    /// Still rate limited after the retries allowed.
    #[error("registry kept answering 429 Too Many Requests for {url} after {attempts} attempts; wait and try again")]
    TooManyRequests {
        /// The request.
        url: String,
        /// How many were made.
        attempts: u32,
    },
    /// The registry wants credentials banger does not have.
    #[error("registry {registry} refused access ({detail}); log in with `docker login {registry}` or pass --username and --password-stdin")]
    AuthRequired {
        /// The registry host.
        registry: String,
        /// The challenge or token server's answer.
        detail: String,
    },
    /// A docker schema 1 manifest.
    #[error("{what} uses the Docker schema 1 manifest format, which banger does not support; re-push it with a current docker or skopeo (schema 2 or OCI)")]
    Schema1 {
        /// The manifest.
        what: String,
    },
    /// A manifest, config or layer of a type banger cannot use.
    #[error("{what}: unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        /// Which document.
        what: String,
        /// Its media type.
        media_type: String,
    },
    /// A malformed manifest, index, config or layout.
    #[error("{what}: {reason}")]
    InvalidManifest {
        /// Which document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// No entry of an index matches the wanted platform.
    #[error("{what} has no {wanted} image; it offers: {}; choose one with --platform", available.join(", "))]
    NoMatchingPlatform {
        /// The index.
        what: String,
        /// The platform asked for.
        wanted: String,
        /// What the index has.
        available: Vec<String>,
    },
    /// Content does not match its digest or size.
    #[error("{what}: {reason}; the source is corrupt or was tampered with, nothing was cached")]
    Corrupt {
        /// Which blob.
        what: String,
        /// The mismatch.
        reason: String,
    },
    /// A one-shot input (stdin) opened twice.
    #[error("{what} was already read (standard input can be read only once)")]
    AlreadyConsumed {
        /// Which layer.
        what: String,
    },
    /// Nothing matches the requested tag or name.
    #[error("{what}: {reason}")]
    NotFound {
        /// Where it was looked for.
        what: String,
        /// What is missing, and what exists.
        reason: String,
    },
}

/// What to check when a request failed. A URL that is already plain HTTP
/// (a loopback registry, or one named with --insecure-registry) gains nothing
/// from --insecure-registry.
fn network_hint(url: &str) -> &'static str {
    if url.starts_with("http://") {
        "check the network and that the registry is running"
    } else {
        "check the network; a plain-HTTP registry needs --insecure-registry"
    }
}

impl SourceError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> SourceError {
        with_context(context)
    }
}
