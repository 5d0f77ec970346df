//! Where images come from (a registry, an OCI layout, a `docker save` archive or a
//! plain rootfs tar) and resolving one into a config plus verified layer streams.

pub mod docker_archive;
pub mod manifest;
pub mod oci_layout;
pub mod registry;
pub mod tar_file;

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;

use crate::layer::{self, VerifyingReader};
use crate::platform::Platform;
use crate::reference::{Digest, Reference, ReferenceError};

/// An image source, written skopeo-style on the command line.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// `alpine`, `docker://ghcr.io/a/b:tag`: pulled from a registry.
    Registry(Reference),
    /// `oci:DIR[:TAG]`: an OCI image layout on disk.
    OciLayout {
        /// The layout directory (holds `oci-layout` and `index.json`).
        dir: PathBuf,
        /// Selects the index entry annotated `org.opencontainers.image.ref.name`.
        tag: Option<String>,
    },
    /// `docker-archive:FILE`: a `docker save` tarball, read in place.
    DockerArchive(PathBuf),
    /// `tar:FILE` or `tar:-`: one rootfs tar (plain, gzip or zstd), no config.
    Tar(TarInput),
}

/// Where a `tar:` source's bytes come from.
#[derive(Debug, Clone)]
pub enum TarInput {
    /// A file.
    Path(PathBuf),
    /// Standard input (`tar:-`); can be opened once.
    Stdin,
    /// An injected reader (tests, embedding); can be opened once.
    Reader(OneShotReader),
}

/// A reader that can be taken exactly once, shareable between clones.
#[derive(Clone)]
pub struct OneShotReader(Arc<Mutex<Option<Box<dyn Read + Send>>>>);

impl OneShotReader {
    /// Wraps `reader`.
    pub fn new(reader: impl Read + Send + 'static) -> Self {
        OneShotReader(Arc::new(Mutex::new(Some(Box::new(reader)))))
    }

    fn take(&self) -> Option<Box<dyn Read + Send>> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

impl fmt::Debug for OneShotReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneShotReader")
    }
}

impl FromStr for ImageSource {
    type Err = SourceError;

    /// Parses `docker://REF`, `oci:DIR[:TAG]`, `docker-archive:FILE`, `tar:FILE`,
    /// `tar:-`, or a bare registry reference such as `alpine`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| SourceError::InvalidSource {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = s.strip_prefix("docker://") {
            return Ok(ImageSource::Registry(rest.parse()?));
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            // As skopeo: the path ends at the first ':'.
            let (dir, tag) = match rest.split_once(':') {
                Some((dir, tag)) => (dir, Some(tag.to_string())),
                None => (rest, None),
            };
            if dir.is_empty() {
                return Err(bad("write oci:DIR or oci:DIR:TAG"));
            }
            if tag.as_deref() == Some("") {
                return Err(bad("the tag after oci:DIR: is empty"));
            }
            return Ok(ImageSource::OciLayout {
                dir: dir.into(),
                tag,
            });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            if rest.is_empty() {
                return Err(bad("write docker-archive:FILE"));
            }
            return Ok(ImageSource::DockerArchive(rest.into()));
        }
        if let Some(rest) = s.strip_prefix("tar:") {
            return match rest {
                "" => Err(bad("write tar:FILE, or tar:- for standard input")),
                "-" => Ok(ImageSource::Tar(TarInput::Stdin)),
                path => Ok(ImageSource::Tar(TarInput::Path(path.into()))),
            };
        }
        if let Some((transport, _)) = s.split_once(':') {
            if [
                "dir",
                "containers-storage",
                "docker-daemon",
                "oci-archive",
                "sif",
            ]
            .contains(&transport)
            {
                return Err(bad(
                    "unsupported transport; use docker://, oci:, docker-archive: or tar:",
                ));
            }
        }
        Ok(ImageSource::Registry(s.parse()?))
    }
}

/// Called as blobs become available, e.g. to draw progress.
pub type FetchProgressFn = Arc<dyn Fn(FetchEvent) + Send + Sync>;

/// What happened to one blob during [`resolve`]. Writing the image reports
/// its own events ([`crate::pipeline::ProgressEvent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    /// Found in the cache; nothing downloaded.
    Cached {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// Downloaded, verified and stored.
    Downloaded {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
}

/// How to resolve a source.
#[derive(Clone)]
pub struct ResolveOptions {
    /// The platform to pick from multi-platform images.
    pub platform: Platform,
    /// Registries (`host[:port]`) to reach over plain HTTP; loopback always is.
    pub insecure_registries: Vec<String>,
    /// Cache root; blobs go to `<cache_dir>/oci/blobs/sha256/`.
    pub cache_dir: PathBuf,
    /// Layers downloaded at once.
    pub max_concurrent_downloads: usize,
    /// Told of each blob found in the cache or downloaded.
    pub progress: Option<FetchProgressFn>,
    /// Looks up credentials for a registry host; `None` pulls anonymously.
    pub credentials: Option<registry::CredentialsFn>,
    /// Registry transfers slower than this fail; `None` waits for any speed.
    pub min_speed: Option<registry::SpeedLimit>,
}

impl ResolveOptions {
    /// linux/amd64, no insecure registries, 3 concurrent downloads, the default
    /// speed limit, into `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> Self {
        ResolveOptions {
            platform: Platform::default(),
            insecure_registries: Vec::new(),
            cache_dir,
            max_concurrent_downloads: 3,
            progress: None,
            credentials: None,
            min_speed: Some(registry::SpeedLimit::default()),
        }
    }

    /// Passes `event` to the progress hook, if there is one.
    pub fn report(&self, event: FetchEvent) {
        if let Some(progress) = &self.progress {
            progress(event);
        }
    }
}

impl Default for ResolveOptions {
    fn default() -> Self {
        Self::new(default_cache_dir())
    }
}

impl fmt::Debug for ResolveOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolveOptions")
            .field("platform", &self.platform)
            .field("insecure_registries", &self.insecure_registries)
            .field("cache_dir", &self.cache_dir)
            .field("max_concurrent_downloads", &self.max_concurrent_downloads)
            .field("progress", &self.progress.is_some())
            .field("credentials", &self.credentials.is_some())
            .field("min_speed", &self.min_speed)
            .finish()
    }
}

/// `$BANGER_CACHE_DIR`, else `$XDG_CACHE_HOME/banger`, else `~/.cache/banger`.
pub fn default_cache_dir() -> PathBuf {
    let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = nonempty("BANGER_CACHE_DIR") {
        return dir.into();
    }
    if let Some(dir) = nonempty("XDG_CACHE_HOME") {
        return Path::new(&dir).join("banger");
    }
    match nonempty("HOME") {
        Some(home) => Path::new(&home).join(".cache").join("banger"),
        None => std::env::temp_dir().join("banger-cache"),
    }
}

/// What the image config says (the parts banger uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// RFC 3339 creation time, if recorded.
    pub created: Option<String>,
    /// The platform the config declares.
    pub platform: Option<Platform>,
    /// Digests of the uncompressed layer tars, lowest first.
    pub diff_ids: Vec<Digest>,
    /// What the image runs.
    pub runtime: RuntimeConfig,
}

/// The run-time part of an image config: the workload banger's init starts
/// and what `banger image show` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuntimeConfig {
    /// Entrypoint argv.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Default arguments (or the command, without an entrypoint).
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `KEY=value` environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `user[:group]`, names or numbers.
    #[serde(default)]
    pub user: Option<String>,
    /// Ports the image declares, e.g. `80/tcp`.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
}

/// A resolved image: its config and layers, every blob available locally.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// What was resolved, canonical (e.g. `docker.io/library/alpine:latest`, `oci:DIR:TAG`).
    pub reference: String,
    /// Digest of the top-level manifest or index, where there is one.
    pub manifest_digest: Option<Digest>,
    /// The platform chosen from an index, or declared by the config.
    pub platform: Option<Platform>,
    /// The image config.
    pub config: ImageConfig,
    /// The layers, lowest first.
    pub layers: Vec<LayerRef>,
    /// The blob-cache entries it was resolved from (the manifest chain, the
    /// config and the layers): a registry image's, empty for local sources,
    /// whose blobs stay where they are.
    pub cache_blobs: Vec<Digest>,
}

/// Where a layer blob's bytes are.
#[derive(Debug, Clone)]
pub enum BlobLocation {
    /// A whole file (cached blob, OCI layout blob or `tar:` file).
    File(PathBuf),
    /// A member of a tar archive, read in place.
    Member {
        /// The archive.
        archive: PathBuf,
        /// Byte offset of the member's data.
        offset: u64,
        /// Length of the member's data.
        len: u64,
    },
    /// Standard input.
    Stdin,
    /// An injected one-shot reader.
    Reader(OneShotReader),
}

/// Standard input holds one stream per process; a second open would read garbage.
static STDIN_TAKEN: AtomicBool = AtomicBool::new(false);

/// One layer of a resolved image.
#[derive(Debug, Clone)]
pub struct LayerRef {
    /// Position, 0 = lowest.
    pub index: usize,
    /// Digest of the blob as stored (compressed), when known.
    pub digest: Option<Digest>,
    /// Expected size of the stored blob, when known.
    pub size: Option<u64>,
    /// Digest of the uncompressed tar, when known.
    pub diff_id: Option<Digest>,
    /// The descriptor's media type (informational: compression is sniffed).
    pub media_type: String,
    /// Where the bytes are.
    pub blob: BlobLocation,
}

impl LayerRef {
    /// `layer 2 (sha256:abcdef012345)`, for messages.
    pub fn name(&self) -> String {
        match self.digest.as_ref().or(self.diff_id.as_ref()) {
            Some(digest) => format!("layer {} ({})", self.index, digest.short()),
            None => format!("layer {}", self.index),
        }
    }

    /// The decompressed tar stream. The stored blob's digest and size are verified as
    /// it is read, and the tar's diff_id at EOF; a mismatch is an `InvalidData` error.
    pub fn open(&self) -> Result<Box<dyn Read + Send>, SourceError> {
        Ok(layer::verify_diff_id(
            self.open_unverified_tar()?,
            self.diff_id.clone(),
            &self.name(),
        ))
    }

    /// The decompressed tar stream with the stored blob verified, but not the
    /// tar's diff_id: the caller checks that (with [`layer::verify_diff_id`]),
    /// on another thread than the decompression if it likes.
    pub fn open_unverified_tar(&self) -> Result<Box<dyn Read + Send>, SourceError> {
        let name = self.name();
        let io_err = |context: String| move |source| SourceError::Io { context, source };
        let raw: Box<dyn Read + Send> = match &self.blob {
            BlobLocation::File(path) => Box::new(
                File::open(path).map_err(io_err(format!("{name}: opening {}", path.display())))?,
            ),
            BlobLocation::Member {
                archive,
                offset,
                len,
            } => {
                let mut file = File::open(archive)
                    .map_err(io_err(format!("{name}: opening {}", archive.display())))?;
                file.seek(SeekFrom::Start(*offset))
                    .map_err(io_err(format!("{name}: seeking in {}", archive.display())))?;
                Box::new(file.take(*len))
            }
            BlobLocation::Stdin => {
                if STDIN_TAKEN.swap(true, Ordering::SeqCst) {
                    return Err(SourceError::AlreadyConsumed { what: name });
                }
                Box::new(io::stdin())
            }
            BlobLocation::Reader(reader) => reader
                .take()
                .ok_or_else(|| SourceError::AlreadyConsumed { what: name.clone() })?,
        };
        let raw: Box<dyn Read + Send> = match &self.digest {
            Some(digest) => Box::new(VerifyingReader::new(
                raw,
                digest.clone(),
                self.size,
                format!("{name}: stored blob"),
            )),
            None => raw,
        };
        layer::decoder(raw, &name).map_err(io_err(format!("{name}: reading")))
    }
}

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
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
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
        let context = context.into();
        move |source| SourceError::Io { context, source }
    }
}

/// Resolves `source` into its config and layers. Registry blobs are downloaded into
/// the cache first (concurrently, each verified for size and sha256); local sources
/// are read in place and verified as they are streamed.
pub async fn resolve(
    source: &ImageSource,
    opts: &ResolveOptions,
) -> Result<ResolvedImage, SourceError> {
    match source {
        ImageSource::Registry(reference) => registry::resolve(reference, opts).await,
        ImageSource::OciLayout { dir, tag } => {
            let (dir, tag, platform) = (dir.clone(), tag.clone(), opts.platform.clone());
            blocking(move || oci_layout::resolve(&dir, tag.as_deref(), &platform)).await
        }
        ImageSource::DockerArchive(path) => {
            let path = path.clone();
            blocking(move || docker_archive::resolve(&path)).await
        }
        ImageSource::Tar(input) => Ok(tar_file::resolve(input)),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SourceError::io("resolving a local image")(io::Error::other(e)))?
}

/// Pairs manifest layers with config diff_ids, which must agree in number.
pub(crate) fn check_layer_count(
    layers: usize,
    config: &ImageConfig,
    what: &str,
) -> Result<(), SourceError> {
    if layers != config.diff_ids.len() {
        return Err(SourceError::InvalidManifest {
            what: what.to_string(),
            reason: format!(
                "the manifest lists {layers} layers but the config has {} diff_ids",
                config.diff_ids.len()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_strings() {
        let parse = |s: &str| {
            s.parse::<ImageSource>()
                .unwrap_or_else(|e| panic!("{s}: {e}"))
        };
        assert!(
            matches!(parse("alpine"), ImageSource::Registry(r) if r.to_string() == "docker.io/library/alpine:latest")
        );
        assert!(
            matches!(parse("docker://localhost:5000/x:1"), ImageSource::Registry(r) if r.registry() == "localhost:5000")
        );
        assert!(
            matches!(parse("oci:/tmp/l:v1"), ImageSource::OciLayout { dir, tag } if dir == Path::new("/tmp/l") && tag.as_deref() == Some("v1"))
        );
        assert!(matches!(
            parse("oci:l"),
            ImageSource::OciLayout { tag: None, .. }
        ));
        assert!(
            matches!(parse("docker-archive:a.tar"), ImageSource::DockerArchive(p) if p == Path::new("a.tar"))
        );
        assert!(matches!(parse("tar:-"), ImageSource::Tar(TarInput::Stdin)));
        assert!(matches!(
            parse("tar:r.tar.zst"),
            ImageSource::Tar(TarInput::Path(_))
        ));
        for bad in [
            "tar:",
            "oci:",
            "oci:d:",
            "docker-archive:",
            "dir:/x",
            "docker://Up/X",
        ] {
            assert!(bad.parse::<ImageSource>().is_err(), "{bad}");
        }
    }
}
