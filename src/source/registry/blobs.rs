//! Blobs (configs and layers): downloaded into the blob cache, concurrently,
//! once per blob across threads and processes, verified before they are kept.

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::header::CONTENT_RANGE;
use reqwest::StatusCode;
use tokio::sync::Semaphore;

use super::session::RegistryClient;
use super::speed::SpeedGuard;
use crate::cache::{BlobCache, BlobWriter, InsertError};
use crate::reference::Digest;
use crate::source::growing::Publisher;
use crate::source::manifest::Descriptor;
use crate::source::{FetchEvent, ResolveOptions, SourceError};

/// A download broken off mid-body is resumed until it has been tried this many times.
const MAX_DOWNLOAD_ATTEMPTS: u32 = 3;

/// Downloads every layer, `max_concurrent_downloads` at a time, in manifest order.
pub(super) async fn download_layers(
    client: &Arc<RegistryClient>,
    cache: &BlobCache,
    layers: &[Descriptor],
    opts: &ResolveOptions,
    what: &str,
) -> Result<Vec<PathBuf>, SourceError> {
    let permits = Arc::new(Semaphore::new(opts.max_concurrent_downloads.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, desc) in layers.iter().enumerate() {
        let (client, cache, desc, opts, permits) = (
            client.clone(),
            cache.clone(),
            desc.clone(),
            opts.clone(),
            permits.clone(),
        );
        let label = format!("{what}: layer {index} ({})", desc.digest);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            ensure_blob(&client, &cache, &desc, &opts, &label)
                .await
                .map(|path| (index, path))
        });
    }
    let mut paths = vec![PathBuf::new(); layers.len()];
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined
            .map_err(|e| SourceError::io("downloading layers")(std::io::Error::other(e)))
            .and_then(|result| result);
        match outcome {
            Ok((index, path)) => paths[index] = path,
            Err(e) => {
                // Wait for the other downloads to stop, so their temp files are gone
                // before the caller sees the error.
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                // A commit already handed to a blocking thread outlives its aborted task.
                let _settled = client.commits.write().await;
                return Err(e);
            }
        }
    }
    Ok(paths)
}

/// A cache refusal as a source error: I/O stays I/O, anything else means the
/// bytes were not what the registry promised.
pub(super) fn insert_error(error: InsertError, what: &str) -> SourceError {
    match error {
        InsertError::Io(io) => SourceError::Io(io),
        other => SourceError::Corrupt {
            what: what.to_string(),
            reason: other.to_string(),
        },
    }
}

/// Makes the blob of `desc` present in the cache and returns its path. Cached blobs
/// are used without asking the registry; otherwise the per-blob lock makes sure only
/// one puller (thread or process) downloads it.
pub(super) async fn ensure_blob(
    client: &RegistryClient,
    cache: &BlobCache,
    desc: &Descriptor,
    opts: &ResolveOptions,
    what: &str,
) -> Result<PathBuf, SourceError> {
    let digest = desc.digest(what)?;
    let cached = |cache: &BlobCache| {
        cache.get(&digest, Some(desc.size)).inspect(|_| {
            opts.report(FetchEvent::Cached {
                digest: digest.clone(),
                size: desc.size,
            })
        })
    };
    if let Some(path) = cached(cache) {
        return Ok(path);
    }
    let _lock = {
        let (cache, key) = (cache.clone(), digest.clone());
        tokio::task::spawn_blocking(move || cache.lock(&key))
            .await
            .map_err(|e| SourceError::io("locking the cache")(std::io::Error::other(e)))?
            .map_err(SourceError::io(format!("locking {digest} in the cache")))?
    };
    if let Some(path) = cached(cache) {
        return Ok(path);
    }
    let mut writer = cache
        .writer(&digest, desc.size)
        .map_err(|e| insert_error(e, what))?;
    fetch_into(client, &mut writer, &digest, what, opts, None).await?;
    let path = commit(client, writer, what).await?;
    opts.report(FetchEvent::Downloaded {
        digest: digest.clone(),
        size: desc.size,
    });
    Ok(path)
}

/// Bytes a download gathers before it reports them: progress moves
/// smoothly without a call per network chunk.
const RECEIVED_STEP: u64 = 256 << 10;

/// Downloads the blob `digest` into `writer` (which checks its size and
/// hash as it goes), telling `publisher` of each chunk written. A body
/// broken off mid-way is resumed from the bytes already written, at most
/// [`MAX_DOWNLOAD_ATTEMPTS`] times in all: with a `Range` request, or, when
/// the registry ignores it, by skipping what the new body repeats.
pub(super) async fn fetch_into(
    client: &RegistryClient,
    writer: &mut BlobWriter,
    digest: &Digest,
    what: &str,
    opts: &ResolveOptions,
    publisher: Option<&Publisher>,
) -> Result<(), SourceError> {
    let url = format!("{}/blobs/{digest}", client.base);
    opts.report(FetchEvent::Downloading {
        digest: digest.clone(),
        size: writer.size(),
    });
    let mut attempt = 1;
    loop {
        match fetch_attempt(client, writer, digest, &url, what, opts, publisher).await {
            Err(SourceError::Http { source, .. })
                if attempt < MAX_DOWNLOAD_ATTEMPTS && !source.is_status() =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// One request for the rest of the blob.
async fn fetch_attempt(
    client: &RegistryClient,
    writer: &mut BlobWriter,
    digest: &Digest,
    url: &str,
    what: &str,
    opts: &ResolveOptions,
    publisher: Option<&Publisher>,
) -> Result<(), SourceError> {
    let offset = writer.written();
    let mut response = client.get_from(url, None, offset).await?;
    let mut skip = offset;
    if offset > 0 && response.status() == StatusCode::PARTIAL_CONTENT {
        let range = response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !range.starts_with(&format!("bytes {offset}-")) {
            return Err(SourceError::Registry {
                url: url.to_string(),
                status: StatusCode::PARTIAL_CONTENT.as_u16(),
                message: format!("asked for bytes {offset}- but got the range {range:?}"),
            });
        }
        skip = 0;
    }
    let mut first_chunk = offset == 0;
    let mut unreported = 0u64;
    let report_received = |bytes: &mut u64| {
        if *bytes > 0 {
            opts.report(FetchEvent::Received {
                digest: digest.clone(),
                bytes: std::mem::take(bytes),
            });
        }
    };
    SpeedGuard::new(client.speed)
        .each_chunk(&mut response, url, |chunk| {
            // A registry that ignored the range repeats what is written.
            let repeated = skip.min(chunk.len() as u64);
            skip -= repeated;
            let chunk = &chunk[repeated as usize..];
            if chunk.is_empty() {
                return Ok(());
            }
            // Small buffered writes to the page cache: cheap enough to do in place.
            writer.write(chunk).map_err(|e| insert_error(e, what))?;
            if let Some(publisher) = publisher {
                publisher.grow(chunk.len() as u64);
            }
            if std::mem::take(&mut first_chunk) {
                crate::store::test_pause("downloading");
            }
            unreported += chunk.len() as u64;
            if unreported >= RECEIVED_STEP {
                report_received(&mut unreported);
            }
            Ok(())
        })
        .await?;
    report_received(&mut unreported);
    Ok(())
}

/// Verifies the written blob and renames it into the cache, on a blocking
/// thread that [`RegistryClient::commits`] accounts for.
pub(super) async fn commit(
    client: &RegistryClient,
    writer: BlobWriter,
    what: &str,
) -> Result<PathBuf, SourceError> {
    let in_flight = client.commits.clone().read_owned().await;
    tokio::task::spawn_blocking(move || {
        let _in_flight = in_flight;
        writer.commit()
    })
    .await
    .map_err(|e| SourceError::io("storing a blob")(std::io::Error::other(e)))?
    .map_err(|e| insert_error(e, what))
}
