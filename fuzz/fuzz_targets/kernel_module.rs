//! Kernel modules come from kernel artifacts pulled from registries: a
//! hostile `.ko` must give an error, never a panic, and whatever parses
//! must go through depmod's index generation and the closure too.
#![no_main]

use std::collections::BTreeSet;

use banger::modules::{closure, generate, DepmodInput, ModuleInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(info) = ModuleInfo::parse("kernel/drivers/fuzz/fuzz.ko", data) else {
        return;
    };
    let _ = info.release();
    let name = info.name.clone();
    let modules = [info];
    let _ = generate(&DepmodInput {
        modules: &modules,
        modules_order: Some("kernel/drivers/fuzz/fuzz.ko\n"),
        modules_builtin: None,
        modules_builtin_modinfo: None,
    });
    let _ = closure(&modules, &[name.as_str()], &BTreeSet::new());
});
