//! Local sources: OCI layouts, `docker save` archives and plain rootfs tars.

mod support;

use std::io::{Cursor, Read};

use banger::source::{resolve, BlobLocation, ImageSource, OneShotReader, SourceError, TarInput};
use support::oci::{
    build_docker_archive, build_layout, compress, layer_tar, sha256, Comp, ImageSpec, LayerSpec,
};
use support::{assert_mentions, message, options, read_layers};

fn source(s: &str) -> ImageSource {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn all_compressions() -> Vec<LayerSpec> {
    vec![
        LayerSpec::new(Comp::Gzip, &[("a", b"gzip")]),
        LayerSpec::new(Comp::Zstd, &[("b", b"zstd")]),
        LayerSpec::new(Comp::None, &[("c", b"plain")]),
    ]
}

#[tokio::test]
async fn case_34_oci_layout_with_every_compression() {
    let work = tempfile::tempdir().unwrap();
    let layout = build_layout(
        &work.path().join("l"),
        "v1",
        &[ImageSpec::new("linux/amd64", all_compressions())],
    );
    let cache = work.path().join("cache");
    let image = resolve(
        &source(&format!("oci:{}:v1", layout.dir.display())),
        &options(&cache),
    )
    .await
    .unwrap();
    assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);
    assert_eq!(
        image.manifest_digest.as_ref().map(|d| d.to_string()),
        Some(layout.images[0].manifest_digest.clone())
    );
    assert_eq!(image.config.runtime.env, ["PATH=/usr/bin:/bin"]);
    assert_eq!(image.config.runtime.working_dir.as_deref(), Some("/root"));
    // Layout blobs are read in place: nothing is copied into the cache.
    assert!(matches!(&image.layers[0].blob, BlobLocation::File(p) if p.starts_with(&layout.dir)));
    assert!(!cache.exists());
    // With a single image the tag may be omitted.
    let untagged = resolve(
        &source(&format!("oci:{}", layout.dir.display())),
        &options(&cache),
    )
    .await
    .unwrap();
    assert_eq!(untagged.layers.len(), 3);
}

#[tokio::test]
async fn case_34_mislabelled_compression_is_sniffed() {
    let work = tempfile::tempdir().unwrap();
    let layout = build_layout(
        &work.path().join("l"),
        "v1",
        &[ImageSpec::new("linux/amd64", all_compressions())],
    );
    // Relabel every layer as gzip in the manifest; the bytes stay what they are.
    let manifest_path = layout
        .dir
        .join("blobs/sha256")
        .join(&layout.images[0].manifest_digest[7..]);
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let relabelled = text
        .replace("v1.tar+zstd", "v1.tar+gzip")
        .replace("v1.tar\"", "v1.tar+gzip\"");
    assert_ne!(text, relabelled);
    let (digest, size) = support::oci::write_blob(&layout.dir, relabelled.as_bytes());
    let index = std::fs::read_to_string(layout.dir.join("index.json")).unwrap();
    let index = index
        .replace(&layout.images[0].manifest_digest, &digest)
        .replace(
            &format!("\"size\":{}", layout.images[0].manifest_size),
            &format!("\"size\":{size}"),
        );
    std::fs::write(layout.dir.join("index.json"), index).unwrap();
    let image = resolve(
        &source(&format!("oci:{}:v1", layout.dir.display())),
        &options(work.path()),
    )
    .await
    .unwrap();
    assert!(image.layers.iter().all(|l| l.media_type.ends_with("+gzip")));
    assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);
}

#[tokio::test]
async fn case_38_oci_layout_index_picks_the_platform() {
    let work = tempfile::tempdir().unwrap();
    let layout = build_layout(
        &work.path().join("l"),
        "multi",
        &[
            ImageSpec::new(
                "linux/arm64/v8",
                vec![LayerSpec::new(Comp::Gzip, &[("arch", b"arm64")])],
            ),
            ImageSpec::new(
                "linux/amd64",
                vec![LayerSpec::new(Comp::Gzip, &[("arch", b"amd64")])],
            ),
        ],
    );
    let src = source(&format!("oci:{}:multi", layout.dir.display()));
    let mut opts = options(work.path());
    let image = resolve(&src, &opts).await.unwrap();
    assert_eq!(read_layers(&image).unwrap(), layout.images[1].layer_tars);
    opts.platform = "linux/riscv64".parse().unwrap();
    let err = resolve(&src, &opts).await.unwrap_err().to_string();
    assert_mentions(&err, &["linux/arm64/v8", "linux/amd64", "linux/riscv64"]);
}

#[tokio::test]
async fn oci_layout_unknown_tag_lists_the_tags() {
    let work = tempfile::tempdir().unwrap();
    let layout = build_layout(
        &work.path().join("l"),
        "v1",
        &[ImageSpec::new("linux/amd64", all_compressions())],
    );
    let err = resolve(
        &source(&format!("oci:{}:v2", layout.dir.display())),
        &options(work.path()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err}");
    assert_mentions(&message(&err), &["v1"]);
    let err = resolve(
        &source(&format!("oci:{}", work.path().display())),
        &options(work.path()),
    )
    .await
    .unwrap_err();
    assert_mentions(&message(&err), &["not an OCI image layout"]);
}

#[tokio::test]
async fn case_35_oci_layout_corrupt_layer_blob_fails_while_streaming() {
    let work = tempfile::tempdir().unwrap();
    let layout = build_layout(
        &work.path().join("l"),
        "v1",
        &[ImageSpec::new("linux/amd64", all_compressions())],
    );
    // Flip a byte inside the stored (plain) layer: still a readable tar, wrong digest.
    let blob = layout
        .dir
        .join("blobs/sha256")
        .join(&layout.images[0].layer_digests[2][7..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[600] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let image = resolve(
        &source(&format!("oci:{}:v1", layout.dir.display())),
        &options(work.path()),
    )
    .await
    .unwrap();
    let err = read_layers(&image).unwrap_err();
    assert_mentions(&err, &["layer 2", "stored blob", "digest mismatch"]);

    // A corrupt manifest is caught before anything is streamed.
    let manifest = layout
        .dir
        .join("blobs/sha256")
        .join(&layout.images[0].manifest_digest[7..]);
    let mut text = std::fs::read(&manifest).unwrap();
    text.push(b' ');
    std::fs::write(&manifest, text).unwrap();
    let err = resolve(
        &source(&format!("oci:{}:v1", layout.dir.display())),
        &options(work.path()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SourceError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn case_35_oci_layout_diff_id_mismatch() {
    let work = tempfile::tempdir().unwrap();
    let mut spec = ImageSpec::new("linux/amd64", all_compressions());
    spec.bad_last_diff_id = true;
    let layout = build_layout(&work.path().join("l"), "v1", &[spec]);
    let image = resolve(
        &source(&format!("oci:{}:v1", layout.dir.display())),
        &options(work.path()),
    )
    .await
    .unwrap();
    let err = read_layers(&image).unwrap_err();
    assert_mentions(&err, &["layer 2", "diff_id"]);
}

#[tokio::test]
async fn docker_archive_layers_are_read_in_place() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("image.tar");
    let layers = vec![
        LayerSpec::new(Comp::None, &[("etc/os-release", b"ID=test\n")]),
        LayerSpec::new(Comp::Gzip, &[("usr/bin/tool", &[9u8; 30_000])]),
        LayerSpec::new(Comp::None, &[("etc/os-release", b"ID=test\n")]),
    ];
    let tars = build_docker_archive(&archive, &layers, true);
    let image = resolve(
        &source(&format!("docker-archive:{}", archive.display())),
        &options(work.path()),
    )
    .await
    .unwrap();
    assert_eq!(image.layers.len(), 3);
    assert!(
        matches!(&image.layers[1].blob, BlobLocation::Member { archive: a, .. } if a == &archive)
    );
    assert_eq!(read_layers(&image).unwrap(), tars);
    assert_eq!(image.config.runtime.entrypoint, ["/bin/sh"]);
    assert_eq!(
        image.platform.as_ref().map(|p| p.to_string()).as_deref(),
        Some("linux/amd64")
    );
    let diff_ids: Vec<String> = image
        .config
        .diff_ids
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(diff_ids, tars.iter().map(|t| sha256(t)).collect::<Vec<_>>());
}

#[tokio::test]
async fn docker_archive_missing_member_is_an_error() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("broken.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    let manifest = br#"[{"Config":"c.json","RepoTags":null,"Layers":["x/layer.tar"]}]"#;
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "manifest.json", &manifest[..])
        .unwrap();
    builder.finish().unwrap();
    drop(builder);
    let err = resolve(
        &source(&format!("docker-archive:{}", archive.display())),
        &options(work.path()),
    )
    .await
    .unwrap_err();
    assert_mentions(&message(&err), &["c.json", "missing"]);
}

#[tokio::test]
async fn case_34_tar_file_plain_gzip_and_zstd() {
    let work = tempfile::tempdir().unwrap();
    let tar = layer_tar(&[
        ("bin/sh".to_string(), b"#!".to_vec()),
        ("etc/x".to_string(), vec![3u8; 10_000]),
    ]);
    for (name, comp) in [
        ("r.tar", Comp::None),
        ("r.tar.gz", Comp::Gzip),
        ("r.tar.zst", Comp::Zstd),
    ] {
        let path = work.path().join(name);
        std::fs::write(&path, compress(&tar, comp)).unwrap();
        let image = resolve(
            &source(&format!("tar:{}", path.display())),
            &options(work.path()),
        )
        .await
        .unwrap();
        assert_eq!(image.layers.len(), 1);
        assert!(image.layers[0].digest.is_none() && image.layers[0].diff_id.is_none());
        assert_eq!(read_layers(&image).unwrap(), vec![tar.clone()], "{name}");
    }
}

#[tokio::test]
async fn tar_from_an_injected_reader_reads_once() {
    let work = tempfile::tempdir().unwrap();
    let tar = layer_tar(&[("f".to_string(), b"stdin".to_vec())]);
    let reader = OneShotReader::new(Cursor::new(compress(&tar, Comp::Zstd)));
    let image = resolve(
        &ImageSource::Tar(TarInput::Reader(reader)),
        &options(work.path()),
    )
    .await
    .unwrap();
    assert_eq!(image.reference, "tar:-");
    let mut out = Vec::new();
    image.layers[0]
        .open()
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, tar);
    let again = image.layers[0].open().map(|_| ()).unwrap_err();
    assert!(
        matches!(again, SourceError::AlreadyConsumed { .. }),
        "{again}"
    );
}
