//! Manifests, indexes and image configs from arbitrary JSON: errors are
//! fine, panics are not. The first byte picks the Content-Type header.
#![no_main]

use banger::platform::Platform;
use banger::source::manifest::{
    parse_config, parse_manifest, select_platform, Manifest, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST,
    OCI_INDEX, OCI_MANIFEST,
};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some(OCI_MANIFEST),
    Some(OCI_INDEX),
    Some(DOCKER_MANIFEST),
    Some(DOCKER_MANIFEST_LIST),
    Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, json)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[pick as usize % CONTENT_TYPES.len()];
    match parse_manifest(json, content_type, "fuzz") {
        Ok(Manifest::Index(index)) => {
            for wanted in ["linux/amd64", "linux/arm64/v8"] {
                let wanted: Platform = wanted.parse().expect("a valid platform");
                if let Ok(found) = select_platform(&index, &wanted, "fuzz") {
                    let _ = found.digest("fuzz");
                }
            }
        }
        Ok(Manifest::Image(image)) => {
            let _ = image.config.digest("fuzz");
            for layer in &image.layers {
                let _ = layer.digest("fuzz");
            }
        }
        Err(_) => {}
    }
    let _ = parse_config(json, "fuzz");
});
