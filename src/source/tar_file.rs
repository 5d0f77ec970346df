//! `tar:FILE` / `tar:-`: a single rootfs tar (plain, gzip or zstd) with no config.

use super::{BlobLocation, ImageConfig, LayerRef, ResolvedImage, TarInput};

/// One layer, no digests: the stream is only decompressed.
pub fn resolve(input: &TarInput) -> ResolvedImage {
    let (reference, blob) = match input {
        TarInput::Path(path) => (
            format!("tar:{}", path.display()),
            BlobLocation::File(path.clone()),
        ),
        TarInput::Stdin => ("tar:-".to_string(), BlobLocation::Stdin),
        TarInput::Reader(reader) => ("tar:-".to_string(), BlobLocation::Reader(reader.clone())),
    };
    ResolvedImage {
        reference,
        manifest_digest: None,
        platform: None,
        config: ImageConfig::default(),
        cache_blobs: Vec::new(),
        layers: vec![LayerRef {
            index: 0,
            digest: None,
            size: None,
            diff_id: None,
            media_type: "application/vnd.oci.image.layer.v1.tar".to_string(),
            blob,
        }],
    }
}
