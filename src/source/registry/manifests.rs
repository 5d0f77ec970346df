//! Manifests: fetched by tag or digest, verified against what the referrer
//! promised, size-limited, and kept in the blob cache.

use reqwest::Response;

use super::blobs::insert_error;
use super::session::RegistryClient;
use super::speed::{SpeedGuard, SpeedLimit};
use crate::cache::BlobCache;
use crate::reference::Digest;
use crate::source::manifest::{self, Manifest};
use crate::source::SourceError;

/// Manifests larger than this are refused (the spec suggests 4 MiB).
const MAX_MANIFEST_BYTES: usize = 16 << 20;

/// Fetches a manifest by tag or digest. Manifests fetched by digest come from (and go
/// to) the blob cache, so a fully cached image resolved by digest needs no network.
pub(super) async fn fetch_manifest(
    client: &RegistryClient,
    cache: &BlobCache,
    reference: &str,
    expected: Option<(Digest, Option<u64>)>,
    media_type: Option<String>,
    what: &str,
) -> Result<(Digest, Manifest), SourceError> {
    let (digest, bytes, content_type) =
        fetch_manifest_bytes(client, cache, reference, expected, what).await?;
    let parsed = manifest::parse_manifest(
        &bytes,
        content_type.as_deref().or(media_type.as_deref()),
        what,
    )?;
    Ok((digest, parsed))
}

/// The bytes of a manifest, its digest and the registry's `Content-Type` (`None`
/// when it came from the cache). Verified against `expected`, and cached.
pub(super) async fn fetch_manifest_bytes(
    client: &RegistryClient,
    cache: &BlobCache,
    reference: &str,
    expected: Option<(Digest, Option<u64>)>,
    what: &str,
) -> Result<(Digest, Vec<u8>, Option<String>), SourceError> {
    if let Some((digest, size)) = &expected {
        if let Some(path) = cache.get(digest, *size) {
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(SourceError::io(format!("reading {}", path.display())))?;
            if &Digest::of(&bytes) == digest {
                return Ok((digest.clone(), bytes, None));
            }
        }
    }
    let url = format!("{}/manifests/{reference}", client.base);
    let response = client.get(&url, Some(manifest::ACCEPTED_MANIFESTS)).await?;
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = read_limited(response, MAX_MANIFEST_BYTES, &url, client.speed).await?;
    let actual = Digest::of(&bytes);
    if let Some((digest, size)) = &expected {
        let size_ok = size.is_none_or(|s| s == bytes.len() as u64);
        if &actual != digest || !size_ok {
            return Err(SourceError::Corrupt {
                what: format!("{what}: manifest {digest}"),
                reason: format!(
                    "the registry sent {} bytes hashing to {actual}",
                    bytes.len()
                ),
            });
        }
    }
    if cache.get(&actual, Some(bytes.len() as u64)).is_none() {
        cache
            .insert(&actual, &bytes)
            .map_err(|e| insert_error(e, what))?;
    }
    Ok((actual, bytes, content_type))
}

/// The whole body, refused past `limit` bytes.
async fn read_limited(
    mut response: Response,
    limit: usize,
    url: &str,
    speed: Option<SpeedLimit>,
) -> Result<Vec<u8>, SourceError> {
    let mut bytes = Vec::new();
    SpeedGuard::new(speed)
        .each_chunk(&mut response, url, |chunk| {
            bytes.extend_from_slice(chunk);
            if bytes.len() > limit {
                return Err(SourceError::InvalidManifest {
                    what: url.to_string(),
                    reason: format!("larger than {limit} bytes"),
                });
            }
            Ok(())
        })
        .await?;
    Ok(bytes)
}
