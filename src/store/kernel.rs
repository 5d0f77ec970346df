//! Kernels for images: imported from local files, or pulled as OCI artifacts named
//! in the kernel catalog.
//!
//! # Kernel artifact format
//! A kernel artifact is an OCI image manifest
//! (`application/vnd.oci.image.manifest.v1+json`, or an index of them per platform)
//! with `artifactType` [`KERNEL_ARTIFACT_TYPE`] and a config of media type
//! [`KERNEL_CONFIG`] (a JSON object, e.g. `{"release": "6.1.0"}`; its content is
//! informational) or the OCI empty descriptor. Its layers are whole files, told
//! apart by media type:
//!
//! | media type | file | count |
//! |---|---|---|
//! | [`VMLINUX`] `application/vnd.banger.kernel.vmlinux` | uncompressed `vmlinux` (or a bzImage) | exactly 1 |
//! | [`INITRD`] `application/vnd.banger.kernel.initrd` | initramfs | 0 or 1 |
//! | [`MODULES`] `application/vnd.banger.kernel.modules.tar+gzip` | gzip'd tar of `lib/modules/<release>/` | 0 or 1 |
//!
//! They are fetched through the registry client and blob cache like image layers
//! (verified for size and digest), then copied into `kernels/NAME/` as `vmlinux`,
//! `initrd` and `modules.tar.gz`. See docs/kernel-artifacts.md.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{io_err, now, test_pause, KernelRecord, Kind, Store, StoreError};
use crate::catalog::KernelCatalog;
use crate::reference::Reference;
use crate::source::registry::{fetch_artifact, FetchedArtifact};
use crate::source::ResolveOptions;

/// `artifactType` of a kernel artifact.
pub const KERNEL_ARTIFACT_TYPE: &str = "application/vnd.banger.kernel.v1";
/// Media type of a kernel artifact's config.
pub const KERNEL_CONFIG: &str = "application/vnd.banger.kernel.config.v1+json";
/// Media type of the kernel image layer.
pub const VMLINUX: &str = "application/vnd.banger.kernel.vmlinux";
/// Media type of the initramfs layer.
pub const INITRD: &str = "application/vnd.banger.kernel.initrd";
/// Media type of the modules layer.
pub const MODULES: &str = "application/vnd.banger.kernel.modules.tar+gzip";

/// File name of the kernel image in kernel and image directories.
pub const VMLINUX_FILE: &str = "vmlinux";
/// File name of the initramfs.
pub const INITRD_FILE: &str = "initrd";
/// File name of the modules tarball.
pub const MODULES_FILE: &str = "modules.tar.gz";

/// Returns the kernel `kernel_ref`: a kernel in the store, or else a kernel-catalog
/// entry, pulled and imported under that name now (the store lock must be held).
pub async fn ensure_kernel(
    store: &mut Store,
    kernel_ref: &str,
    opts: &ResolveOptions,
) -> Result<KernelRecord, StoreError> {
    if let Some(kernel) = store.kernel(kernel_ref)? {
        return Ok(kernel);
    }
    let catalog = KernelCatalog::load()?;
    let Some(entry) = catalog.get(kernel_ref) else {
        return Err(StoreError::NotFound {
            kind: "kernel",
            name: kernel_ref.to_string(),
            hint: format!(
                "import one with `banger kernel import {kernel_ref} --kernel VMLINUX` or name a kernel-catalog entry ({})",
                catalog.kernels.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    };
    crate::names::validate_name(kernel_ref)?;
    let reference: Reference = entry
        .source
        .parse()
        .map_err(|e| StoreError::Source(crate::source::SourceError::Reference(e)))?;
    let artifact = fetch_artifact(&reference, opts).await?;
    let staging = store.stage(Kind::Kernel, kernel_ref)?;
    let (initrd, modules) = install_artifact(&artifact, &reference.to_string(), staging.path())?;
    let record = KernelRecord {
        name: kernel_ref.to_string(),
        source: Some(reference.to_string()),
        manifest_digest: Some(artifact.manifest_digest.to_string()),
        initrd,
        modules,
        created: now(),
        pull_id: crate::store::layout::unique_suffix(),
        blobs: artifact.blobs.iter().map(ToString::to_string).collect(),
    };
    store.publish_kernel(staging, &record)?;
    Ok(record)
}

/// Checks a fetched artifact against the format and copies its files into `dir`.
/// Returns whether it had an initrd and modules.
pub fn install_artifact(
    artifact: &FetchedArtifact,
    reference: &str,
    dir: &Path,
) -> Result<(bool, bool), StoreError> {
    let bad = |reason: String| StoreError::KernelArtifact {
        reference: reference.to_string(),
        reason,
    };
    let config_type = artifact.config.0.media_type.as_str();
    if artifact.artifact_type != KERNEL_ARTIFACT_TYPE && config_type != KERNEL_CONFIG {
        return Err(bad(format!(
            "artifact type {:?} is not {KERNEL_ARTIFACT_TYPE}; is this a container image? (use it with `banger image pull`)",
            artifact.artifact_type
        )));
    }
    let mut seen = [false; 3];
    for (desc, path) in &artifact.layers {
        let (slot, file) = match desc.media_type.as_str() {
            VMLINUX => (0, VMLINUX_FILE),
            INITRD => (1, INITRD_FILE),
            MODULES => (2, MODULES_FILE),
            other => return Err(bad(format!("unknown layer media type {other:?}"))),
        };
        if seen[slot] {
            return Err(bad(format!("more than one {} layer", desc.media_type)));
        }
        seen[slot] = true;
        let target = dir.join(file);
        fs::copy(path, &target).map_err(io_err(format!("copying {}", target.display())))?;
    }
    if !seen[0] {
        return Err(bad(format!("it has no {VMLINUX} layer")));
    }
    Ok((seen[1], seen[2]))
}

/// Imports a kernel from local files: `vmlinux`, an optional initrd and an optional
/// modules directory (packed as `modules.tar.gz`, paths relative to it).
pub fn import_kernel(
    store: &mut Store,
    name: &str,
    vmlinux: &Path,
    initrd: Option<&Path>,
    modules: Option<&Path>,
    force: bool,
) -> Result<KernelRecord, StoreError> {
    crate::names::validate_name(name)?;
    check_kernel_file(vmlinux)?;
    if let Some(initrd) = initrd {
        check_regular_file(initrd, "--initrd")?;
    }
    store.check_free(Kind::Kernel, name, force)?;
    let staging = store.stage(Kind::Kernel, name)?;
    let copy = |from: &Path, file: &str| {
        fs::copy(from, staging.path().join(file))
            .map(drop)
            .map_err(io_err(format!("reading {}", from.display())))
    };
    copy(vmlinux, VMLINUX_FILE)?;
    if let Some(initrd) = initrd {
        copy(initrd, INITRD_FILE)?;
    }
    if let Some(dir) = modules {
        pack_modules(dir, &staging.path().join(MODULES_FILE))?;
    }
    test_pause("kernel-staged");
    let record = KernelRecord {
        name: name.to_string(),
        source: None,
        manifest_digest: None,
        initrd: initrd.is_some(),
        modules: modules.is_some(),
        created: now(),
        pull_id: crate::store::layout::unique_suffix(),
        blobs: Vec::new(),
    };
    store.publish_kernel(staging, &record)?;
    Ok(record)
}

/// Refuses anything but a regular file: reading a FIFO would wait forever
/// and a device would be read without end.
fn check_regular_file(path: &Path, flag: &'static str) -> Result<(), StoreError> {
    let meta = fs::metadata(path).map_err(io_err(format!("{flag} {}", path.display())))?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(StoreError::NotAKernel {
            path: path.to_path_buf(),
            reason: format!("{flag} must name a regular file"),
        })
    }
}

/// Offset of the x86 boot protocol's "HdrS" magic in a bzImage
/// (Documentation/arch/x86/boot.rst).
const BZIMAGE_MAGIC_AT: u64 = 0x202;

/// Reads `buf.len()` bytes at `offset`; `false` when the file ends first.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<bool> {
    match file.read_exact_at(buf, offset) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `file` starts with `magic` at `offset`.
fn has_magic(file: &File, offset: u64, magic: &[u8; 4]) -> io::Result<bool> {
    let mut found = [0u8; 4];
    Ok(read_at_most(file, &mut found, offset)? && &found == magic)
}

/// Checks that `path` is a kernel a VM can boot: a regular file holding an
/// x86 bzImage (boot protocol magic "HdrS" at 0x202) or an ELF vmlinux.
fn check_kernel_file(path: &Path) -> Result<(), StoreError> {
    check_regular_file(path, "--kernel")?;
    let reading = || io_err(format!("reading {}", path.display()));
    let file = File::open(path).map_err(reading())?;
    let bzimage = has_magic(&file, BZIMAGE_MAGIC_AT, b"HdrS").map_err(reading())?;
    let elf = has_magic(&file, 0, b"\x7fELF").map_err(reading())?;
    if bzimage || elf {
        Ok(())
    } else {
        Err(StoreError::NotAKernel {
            path: path.to_path_buf(),
            reason: "it is neither a bzImage (no \"HdrS\" at 0x202) nor an ELF vmlinux".into(),
        })
    }
}

fn pack_modules(dir: &Path, out: &Path) -> Result<(), StoreError> {
    if !dir.is_dir() {
        return Err(io_err(format!("--modules {}", dir.display()))(
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    let file = File::create(out).map_err(io_err(format!("creating {}", out.display())))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    tar.append_dir_all(".", dir)
        .map_err(io_err(format!("packing {}", dir.display())))?;
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .map_err(io_err(format!("writing {}", out.display())))?;
    Ok(())
}

/// Puts a kernel's files into an image directory being staged: hard links (the
/// files are never modified in place), or copies across filesystems.
pub fn install_into(store: &Store, kernel: &KernelRecord, dir: &Path) -> Result<(), StoreError> {
    let from = store.layout().entry_dir(Kind::Kernel, &kernel.name);
    for (present, file) in [
        (true, VMLINUX_FILE),
        (kernel.initrd, INITRD_FILE),
        (kernel.modules, MODULES_FILE),
    ] {
        if !present {
            continue;
        }
        let (src, dst) = (from.join(file), dir.join(file));
        if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst).map_err(io_err(format!("copying {}", src.display())))?;
        }
    }
    Ok(())
}

/// Offset of `kernel_version`: a pointer, less 0x200, to the version string.
const BZIMAGE_KERNEL_VERSION_OFFSET: u64 = 0x20E;

/// The release (`uname -r`) a bzImage declares in its setup header's
/// version string, e.g. `6.1.0-57-cloud-amd64`. `None` when the file is not
/// a bzImage or declares none.
pub fn bzimage_release(path: &Path) -> io::Result<Option<String>> {
    let file = File::open(path)?;
    let mut pointer = [0u8; 2];
    let mut text = [0u8; 128];
    if !has_magic(&file, BZIMAGE_MAGIC_AT, b"HdrS")? {
        return Ok(None);
    }
    if !read_at_most(&file, &mut pointer, BZIMAGE_KERNEL_VERSION_OFFSET)? {
        return Ok(None);
    }
    let pointer = u16::from_le_bytes(pointer);
    if pointer == 0 || !read_at_most(&file, &mut text, u64::from(pointer) + 0x200)? {
        return Ok(None);
    }
    let release = text
        .split(|&b| b == 0 || b == b' ')
        .next()
        .filter(|r| !r.is_empty() && r.iter().all(u8::is_ascii_graphic))
        .map(|r| String::from_utf8_lossy(r).into_owned());
    Ok(release)
}

#[cfg(test)]
mod tests {
    use super::bzimage_release;

    #[test]
    fn the_release_comes_from_the_setup_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinuz");
        let mut image = vec![0u8; 0x400];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x20E..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        let version = b"6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        image[0x300..0x300 + version.len()].copy_from_slice(version);
        std::fs::write(&path, &image).unwrap();
        assert_eq!(
            bzimage_release(&path).unwrap().as_deref(),
            Some("6.1.0-57-cloud-amd64")
        );
        std::fs::write(&path, b"not a kernel").unwrap();
        assert_eq!(bzimage_release(&path).unwrap(), None);
    }
}
