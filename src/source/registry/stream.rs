//! Layer blobs downloaded while the image is written: each download starts
//! in layer order (at most `max_concurrent_downloads` at once) and writes
//! the blob cache's temp file, which the layer's reader follows as it grows
//! ([`GrowingBlob`]). The download verifies size and digest itself and
//! stores the blob only when both match; the image written from it is
//! published only after that, so a bad blob fails the write too.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::blobs::{commit, fetch_into, insert_error};
use super::session::RegistryClient;
use crate::cache::BlobCache;
use crate::source::growing::{DownloadFailed, GrowingBlob, Outcome, Publisher};
use crate::source::manifest::Descriptor;
use crate::source::{BlobLocation, FetchEvent, ResolveOptions, SourceError};

/// Where each of `layers` is: a cached file, or a download started here
/// that runs on after this returns.
pub(super) fn start_layer_downloads(
    client: &Arc<RegistryClient>,
    cache: &BlobCache,
    layers: &[Descriptor],
    opts: &ResolveOptions,
    what: &str,
) -> Result<Vec<BlobLocation>, SourceError> {
    let mut locations = Vec::with_capacity(layers.len());
    let mut pending = Vec::new();
    for (index, desc) in layers.iter().enumerate() {
        let digest = desc.digest(what)?;
        if let Some(path) = cache.get(&digest, Some(desc.size)) {
            opts.report(FetchEvent::Cached {
                digest,
                size: desc.size,
            });
            locations.push(BlobLocation::File(path));
            continue;
        }
        let label = format!("{what}: layer {index} ({digest})");
        let (blob, publisher) = GrowingBlob::new(digest);
        locations.push(BlobLocation::Downloading(blob));
        pending.push((desc.clone(), label, publisher));
    }
    if !pending.is_empty() {
        let (client, cache, opts) = (client.clone(), cache.clone(), opts.clone());
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(opts.max_concurrent_downloads.max(1)));
            // One at a time, in layer order: the flattener wants the lowest first.
            for (desc, label, publisher) in pending {
                let permit = tokio::select! {
                    permit = permits.clone().acquire_owned() => permit,
                    () = publisher.cancelled() => {
                        let digest = publisher.digest().clone();
                        publisher.finish(Outcome::Failed(DownloadFailed::Cancelled { digest }));
                        continue;
                    }
                };
                let (client, cache, opts) = (client.clone(), cache.clone(), opts.clone());
                tokio::spawn(async move {
                    // The semaphore is never closed.
                    let _permit = permit;
                    let outcome =
                        match store_blob(&client, &cache, &desc, &opts, &label, &publisher).await {
                            Ok(path) => Outcome::Stored(path),
                            Err(End::Cancelled) => Outcome::Failed(DownloadFailed::Cancelled {
                                digest: publisher.digest().clone(),
                            }),
                            Err(End::Failed(error)) => Outcome::Failed(DownloadFailed::Failed {
                                digest: publisher.digest().clone(),
                                cause: Arc::new(error),
                            }),
                        };
                    publisher.finish(outcome);
                });
            }
        });
    }
    Ok(locations)
}

/// Why a download stopped short of the cache.
enum End {
    Failed(SourceError),
    Cancelled,
}

impl From<SourceError> for End {
    fn from(error: SourceError) -> Self {
        End::Failed(error)
    }
}

/// Downloads one blob under its cache lock, publishing its bytes as they
/// are written, then verifies and stores it.
async fn store_blob(
    client: &RegistryClient,
    cache: &BlobCache,
    desc: &Descriptor,
    opts: &ResolveOptions,
    what: &str,
    publisher: &Publisher,
) -> Result<PathBuf, End> {
    let digest = publisher.digest().clone();
    // Held until the blob is stored: another pull waits rather than
    // downloading it too.
    let _lock = {
        let (cache, key) = (cache.clone(), digest.clone());
        tokio::task::spawn_blocking(move || cache.lock(&key))
            .await
            .map_err(|e| SourceError::io("locking the cache")(std::io::Error::other(e)))?
            .map_err(SourceError::io(format!("locking {digest} in the cache")))?
    };
    if publisher.is_cancelled() {
        return Err(End::Cancelled);
    }
    if let Some(path) = cache.get(&digest, Some(desc.size)) {
        opts.report(FetchEvent::Cached {
            digest,
            size: desc.size,
        });
        return Ok(path);
    }
    let mut writer = cache
        .writer(&digest, desc.size)
        .map_err(|e| insert_error(e, what))?;
    let file = writer
        .reopen()
        .map_err(SourceError::io(format!("{what}: reopening its temp file")))?;
    publisher.start(file, 0);
    tokio::select! {
        fetched = fetch_into(client, &mut writer, &digest, what, opts, Some(publisher)) => fetched?,
        // Dropping the writer removes the temp file.
        () = publisher.cancelled() => return Err(End::Cancelled),
    }
    publisher.complete();
    let path = commit(client, writer, what).await?;
    opts.report(FetchEvent::Downloaded {
        digest,
        size: desc.size,
    });
    Ok(path)
}
