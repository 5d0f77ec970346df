//! Pulling from an OCI distribution registry: bearer-token auth (anonymous, or with
//! credentials sent to the token server), HTTP basic auth, manifests (OCI, docker
//! schema 2, indexes), blobs downloaded concurrently into the cache, and non-image
//! artifacts ([`fetch_artifact`]).
//!
//! One module a concern: `session` (the connection, auth and retries),
//! `manifests` (fetching and verifying manifests), `blobs` (downloading into
//! the cache), `stream` (layers read while they download) and `speed` (the
//! slowest transfer tolerated).
//!
//! Credentials go only to the registry they were looked up for and to the token
//! realm its challenge names; they are never logged (their `Debug` is redacted).
//!
//! Written directly on reqwest rather than through oci-client: oci-client drops the
//! status and `Retry-After` of a 429, never checks descriptor sizes, and verifies blob
//! digests only after the bytes are written. reqwest's redirect policy already strips
//! `Authorization` when a redirect leaves the registry's host (blob storage on a CDN).

mod blobs;
mod manifests;
mod session;
mod speed;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::manifest::{self, Descriptor, Manifest};
use super::{
    check_layer_count, BlobLocation, LayerRef, ResolveOptions, ResolvedImage, SourceError,
};
use crate::cache::BlobCache;
use crate::reference::{Digest, Reference};
use blobs::{download_layers, ensure_blob};
use manifests::{fetch_manifest, fetch_manifest_bytes};
use session::RegistryClient;
pub use speed::SpeedLimit;
use stream::start_layer_downloads;

/// Indexes nested deeper than this are refused.
const MAX_INDEX_DEPTH: usize = 4;

/// A username and password (or token used as a password) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Looks up credentials by registry host (`docker.io`, `ghcr.io`, `host:5000`).
pub type CredentialsFn = Arc<dyn Fn(&str) -> Option<Credentials> + Send + Sync>;

/// The blob cache and a client for `reference`'s registry: what every pull
/// starts from.
fn open_session(
    reference: &Reference,
    opts: &ResolveOptions,
) -> Result<(BlobCache, Arc<RegistryClient>), SourceError> {
    let cache = BlobCache::open(&opts.cache_dir).map_err(SourceError::io(format!(
        "opening the cache in {}",
        opts.cache_dir.display()
    )))?;
    Ok((cache, Arc::new(RegistryClient::new(reference, opts)?)))
}

/// Resolves `reference` and downloads its config and layers into the cache.
pub async fn resolve(
    reference: &Reference,
    opts: &ResolveOptions,
) -> Result<ResolvedImage, SourceError> {
    resolve_layers(reference, opts, Layers::Downloaded).await
}

/// Resolves `reference` and downloads its config into the cache, and
/// starts downloading the layers that are not cached yet: those come as
/// [`BlobLocation::Downloading`], readable while they arrive. Nothing waits
/// for those downloads but their readers (and
/// [`crate::source::growing::GrowingBlob::wait`]); dropping every handle on
/// one calls it off.
pub async fn resolve_streaming(
    reference: &Reference,
    opts: &ResolveOptions,
) -> Result<ResolvedImage, SourceError> {
    resolve_layers(reference, opts, Layers::Streaming).await
}

/// Whether resolving waits for the layers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layers {
    /// All are in the cache when resolving returns.
    Downloaded,
    /// Those not cached are still downloading.
    Streaming,
}

async fn resolve_layers(
    reference: &Reference,
    opts: &ResolveOptions,
    mode: Layers,
) -> Result<ResolvedImage, SourceError> {
    let (cache, client) = open_session(reference, opts)?;
    let what = reference.to_string();

    let expected = reference.digest().map(|d| (d.clone(), None));
    let (digest, mut current) = fetch_manifest(
        &client,
        &cache,
        &reference.manifest_reference(),
        expected,
        None,
        &what,
    )
    .await?;
    let mut cache_blobs = vec![digest.clone()];
    let manifest_digest = Some(digest);
    let mut chosen_platform = None;
    let mut depth = 0;
    let image = loop {
        match current {
            Manifest::Image(image) => break image,
            Manifest::Index(_) if depth >= MAX_INDEX_DEPTH => {
                return Err(SourceError::InvalidManifest {
                    what,
                    reason: format!("image indexes nested more than {MAX_INDEX_DEPTH} deep"),
                })
            }
            Manifest::Index(index) => {
                let entry = manifest::select_platform(&index, &opts.platform, &what)?;
                chosen_platform = entry.platform.clone().or(chosen_platform);
                let digest = entry.digest(&what)?;
                cache_blobs.push(digest.clone());
                let expected = Some((digest.clone(), Some(entry.size)));
                let media_type = Some(entry.media_type.clone()).filter(|m| !m.is_empty());
                current = fetch_manifest(
                    &client,
                    &cache,
                    &digest.to_string(),
                    expected,
                    media_type,
                    &what,
                )
                .await?
                .1;
                depth += 1;
            }
        }
    };

    let config_path = ensure_blob(
        &client,
        &cache,
        &image.config,
        opts,
        &format!("{what}: config"),
    )
    .await?;
    let config_bytes = tokio::fs::read(&config_path)
        .await
        .map_err(SourceError::io(format!(
            "reading {}",
            config_path.display()
        )))?;
    let config = manifest::parse_config(&config_bytes, &format!("{what}: config"))?;
    cache_blobs.push(image.config.digest(&what)?);
    check_layer_count(image.layers.len(), &config, &what)?;

    let locations = match mode {
        Layers::Downloaded => download_layers(&client, &cache, &image.layers, opts, &what)
            .await?
            .into_iter()
            .map(BlobLocation::File)
            .collect(),
        Layers::Streaming => start_layer_downloads(&client, &cache, &image.layers, opts, &what)?,
    };
    let layers = image
        .layers
        .iter()
        .zip(&config.diff_ids)
        .zip(locations)
        .enumerate()
        .map(|(index, ((desc, diff_id), blob))| {
            Ok(LayerRef {
                index,
                digest: Some(desc.digest(&what)?),
                size: Some(desc.size),
                diff_id: Some(diff_id.clone()),
                media_type: desc.media_type.clone(),
                blob,
            })
        })
        .collect::<Result<Vec<_>, SourceError>>()?;
    cache_blobs.extend(layers.iter().filter_map(|l| l.digest.clone()));
    Ok(ResolvedImage {
        reference: what,
        manifest_digest,
        platform: chosen_platform.or_else(|| config.platform.clone()),
        config,
        layers,
        cache_blobs,
    })
}

/// A non-image artifact (e.g. a kernel): its manifest and blobs, all in the cache.
#[derive(Debug, Clone)]
pub struct FetchedArtifact {
    /// Digest of the top-level manifest or index.
    pub manifest_digest: Digest,
    /// Every cached blob it consists of: manifests, config, layers.
    pub blobs: Vec<Digest>,
    /// The manifest's `artifactType`, else its config media type.
    pub artifact_type: String,
    /// The config descriptor and its cached file.
    pub config: (Descriptor, PathBuf),
    /// Each layer descriptor (its media type says what it is) and its cached file.
    pub layers: Vec<(Descriptor, PathBuf)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactManifest {
    #[serde(default)]
    artifact_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// Fetches an OCI artifact whose layers are not filesystem tars: the manifest (an
/// index is resolved for `opts.platform`), then its config and every layer into the
/// cache, each verified for size and digest. Layer media types are left to the caller.
pub async fn fetch_artifact(
    reference: &Reference,
    opts: &ResolveOptions,
) -> Result<FetchedArtifact, SourceError> {
    let (cache, client) = open_session(reference, opts)?;
    let what = reference.to_string();
    let expected = reference.digest().map(|d| (d.clone(), None));
    let (top, mut bytes, mut media_type) = fetch_manifest_bytes(
        &client,
        &cache,
        &reference.manifest_reference(),
        expected,
        &what,
    )
    .await?;
    let mut blobs = vec![top.clone()];
    for _ in 0..MAX_INDEX_DEPTH {
        let index = match manifest::parse_manifest(&bytes, media_type.as_deref(), &what) {
            Ok(Manifest::Index(index)) => index,
            _ => break,
        };
        let entry = manifest::select_platform(&index, &opts.platform, &what)?;
        let digest = entry.digest(&what)?;
        let expected = Some((digest.clone(), Some(entry.size)));
        let fetched =
            fetch_manifest_bytes(&client, &cache, &digest.to_string(), expected, &what).await?;
        blobs.push(fetched.0);
        (bytes, media_type) = (fetched.1, Some(entry.media_type.clone()));
    }
    let parsed: ArtifactManifest =
        serde_json::from_slice(&bytes).map_err(|e| SourceError::InvalidManifest {
            what: what.clone(),
            reason: format!("not an artifact manifest: {e}"),
        })?;
    let config_path = ensure_blob(
        &client,
        &cache,
        &parsed.config,
        opts,
        &format!("{what}: config"),
    )
    .await?;
    blobs.push(parsed.config.digest(&what)?);
    let paths = download_layers(&client, &cache, &parsed.layers, opts, &what).await?;
    for layer in &parsed.layers {
        blobs.push(layer.digest(&what)?);
    }
    Ok(FetchedArtifact {
        manifest_digest: top,
        blobs,
        artifact_type: parsed
            .artifact_type
            .unwrap_or_else(|| parsed.config.media_type.clone()),
        config: (parsed.config, config_path),
        layers: parsed.layers.into_iter().zip(paths).collect(),
    })
}
