//! One arbitrary tar stream through the layer flattener: any error is fine,
//! a panic or a tree that breaks its invariants is not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = banger_fuzz::flatten_and_check(&[data]);
});
