//! Pulls from a real registry (Debian's docker-registry, images pushed by skopeo).

mod support;

use banger::source::{resolve, FetchEvent, ImageSource};
use std::sync::{Arc, Mutex};
use support::oci::{Comp, ImageSpec, LayerSpec};
use support::registry::TestRegistry;
use support::{assert_mentions, cache_entries, options, read_layers};

fn three_layers() -> Vec<LayerSpec> {
    vec![
        LayerSpec::new(
            Comp::Gzip,
            &[("etc/hostname", b"gz\n"), ("bin/a", &[1u8; 70_000])],
        ),
        LayerSpec::new(Comp::Zstd, &[("etc/zstd", b"zstd layer\n")]),
        LayerSpec::new(Comp::None, &[("plain.txt", b"plain layer\n")]),
    ]
}

fn source(s: &str) -> ImageSource {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_39_oci_manifest_with_gzip_zstd_and_plain_layers() {
    let Some(registry) =
        TestRegistry::start("case_39_oci_manifest_with_gzip_zstd_and_plain_layers")
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (layout, reference) = registry.push_images(
        &work.path().join("layout"),
        "test/oci",
        "v1",
        &[ImageSpec::new("linux/amd64", three_layers())],
        &[],
    );

    let cache = work.path().join("cache");
    let image = resolve(&source(&reference), &options(&cache))
        .await
        .unwrap();
    let built = &layout.images[0];
    assert_eq!(image.reference, reference);
    // skopeo re-serialises the manifest, so its digest differs from the layout's.
    assert!(image.manifest_digest.is_some());
    assert_eq!(image.layers.len(), 3);
    assert_eq!(
        image.layers[1].media_type,
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(image.config.runtime.entrypoint, ["/bin/sh"]);
    assert_eq!(
        image.config.created.as_deref(),
        Some("2024-01-02T03:04:05Z")
    );
    let diff_ids: Vec<String> = image
        .config
        .diff_ids
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(diff_ids, built.diff_ids);
    assert_eq!(read_layers(&image).unwrap(), built.layer_tars);
    // Config, manifest and three layers are cached; no temp files remain.
    assert_eq!(
        cache_entries(&cache).len(),
        5,
        "{:?}",
        cache_entries(&cache)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_39_docker_schema2_manifest() {
    let Some(registry) = TestRegistry::start("case_39_docker_schema2_manifest") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let layers = vec![
        LayerSpec::new(Comp::Gzip, &[("a", b"first")]),
        LayerSpec::new(Comp::Gzip, &[("b", b"second")]),
    ];
    let (layout, reference) = registry.push_images(
        &work.path().join("layout"),
        "test/v2s2",
        "v1",
        &[ImageSpec::new("linux/amd64", layers)],
        &["--format", "v2s2"],
    );

    let image = resolve(&source(&reference), &options(&work.path().join("c")))
        .await
        .unwrap();
    assert!(image
        .layers
        .iter()
        .all(|l| l.media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip"));
    assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_38_two_platform_index_picks_amd64() {
    let Some(registry) = TestRegistry::start("case_38_two_platform_index_picks_amd64") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (layout, reference) = registry.push_images(
        &work.path().join("layout"),
        "test/multi",
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
        &["--all"],
    );
    let src = source(&reference);

    let mut opts = options(&work.path().join("c"));
    let image = resolve(&src, &opts).await.unwrap();
    assert_eq!(
        image.platform.as_ref().map(|p| p.to_string()).as_deref(),
        Some("linux/amd64")
    );
    assert_eq!(
        image.manifest_digest.as_ref().map(|d| d.to_string()),
        Some(layout.top_digest.clone())
    );
    assert_eq!(read_layers(&image).unwrap(), layout.images[1].layer_tars);

    opts.platform = "linux/aarch64".parse().unwrap();
    let image = resolve(&src, &opts).await.unwrap();
    assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_44_cached_image_resolves_by_digest_with_the_registry_gone() {
    let Some(mut registry) =
        TestRegistry::start("case_44_cached_image_resolves_by_digest_with_the_registry_gone")
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (layout, reference) = registry.push_images(
        &work.path().join("layout"),
        "test/cached",
        "v1",
        &[ImageSpec::new("linux/amd64", three_layers())],
        &[],
    );
    let cache = work.path().join("cache");

    let first = resolve(&source(&reference), &options(&cache))
        .await
        .unwrap();
    let digest = first.manifest_digest.clone().unwrap();
    registry.stop();

    let events = Arc::new(Mutex::new(Vec::new()));
    let mut opts = options(&cache);
    let sink = events.clone();
    opts.progress = Some(Arc::new(move |e| sink.lock().unwrap().push(e)));
    let again = resolve(
        &source(&format!("{}/test/cached@{digest}", registry.host())),
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(read_layers(&again).unwrap(), layout.images[0].layer_tars);
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 4, "config + 3 layers: {events:?}");
    assert!(
        events
            .iter()
            .all(|e| matches!(e, FetchEvent::Cached { .. })),
        "{events:?}"
    );
    // By tag the registry must be asked (tags move), and it is gone.
    let by_tag = resolve(&source(&reference), &options(&cache)).await;
    assert!(by_tag.is_err());
}

#[test]
fn case_44_two_concurrent_pulls_both_succeed_with_one_copy() {
    let Some(registry) =
        TestRegistry::start("case_44_two_concurrent_pulls_both_succeed_with_one_copy")
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..4_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let layers = vec![
        LayerSpec::new(Comp::Gzip, &[("big", &big[..])]),
        LayerSpec::new(Comp::Zstd, &[("small", b"s")]),
    ];
    let (layout, reference) = registry.push_images(
        &work.path().join("layout"),
        "test/race",
        "v1",
        &[ImageSpec::new("linux/amd64", layers)],
        &[],
    );
    let cache = work.path().join("cache");

    // Separate threads with separate runtimes: only the file locks coordinate them.
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            let (cache, reference) = (cache.clone(), reference.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Runtime::new().unwrap();
                runtime.block_on(resolve(&source(&reference), &options(&cache)))
            })
        })
        .collect();
    for pull in pulls {
        let image = pull.join().unwrap().unwrap();
        assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);
    }
    let entries = cache_entries(&cache);
    assert_eq!(
        entries.len(),
        4,
        "manifest, config, 2 layers and nothing else: {entries:?}"
    );
    assert!(entries.iter().all(|e| e.len() == 64), "{entries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_35_diff_id_mismatch_fails_when_the_layer_is_read() {
    let Some(registry) =
        TestRegistry::start("case_35_diff_id_mismatch_fails_when_the_layer_is_read")
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let mut spec = ImageSpec::new("linux/amd64", three_layers());
    spec.bad_last_diff_id = true;
    let (_, reference) =
        registry.push_images(&work.path().join("layout"), "test/liar", "v1", &[spec], &[]);

    let image = resolve(&source(&reference), &options(&work.path().join("c")))
        .await
        .unwrap();
    let err = read_layers(&image).unwrap_err();
    assert_mentions(&err, &["layer 2 (sha256:", "diff_id"]);
}
