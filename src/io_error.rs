//! An I/O failure with what was being done: the one shape every error type
//! of the library uses for it.

use std::io;

/// An I/O error and what was being done when it happened. Its message is the
/// context; the I/O error is its source.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct IoError {
    /// What was being done, e.g. `reading /etc/hosts`.
    pub context: String,
    /// The cause.
    #[source]
    pub source: io::Error,
}

/// A `map_err` adapter: wraps an [`io::Error`] with `context`, into any error
/// type that takes an [`IoError`].
pub fn with_context<E: From<IoError>>(context: impl Into<String>) -> impl FnOnce(io::Error) -> E {
    let context = context.into();
    move |source| IoError { context, source }.into()
}
