//! Writing a resolved image: layers stream through the flattener into the
//! image builder, which writes file data straight to its final blocks; the
//! tree that results is then given the guest agents and the builder writes
//! the metadata. The output appears under its name only when complete.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::ids::{creation_time, FilesystemIds};
use super::layers::{layers_ahead, open_layer, READ_AHEAD_BUDGET};
use super::progress::{Progress, ProgressEvent};
use crate::ext4::builder::{BuildError, ImageBuilder, ImageSummary, Options as Ext4Options};
use crate::ext4::tree::Metadata;
use crate::flatten::{FlattenError, FlattenErrorKind, Flattener, Limits, TarError};
use crate::guest::modules::ModulesPlan;
use crate::guest::{prepare_guest, GuestError, GuestOptions, GuestReport, InitChoice};
use crate::layer::StreamError;
use crate::readahead::CHUNK;
use crate::source::growing::{DownloadFailed, GrowingBlob, Outcome};
use crate::source::{ImageSource, LayerRef, ResolvedImage, SourceError};
use crate::staged::StagedFile;

/// How to write an image (where is the caller's: a file of the user's, or
/// a store's staging directory).
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Image size in bytes; default 1.5 × content, at least 1 GiB.
    pub size: Option<u64>,
    /// Make the image boot into a working guest (agents, init, kernel
    /// modules); `None` leaves the image as the layers say.
    pub guest: Option<GuestSettings>,
    /// Limits against tar bombs.
    pub limits: Limits,
    /// `SOURCE_DATE_EPOCH`: the time written for what banger itself creates.
    pub source_date_epoch: Option<i64>,
}

/// What banger adds to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestSettings {
    /// The vsock port the health agent listens on.
    pub vsock_port: u32,
    /// Which init system to set the services up for.
    pub init: InitChoice,
    /// The kernel modules to write, when the image gets a kernel.
    pub modules: Option<ModulesPlan>,
}

/// What was built.
#[derive(Debug, Clone)]
pub struct RootfsReport {
    /// The image that was resolved.
    pub image: ResolvedImage,
    /// The filesystem written.
    pub summary: ImageSummary,
    /// What was set up in the guest, with its warnings; `None` without agents.
    pub guest: Option<GuestReport>,
}

impl RootfsReport {
    /// Warnings for the user.
    pub fn warnings(&self) -> &[String] {
        self.guest.as_ref().map_or(&[], |g| g.warnings.as_slice())
    }
}

/// Why `banger rootfs` failed. Nothing is left at the output path.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The source could not be resolved or read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A layer could not be applied.
    #[error(transparent)]
    Flatten(#[from] FlattenError),
    /// A layer's stream is corrupt or truncated (the message names the layer).
    #[error(transparent)]
    Layer(#[from] StreamError),
    /// A layer downloading while the image was written failed (corrupt,
    /// truncated, too long, or the registry went away); nothing was cached.
    #[error(transparent)]
    Download(DownloadFailed),
    /// The guest could not be prepared (agents, init, kernel modules).
    /// Boxed: its module and init-system errors are large and rare.
    #[error(transparent)]
    Guest(Box<GuestError>),
    /// The filesystem could not be written.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The output path names something that is not a regular file.
    #[error("{path} is {what}; --output must be a regular file or a new name")]
    OutputNotAFile {
        /// The output path.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// The output path is the file the image is read from.
    #[error("{path} is the input file itself; write the image to another file")]
    OutputIsInput {
        /// The output path.
        path: PathBuf,
    },
    /// The output file could not be created or published.
    #[error("{context} {path}")]
    Output {
        /// What was being done.
        context: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<GuestError> for RootfsError {
    fn from(error: GuestError) -> Self {
        Self::Guest(Box::new(error))
    }
}

/// Writes a resolved image to `output`, telling `progress` of each layer.
/// Layers still downloading are read as they arrive; the output is
/// published only once each of them is verified and stored in the cache.
/// On failure the downloads are called off, and have ended (no temp file
/// left) when this returns; a failed download is the error reported, as
/// the cause of whatever its reader ran into.
pub fn write_rootfs(
    image: ResolvedImage,
    output: &Path,
    request: &WriteOptions,
    progress: &Progress,
) -> Result<RootfsReport, RootfsError> {
    let downloads = Downloads::of(&image);
    let written = write_image(image, output, request, progress, &downloads);
    match written {
        Ok(report) => Ok(report),
        Err(error) => Err(downloads.call_off().map_or(error, RootfsError::Download)),
    }
}

/// The layers of an image that are still downloading.
struct Downloads(Vec<GrowingBlob>);

impl Downloads {
    fn of(image: &ResolvedImage) -> Self {
        let blobs = image.layers.iter().filter_map(|l| l.blob.downloading());
        Self(blobs.cloned().collect())
    }

    /// Waits for every download to be stored, in layer order; the first
    /// that was not is the error.
    fn stored(&self) -> Result<(), RootfsError> {
        for blob in &self.0 {
            if let Outcome::Failed(failed) = blob.wait() {
                return Err(RootfsError::Download(failed));
            }
        }
        Ok(())
    }

    /// Cancels every download, waits until they all ended, and returns the
    /// first real failure among them (not a cancellation).
    fn call_off(&self) -> Option<DownloadFailed> {
        for blob in &self.0 {
            blob.cancel();
        }
        let mut first = None;
        for blob in &self.0 {
            if let Outcome::Failed(failed @ DownloadFailed::Failed { .. }) = blob.wait() {
                first.get_or_insert(failed);
            }
        }
        first
    }
}

fn write_image(
    image: ResolvedImage,
    output: &Path,
    request: &WriteOptions,
    progress: &Progress,
    downloads: &Downloads,
) -> Result<RootfsReport, RootfsError> {
    let output_error = |context, source| RootfsError::Output {
        context,
        path: output.to_path_buf(),
        source,
    };
    let staged =
        StagedFile::create(output).map_err(|e| output_error("creating a temporary file for", e))?;
    crate::store::test_pause("output-created");
    let handle = staged
        .file()
        .try_clone()
        .map_err(|e| output_error("opening", e))?;
    let time = creation_time(&image, request.source_date_epoch);
    let options = Ext4Options {
        size: request.size,
        timestamp: time,
        label: b"banger-rootfs".to_vec(),
        ..Ext4Options::default()
    };
    let mut builder = ImageBuilder::new(handle, options)?;
    let mut flattener = Flattener::new(
        &mut builder,
        request.limits.clone(),
        Metadata::new(0o755, time),
    );
    // Layers inflate on their own threads, the next ones (one per spare
    // core) while the current one is applied.
    let ahead = layers_ahead();
    let depth = READ_AHEAD_BUDGET / CHUNK / (ahead + 1);
    let mut opened = VecDeque::new();
    let mut to_open = image.layers.iter();
    // Digests of the tars of layers that come with none (`tar:` sources),
    // hashed as they are read, for the filesystem's UUID.
    let mut content_digests = Vec::new();
    for layer in &image.layers {
        while opened.len() <= ahead {
            match to_open.next() {
                Some(next) => opened.push_back(open_layer(
                    next,
                    image.layers.len(),
                    depth,
                    progress,
                    next.digest.is_none() && next.diff_id.is_none(),
                )?),
                None => break,
            }
        }
        let Some(mut opened_layer) = opened.pop_front() else {
            break;
        };
        progress.report(ProgressEvent::Applying {
            index: layer.index + 1,
            count: image.layers.len(),
        });
        flattener
            .apply_layer_lending(&flatten_label(layer), &mut opened_layer.reader)
            .map_err(stream_or_flatten_error)?;
        if let Some(digest) = opened_layer.content_digest {
            let digest = digest
                .get()
                .expect("the flattener reads every layer to its end, which sets its digest");
            content_digests.push(*digest);
        }
    }
    progress.report(ProgressEvent::Finishing);
    let mut tree = flattener.finish();
    let ids = FilesystemIds::derive(&image, &content_digests);
    builder.set_ids(ids.uuid, ids.hash_seed);
    let guest = match &request.guest {
        Some(settings) => Some(prepare_guest(
            &mut tree,
            &mut builder,
            &GuestOptions {
                vsock_port: settings.vsock_port,
                init: settings.init.clone(),
                modules: settings.modules.clone(),
                runtime: image.config.runtime.clone(),
                time,
            },
        )?),
        None => None,
    };
    let summary = builder.finish(&tree)?;
    // A downloading blob's digest and size are checked by its download
    // alone (its readers do not hash it again): nothing is published
    // before each has been stored. It also makes `cache_blobs` true.
    downloads.stored()?;
    staged
        .persist()
        .map_err(|e| output_error("publishing", e))?;
    progress.report(ProgressEvent::Done);
    Ok(RootfsReport {
        image,
        summary,
        guest,
    })
}

/// The layer's name as the flattener's errors want it: they say `layer {label}`.
fn flatten_label(layer: &LayerRef) -> String {
    let name = layer.name();
    match name.strip_prefix("layer ") {
        Some(rest) => rest.to_owned(),
        None => name,
    }
}

/// A corrupt or truncated blob is the layer's fault, not the entry's that
/// happened to be read when it showed: report what the stream said (which
/// names the layer) instead of a tar error at that entry.
fn stream_or_flatten_error(error: FlattenError) -> RootfsError {
    let FlattenError {
        layer,
        entry,
        kind: FlattenErrorKind::Tar(TarError::Io(io)),
    } = error
    else {
        return RootfsError::Flatten(error);
    };
    match StreamError::from_io(io) {
        Ok(stream) => RootfsError::Layer(stream),
        Err(io) => RootfsError::Flatten(FlattenError {
            layer,
            entry,
            kind: FlattenErrorKind::Tar(TarError::Io(io)),
        }),
    }
}

/// Checks that `output` may be replaced by the image: it must be missing or
/// a regular file (never a directory, device, FIFO or socket, which the
/// final rename would replace by a regular file), and not the file `source`
/// reads, compared by device and inode so that any spelling of the path counts.
pub fn check_output_path(output: &Path, source: &ImageSource) -> Result<(), RootfsError> {
    let meta = match std::fs::metadata(output) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(RootfsError::Output {
                context: "checking",
                path: output.to_path_buf(),
                source,
            })
        }
    };
    let kind = meta.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(RootfsError::OutputNotAFile {
            path: output.to_path_buf(),
            what,
        });
    }
    let input = match source {
        ImageSource::Tar(crate::source::TarInput::Path(path))
        | ImageSource::DockerArchive(path) => path,
        _ => return Ok(()),
    };
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(input) {
        Ok(input_meta) if (input_meta.dev(), input_meta.ino()) == (meta.dev(), meta.ino()) => {
            Err(RootfsError::OutputIsInput {
                path: output.to_path_buf(),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Digest;
    use sha2::{Digest as _, Sha256};

    /// An image of `tars` (lowest first) with the given diff_ids.
    fn image_of_layers(tars: Vec<(Vec<u8>, Digest)>) -> ResolvedImage {
        use crate::source::{BlobLocation, ImageConfig, LayerRef, OneShotReader};
        let layers = tars
            .into_iter()
            .enumerate()
            .map(|(index, (tar, diff_id))| LayerRef {
                index,
                digest: None,
                size: None,
                diff_id: Some(diff_id),
                media_type: String::new(),
                blob: BlobLocation::Reader(OneShotReader::new(std::io::Cursor::new(tar))),
            })
            .collect();
        ResolvedImage {
            reference: "test".into(),
            manifest_digest: None,
            platform: None,
            config: ImageConfig::default(),
            layers,
            cache_blobs: Vec::new(),
        }
    }

    /// A one-layer image whose tar is `tar` and whose config claims `diff_id`.
    fn image_of(tar: Vec<u8>, diff_id: Digest) -> ResolvedImage {
        image_of_layers(vec![(tar, diff_id)])
    }

    /// A tar holding one regular file.
    fn tar_of(path: &str, contents: &[u8]) -> (Vec<u8>, Digest) {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, contents).unwrap();
        let tar = builder.into_inner().unwrap();
        let digest = Digest::from_sha256_bytes(&Sha256::digest(&tar));
        (tar, digest)
    }

    #[test]
    fn layers_read_ahead_in_parallel_still_apply_in_order() {
        // More layers than are ever read ahead at once, each bigger than a
        // read-ahead chunk, each replacing the file the one below wrote.
        let count = layers_ahead() + 3;
        let layers: Vec<_> = (0..count)
            .map(|i| tar_of("data", &vec![b'a' + i as u8; CHUNK + 1000]))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("layers.ext4");
        write(image_of_layers(layers), &output).unwrap();
        let fs = ext4_view::Ext4::load_from_path(&output).unwrap();
        let data = fs.read("/data").unwrap();
        assert_eq!(data, vec![b'a' + (count - 1) as u8; CHUNK + 1000]);
    }

    /// Writes `image` to `output` as the layers say, at time 0.
    fn write(image: ResolvedImage, output: &Path) -> Result<RootfsReport, RootfsError> {
        let options = WriteOptions {
            source_date_epoch: Some(0),
            ..WriteOptions::default()
        };
        write_rootfs(image, output, &options, &Progress::none())
    }

    #[test]
    fn a_wrong_diff_id_fails_the_build() {
        let (tar, right) = tar_of("etc/hello", b"hello");
        let wrong = Digest::from_sha256_bytes(&Sha256::digest(b"another layer"));
        let dir = tempfile::tempdir().unwrap();

        let good = dir.path().join("good.ext4");
        write(image_of(tar.clone(), right), &good).unwrap();
        assert!(good.is_file());

        let bad = dir.path().join("bad.ext4");
        let err = write(image_of(tar, wrong), &bad).unwrap_err();
        assert!(err.to_string().contains("diff_id"), "{err}");
        assert!(!bad.exists(), "a failed build leaves no output");
    }
}
