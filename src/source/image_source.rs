//! An image source as written on the command line, skopeo-style.

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use super::SourceError;
use crate::reference::Reference;

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

    /// The reader, the first time; `None` after.
    pub(super) fn take(&self) -> Option<Box<dyn Read + Send>> {
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
