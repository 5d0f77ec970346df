//! The error type of [`crate::modules`].

use super::elf::ElfError;

/// Why a module could not be read, or depmod's files not be generated.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The path does not end in `.ko`, `.ko.gz`, `.ko.zst` or `.ko.xz`, so it
    /// names no module (depmod ignores such files).
    #[error("{path}: not a kernel module file name (.ko, .ko.gz, .ko.zst, .ko.xz)")]
    NotAModulePath {
        /// The path given.
        path: String,
    },
    /// The module is compressed in a format banger does not read.
    #[error(
        "{path}: {compression} compressed modules are not supported (recompress with zstd or gzip)"
    )]
    UnsupportedCompression {
        /// The module's path.
        path: String,
        /// The format, e.g. `xz`.
        compression: &'static str,
    },
    /// The compressed module could not be decompressed.
    #[error("{path}: cannot decompress the module")]
    Decompress {
        /// The module's path.
        path: String,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// The decompressed module is implausibly large (a decompression bomb).
    #[error("{path}: the module decompresses to more than {limit} bytes")]
    TooLarge {
        /// The module's path.
        path: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The module is not a well-formed ELF64 little-endian file.
    #[error("{path}: malformed module")]
    Elf {
        /// The module's path.
        path: String,
        /// What is wrong with it.
        #[source]
        source: ElfError,
    },
    /// A string cannot go into a `.bin` index: kmod's format holds 7-bit
    /// ASCII without NUL only (depmod itself refuses such strings too).
    #[error("{file}: {text:?} is not 7-bit ASCII without NUL, which the index format requires")]
    NotAscii {
        /// The index being written.
        file: &'static str,
        /// The offending key or value.
        text: String,
    },
    /// The index is larger than its 28-bit node offsets can address.
    #[error("{file}: the index exceeds the format's 256 MiB limit")]
    IndexTooLarge {
        /// The index being written.
        file: &'static str,
    },
    /// Modules depend on each other in a cycle, so no load order exists
    /// (depmod fails and writes nothing in this case too).
    #[error("dependency cycle among modules (those in or below a cycle: {})", modules.join(", "))]
    Cycle {
        /// Names of the modules left unsorted: those in a cycle and those
        /// they depend on.
        modules: Vec<String>,
    },
    /// A module asked for is neither in the tree nor built into the kernel.
    #[error("module {name} is neither among the kernel's modules nor built into it")]
    MissingModule {
        /// The name asked for.
        name: String,
    },
}
