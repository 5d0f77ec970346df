//! `banger image pull`: a catalog name or any image source in, a published image
//! directory (rootfs plus kernel) and its record out.

use std::path::{Path, PathBuf};

use super::kernel;
use crate::catalog::{Catalog, ImageEntry};
use crate::guest::modules::{ModuleSet, ModuleSource, ModulesPlan};
use crate::names::{derive_name, derive_name_from_path, validate_name};
use crate::pipeline::{self, Progress, WriteOptions};
use crate::platform::Platform;
use crate::source::{ImageSource, ResolveOptions, TarInput};

use super::layout::unique_suffix;
use super::{io_err, now, test_pause, ImageRecord, Kind, Store, StoreError};

/// File name of the root filesystem in an image directory.
pub const ROOTFS_FILE: &str = "rootfs.ext4";

/// What a pull's reference names: a catalog entry's source, or a source.
#[derive(Debug, Clone)]
pub struct PullSource {
    /// As the user wrote it.
    pub reference: String,
    /// The catalog entry it names, if it is a catalog name.
    pub entry: Option<ImageEntry>,
    /// Where the image comes from.
    pub source: ImageSource,
}

impl PullSource {
    /// Looks `reference` up: a catalog name (the catalog is loaded once, here),
    /// or else an image source (`docker.io/library/debian:bookworm`, `oci:DIR:TAG`, …).
    pub fn lookup(reference: &str) -> Result<Self, StoreError> {
        let entry = Catalog::load()?.get(reference).cloned();
        let source = entry
            .as_ref()
            .map_or(reference, |e| e.source.as_str())
            .parse()?;
        Ok(Self {
            reference: reference.to_owned(),
            entry,
            source,
        })
    }

    /// The registry host the image comes from (for credentials), if a registry.
    pub fn registry_host(&self) -> Option<&str> {
        match &self.source {
            ImageSource::Registry(reference) => Some(reference.registry()),
            _ => None,
        }
    }
}

/// What to pull.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// The image.
    pub image: PullSource,
    /// Store name; derived from the reference when `None`.
    pub name: Option<String>,
    /// Kernel to install; a catalog entry's kernel when `None`.
    pub kernel_ref: Option<String>,
    /// Replace an existing image of the same name.
    pub force: bool,
    /// Registry, platform, cache and credential settings, for the image and
    /// the kernel.
    pub resolve: ResolveOptions,
    /// How to write the image. The kernel's modules are added to its guest
    /// settings here.
    pub write: WriteOptions,
    /// Which of the kernel's modules to write (`None`: none).
    pub modules: Option<ModuleSet>,
    /// Where fetches (the kernel's too) and layers are reported.
    pub progress: Progress,
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
    let PullRequest {
        image: pulled,
        name,
        kernel_ref,
        force,
        resolve,
        mut write,
        modules,
        progress,
    } = request;
    let entry = pulled.entry.as_ref();
    let name = match (name, entry) {
        (Some(name), _) => name,
        (None, Some(_)) => pulled.reference.clone(),
        (None, None) => default_name(&pulled.source)?,
    };
    validate_name(&name)?;
    let kernel_ref = kernel_ref.or_else(|| entry.and_then(|e| e.kernel.clone()));

    let mut store = Store::open_locked(state_dir)?;
    store.check_free(Kind::Image, &name, force)?;
    let kernel = match &kernel_ref {
        Some(r) => {
            Some(kernel::ensure_kernel(&mut store, r, &progress.for_resolve(&resolve)).await?)
        }
        None => None,
    };
    let image = pipeline::resolve(&pulled.source, &resolve, &progress).await?;
    let staging = store.stage(Kind::Image, &name)?;
    test_pause("staging");

    let rootfs = staging.path().join(ROOTFS_FILE);
    if let (Some(guest), Some(kernel), Some(set)) = (&mut write.guest, &kernel, modules) {
        if kernel.modules {
            let dir = store.layout().entry_dir(Kind::Kernel, &kernel.name);
            guest.modules = Some(ModulesPlan {
                source: ModuleSource::Tarball(dir.join(kernel::MODULES_FILE)),
                set,
            });
        }
    }
    let report = pipeline::write(image, rootfs.clone(), write, progress).await?;
    test_pause("written");
    if let Some(kernel) = &kernel {
        kernel::install_into(&store, kernel, staging.path())?;
    }
    let size = std::fs::metadata(&rootfs)
        .map_err(io_err(format!("reading {}", rootfs.display())))?
        .len();
    let image = report.image;
    let mut blobs: Vec<String> = image.cache_blobs.iter().map(ToString::to_string).collect();
    blobs.sort();
    blobs.dedup();
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
        guest: report.guest.as_ref().map(|g| g.record.clone()),
    };
    store.publish_image(staging, &record)?;
    Ok(PullReport {
        dir: store.layout().entry_dir(Kind::Image, &name),
        record,
        warnings: report.guest.map(|g| g.warnings).unwrap_or_default(),
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
