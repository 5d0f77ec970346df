//! Up to four layers, split at [`SEPARATOR`], flattened in order: whiteouts,
//! opaque directories and hard links across layers.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Seeds join their layers with this marker, which real tars do not hold.
const SEPARATOR: &[u8] = b"BANGER-NEXT-LAYER";

/// At most this many layers per input.
const MAX_LAYERS: usize = 4;

fuzz_target!(|data: &[u8]| {
    let mut layers = Vec::new();
    let mut rest = data;
    while layers.len() + 1 < MAX_LAYERS {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(at) => {
                layers.push(&rest[..at]);
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    layers.push(rest);
    let _ = banger_fuzz::flatten_and_check(&layers);
});
