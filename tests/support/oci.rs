//! Builds OCI image layouts and `docker save` archives from in-test file lists.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest as _, Sha256};

/// How a test layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

impl Comp {
    fn oci_media_type(self) -> &'static str {
        match self {
            Comp::None => "application/vnd.oci.image.layer.v1.tar",
            Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// One layer: regular files (path, contents), or a ready-made tar, compressed as asked.
#[derive(Debug, Clone)]
pub struct LayerSpec {
    pub files: Vec<(String, Vec<u8>)>,
    pub comp: Comp,
    /// A tar written by the test, used instead of `files`.
    pub raw_tar: Option<Vec<u8>>,
}

impl LayerSpec {
    pub fn new(comp: Comp, files: &[(&str, &[u8])]) -> Self {
        LayerSpec {
            files: files
                .iter()
                .map(|(p, c)| (p.to_string(), c.to_vec()))
                .collect(),
            comp,
            raw_tar: None,
        }
    }

    /// A layer whose uncompressed tar is `tar`, as written.
    pub fn from_tar(comp: Comp, tar: Vec<u8>) -> Self {
        LayerSpec {
            files: Vec::new(),
            comp,
            raw_tar: Some(tar),
        }
    }

    /// The uncompressed layer tar.
    pub fn tar(&self) -> Vec<u8> {
        match &self.raw_tar {
            Some(tar) => tar.clone(),
            None => layer_tar(&self.files),
        }
    }
}

/// One image of a layout.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// `os/arch[/variant]`.
    pub platform: String,
    pub layers: Vec<LayerSpec>,
    /// Record a wrong diff_id for the last layer (the config lies).
    pub bad_last_diff_id: bool,
}

impl ImageSpec {
    pub fn new(platform: &str, layers: Vec<LayerSpec>) -> Self {
        ImageSpec {
            platform: platform.to_string(),
            layers,
            bad_last_diff_id: false,
        }
    }
}

/// What was written for one image.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub manifest_digest: String,
    pub manifest_size: u64,
    pub platform: String,
    pub layer_digests: Vec<String>,
    pub diff_ids: Vec<String>,
    /// The uncompressed layer tars.
    pub layer_tars: Vec<Vec<u8>>,
}

/// A written layout.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    pub images: Vec<BuiltImage>,
    /// The digest index.json points at: a manifest, or the nested index for several images.
    pub top_digest: String,
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A tar of regular files, mode 0644, fixed mtime.
pub fn layer_tar(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, &contents[..])
            .expect("tar append");
    }
    builder.into_inner().expect("tar finish")
}

pub fn compress(data: &[u8], comp: Comp) -> Vec<u8> {
    match comp {
        Comp::None => data.to_vec(),
        Comp::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(data).expect("gzip");
            enc.finish().expect("gzip")
        }
        Comp::Zstd => zstd::encode_all(data, 3).expect("zstd"),
    }
}

/// Writes a blob into `layout/blobs/sha256/` and returns (digest, size).
pub fn write_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let digest = sha256(bytes);
    let dir = layout.join("blobs").join("sha256");
    fs::create_dir_all(&dir).expect("mkdir blobs");
    fs::write(dir.join(&digest[7..]), bytes).expect("write blob");
    (digest, bytes.len() as u64)
}

fn split_platform(platform: &str) -> serde_json::Value {
    let parts: Vec<&str> = platform.split('/').collect();
    let mut value = json!({"os": parts[0], "architecture": parts[1]});
    if let Some(variant) = parts.get(2) {
        value["variant"] = json!(variant);
    }
    value
}

/// The config JSON for `diff_ids`.
pub fn config_json(platform: &str, diff_ids: &[String]) -> Vec<u8> {
    let mut config = json!({
        "created": "2024-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Entrypoint": ["/bin/sh"], "Cmd": ["-c", "true"], "WorkingDir": "/root"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [],
    });
    let p = split_platform(platform);
    for key in ["os", "architecture", "variant"] {
        if let Some(v) = p.get(key) {
            config[key] = v.clone();
        }
    }
    serde_json::to_vec(&config).expect("json")
}

/// Writes the blobs and manifest of one image.
pub fn build_image(layout: &Path, spec: &ImageSpec) -> BuiltImage {
    let mut layer_descs = Vec::new();
    let mut layer_digests = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_tars = Vec::new();
    for layer in &spec.layers {
        let tar = layer.tar();
        let blob = compress(&tar, layer.comp);
        let (digest, size) = write_blob(layout, &blob);
        layer_descs.push(
            json!({"mediaType": layer.comp.oci_media_type(), "digest": digest, "size": size}),
        );
        layer_digests.push(digest);
        diff_ids.push(sha256(&tar));
        layer_tars.push(tar);
    }
    let mut recorded = diff_ids.clone();
    if spec.bad_last_diff_id {
        if let Some(last) = recorded.last_mut() {
            *last = sha256(b"not the layer");
        }
    }
    let (config_digest, config_size) = write_blob(layout, &config_json(&spec.platform, &recorded));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": layer_descs,
    });
    let (manifest_digest, manifest_size) =
        write_blob(layout, &serde_json::to_vec(&manifest).expect("json"));
    BuiltImage {
        manifest_digest,
        manifest_size,
        platform: spec.platform.clone(),
        layer_digests,
        diff_ids,
        layer_tars,
    }
}

/// A layer blob already written into a layout (for layers too large to build in memory).
#[derive(Debug, Clone)]
pub struct WrittenLayer {
    pub digest: String,
    pub size: u64,
    pub comp: Comp,
    pub diff_id: String,
}

/// Writes config, manifest, `index.json` (tagged `tag`) and `oci-layout` for one
/// image whose layer blobs are already in `dir`. Returns the manifest digest.
pub fn write_single_image(
    dir: &Path,
    tag: &str,
    platform: &str,
    layers: &[WrittenLayer],
) -> String {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let (config_digest, config_size) = write_blob(dir, &config_json(platform, &diff_ids));
    let descs: Vec<_> = layers
        .iter()
        .map(|l| json!({"mediaType": l.comp.oci_media_type(), "digest": l.digest, "size": l.size}))
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": descs,
    });
    let (digest, size) = write_blob(dir, &serde_json::to_vec(&manifest).expect("json"));
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                       "size": size, "annotations": {"org.opencontainers.image.ref.name": tag}}]});
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index.json");
    digest
}

/// Writes a complete layout at `dir` with `images` under `tag`: one image directly,
/// several through a nested index.
pub fn build_layout(dir: &Path, tag: &str, images: &[ImageSpec]) -> Layout {
    fs::create_dir_all(dir).expect("mkdir layout");
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let built: Vec<BuiltImage> = images.iter().map(|spec| build_image(dir, spec)).collect();
    let annotations = json!({"org.opencontainers.image.ref.name": tag});
    let top = if let [only] = built.as_slice() {
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": only.manifest_digest,
               "size": only.manifest_size, "annotations": annotations})
    } else {
        let entries: Vec<_> = built
            .iter()
            .map(|b| json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": b.manifest_digest,
                            "size": b.manifest_size, "platform": split_platform(&b.platform)}))
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
        let (digest, size) = write_blob(dir, &serde_json::to_vec(&index).expect("json"));
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size, "annotations": annotations})
    };
    let top_digest = top["digest"].as_str().expect("digest").to_string();
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [top]});
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index.json");
    Layout {
        dir: dir.to_path_buf(),
        images: built,
        top_digest,
    }
}

/// Writes a legacy `docker save` archive: `<id>/layer.tar` members (uncompressed, or
/// compressed as `comp` says), `<config-hex>.json`, `manifest.json`, `repositories`.
/// With `dedup_last`, the last layer is a symlink to the first, as docker writes
/// repeated layers. Returns the uncompressed tars.
pub fn build_docker_archive(path: &Path, layers: &[LayerSpec], dedup_last: bool) -> Vec<Vec<u8>> {
    let tars: Vec<Vec<u8>> = layers.iter().map(LayerSpec::tar).collect();
    let diff_ids: Vec<String> = tars.iter().map(|t| sha256(t)).collect();
    let config = config_json("linux/amd64", &diff_ids);
    let config_name = format!("{}.json", &sha256(&config)[7..]);
    let mut builder = tar::Builder::new(fs::File::create(path).expect("create archive"));
    let mut append = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, data)
            .expect("append");
    };
    let mut layer_names = Vec::new();
    for (i, (layer, tar)) in layers.iter().zip(&tars).enumerate() {
        let id = format!("{:064x}", i + 1);
        let name = format!("{id}/layer.tar");
        if dedup_last && i + 1 == layers.len() && i > 0 {
            layer_names.push(name);
            continue;
        }
        append(&format!("{id}/VERSION"), b"1.0");
        append(&name, &compress(tar, layer.comp));
        layer_names.push(name);
    }
    append(&config_name, &config);
    let manifest =
        json!([{"Config": config_name, "RepoTags": ["test/image:latest"], "Layers": layer_names}]);
    append(
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("json"),
    );
    if dedup_last && layers.len() > 1 {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        let last = layer_names.last().expect("layer").clone();
        builder
            .append_link(&mut header, &last, format!("../{:064x}/layer.tar", 1))
            .expect("symlink");
    }
    builder.finish().expect("finish archive");
    tars
}
