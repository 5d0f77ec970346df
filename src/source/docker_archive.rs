//! `docker-archive:FILE`: a `docker save` tarball. `manifest.json` names the config
//! and the layer members; layers are read in place by offset, never extracted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::manifest;
use super::{check_layer_count, BlobLocation, LayerRef, ResolvedImage, SourceError};
use crate::reference::Digest;

/// Symlinked members (docker dedups layers this way) are followed this many times.
const MAX_SYMLINK_HOPS: usize = 8;
/// manifest.json and configs larger than this are refused.
const MAX_METADATA_MEMBER: u64 = 16 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// A member of the archive.
enum Member {
    File { offset: u64, len: u64 },
    Symlink(PathBuf),
}

/// Collapses `a/./b/../c` to `a/c`, so member names compare reliably.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

struct Archive {
    path: PathBuf,
    members: HashMap<PathBuf, Member>,
}

impl Archive {
    fn scan(path: &Path) -> Result<Self, SourceError> {
        let what = format!("docker-archive:{}", path.display());
        let file =
            File::open(path).map_err(SourceError::io(format!("opening {}", path.display())))?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let entries = archive
            .entries()
            .map_err(SourceError::io(format!("{what}: reading the tar")))?;
        for entry in entries {
            let entry = entry.map_err(SourceError::io(format!("{what}: reading the tar")))?;
            let name = normalize(
                &entry
                    .path()
                    .map_err(SourceError::io(format!("{what}: member name")))?,
            );
            let kind = entry.header().entry_type();
            let member = if kind.is_file() {
                Member::File {
                    offset: entry.raw_file_position(),
                    len: entry.size(),
                }
            } else if kind.is_symlink() {
                match entry
                    .link_name()
                    .map_err(SourceError::io(format!("{what}: link name")))?
                {
                    Some(target) => {
                        let base = name.parent().unwrap_or(Path::new(""));
                        Member::Symlink(normalize(&base.join(target)))
                    }
                    None => continue,
                }
            } else {
                continue;
            };
            members.insert(name, member);
        }
        Ok(Archive {
            path: path.to_path_buf(),
            members,
        })
    }

    /// Offset and length of a regular member, following symlinks.
    fn locate(&self, name: &str) -> Result<(u64, u64), SourceError> {
        let mut current = normalize(Path::new(name));
        for _ in 0..MAX_SYMLINK_HOPS {
            match self.members.get(&current) {
                Some(Member::File { offset, len }) => return Ok((*offset, *len)),
                Some(Member::Symlink(target)) => current = target.clone(),
                None => break,
            }
        }
        Err(SourceError::NotFound {
            what: format!("docker-archive:{}", self.path.display()),
            reason: format!("member {name:?} is missing (or a symlink loop); is this a complete `docker save` archive?"),
        })
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        let (offset, len) = self.locate(name)?;
        let what = format!("docker-archive:{}: {name}", self.path.display());
        if len > MAX_METADATA_MEMBER {
            return Err(SourceError::InvalidManifest {
                what,
                reason: format!("{len} bytes is too large for metadata"),
            });
        }
        let mut file = File::open(&self.path).map_err(SourceError::io(what.clone()))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(SourceError::io(what.clone()))?;
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(len)
            .read_to_end(&mut bytes)
            .map_err(SourceError::io(what.clone()))?;
        if bytes.len() as u64 != len {
            return Err(SourceError::Corrupt {
                what,
                reason: "the archive is truncated".to_string(),
            });
        }
        Ok(bytes)
    }
}

/// The digest a member's name implies: `blobs/sha256/<hex>` in newer `docker save`
/// output. Legacy `<id>/layer.tar` names carry none (the diff_id still applies).
fn digest_from_member_name(name: &str) -> Option<Digest> {
    let hex = normalize(Path::new(name))
        .strip_prefix("blobs/sha256")
        .ok()?
        .to_str()?
        .to_string();
    format!("sha256:{hex}").parse().ok()
}

/// Resolves the single image in the archive at `path`.
pub fn resolve(path: &Path) -> Result<ResolvedImage, SourceError> {
    let reference = format!("docker-archive:{}", path.display());
    let archive = Archive::scan(path)?;
    let manifest_bytes = archive.read("manifest.json")?;
    let entries: Vec<ArchiveManifestEntry> =
        serde_json::from_slice(&manifest_bytes).map_err(|e| SourceError::InvalidManifest {
            what: format!("{reference}: manifest.json"),
            reason: e.to_string(),
        })?;
    let entry = match entries.as_slice() {
        [only] => only,
        [] => {
            return Err(SourceError::NotFound {
                what: reference,
                reason: "manifest.json lists no images".to_string(),
            })
        }
        several => {
            let tags: Vec<String> = several
                .iter()
                .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
                .collect();
            return Err(SourceError::NotFound {
                what: reference,
                reason: format!(
                    "the archive holds {} images ({}); save just one with `docker save IMAGE`",
                    several.len(),
                    tags.join(", ")
                ),
            });
        }
    };
    let config_bytes = archive.read(&entry.config)?;
    if let Some(digest) = digest_from_member_name(&entry.config) {
        super::oci_layout::verify(
            &config_bytes,
            &digest,
            config_bytes.len() as u64,
            &format!("{reference}: config"),
        )?;
    }
    let config = manifest::parse_config(&config_bytes, &format!("{reference}: config"))?;
    check_layer_count(entry.layers.len(), &config, &reference)?;
    let layers = entry
        .layers
        .iter()
        .zip(&config.diff_ids)
        .enumerate()
        .map(|(index, (name, diff_id))| {
            let (offset, len) = archive.locate(name)?;
            let digest = digest_from_member_name(name);
            Ok(LayerRef {
                index,
                size: digest.as_ref().map(|_| len),
                digest,
                diff_id: Some(diff_id.clone()),
                media_type: "application/vnd.docker.image.rootfs.diff.tar".to_string(),
                blob: BlobLocation::Member {
                    archive: path.to_path_buf(),
                    offset,
                    len,
                },
            })
        })
        .collect::<Result<Vec<_>, SourceError>>()?;
    Ok(ResolvedImage {
        reference,
        manifest_digest: None,
        platform: config.platform.clone(),
        config,
        layers,
        cache_blobs: Vec::new(),
    })
}
