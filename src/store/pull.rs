//! `banger image pull`: a catalog name or any image source in, a published image
//! directory (rootfs plus kernel) and its record out.

use std::path::{Path, PathBuf};

use super::kernel;
use crate::cache::BlobCache;
use crate::catalog::Catalog;
use crate::flatten::Limits;
use crate::guest::modules::{ModuleSet, ModuleSource, ModulesPlan};
use crate::names::{derive_name, derive_name_from_path, validate_name};
use crate::platform::Platform;
use crate::reference::Digest;
use crate::rootfs::{write_rootfs, GuestSettings, RootfsRequest};
use crate::source::manifest::{self, Manifest};
use crate::source::{self, ImageSource, ResolveOptions, ResolvedImage, TarInput};

use super::layout::unique_suffix;
use super::{io_err, now, test_pause, ImageRecord, Kind, Store, StoreError};

/// File name of the root filesystem in an image directory.
pub const ROOTFS_FILE: &str = "rootfs.ext4";

/// What to pull.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// A catalog name, or an image source (`docker.io/library/debian:bookworm`,
    /// `oci:DIR:TAG`, …).
    pub reference: String,
    /// Store name; derived from the reference when `None`.
    pub name: Option<String>,
    /// Kernel to install; a catalog entry's kernel when `None`.
    pub kernel_ref: Option<String>,
    /// Image size in bytes (default 1.5 × content, at least 1 GiB).
    pub size: Option<u64>,
    /// Registry, platform, cache and credential settings.
    pub resolve: ResolveOptions,
    /// What banger adds to the guest; `None` leaves the image as the layers
    /// say. The kernel's modules are added to it here.
    pub guest: Option<GuestSettings>,
    /// Which of the kernel's modules to write (`None`: none).
    pub modules: Option<ModuleSet>,
    /// Replace an existing image of the same name.
    pub force: bool,
    /// Limits against tar bombs.
    pub limits: Limits,
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<i64>,
}

/// What was pulled.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The record written.
    pub record: ImageRecord,
    /// The published directory.
    pub dir: PathBuf,
    /// Warnings from preparing the guest.
    pub warnings: Vec<String>,
}

/// Pulls `request` into the store under `state_dir`.
pub async fn pull_image(state_dir: &Path, request: PullRequest) -> Result<PullReport, StoreError> {
    let catalog = Catalog::load()?;
    let entry = catalog.get(&request.reference);
    let source_text = entry.map_or(request.reference.as_str(), |e| e.source.as_str());
    let source: ImageSource = source_text.parse()?;
    let name = match (&request.name, entry) {
        (Some(name), _) => name.clone(),
        (None, Some(_)) => request.reference.clone(),
        (None, None) => default_name(&source)?,
    };
    validate_name(&name)?;
    let kernel_ref = request
        .kernel_ref
        .clone()
        .or_else(|| entry.and_then(|e| e.kernel.clone()));

    let mut store = Store::open_locked(state_dir)?;
    store.check_free(Kind::Image, &name, request.force)?;
    let kernel = match &kernel_ref {
        Some(r) => Some(kernel::ensure_kernel(&mut store, r, &request.resolve).await?),
        None => None,
    };
    let image = source::resolve(&source, &request.resolve).await?;
    let staging = store.stage(Kind::Image, &name)?;
    test_pause("staging");

    let rootfs = staging.path().join(ROOTFS_FILE);
    let mut guest = request.guest.clone();
    if let (Some(guest), Some(kernel), Some(set)) = (&mut guest, &kernel, request.modules) {
        if kernel.modules {
            let dir = store.layout().entry_dir(Kind::Kernel, &kernel.name);
            guest.modules = Some(ModulesPlan {
                source: ModuleSource::Tarball(dir.join(kernel::MODULES_FILE)),
                set,
            });
        }
    }
    let rootfs_request = RootfsRequest {
        source: source.clone(),
        output: rootfs.clone(),
        size: request.size,
        resolve: request.resolve.clone(),
        guest,
        limits: request.limits.clone(),
        source_date_epoch: request.source_date_epoch,
    };
    let blobs = match &source {
        ImageSource::Registry(_) => cached_blobs(&request.resolve, &image),
        _ => Vec::new(),
    };
    let (image, guest) = tokio::task::spawn_blocking(move || {
        write_rootfs(image, &rootfs_request).map(|r| (r.image, r.guest))
    })
    .await
    .map_err(|e| io_err("writing the rootfs")(std::io::Error::other(e.to_string())))??;
    test_pause("written");
    if let Some(kernel) = &kernel {
        kernel::install_into(&store, kernel, staging.path())?;
    }
    let size = std::fs::metadata(&rootfs)
        .map_err(io_err(format!("reading {}", rootfs.display())))?
        .len();
    let record = ImageRecord {
        name: name.clone(),
        source: image.reference.clone(),
        manifest_digest: image.manifest_digest.as_ref().map(ToString::to_string),
        platform: image.platform.as_ref().map(Platform::to_string),
        kernel: kernel.map(|k| k.name),
        size,
        created: now(),
        managed: entry.is_some(),
        pull_id: unique_suffix(),
        blobs,
        config: Some(image.config.runtime.clone()),
        guest: guest.as_ref().map(|g| g.record.clone()),
    };
    store.publish_image(staging, &record)?;
    Ok(PullReport {
        dir: store.layout().entry_dir(Kind::Image, &name),
        record,
        warnings: guest.map(|g| g.warnings).unwrap_or_default(),
    })
}

/// The name an image gets when the user gives none.
pub fn default_name(source: &ImageSource) -> Result<String, StoreError> {
    let path_name = |p: &Path, tag: Option<&str>| derive_name_from_path(&p.to_string_lossy(), tag);
    Ok(match source {
        ImageSource::Registry(reference) => derive_name(reference),
        ImageSource::OciLayout { dir, tag } => path_name(dir, tag.as_deref()),
        ImageSource::DockerArchive(path) | ImageSource::Tar(TarInput::Path(path)) => {
            path_name(path, None)
        }
        ImageSource::Tar(_) => {
            return Err(crate::names::NameError {
                name: String::new(),
                reason: "an image read from standard input needs --name".to_string(),
            }
            .into())
        }
    })
}

/// Every cache blob a registry image was resolved from: the manifest chain from
/// the top-level digest down to the platform's manifest, the config and the layers.
fn cached_blobs(opts: &ResolveOptions, image: &ResolvedImage) -> Vec<String> {
    let mut blobs: Vec<Digest> = image
        .layers
        .iter()
        .filter_map(|l| l.digest.clone())
        .collect();
    if let (Ok(cache), Some(top)) = (BlobCache::open(&opts.cache_dir), &image.manifest_digest) {
        let mut next = Some(top.clone());
        let mut depth = 0;
        while let (Some(digest), true) = (next.take(), depth < 8) {
            depth += 1;
            let Some(bytes) = cache.get(&digest, None).and_then(|p| std::fs::read(p).ok()) else {
                break;
            };
            blobs.push(digest);
            match manifest::parse_manifest(&bytes, None, &image.reference) {
                Ok(Manifest::Index(index)) => {
                    next = manifest::select_platform(&index, &opts.platform, &image.reference)
                        .ok()
                        .and_then(|d| d.digest(&image.reference).ok());
                }
                Ok(Manifest::Image(m)) => blobs.extend(m.config.digest(&image.reference).ok()),
                Err(_) => {}
            }
        }
    }
    let mut text: Vec<String> = blobs.iter().map(ToString::to_string).collect();
    text.sort();
    text.dedup();
    text
}
