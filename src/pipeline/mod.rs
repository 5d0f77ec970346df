//! The one way an image source becomes an ext4 file, for `banger rootfs` and
//! `banger image pull` alike: resolve the source (fetching the manifest and
//! config, and starting the layer downloads into the blob cache), then
//! write the image on a blocking thread while the layers still arrive,
//! reporting progress throughout. What resolving needs ([`ResolveOptions`]) and what writing
//! needs ([`WriteOptions`]) are separate requests.

mod ids;
mod layers;
pub mod progress;
mod write;

use std::path::PathBuf;

use crate::source::{self, ImageSource, ResolveOptions, ResolvedImage, SourceError};
pub use progress::{Progress, ProgressEvent, ProgressFn};
pub use write::{
    check_output_path, write_rootfs, GuestSettings, RootfsError, RootfsReport, WriteOptions,
};

/// Resolves `source` and writes its image to `output`: [`resolve`] then
/// [`write()`]. Nothing is left at `output` on failure.
pub async fn build(
    source: &ImageSource,
    resolve_options: &ResolveOptions,
    output: PathBuf,
    options: WriteOptions,
    progress: Progress,
) -> Result<RootfsReport, RootfsError> {
    check_output_path(&output, source)?;
    let image = resolve(source, resolve_options, &progress).await?;
    write(image, output, options, progress).await
}

/// Resolves `source`, starting the downloads of registry layers not cached
/// yet (they go on while [`write()`] reads them, and are called off if the
/// image is dropped unwritten); fetches are reported to `progress` (in place
/// of `options`' own hook).
pub async fn resolve(
    source: &ImageSource,
    options: &ResolveOptions,
    progress: &Progress,
) -> Result<ResolvedImage, SourceError> {
    source::resolve_streaming(source, &progress.for_resolve(options)).await
}

/// Writes `image` to `output` on a blocking thread, reporting its layers to
/// `progress`. Nothing is left at `output` on failure.
pub async fn write(
    image: ResolvedImage,
    output: PathBuf,
    options: WriteOptions,
    progress: Progress,
) -> Result<RootfsReport, RootfsError> {
    let path = output.clone();
    tokio::task::spawn_blocking(move || write_rootfs(image, &output, &options, &progress))
        .await
        .map_err(|join| RootfsError::Output {
            context: "writing",
            path,
            source: std::io::Error::other(join.to_string()),
        })?
}
