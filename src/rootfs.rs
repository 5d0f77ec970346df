//! `banger rootfs`: one image source in, one ext4 file out.
//!
//! Layers stream from the cache through the flattener into the image
//! builder, which writes file data straight to its final blocks; the tree
//! that results is then given the guest agents and the builder writes the
//! metadata. The output appears under its name only when complete.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::ext4::builder::{BuildError, ImageBuilder, ImageSummary, Options as Ext4Options};
use crate::ext4::tree::{Metadata, Timestamp};
use crate::flatten::{FlattenError, FlattenErrorKind, Flattener, Limits, TarError};
use crate::guest::modules::ModulesPlan;
use crate::guest::{prepare_guest, GuestError, GuestOptions, GuestReport, InitChoice};
use crate::layer::{verify_diff_id, StreamError};
use crate::readahead::{ReadAhead, CHUNK};
use crate::source::{self, ImageSource, ProgressEvent, ResolveOptions, ResolvedImage, SourceError};
use crate::staged::StagedFile;

/// What to build.
#[derive(Debug, Clone)]
pub struct RootfsRequest {
    /// Where the image comes from.
    pub source: ImageSource,
    /// The ext4 file to write.
    pub output: PathBuf,
    /// Image size in bytes; default 1.5 × content, at least 1 GiB.
    pub size: Option<u64>,
    /// Registry, platform and cache settings.
    pub resolve: ResolveOptions,
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

/// Resolves the source (downloading into the cache) and writes the image.
pub async fn build_rootfs(request: RootfsRequest) -> Result<RootfsReport, RootfsError> {
    check_output_path(&request.output, &request.source)?;
    let image = source::resolve(&request.source, &request.resolve).await?;
    tokio::task::spawn_blocking(move || write_rootfs(image, &request))
        .await
        .map_err(|join| RootfsError::Output {
            context: "writing",
            path: PathBuf::new(),
            source: std::io::Error::other(join.to_string()),
        })?
}

/// Writes a resolved image to `request.output`.
pub fn write_rootfs(
    image: ResolvedImage,
    request: &RootfsRequest,
) -> Result<RootfsReport, RootfsError> {
    let output_error = |context, source| RootfsError::Output {
        context,
        path: request.output.clone(),
        source,
    };
    let staged = StagedFile::create(&request.output)
        .map_err(|e| output_error("creating a temporary file for", e))?;
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
                Some(next) => opened.push_back(open_layer(next, depth)?),
                None => break,
            }
        }
        let Some(reader) = opened.pop_front() else {
            break;
        };
        request.resolve.report(ProgressEvent::Applying {
            index: layer.index + 1,
            count: image.layers.len(),
        });
        let mut reader = HashingReader {
            inner: ProgressReader::new(reader, &request.resolve),
            hasher: (layer.digest.is_none() && layer.diff_id.is_none()).then(Sha256::new),
        };
        flattener
            .apply_layer(&flatten_label(layer), &mut reader)
            .map_err(stream_or_flatten_error)?;
        if let Some(hasher) = reader.hasher {
            content_digests.push(hasher.finalize());
        }
    }
    request.resolve.report(ProgressEvent::Finishing);
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
    staged
        .persist()
        .map_err(|e| output_error("publishing", e))?;
    request.resolve.report(ProgressEvent::Done);
    Ok(RootfsReport {
        image,
        summary,
        guest,
    })
}

/// The layer's name as the flattener's errors want it: they say `layer {label}`.
fn flatten_label(layer: &crate::source::LayerRef) -> String {
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

/// A layer's tar stream, decompressed on its own thread. The tar's diff_id
/// is hashed here on the consumer's side: inflating and hashing the
/// compressed bytes already keep that thread busy, and hashing the
/// uncompressed bytes there too would make it the bottleneck.
fn open_layer(
    layer: &crate::source::LayerRef,
    depth: usize,
) -> Result<Box<dyn Read + Send>, RootfsError> {
    let inflated = ReadAhead::with_depth(layer.open_unverified_tar()?, depth);
    Ok(verify_diff_id(
        Box::new(inflated),
        layer.diff_id.clone(),
        &layer.name(),
    ))
}

/// Inflated bytes buffered between the layer threads and the flattener,
/// all layers together: this bounds memory whatever the image.
const READ_AHEAD_BUDGET: usize = 64 << 20;

/// How many layers beyond the current one inflate at once: one per spare
/// core, at least one (so the next layer starts while this one finishes).
fn layers_ahead() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .clamp(1, 7)
}

/// Reports how much of a layer's tar has been read, in steps of a few MiB
/// so the hook is not called for every small read.
struct ProgressReader<'a, R> {
    inner: R,
    resolve: &'a ResolveOptions,
    unreported: u64,
}

impl<'a, R> ProgressReader<'a, R> {
    const STEP: u64 = 4 << 20;

    fn new(inner: R, resolve: &'a ResolveOptions) -> Self {
        Self {
            inner,
            resolve,
            unreported: 0,
        }
    }
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.unreported += n as u64;
        if self.unreported >= Self::STEP || (n == 0 && self.unreported > 0) {
            self.resolve.report(ProgressEvent::Applied {
                bytes: self.unreported,
            });
            self.unreported = 0;
        }
        Ok(n)
    }
}

/// Hashes what passes through, when asked to.
struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The time banger writes for what it creates: `SOURCE_DATE_EPOCH` when
/// set, else the image's creation time, else the epoch.
fn creation_time(image: &ResolvedImage, source_date_epoch: Option<i64>) -> Timestamp {
    let from_config = image
        .config
        .created
        .as_deref()
        .and_then(parse_rfc3339_seconds);
    Timestamp::from_secs(source_date_epoch.or(from_config).unwrap_or(0))
}

/// Seconds of an RFC 3339 time such as `2024-05-01T12:34:56.789Z`.
fn parse_rfc3339_seconds(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.get(..8)?.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let offset = match time
        .get(8..)
        .map(|rest| rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit()))
    {
        Some(zone) if zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')) => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let h: i64 = zone.get(1..3)?.parse().ok()?;
            let mi: i64 = zone.get(4..6)?.parse().ok()?;
            sign * (h * 3600 + mi * 60)
        }
        _ => 0,
    };
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

/// UUID and directory hash seed, derived from the image's content (never
/// from where it was read) so that the same image always gives the same
/// bytes and different images different UUIDs.
struct FilesystemIds {
    uuid: [u8; 16],
    hash_seed: [u8; 16],
}

impl FilesystemIds {
    /// From the manifest digest, else the layers' digests, with
    /// `content_digests` (the sha256 of each layer that has no digest of its
    /// own, in order) standing in for the missing ones.
    fn derive(image: &ResolvedImage, content_digests: &[impl AsRef<[u8]>]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"banger rootfs ids\0");
        match &image.manifest_digest {
            Some(digest) => hasher.update(digest.to_string().as_bytes()),
            None => {
                let mut content = content_digests.iter();
                for layer in &image.layers {
                    match layer.digest.as_ref().or(layer.diff_id.as_ref()) {
                        Some(d) => hasher.update(d.to_string().as_bytes()),
                        None => {
                            if let Some(sha) = content.next() {
                                hasher.update(b"sha256:");
                                hasher.update(hex::encode(sha).as_bytes());
                            }
                        }
                    }
                }
            }
        }
        let hash = hasher.finalize();
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&hash[..16]);
        // Mark it as an RFC 4122 name-based (version 8, custom) UUID.
        uuid[6] = (uuid[6] & 0x0F) | 0x80;
        uuid[8] = (uuid[8] & 0x3F) | 0x80;
        let mut hash_seed = [0u8; 16];
        hash_seed.copy_from_slice(&hash[16..32]);
        Self { uuid, hash_seed }
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

    #[test]
    fn progress_reader_reports_every_byte_in_steps() {
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut resolve = ResolveOptions::new(PathBuf::from("/nonexistent"));
        let sink = Arc::clone(&seen);
        resolve.progress = Some(Arc::new(move |event| {
            if let ProgressEvent::Applied { bytes } = event {
                sink.lock().unwrap().push(bytes);
            }
        }));
        let data = vec![7u8; (10 << 20) + 5];
        let mut reader = ProgressReader::new(data.as_slice(), &resolve);
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        let steps = seen.lock().unwrap().clone();
        assert_eq!(steps.iter().sum::<u64>(), data.len() as u64);
        assert!(
            steps.len() <= 4,
            "reported in a few steps, not per read: {steps:?}"
        );
    }

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
        write_rootfs(image_of_layers(layers), &request(output.clone())).unwrap();
        let fs = ext4_view::Ext4::load_from_path(&output).unwrap();
        let data = fs.read("/data").unwrap();
        assert_eq!(data, vec![b'a' + (count - 1) as u8; CHUNK + 1000]);
    }

    fn request(output: PathBuf) -> RootfsRequest {
        RootfsRequest {
            source: ImageSource::DockerArchive(PathBuf::from("unused")),
            output,
            size: None,
            resolve: ResolveOptions::new(PathBuf::from("/nonexistent")),
            guest: None,
            limits: Limits::default(),
            source_date_epoch: Some(0),
        }
    }

    #[test]
    fn a_wrong_diff_id_fails_the_build() {
        let (tar, right) = tar_of("etc/hello", b"hello");
        let wrong = Digest::from_sha256_bytes(&Sha256::digest(b"another layer"));
        let dir = tempfile::tempdir().unwrap();

        let good = dir.path().join("good.ext4");
        write_rootfs(image_of(tar.clone(), right), &request(good.clone())).unwrap();
        assert!(good.is_file());

        let bad = dir.path().join("bad.ext4");
        let err = write_rootfs(image_of(tar, wrong), &request(bad.clone())).unwrap_err();
        assert!(err.to_string().contains("diff_id"), "{err}");
        assert!(!bad.exists(), "a failed build leaves no output");
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_seconds("2024-05-01T12:34:56.789Z"),
            Some(1_714_566_896)
        );
        assert_eq!(
            parse_rfc3339_seconds("2024-05-01T14:34:56+02:00"),
            Some(1_714_566_896)
        );
        assert_eq!(parse_rfc3339_seconds("garbage"), None);
    }
}
