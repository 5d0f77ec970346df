//! Image references, digests and platforms: no panics, and whatever parses
//! prints back to text that parses to the same value.
#![no_main]

use banger::platform::Platform;
use banger::reference::{Digest, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(reference) = text.parse::<Reference>() {
        let printed = reference.to_string();
        let again: Reference = printed
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?} does not parse: {e}"));
        assert_eq!(again, reference, "{text:?} -> {printed:?}");
        let _ = (
            reference.api_host(),
            reference.manifest_reference(),
            reference.is_loopback(),
        );
    }
    if let Ok(digest) = text.parse::<Digest>() {
        assert_eq!(
            digest.to_string().parse::<Digest>().ok(),
            Some(digest.clone())
        );
        let _ = digest.short();
    }
    if let Ok(platform) = text.parse::<Platform>() {
        let printed = platform.to_string();
        let again: Platform = printed
            .parse()
            .unwrap_or_else(|e| panic!("platform {text:?} printed as {printed:?}: {e}"));
        assert!(
            again.matches(&platform) && platform.matches(&again),
            "{text:?} -> {printed:?}"
        );
    }
});
