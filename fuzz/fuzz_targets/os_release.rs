//! os-release parsing: never panics, and what it parsed survives being
//! written back in canonical double-quoted form and parsed again.
#![no_main]

use banger::os_release::{package_manager, OsRelease};
use libfuzzer_sys::fuzz_target;

/// `KEY="value"` with the characters that are special in double quotes escaped.
fn canonical(os: &OsRelease) -> String {
    let mut text = String::new();
    for (key, value) in os.entries() {
        text.push_str(key);
        text.push_str("=\"");
        for c in value.chars() {
            if matches!(c, '"' | '\\' | '$' | '`') {
                text.push('\\');
            }
            text.push(c);
        }
        text.push_str("\"\n");
    }
    text
}

fuzz_target!(|data: &[u8]| {
    let os = OsRelease::parse_bytes(data);
    let pm = package_manager(&os);
    let again = OsRelease::parse(&canonical(&os));
    assert_eq!(again, os, "canonical form did not round-trip");
    assert_eq!(package_manager(&again), pm);
    for (key, value) in os.entries() {
        assert_eq!(os.lookup(key), Some(value));
    }
});
