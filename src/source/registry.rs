//! Pulling from an OCI distribution registry: bearer-token auth (anonymous, or with
//! credentials sent to the token server), HTTP basic auth, manifests (OCI, docker
//! schema 2, indexes), blobs downloaded concurrently into the cache, and non-image
//! artifacts ([`fetch_artifact`]).
//!
//! Credentials go only to the registry they were looked up for and to the token
//! realm its challenge names; they are never logged (their `Debug` is redacted).
//!
//! Written directly on reqwest rather than through oci-client: oci-client drops the
//! status and `Retry-After` of a 429, never checks descriptor sizes, and verifies blob
//! digests only after the bytes are written. reqwest's redirect policy already strips
//! `Authorization` when a redirect leaves the registry's host (blob storage on a CDN).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock, Semaphore};

use super::manifest::{self, Descriptor, Manifest};
use super::{
    check_layer_count, BlobLocation, LayerRef, ProgressEvent, ResolveOptions, ResolvedImage,
    SourceError,
};
use crate::cache::{BlobCache, InsertError};
use crate::reference::{Digest, Reference};

/// Requests answered 429 are retried at most this many times in all…
const MAX_ATTEMPTS: u32 = 5;
/// …and never wait longer than this in total.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
/// A download broken off mid-body restarts from scratch this many times.
const MAX_DOWNLOAD_ATTEMPTS: u32 = 3;
/// Manifests larger than this are refused (the spec suggests 4 MiB).
const MAX_MANIFEST_BYTES: usize = 16 << 20;
/// Indexes nested deeper than this are refused.
const MAX_INDEX_DEPTH: usize = 4;
/// Token lifetime when the token server does not say (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Refresh tokens this long before they expire.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(5);

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
    check_layer_count(image.layers.len(), &config, &what)?;

    let paths = download_layers(&client, &cache, &image.layers, opts, &what).await?;
    let layers = image
        .layers
        .iter()
        .zip(&config.diff_ids)
        .zip(paths)
        .enumerate()
        .map(|(index, ((desc, diff_id), path))| {
            Ok(LayerRef {
                index,
                digest: Some(desc.digest(&what)?),
                size: Some(desc.size),
                diff_id: Some(diff_id.clone()),
                media_type: desc.media_type.clone(),
                blob: BlobLocation::File(path),
            })
        })
        .collect::<Result<Vec<_>, SourceError>>()?;
    Ok(ResolvedImage {
        reference: what,
        manifest_digest,
        platform: chosen_platform.or_else(|| config.platform.clone()),
        config,
        layers,
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

/// Downloads every layer, `max_concurrent_downloads` at a time, in manifest order.
async fn download_layers(
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

/// Fetches a manifest by tag or digest. Manifests fetched by digest come from (and go
/// to) the blob cache, so a fully cached image resolved by digest needs no network.
async fn fetch_manifest(
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
async fn fetch_manifest_bytes(
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

fn insert_error(error: InsertError, what: &str) -> SourceError {
    match error {
        InsertError::Io { context, source } => SourceError::Io { context, source },
        other => SourceError::Corrupt {
            what: what.to_string(),
            reason: other.to_string(),
        },
    }
}

/// Makes the blob of `desc` present in the cache and returns its path. Cached blobs
/// are used without asking the registry; otherwise the per-blob lock makes sure only
/// one puller (thread or process) downloads it.
async fn ensure_blob(
    client: &RegistryClient,
    cache: &BlobCache,
    desc: &Descriptor,
    opts: &ResolveOptions,
    what: &str,
) -> Result<PathBuf, SourceError> {
    let digest = desc.digest(what)?;
    let cached = |cache: &BlobCache| {
        cache.get(&digest, Some(desc.size)).inspect(|_| {
            opts.report(ProgressEvent::Cached {
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
    let url = format!("{}/blobs/{digest}", client.base);
    let mut attempt = 1;
    loop {
        match download(client, cache, &digest, desc.size, &url, what).await {
            Err(SourceError::Http { source, .. })
                if attempt < MAX_DOWNLOAD_ATTEMPTS && !source.is_status() =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e),
            Ok(path) => {
                opts.report(ProgressEvent::Downloaded {
                    digest: digest.clone(),
                    size: desc.size,
                });
                return Ok(path);
            }
        }
    }
}

/// One download attempt into a temp file; only a verified blob is renamed into place.
async fn download(
    client: &RegistryClient,
    cache: &BlobCache,
    digest: &Digest,
    size: u64,
    url: &str,
    what: &str,
) -> Result<PathBuf, SourceError> {
    let mut response = client.get(url, None).await?;
    let mut writer = cache
        .writer(digest, size)
        .map_err(|e| insert_error(e, what))?;
    let mut first_chunk = true;
    SpeedGuard::new(client.speed)
        .each_chunk(&mut response, url, |chunk| {
            // Small buffered writes to the page cache: cheap enough to do in place.
            writer.write(chunk).map_err(|e| insert_error(e, what))?;
            if std::mem::take(&mut first_chunk) {
                crate::store::test_pause("downloading");
            }
            Ok(())
        })
        .await?;
    let in_flight = client.commits.clone().read_owned().await;
    tokio::task::spawn_blocking(move || {
        let _in_flight = in_flight;
        writer.commit()
    })
    .await
    .map_err(|e| SourceError::io("storing a blob")(std::io::Error::other(e)))?
    .map_err(|e| insert_error(e, what))
}

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
struct SpeedGuard {
    limit: Option<SpeedLimit>,
    window_start: tokio::time::Instant,
    bytes: u64,
}

impl SpeedGuard {
    fn new(limit: Option<SpeedLimit>) -> Self {
        SpeedGuard {
            limit,
            window_start: tokio::time::Instant::now(),
            bytes: 0,
        }
    }

    /// Passes every chunk of the body to `consume`.
    async fn each_chunk(
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

/// A bearer token and when to stop using it.
#[derive(Clone)]
struct Token {
    value: String,
    expires_at: Instant,
}

#[derive(Default)]
struct AuthState {
    token: Option<Token>,
    /// The registry asked for HTTP basic auth: send the credentials on every request.
    basic: bool,
    /// Bumped on every new token, so concurrent 401s fetch only one.
    generation: u64,
}

/// A registry connection scoped to one repository.
struct RegistryClient {
    http: reqwest::Client,
    /// `{scheme}://{host}/v2/{repository}`.
    base: String,
    registry: String,
    repository: String,
    credentials: Option<Credentials>,
    /// The slowest body read tolerated.
    speed: Option<SpeedLimit>,
    auth: Mutex<AuthState>,
    /// Held (shared) by every blob commit running on a blocking thread.
    commits: Arc<RwLock<()>>,
}

impl RegistryClient {
    fn new(reference: &Reference, opts: &ResolveOptions) -> Result<Self, SourceError> {
        // reqwest is built without a default crypto provider; ring is the light one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let insecure = reference.is_loopback()
            || opts
                .insecure_registries
                .iter()
                .any(|r| r == reference.registry() || r == reference.api_host());
        let scheme = if insecure { "http" } else { "https" };
        let base = format!(
            "{scheme}://{}/v2/{}",
            reference.api_host(),
            reference.repository()
        );
        let http = reqwest::Client::builder()
            .user_agent(concat!("banger/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| SourceError::Http {
                url: base.clone(),
                source,
            })?;
        let credentials = opts
            .credentials
            .as_ref()
            .and_then(|lookup| lookup(reference.registry()));
        Ok(RegistryClient {
            http,
            base,
            registry: reference.registry().to_string(),
            repository: reference.repository().to_string(),
            credentials,
            speed: opts.min_speed,
            auth: Mutex::new(AuthState::default()),
            commits: Arc::new(RwLock::new(())),
        })
    }

    /// GET with auth, one token refresh on 401, and bounded 429 retries. Non-success
    /// answers become errors carrying the registry's message.
    async fn get(&self, url: &str, accept: Option<&str>) -> Result<Response, SourceError> {
        let http_error = |source| SourceError::Http {
            url: url.to_string(),
            source,
        };
        let mut attempts = 0;
        let mut waited = Duration::ZERO;
        let mut reauthenticated = false;
        loop {
            attempts += 1;
            let (token, basic, generation) = {
                let state = self.auth.lock().await;
                let live = state
                    .token
                    .clone()
                    .filter(|t| t.expires_at > Instant::now());
                (live, state.basic, state.generation)
            };
            let mut request = self.http.get(url);
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if let Some(token) = &token {
                request = request.bearer_auth(&token.value);
            } else if let (true, Some(c)) = (basic, &self.credentials) {
                request = request.basic_auth(&c.username, Some(&c.password));
            }
            let response = request.send().await.map_err(http_error)?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            match status {
                StatusCode::UNAUTHORIZED if !reauthenticated => {
                    let challenge = response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    self.authenticate(&challenge, generation).await?;
                    reauthenticated = true;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(SourceError::AuthRequired {
                        registry: self.registry.clone(),
                        detail: registry_message(
                            status,
                            &response.bytes().await.unwrap_or_default(),
                        ),
                    })
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(response.headers())
                        .unwrap_or(Duration::from_secs(1 << attempts.min(4)));
                    if attempts >= MAX_ATTEMPTS || waited + wait > MAX_RATE_LIMIT_WAIT {
                        return Err(SourceError::TooManyRequests {
                            url: url.to_string(),
                            attempts,
                        });
                    }
                    waited += wait;
                    tokio::time::sleep(wait).await;
                }
                _ => {
                    let body = response.bytes().await.unwrap_or_default();
                    return Err(SourceError::Registry {
                        url: url.to_string(),
                        status: status.as_u16(),
                        message: registry_message(status, &body),
                    });
                }
            }
        }
    }

    /// Answers a 401 challenge: a basic challenge with credentials switches to basic
    /// auth; a bearer challenge fetches a pull token (presenting the credentials, if
    /// any, to the token server), unless another task already did since
    /// `seen_generation`.
    async fn authenticate(&self, challenge: &str, seen_generation: u64) -> Result<(), SourceError> {
        let mut state = self.auth.lock().await;
        if state.generation != seen_generation && (state.token.is_some() || state.basic) {
            return Ok(());
        }
        let auth_required = |detail: String| SourceError::AuthRequired {
            registry: self.registry.clone(),
            detail,
        };
        let Some((scheme, params)) = parse_challenge(challenge) else {
            return Err(auth_required(format!(
                "401 with an unusable challenge {challenge:?}"
            )));
        };
        if scheme.eq_ignore_ascii_case("basic") && self.credentials.is_some() {
            state.basic = true;
            state.generation += 1;
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(auth_required(format!(
                "it asks for {scheme} credentials and none were given"
            )));
        }
        let realm = params.get("realm").ok_or_else(|| {
            auth_required(format!("bearer challenge without a realm: {challenge:?}"))
        })?;
        let mut url = Url::parse(realm)
            .map_err(|e| auth_required(format!("bad token realm {realm:?}: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                query.append_pair("service", service);
            }
            let default_scope = format!("repository:{}:pull", self.repository);
            query.append_pair("scope", params.get("scope").unwrap_or(&default_scope));
        }
        let url_text = url.to_string();
        let mut request = self.http.get(url);
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        let response = request.send().await.map_err(|source| SourceError::Http {
            url: url_text.clone(),
            source,
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|source| SourceError::Http {
            url: url_text.clone(),
            source,
        })?;
        if !status.is_success() {
            return Err(auth_required(format!(
                "the token server at {url_text} answered {status}: {}",
                registry_message(status, &body)
            )));
        }
        let reply: TokenReply = serde_json::from_slice(&body)
            .map_err(|e| auth_required(format!("unreadable token from {url_text}: {e}")))?;
        let value = reply
            .token
            .or(reply.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                auth_required(format!("the token server at {url_text} sent no token"))
            })?;
        let lifetime = reply
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let lifetime = lifetime - TOKEN_EXPIRY_MARGIN.min(lifetime / 2);
        state.token = Some(Token {
            value,
            expires_at: Instant::now() + lifetime,
        });
        state.generation += 1;
        Ok(())
    }
}

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// `Retry-After` in seconds (the HTTP-date form falls back to our own backoff).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The registry's own explanation: the distribution error envelope if there is one,
/// else the start of the body, else the status text.
fn registry_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
        let parts: Vec<String> = envelope
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (true, _) => e.message.clone(),
                (false, true) => e.code.clone(),
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string()
    } else {
        text.chars().take(500).collect()
    }
}

/// Parses `Bearer realm="…",service=…` into the scheme and its parameters; values may
/// be quoted (with `\` escapes) or bare tokens.
fn parse_challenge(header: &str) -> Option<(String, HashMap<String, String>)> {
    let header = header.trim();
    let (scheme, mut rest) = match header.split_once(char::is_whitespace) {
        Some((scheme, rest)) => (scheme, rest),
        None if !header.is_empty() => (header, ""),
        None => return None,
    };
    let mut params = HashMap::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let value;
        if let Some(quoted) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            value = out;
            rest = &quoted[end?..];
        } else {
            let end = after.find(',').unwrap_or(after.len());
            value = after[..end].trim().to_string();
            rest = &after[end..];
        }
        params.insert(key, value);
    }
    Some((scheme.to_string(), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_40_challenges_quoted_and_unquoted() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(scheme, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (_, p) = parse_challenge(
            "bearer realm=http://127.0.0.1:1/t, Service=reg,scope=repository:x:pull",
        )
        .unwrap();
        assert_eq!(p["realm"], "http://127.0.0.1:1/t");
        assert_eq!(p["service"], "reg");
        assert_eq!(p["scope"], "repository:x:pull");
        let (_, p) = parse_challenge(r#"Bearer realm="a\"b", service = "s""#).unwrap();
        assert_eq!((p["realm"].as_str(), p["service"].as_str()), ("a\"b", "s"));
        assert!(parse_challenge("").is_none());
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
    }

    #[test]
    fn case_42_registry_messages() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            registry_message(StatusCode::NOT_FOUND, body),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(
            registry_message(StatusCode::BAD_GATEWAY, b" upstream down \n"),
            "upstream down"
        );
        assert_eq!(
            registry_message(StatusCode::BAD_GATEWAY, b""),
            "Bad Gateway"
        );
    }
}
