//! `oci:DIR[:TAG]`: an OCI image layout. Blobs are read in place and verified (digest
//! and size) as they are read: manifests and configs now, layers while streaming.

use std::fs;
use std::path::{Path, PathBuf};

use super::manifest::{self, Descriptor, Manifest, REF_NAME_ANNOTATION};
use super::{check_layer_count, BlobLocation, LayerRef, ResolvedImage, SourceError};
use crate::platform::Platform;
use crate::reference::Digest;

/// Indexes nested deeper than this are refused (a cycle or an abuse).
const MAX_INDEX_DEPTH: usize = 4;
/// Manifests, indexes and configs larger than this are refused.
const MAX_METADATA_BLOB: u64 = 16 << 20;

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs").join("sha256").join(digest.hex())
}

/// Reads a small blob whole, checking size and digest.
fn read_blob(dir: &Path, desc: &Descriptor, what: &str) -> Result<(Digest, Vec<u8>), SourceError> {
    let digest = desc.digest(what)?;
    if desc.size > MAX_METADATA_BLOB {
        return Err(SourceError::InvalidManifest {
            what: what.to_string(),
            reason: format!("{} bytes is too large for a manifest or config", desc.size),
        });
    }
    let path = blob_path(dir, &digest);
    let bytes = fs::read(&path).map_err(SourceError::io(format!(
        "{what}: reading {}",
        path.display()
    )))?;
    verify(&bytes, &digest, desc.size, what)?;
    Ok((digest, bytes))
}

pub(crate) fn verify(
    bytes: &[u8],
    digest: &Digest,
    size: u64,
    what: &str,
) -> Result<(), SourceError> {
    if bytes.len() as u64 != size {
        return Err(SourceError::Corrupt {
            what: what.to_string(),
            reason: format!("expected {size} bytes, found {}", bytes.len()),
        });
    }
    let actual = Digest::of(bytes);
    if &actual != digest {
        return Err(SourceError::Corrupt {
            what: what.to_string(),
            reason: format!("expected digest {digest}, content hashes to {actual}"),
        });
    }
    Ok(())
}

/// Resolves the layout at `dir`, picking the entry tagged `tag` (or the only one) and
/// then the `platform` entry of any index.
pub fn resolve(
    dir: &Path,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<ResolvedImage, SourceError> {
    let what = format!("oci:{}", dir.display());
    let marker = dir.join("oci-layout");
    if !marker.is_file() {
        return Err(SourceError::NotFound {
            what,
            reason: "no oci-layout file: this is not an OCI image layout directory".to_string(),
        });
    }
    let index_path = dir.join("index.json");
    let index_bytes = fs::read(&index_path)
        .map_err(SourceError::io(format!("reading {}", index_path.display())))?;
    let index = match manifest::parse_manifest(&index_bytes, Some(manifest::OCI_INDEX), &what)? {
        Manifest::Index(index) => index,
        Manifest::Image(_) => {
            return Err(SourceError::InvalidManifest {
                what,
                reason: "index.json is not an image index".to_string(),
            })
        }
    };
    let tag_of = |d: &Descriptor| d.annotations.get(REF_NAME_ANNOTATION).cloned();
    let tags: Vec<String> = index.manifests.iter().filter_map(tag_of).collect();
    let reference = match tag {
        Some(tag) => format!("{what}:{tag}"),
        None => what.clone(),
    };
    let mut entry = match tag {
        Some(tag) => index
            .manifests
            .iter()
            .find(|d| tag_of(d).as_deref() == Some(tag))
            .ok_or_else(|| SourceError::NotFound {
                what: what.clone(),
                reason: format!("no image tagged {tag:?}; tags present: {}", list(&tags)),
            })?
            .clone(),
        None if index.manifests.len() == 1 => index.manifests[0].clone(),
        // Untagged index.json of several images: choose among them by platform.
        None if tags.len() <= 1 => manifest::select_platform(&index, platform, &what)?.clone(),
        None => {
            return Err(SourceError::NotFound {
                what,
                reason: format!(
                    "several images; name one as oci:DIR:TAG (tags: {})",
                    list(&tags)
                ),
            })
        }
    };
    let mut chosen_platform = entry.platform.clone();
    let mut manifest_digest = None;
    let mut depth = 0;
    loop {
        let (digest, bytes) = read_blob(
            dir,
            &entry,
            &format!("{reference}: manifest {}", entry.digest),
        )?;
        manifest_digest.get_or_insert(digest);
        match manifest::parse_manifest(&bytes, Some(&entry.media_type), &reference)? {
            Manifest::Index(nested) if depth < MAX_INDEX_DEPTH => {
                entry = manifest::select_platform(&nested, platform, &reference)?.clone();
                chosen_platform = entry.platform.clone().or(chosen_platform);
                depth += 1;
            }
            Manifest::Index(_) => {
                return Err(SourceError::InvalidManifest {
                    what: reference,
                    reason: format!("image indexes nested more than {MAX_INDEX_DEPTH} deep"),
                })
            }
            Manifest::Image(image) => {
                let (_, config_bytes) =
                    read_blob(dir, &image.config, &format!("{reference}: config"))?;
                let config =
                    manifest::parse_config(&config_bytes, &format!("{reference}: config"))?;
                check_layer_count(image.layers.len(), &config, &reference)?;
                let layers = image
                    .layers
                    .iter()
                    .zip(&config.diff_ids)
                    .enumerate()
                    .map(|(index, (desc, diff_id))| {
                        let digest = desc.digest(&reference)?;
                        Ok(LayerRef {
                            index,
                            blob: BlobLocation::File(blob_path(dir, &digest)),
                            digest: Some(digest),
                            size: Some(desc.size),
                            diff_id: Some(diff_id.clone()),
                            media_type: desc.media_type.clone(),
                        })
                    })
                    .collect::<Result<Vec<_>, SourceError>>()?;
                return Ok(ResolvedImage {
                    reference,
                    manifest_digest,
                    platform: chosen_platform.or_else(|| config.platform.clone()),
                    config,
                    layers,
                    cache_blobs: Vec::new(),
                });
            }
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}
