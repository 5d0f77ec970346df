//! Where images come from (a registry, an OCI layout, a `docker save` archive or a
//! plain rootfs tar) and resolving one into a config plus verified layer streams.

pub mod docker_archive;
mod error;
pub mod growing;
mod image_source;
mod layer_ref;
pub mod manifest;
pub mod oci_layout;
pub mod registry;
pub mod tar_file;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::platform::Platform;
use crate::reference::Digest;
pub use error::SourceError;
pub use image_source::{ImageSource, OneShotReader, TarInput};
pub use layer_ref::{BlobLocation, LayerRef};

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
    /// A download started (an attempt broken off is resumed, not started again).
    Downloading {
        /// The blob.
        digest: Digest,
        /// Its size, as its descriptor gives it.
        size: u64,
    },
    /// More of a download arrived.
    Received {
        /// The blob.
        digest: Digest,
        /// Bytes since the last report of this download.
        bytes: u64,
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
    /// Told of each blob found in the cache, and of each download as it goes.
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

/// A resolved image: its config and layers, every blob available locally
/// or (from [`resolve_streaming`]) on its way into the cache.
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

/// [`resolve`], except that registry layers not cached yet are still
/// downloading when it returns ([`BlobLocation::Downloading`]): the image
/// can be written while they arrive.
pub async fn resolve_streaming(
    source: &ImageSource,
    opts: &ResolveOptions,
) -> Result<ResolvedImage, SourceError> {
    match source {
        ImageSource::Registry(reference) => registry::resolve_streaming(reference, opts).await,
        _ => resolve(source, opts).await,
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
