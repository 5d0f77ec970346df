//! Kernel modules for guest images: reading `.ko` files and writing what
//! kmod's `depmod` writes, without kmod.
//!
//! banger copies a kernel's modules into a guest's `/lib/modules/RELEASE/`.
//! The guest's `modprobe` (and udev, through it) only finds them through the
//! files `depmod` generates (`modules.dep`, `modules.alias`, their `.bin`
//! indexes, ...), and a kernel package unpacked with `dpkg -x` ships none of
//! those: its post-install script runs depmod. The host may have no kmod, so
//! banger generates them itself from the modules' own bytes:
//!
//! - [`elf`]: a bounds-checked ELF64 little-endian reader;
//! - [`info`]: what one module declares ([`ModuleInfo`]);
//! - [`index`]: kmod's `.bin` index (a prefix-compressed trie) writer;
//! - [`graph`]: dependencies by symbol resolution, in depmod's order;
//! - [`depmod`]: the files `depmod` (kmod 30) writes, in its order;
//! - [`builtin`]: `modules.builtin` and `modules.builtin.modinfo`;
//! - [`select`]: the modules a guest needs, with their dependencies.
//!
//! The behaviour follows kmod 30 (`tools/depmod.c`, `libkmod/libkmod-elf.c`);
//! the integration test `tests/depmod.rs` compares the output with the
//! host's `depmod` on Debian's cloud kernel.

#![warn(missing_docs)]

pub mod builtin;
pub mod depmod;
pub mod elf;
mod error;
pub mod graph;
pub mod index;
pub mod info;
mod kmod_hash;
pub mod select;
#[cfg(test)]
mod test_elf;

pub use depmod::{generate, DepmodInput};
pub use error::ModuleError;
pub use info::ModuleInfo;
pub use select::{closure, GUEST_MODULES};
