//! Manifests, indexes and image configs as found in registries, OCI layouts and
//! docker archives: parsed leniently (unknown fields ignored), checked strictly.

use std::collections::HashMap;

use serde::Deserialize;

use super::{ImageConfig, RuntimeConfig, SourceError};
use crate::platform::Platform;
use crate::reference::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 manifests (signed and unsigned): unsupported.
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// Everything a registry may answer with, in the `Accept` header.
pub const ACCEPTED_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";
/// Annotation naming a tag in an OCI layout's index.json.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Annotation marking buildkit attestation manifests in an index.
const DOCKER_REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";
/// Layer media types banger can unpack (compression is sniffed anyway).
const LAYER_MEDIA_TYPES: [&str; 8] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
];

/// A content descriptor (manifest entry, config or layer).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    #[serde(default)]
    pub media_type: String,
    /// `sha256:…`, as written (validated by [`Descriptor::digest`]).
    pub digest: String,
    /// Length in bytes.
    pub size: u64,
    /// For index entries.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Free-form annotations.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

impl Descriptor {
    /// The validated digest.
    pub fn digest(&self, what: &str) -> Result<Digest, SourceError> {
        self.digest
            .parse()
            .map_err(
                |e: crate::reference::ReferenceError| SourceError::InvalidManifest {
                    what: what.to_string(),
                    reason: e.to_string(),
                },
            )
    }

    /// Attestation and other non-image entries buildkit puts into indexes.
    fn is_attestation(&self) -> bool {
        self.annotations
            .contains_key(DOCKER_REFERENCE_TYPE_ANNOTATION)
            || self
                .platform
                .as_ref()
                .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
    }
}

/// An image manifest (OCI or docker schema 2).
#[derive(Debug, Clone, Deserialize)]
pub struct ImageManifest {
    /// The config blob.
    pub config: Descriptor,
    /// Layer blobs, lowest first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An image index / manifest list.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    /// The entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest document.
#[derive(Debug, Clone)]
pub enum Manifest {
    /// Points at a config and layers.
    Image(ImageManifest),
    /// Points at per-platform manifests (or further indexes).
    Index(Index),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

fn invalid(what: &str, reason: impl std::fmt::Display) -> SourceError {
    SourceError::InvalidManifest {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

/// Parses a manifest or index. `content_type` is the registry's `Content-Type` or the
/// descriptor's media type, used when the document does not name its own.
pub fn parse_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
    what: &str,
) -> Result<Manifest, SourceError> {
    let envelope: Envelope = serde_json::from_slice(bytes).map_err(|e| invalid(what, e))?;
    let media_type = envelope
        .media_type
        .as_deref()
        .or(content_type)
        .map(|m| m.split(';').next().unwrap_or(m).trim().to_string())
        .unwrap_or_default();
    if envelope.schema_version == Some(1) || DOCKER_SCHEMA1.contains(&media_type.as_str()) {
        return Err(SourceError::Schema1 {
            what: what.to_string(),
        });
    }
    let is_index = match media_type.as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        // Media type is optional in OCI documents: go by shape.
        _ if envelope.manifests.is_some() => true,
        _ if envelope.config.is_some() => false,
        other => {
            return Err(SourceError::UnsupportedMediaType {
                what: what.to_string(),
                media_type: other.to_string(),
            })
        }
    };
    if is_index {
        Ok(Manifest::Index(
            serde_json::from_slice(bytes).map_err(|e| invalid(what, e))?,
        ))
    } else {
        let manifest: ImageManifest =
            serde_json::from_slice(bytes).map_err(|e| invalid(what, e))?;
        for layer in &manifest.layers {
            check_layer_media_type(layer, what)?;
        }
        Ok(Manifest::Image(manifest))
    }
}

fn check_layer_media_type(layer: &Descriptor, what: &str) -> Result<(), SourceError> {
    if layer.media_type.is_empty() || LAYER_MEDIA_TYPES.contains(&layer.media_type.as_str()) {
        Ok(())
    } else {
        Err(SourceError::UnsupportedMediaType {
            what: format!("{what}: layer {}", layer.digest),
            media_type: layer.media_type.clone(),
        })
    }
}

/// Picks the entry of `index` for `wanted`, skipping attestations. With no match the
/// error lists every platform the index offers.
pub fn select_platform<'a>(
    index: &'a Index,
    wanted: &Platform,
    what: &str,
) -> Result<&'a Descriptor, SourceError> {
    let candidates = || index.manifests.iter().filter(|d| !d.is_attestation());
    let matching = candidates().find(|d| d.platform.as_ref().is_some_and(|p| wanted.matches(p)));
    if let Some(found) = matching {
        return Ok(found);
    }
    // An index of one entry without a platform is just indirection (e.g. an OCI layout).
    let all: Vec<&Descriptor> = candidates().collect();
    if let [only] = all.as_slice() {
        if only.platform.is_none() {
            return Ok(only);
        }
    }
    Err(SourceError::NoMatchingPlatform {
        what: what.to_string(),
        wanted: wanted.to_string(),
        available: all
            .iter()
            .map(|d| {
                d.platform
                    .as_ref()
                    .map_or_else(|| "(unspecified)".to_string(), Platform::to_string)
            })
            .collect(),
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawRunConfig {
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    /// `{"80/tcp": {}}`: only the keys mean anything.
    #[serde(default)]
    exposed_ports: Option<std::collections::BTreeMap<String, serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    config: Option<RawRunConfig>,
    rootfs: RawRootfs,
}

/// Parses an image config blob.
pub fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfig, SourceError> {
    let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| invalid(what, e))?;
    let diff_ids = raw
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.parse::<Digest>().map_err(|e| invalid(what, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let run = raw.config.unwrap_or_default();
    let platform = match (raw.os, raw.architecture) {
        (Some(os), Some(architecture)) => Some(Platform {
            os,
            architecture,
            variant: raw.variant,
        }),
        _ => None,
    };
    Ok(ImageConfig {
        created: raw.created,
        platform,
        diff_ids,
        runtime: RuntimeConfig {
            env: run.env.unwrap_or_default(),
            entrypoint: run.entrypoint.unwrap_or_default(),
            cmd: run.cmd.unwrap_or_default(),
            working_dir: run.working_dir.filter(|w| !w.is_empty()),
            user: run.user.filter(|u| !u.is_empty()),
            exposed_ports: run.exposed_ports.unwrap_or_default().into_keys().collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(platform: &str, annotations: &[(&str, &str)]) -> serde_json::Value {
        let mut parts = platform.split('/');
        serde_json::json!({
            "mediaType": OCI_MANIFEST, "size": 1,
            "digest": format!("sha256:{}", "a".repeat(64)),
            "platform": {"os": parts.next(), "architecture": parts.next(), "variant": parts.next()},
            "annotations": annotations.iter().cloned().collect::<HashMap<_, _>>(),
        })
    }

    fn index(entries: Vec<serde_json::Value>) -> Index {
        let doc =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
        match parse_manifest(doc.to_string().as_bytes(), None, "t").unwrap() {
            Manifest::Index(i) => i,
            Manifest::Image(_) => panic!("parsed as image"),
        }
    }

    #[test]
    fn case_38_attestations_are_skipped() {
        let idx = index(vec![
            entry("unknown/unknown", &[]),
            entry(
                "linux/amd64",
                &[("vnd.docker.reference.type", "attestation-manifest")],
            ),
            entry("linux/arm64/v8", &[]),
            entry("linux/x86_64", &[]),
        ]);
        let picked = select_platform(&idx, &Platform::default(), "t").unwrap();
        assert_eq!(picked.platform.as_ref().unwrap().architecture, "x86_64");
    }

    #[test]
    fn case_38_no_match_lists_the_offered_platforms() {
        let idx = index(vec![
            entry("linux/arm64/v8", &[]),
            entry("linux/s390x", &[]),
            entry("unknown/unknown", &[]),
        ]);
        let err = select_platform(&idx, &Platform::default(), "img")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linux/arm64/v8") && err.contains("linux/s390x"),
            "{err}"
        );
        assert!(
            err.contains("linux/amd64") && !err.contains("unknown"),
            "{err}"
        );
    }

    #[test]
    fn case_39_schema1_is_a_clear_error() {
        let doc = br#"{"schemaVersion":1,"name":"x","tag":"latest","fsLayers":[]}"#;
        let err = parse_manifest(doc, None, "x").unwrap_err().to_string();
        assert!(err.contains("schema 1"), "{err}");
    }
}
