//! What one kernel module declares: its name, `.modinfo`, the symbols it
//! exports and the symbols it needs, read the way kmod 30 reads them
//! (`libkmod/libkmod-elf.c`), so that dependencies computed from them match
//! depmod's.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;

use super::elf::{until_nul, Elf, ElfError, SHN_ABS, SHN_UNDEF, STB_WEAK};
use super::error::ModuleError;

/// File name suffixes depmod takes for modules.
pub const MODULE_SUFFIXES: [&str; 4] = [".ko", ".ko.gz", ".ko.zst", ".ko.xz"];

/// Modules decompress to at most this many bytes; a real one is at most tens
/// of MiB, so more is a decompression bomb.
pub const MAX_MODULE_SIZE: u64 = 512 << 20;

/// One entry of `__versions`: a CRC (8 bytes) and a NUL-padded name.
const MODVERSION_SIZE: usize = 64;
/// `EM_SPARC` and `EM_SPARCV9`: their "register" symbols are not undefined.
const SPARC_MACHINES: [u16; 2] = [2, 43];
/// `STT_SPARC_REGISTER`.
const STT_REGISTER: u8 = 13;

/// A symbol a module exports (`EXPORT_SYMBOL`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedSymbol {
    /// The symbol's name.
    pub name: String,
    /// Its version CRC, as kmod reads it from the `__crc_NAME` symbol; 0 when
    /// the module has no CRCs, `u64::MAX` when the CRC's location is invalid.
    pub crc: u64,
}

/// A symbol a module needs from the kernel or another module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeededSymbol {
    /// The symbol's name.
    pub name: String,
    /// The CRC the module was built against, from `__versions` (0 if absent).
    pub crc: u64,
    /// A weak reference: the module loads without it.
    pub weak: bool,
}

/// What one module file declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The path relative to `lib/modules/RELEASE/`, as given, e.g.
    /// `kernel/drivers/net/virtio_net.ko`.
    pub path: String,
    /// The module's name: the file name up to its first `.`, with `-`
    /// replaced by `_` (kmod's `path_to_modname`).
    pub name: String,
    /// The `.modinfo` entries in file order (`alias`, `depends`, `softdep`,
    /// `vermagic`, `name`, ...). Bytes that are not UTF-8 are replaced.
    pub modinfo: Vec<(String, String)>,
    /// Exported symbols, in kmod's order.
    pub exports: Vec<ExportedSymbol>,
    /// Undefined symbols, in symbol-table order, then the `__versions`
    /// entries no symbol refers to (`module_layout`), as kmod lists them.
    pub needs: Vec<NeededSymbol>,
}

impl ModuleInfo {
    /// Reads the module at `relative_path` (relative to
    /// `lib/modules/RELEASE/`) from its bytes, decompressing gzip and zstd
    /// first (told apart by their magic bytes, as kmod does).
    pub fn parse(relative_path: &str, bytes: &[u8]) -> Result<Self, ModuleError> {
        let name = module_name(relative_path)?;
        let data = decompress(relative_path, bytes)?;
        let elf_error = |source: ElfError| ModuleError::Elf {
            path: relative_path.to_owned(),
            source,
        };
        let elf = Elf::parse(&data).map_err(elf_error)?;
        let modinfo = elf
            .section_data(".modinfo")
            .map_err(elf_error)?
            .map(|bytes| kmod_strings(bytes).map(key_value).collect())
            .unwrap_or_default();
        Ok(Self {
            path: relative_path.to_owned(),
            name,
            modinfo,
            exports: exported_symbols(&elf).map_err(elf_error)?,
            needs: needed_symbols(&elf).map_err(elf_error)?,
        })
    }

    /// The values of `.modinfo` key `key`, in file order.
    pub fn values<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.modinfo
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `.modinfo` key `key`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.modinfo
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `alias=` patterns (device ids udev asks modprobe for).
    pub fn aliases(&self) -> impl Iterator<Item = &str> + '_ {
        self.values("alias")
    }

    /// The kernel release the module was built for: the first word of
    /// `vermagic`, e.g. `6.1.0-13-cloud-amd64`.
    pub fn release(&self) -> Option<&str> {
        self.value("vermagic")?.split_whitespace().next()
    }

    /// The path with its compression suffix removed, ending in `.ko`: what
    /// `modules.order` lists. Computed like depmod's `uncrelpath`: the
    /// directory, then as many bytes of the file name as the module name
    /// has, then `.ko`.
    pub fn uncompressed_path(&self) -> &str {
        let base = self.path.rfind('/').map_or(0, |slash| slash + 1);
        let end = base + self.name.len() + ".ko".len();
        self.path.get(..end).unwrap_or(&self.path)
    }
}

/// The module name of a module path, or an error when the path does not end
/// in a module suffix.
pub fn module_name(path: &str) -> Result<String, ModuleError> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let is_module = MODULE_SUFFIXES
        .iter()
        .any(|suffix| file.len() > suffix.len() && file.ends_with(suffix));
    if !is_module {
        return Err(ModuleError::NotAModulePath {
            path: path.to_owned(),
        });
    }
    Ok(normalize_name(file))
}

/// kmod's `modname_normalize`: up to the first `.`, `-` becomes `_`.
pub fn normalize_name(file: &str) -> String {
    let stem = file.split('.').next().unwrap_or(file);
    stem.replace('-', "_")
}

/// The module's ELF bytes: `bytes` itself, or its decompressed contents.
fn decompress<'b>(path: &str, bytes: &'b [u8]) -> Result<Cow<'b, [u8]>, ModuleError> {
    let decoder: Box<dyn Read + 'b> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(bytes))
    } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = zstd::stream::read::Decoder::with_buffer(bytes).map_err(|source| {
            ModuleError::Decompress {
                path: path.to_owned(),
                source,
            }
        })?;
        Box::new(decoder)
    } else if bytes.starts_with(b"\xfd7zXZ\0") {
        return Err(ModuleError::UnsupportedCompression {
            path: path.to_owned(),
            compression: "xz",
        });
    } else {
        return Ok(Cow::Borrowed(bytes));
    };
    let mut out = Vec::new();
    decoder
        .take(MAX_MODULE_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|source| ModuleError::Decompress {
            path: path.to_owned(),
            source,
        })?;
    if out.len() as u64 > MAX_MODULE_SIZE {
        return Err(ModuleError::TooLarge {
            path: path.to_owned(),
            limit: MAX_MODULE_SIZE,
        });
    }
    Ok(Cow::Owned(out))
}

/// The NUL-separated strings of a section as kmod splits them
/// (`kmod_elf_get_strings`): leading NULs skipped, empty strings dropped, and
/// nothing at all when a single byte is left after the padding.
pub fn kmod_strings(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let start = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len())
        .min(bytes.len().saturating_sub(1));
    let rest = &bytes[start..];
    let rest = if rest.len() <= 1 { &[][..] } else { rest };
    rest.split(|&b| b == 0).filter(|s| !s.is_empty())
}

/// A `.modinfo` string split at its first `=` (a key without `=` has an
/// empty value, as in kmod).
fn key_value(entry: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(entry);
    match text.split_once('=') {
        Some((key, value)) => (key.to_owned(), value.to_owned()),
        None => (text.into_owned(), String::new()),
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// kmod's `kmod_elf_get_symbols`: the `__crc_NAME` symbols of `.symtab` when
/// there are any (a kernel built with MODVERSIONS), else the names in
/// `__ksymtab_strings`.
fn exported_symbols(elf: &Elf<'_>) -> Result<Vec<ExportedSymbol>, ElfError> {
    if let Some(symbols) = elf.symbols()? {
        let mut exports = Vec::new();
        for symbol in symbols.iter() {
            let symbol = symbol?;
            if let Some(name) = symbol.name.strip_prefix(b"__crc_") {
                exports.push(ExportedSymbol {
                    name: lossy(name),
                    crc: resolve_crc(elf, symbol.value, symbol.shndx),
                });
            }
        }
        if !exports.is_empty() {
            return Ok(exports);
        }
    }
    let strings = elf.section_data("__ksymtab_strings")?.unwrap_or_default();
    Ok(kmod_strings(strings)
        .map(|name| ExportedSymbol {
            name: lossy(name),
            crc: 0,
        })
        .collect())
}

/// The CRC a `__crc_` symbol stands for: its value when absolute, else the
/// 32-bit little-endian word at its value's offset in its section.
fn resolve_crc(elf: &Elf<'_>, value: u64, shndx: u16) -> u64 {
    if shndx == SHN_ABS || shndx == SHN_UNDEF {
        return value;
    }
    let word = elf.section_header(shndx).and_then(|header| {
        let end = value
            .checked_add(4)
            .filter(|&end| end <= header.sh_size.get())?;
        let start = header.sh_offset.get().checked_add(value)?;
        let end = header.sh_offset.get().checked_add(end)?;
        let bytes = elf
            .file_bytes()
            .get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    });
    word.map_or(u64::MAX, u64::from)
}

/// kmod's `kmod_elf_get_dependency_symbols`: every undefined symbol with its
/// CRC from `__versions`, then the `__versions` entries no symbol used.
fn needed_symbols(elf: &Elf<'_>) -> Result<Vec<NeededSymbol>, ElfError> {
    let Some(symbols) = elf.symbols()? else {
        // kmod finds no dependencies in a module without a symbol table.
        return Ok(Vec::new());
    };
    let versions = elf
        .section_data("__versions")?
        .filter(|v| v.len() % MODVERSION_SIZE == 0)
        .unwrap_or_default();
    let versions: Vec<(u64, &[u8])> = versions
        .chunks_exact(MODVERSION_SIZE)
        .map(|entry| {
            let (crc, name) = entry.split_at(8);
            let crc = u64::from_le_bytes(crc.try_into().unwrap_or_default());
            (crc, until_nul(name))
        })
        .collect();
    let mut first_version: HashMap<&[u8], usize> = HashMap::with_capacity(versions.len());
    for (i, (_, name)) in versions.iter().enumerate().rev() {
        first_version.insert(name, i);
    }
    let mut visited = vec![false; versions.len()];
    let sparc = SPARC_MACHINES.contains(&elf.machine());
    let mut needs = Vec::new();
    for entry in symbols.entries().iter().skip(1) {
        if entry.st_shndx.get() != SHN_UNDEF || (sparc && entry.st_info & 0xf == STT_REGISTER) {
            continue;
        }
        let name = symbols.name(entry)?;
        if name.is_empty() {
            continue;
        }
        let crc = first_version.get(name).map_or(0, |&i| {
            visited[i] = true;
            versions[i].0
        });
        needs.push(NeededSymbol {
            name: lossy(name),
            crc,
            weak: entry.st_info >> 4 == STB_WEAK,
        });
    }
    let unvisited = versions.iter().zip(&visited).filter(|(_, &seen)| !seen);
    needs.extend(unvisited.map(|((crc, name), _)| NeededSymbol {
        name: lossy(name),
        crc: *crc,
        weak: false,
    }));
    Ok(needs)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use proptest::prelude::*;

    use super::*;
    use crate::modules::test_elf::Module;

    fn sample() -> Vec<u8> {
        Module {
            modinfo: &[
                "alias=pci:v00001AF4d*sv*sd*bc*sc*i*",
                "depends=virtio,virtio_ring",
                "vermagic=6.1.0-13-cloud-amd64 SMP preempt mod_unload modversions ",
                "license",
            ],
            crc_exports: &[("net_thing", 0xdead_beef), ("other", 7)],
            ksymtab: &["ignored_when_crcs_exist"],
            undefined: &[("virtqueue_add", false), ("maybe", true), ("no_crc", false)],
            versions: &[
                ("module_layout", 0x11),
                ("maybe", 0x22),
                ("virtqueue_add", 0x33),
            ],
        }
        .build()
    }

    #[test]
    fn reads_what_kmod_reads() {
        let info = ModuleInfo::parse("kernel/drivers/net/net-thing.ko", &sample()).unwrap();
        assert_eq!(info.name, "net_thing");
        assert_eq!(info.value("depends"), Some("virtio,virtio_ring"));
        assert_eq!(info.value("license"), Some(""));
        assert_eq!(
            info.aliases().collect::<Vec<_>>(),
            ["pci:v00001AF4d*sv*sd*bc*sc*i*"]
        );
        assert_eq!(info.release(), Some("6.1.0-13-cloud-amd64"));
        let exports: Vec<(&str, u64)> = info.exports.iter().map(|e| (&*e.name, e.crc)).collect();
        assert_eq!(exports, [("net_thing", 0xdead_beef), ("other", 7)]);
        let needs: Vec<(&str, u64, bool)> = info
            .needs
            .iter()
            .map(|n| (&*n.name, n.crc, n.weak))
            .collect();
        // Symbol-table order with CRCs from __versions, then the unused
        // __versions entry (module_layout), as kmod lists them.
        assert_eq!(
            needs,
            [
                ("virtqueue_add", 0x33, false),
                ("maybe", 0x22, true),
                ("no_crc", 0, false),
                ("module_layout", 0x11, false),
            ]
        );
        assert_eq!(info.uncompressed_path(), "kernel/drivers/net/net-thing.ko");
    }

    #[test]
    fn exports_fall_back_to_ksymtab_strings() {
        let bytes = Module {
            ksymtab: &["a", "b"],
            ..Module::default()
        }
        .build();
        let info = ModuleInfo::parse("a.ko", &bytes).unwrap();
        let names: Vec<&str> = info.exports.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(info.exports.iter().all(|e| e.crc == 0));
        assert!(info.modinfo.is_empty() && info.needs.is_empty());
    }

    #[test]
    fn compressed_modules_read_like_plain_ones() {
        let plain = ModuleInfo::parse("kernel/x/net-thing.ko", &sample()).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&sample()).unwrap();
        let gz = gz.finish().unwrap();
        let info = ModuleInfo::parse("kernel/x/net-thing.ko.gz", &gz).unwrap();
        assert_eq!(info.modinfo, plain.modinfo);
        assert_eq!(
            (info.exports.clone(), info.needs.clone()),
            (plain.exports.clone(), plain.needs.clone())
        );
        assert_eq!(info.uncompressed_path(), "kernel/x/net-thing.ko");
        let zst = zstd::encode_all(&sample()[..], 3).unwrap();
        let info = ModuleInfo::parse("kernel/x/net-thing.ko.zst", &zst).unwrap();
        assert_eq!(info.needs, plain.needs);
        assert_eq!(info.uncompressed_path(), "kernel/x/net-thing.ko");

        let xz = b"\xfd7zXZ\0rest".to_vec();
        let err = ModuleInfo::parse("a.ko.xz", &xz).unwrap_err();
        assert!(matches!(
            err,
            ModuleError::UnsupportedCompression {
                compression: "xz",
                ..
            }
        ));
        assert!(err.to_string().contains("xz"), "{err}");
        let err = ModuleInfo::parse("a.ko.gz", &gz[..gz.len() / 2]).unwrap_err();
        assert!(matches!(err, ModuleError::Decompress { .. }), "{err:?}");
    }

    #[test]
    fn names_follow_kmod() {
        assert_eq!(module_name("kernel/a/foo-bar.ko.zst").unwrap(), "foo_bar");
        assert_eq!(module_name("foo.bar.ko").unwrap(), "foo");
        assert_eq!(module_name("updates/x_y.ko.gz").unwrap(), "x_y");
        for bad in [".ko", "kernel/.ko", "foo.o", "foo.ko.bz2", "dir.ko/"] {
            assert!(
                matches!(module_name(bad), Err(ModuleError::NotAModulePath { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn kmod_splits_strings_its_way() {
        fn split(b: &[u8]) -> Vec<&[u8]> {
            kmod_strings(b).collect()
        }
        assert_eq!(split(b"\0\0a=1\0\0b\0"), [&b"a=1"[..], b"b"]);
        assert_eq!(split(b"a\0bc"), [&b"a"[..], b"bc"]);
        // A single byte left after the padding counts as nothing.
        assert!(split(b"\0\0x").is_empty());
        assert!(split(b"").is_empty());
        assert!(split(b"\0").is_empty());
    }

    #[test]
    fn malformed_modules_give_errors() {
        let err = ModuleInfo::parse("a.ko", b"not elf at all").unwrap_err();
        assert!(matches!(
            err,
            ModuleError::Elf {
                source: ElfError::NotElf,
                ..
            }
        ));
        // The message names the module, the source says what is wrong.
        assert_eq!(err.to_string(), "a.ko: malformed module");
        let bytes = sample();
        for len in 0..bytes.len() {
            let _ = ModuleInfo::parse("a.ko", &bytes[..len]);
        }
    }

    proptest! {
        /// Random corruption of a module never panics.
        #[test]
        fn corrupted_modules_never_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
        ) {
            let mut bytes = sample();
            for (at, value) in flips {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            let _ = ModuleInfo::parse("a.ko", &bytes);
        }
    }
}
