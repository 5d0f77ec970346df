//! Test harness shared by the source/registry tests (and future end-to-end tests).
#![allow(dead_code)]

pub mod fake;
pub mod oci;
pub mod registry;

use std::io::Read;
use std::path::Path;

use banger::source::{ResolveOptions, ResolvedImage};

/// Options with the cache in `cache` (loopback registries are plain HTTP anyway).
pub fn options(cache: &Path) -> ResolveOptions {
    ResolveOptions::new(cache.to_path_buf())
}

/// Reads every layer's decompressed, verified stream.
pub fn read_layers(image: &ResolvedImage) -> Result<Vec<Vec<u8>>, String> {
    image
        .layers
        .iter()
        .map(|layer| {
            let mut out = Vec::new();
            layer
                .open()
                .map_err(|e| e.to_string())?
                .read_to_end(&mut out)
                .map_err(|e| e.to_string())?;
            Ok(out)
        })
        .collect()
}

/// Names in the cache's blob directory (including temp files, which must not linger).
pub fn cache_entries(cache: &Path) -> Vec<String> {
    let dir = cache.join("oci/blobs/sha256");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// An error with its causes, `: `-joined, as the CLI prints it.
pub fn message(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

/// Asserts that an error's `text` mentions every one of `needles`.
#[track_caller]
pub fn assert_mentions(text: &str, needles: &[&str]) {
    let missing: Vec<&&str> = needles.iter().filter(|n| !text.contains(**n)).collect();
    assert!(missing.is_empty(), "{text:?} does not mention {missing:?}");
}
