//! The slowest transfer tolerated, enforced while a body is read.

use std::time::Duration;

use reqwest::Response;

use crate::source::SourceError;

/// The slowest transfer banger waits for: fewer than `bytes_per_sec` on
/// average over any `window` fails the request, so that a server trickling
/// bytes cannot keep a pull alive forever (reqwest's read timeout restarts
/// with every byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpeedLimit {
    /// Least average speed.
    pub bytes_per_sec: u64,
    /// Over how long it is measured.
    pub window: Duration,
}

impl Default for SpeedLimit {
    /// 1 KiB/s over 60 s.
    fn default() -> Self {
        SpeedLimit {
            bytes_per_sec: 1024,
            window: Duration::from_secs(60),
        }
    }
}

/// Reads a response body in chunks, failing when a window passes with too
/// few bytes.
pub(super) struct SpeedGuard {
    limit: Option<SpeedLimit>,
    window_start: tokio::time::Instant,
    bytes: u64,
}

impl SpeedGuard {
    pub(super) fn new(limit: Option<SpeedLimit>) -> Self {
        SpeedGuard {
            limit,
            window_start: tokio::time::Instant::now(),
            bytes: 0,
        }
    }

    /// Passes every chunk of the body to `consume`.
    pub(super) async fn each_chunk(
        &mut self,
        response: &mut Response,
        url: &str,
        mut consume: impl FnMut(&[u8]) -> Result<(), SourceError>,
    ) -> Result<(), SourceError> {
        let http_error = |source| SourceError::Http {
            url: url.to_string(),
            source,
        };
        loop {
            let chunk = match self.limit {
                None => response.chunk().await.map_err(http_error)?,
                Some(limit) => {
                    let deadline = self.window_start + limit.window;
                    match tokio::time::timeout_at(deadline, response.chunk()).await {
                        Ok(chunk) => {
                            let chunk = chunk.map_err(http_error)?;
                            self.bytes += chunk.as_ref().map_or(0, |c| c.len() as u64);
                            if tokio::time::Instant::now() >= deadline {
                                self.end_window(limit, url)?;
                            }
                            chunk
                        }
                        // Nothing at all this window: judge it, then wait on.
                        Err(_) => {
                            self.end_window(limit, url)?;
                            continue;
                        }
                    }
                }
            };
            match chunk {
                Some(chunk) => consume(&chunk)?,
                None => return Ok(()),
            }
        }
    }

    /// Checks the window that just ended and starts the next.
    fn end_window(&mut self, limit: SpeedLimit, url: &str) -> Result<(), SourceError> {
        let needed = limit
            .bytes_per_sec
            .saturating_mul(limit.window.as_secs().max(1));
        if self.bytes < needed {
            return Err(SourceError::TooSlow {
                url: url.to_string(),
                bytes: self.bytes,
                secs: limit.window.as_secs().max(1),
                bytes_per_sec: limit.bytes_per_sec,
            });
        }
        self.window_start = tokio::time::Instant::now();
        self.bytes = 0;
        Ok(())
    }
}
