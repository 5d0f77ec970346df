//! The files kmod 30's `depmod` writes into `lib/modules/RELEASE/`,
//! generated from the modules' own bytes.
//!
//! Text files follow depmod's formats and line order exactly; the `.bin`
//! indexes are built with depmod's own trie insertion, in its insertion
//! order, so they are the same bytes as depmod's (the integration test
//! `tests/depmod.rs` checks both on Debian's cloud kernel). Differences
//! from depmod: a module that is not valid ELF cannot be a [`ModuleInfo`]
//! (depmod would list it with no dependencies), there is no `depmod.d`
//! configuration (depmod's defaults), and among same-named modules the
//! first one given wins where depmod takes the first in directory order.

use super::builtin::{builtin_alias_index, builtin_index, normalize_alias};
use super::error::ModuleError;
use super::graph::{depmod_order, unique_by_name, Graph};
use super::index::IndexBuilder;
use super::info::ModuleInfo;
use super::kmod_hash::{sort_in_table_order, SYMBOL_BUCKETS};

/// The files depmod writes, in the order it writes them.
pub const OUTPUT_FILES: [&str; 10] = [
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.alias.bin",
    "modules.softdep",
    "modules.symbols",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
    "modules.devname",
];

/// What depmod reads from `lib/modules/RELEASE/`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DepmodInput<'a> {
    /// Every module of the tree.
    pub modules: &'a [ModuleInfo],
    /// `modules.order`: the order the kernel build lists modules in, which
    /// `modules.dep` follows.
    pub modules_order: Option<&'a str>,
    /// `modules.builtin`: the modules built into the kernel.
    pub modules_builtin: Option<&'a str>,
    /// `modules.builtin.modinfo`: the `.modinfo` of the built-in modules
    /// (their aliases go into `modules.builtin.alias.bin`).
    pub modules_builtin_modinfo: Option<&'a [u8]>,
}

/// Every file of [`OUTPUT_FILES`] with its contents, in that order. Like
/// depmod, a missing `modules.builtin` or `modules.builtin.modinfo` gives an
/// empty index file. Fails when modules depend on each other in a cycle
/// (depmod then writes nothing) or when an index key is not ASCII.
pub fn generate(input: &DepmodInput<'_>) -> Result<Vec<(&'static str, Vec<u8>)>, ModuleError> {
    let modules = input.modules;
    let kept = unique_by_name(modules);
    let graph = Graph::new(modules, depmod_order(modules, &kept, input.modules_order));
    let ranks = graph.ranks()?;
    let dep_lines: Vec<String> = (0..graph.order.len())
        .map(|pos| dep_line(&graph, pos, &ranks))
        .collect();
    let builtin = match input.modules_builtin {
        Some(text) => builtin_index(text)?,
        None => Vec::new(),
    };
    let builtin_alias = match input.modules_builtin_modinfo {
        Some(bytes) => builtin_alias_index(bytes)?,
        None => Vec::new(),
    };
    let contents = [
        modules_dep(&dep_lines),
        modules_dep_bin(&graph, &dep_lines)?,
        modules_alias(&graph),
        modules_alias_bin(&graph)?,
        modules_softdep(&graph),
        modules_symbols(&graph),
        modules_symbols_bin(&graph)?,
        builtin,
        builtin_alias,
        modules_devname(&graph),
    ];
    Ok(OUTPUT_FILES.into_iter().zip(contents).collect())
}

/// `PATH: DEP DEP ...` without newline: the module's path, then every
/// module it needs, directly or not, in depmod's dependency order.
fn dep_line(graph: &Graph<'_>, pos: usize, ranks: &[usize]) -> String {
    let mut line = format!("{}:", graph.module(pos).path);
    for dep in graph.all_dependencies(pos, ranks) {
        line.push(' ');
        line.push_str(&graph.module(dep).path);
    }
    line
}

fn modules_dep(lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

/// Module name to its `modules.dep` line, by module position.
fn modules_dep_bin(graph: &Graph<'_>, lines: &[String]) -> Result<Vec<u8>, ModuleError> {
    let mut index = IndexBuilder::new("modules.dep.bin");
    for (pos, line) in lines.iter().enumerate() {
        index.insert(&graph.module(pos).name, line, priority(pos))?;
    }
    index.write()
}

/// A module's position as an index priority (depmod's `uint16_t idx`).
fn priority(pos: usize) -> u32 {
    // depmod asserts fewer than 65 535 modules; positions fit in u32.
    u32::try_from(pos).unwrap_or(u32::MAX)
}

/// Each module's `key` values, by module position then file order.
fn each_value<'g>(
    graph: &'g Graph<'_>,
    key: &'g str,
) -> impl Iterator<Item = (usize, &'g ModuleInfo, &'g str)> + 'g {
    (0..graph.order.len()).flat_map(move |pos| {
        let module = graph.module(pos);
        module.values(key).map(move |value| (pos, module, value))
    })
}

fn modules_alias(graph: &Graph<'_>) -> Vec<u8> {
    let mut out = String::from("# Aliases extracted from modules themselves.\n");
    for (_, module, alias) in each_value(graph, "alias") {
        out.push_str(&format!("alias {alias} {}\n", module.name));
    }
    out.into_bytes()
}

/// Normalized alias patterns to module names (libkmod matches device ids
/// against these keys with fnmatch).
fn modules_alias_bin(graph: &Graph<'_>) -> Result<Vec<u8>, ModuleError> {
    let mut index = IndexBuilder::new("modules.alias.bin");
    for (pos, module, alias) in each_value(graph, "alias") {
        // depmod warns about and skips an alias with unbalanced brackets.
        if let Some(alias) = normalize_alias(alias) {
            index.insert(&alias, &module.name, priority(pos))?;
        }
    }
    index.write()
}

fn modules_softdep(graph: &Graph<'_>) -> Vec<u8> {
    let mut out = String::from("# Soft dependencies extracted from modules themselves.\n");
    for (_, module, softdep) in each_value(graph, "softdep") {
        out.push_str(&format!("softdep {} {softdep}\n", module.name));
    }
    out.into_bytes()
}

/// Exported symbols with their owners' positions, in the order depmod's
/// symbol hash table lists them.
fn symbols_in_table_order<'m>(graph: &Graph<'m>) -> Vec<(&'m str, usize)> {
    let mut symbols: Vec<(&str, usize)> = graph.owners.iter().map(|(&s, &p)| (s, p)).collect();
    sort_in_table_order(&mut symbols, SYMBOL_BUCKETS, |(name, _)| name.as_bytes());
    symbols
}

fn modules_symbols(graph: &Graph<'_>) -> Vec<u8> {
    let mut out = String::from("# Aliases for symbols, used by symbol_request().\n");
    for (symbol, owner) in symbols_in_table_order(graph) {
        out.push_str(&format!(
            "alias symbol:{symbol} {}\n",
            graph.module(owner).name
        ));
    }
    out.into_bytes()
}

fn modules_symbols_bin(graph: &Graph<'_>) -> Result<Vec<u8>, ModuleError> {
    let mut index = IndexBuilder::new("modules.symbols.bin");
    for (symbol, owner) in symbols_in_table_order(graph) {
        let key = format!("symbol:{symbol}");
        index.insert(&key, &graph.module(owner).name, priority(owner))?;
    }
    index.write()
}

/// `NAME DEVNAME cMAJOR:MINOR` for modules that declare a `devname:` alias
/// and a `char-major-` or `block-major-` alias, so that the device node can
/// exist before the module is loaded (systemd's static nodes).
fn modules_devname(graph: &Graph<'_>) -> Vec<u8> {
    let mut out = String::new();
    for pos in 0..graph.order.len() {
        let module = graph.module(pos);
        let mut devname = None;
        let mut device = None;
        for alias in module.aliases() {
            if let Some(name) = alias.strip_prefix("devname:") {
                devname = Some(name);
            } else if let Some(numbers) = major_minor(alias, "char-major-") {
                device = Some(('c', numbers));
            } else if let Some(numbers) = major_minor(alias, "block-major-") {
                device = Some(('b', numbers));
            }
            if devname.is_some() && device.is_some() {
                break;
            }
        }
        // depmod reports a devname without numbers as an error and skips it.
        if let (Some(devname), Some((kind, (major, minor)))) = (devname, device) {
            if out.is_empty() {
                out.push_str("# Device nodes to trigger on-demand module loading.\n");
            }
            out.push_str(&format!(
                "{} {devname} {kind}{major}:{minor}\n",
                module.name
            ));
        }
    }
    out.into_bytes()
}

/// `sscanf(alias, "PREFIX%u-%u")` with both numbers matched.
fn major_minor(alias: &str, prefix: &str) -> Option<(u32, u32)> {
    let rest = alias.strip_prefix(prefix)?;
    let (major, rest) = scan_unsigned(rest)?;
    let rest = rest.strip_prefix('-')?;
    let (minor, _) = scan_unsigned(rest)?;
    Some((major, minor))
}

/// C's `%u`: optional white space and sign, then decimal digits (wrapping
/// like `strtoul` into an `unsigned int`).
fn scan_unsigned(text: &str) -> Option<(u32, &str)> {
    let text = text.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (negative, text) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let value = text[..digits].bytes().fold(0u64, |v, d| {
        v.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    let value = if negative {
        value.wrapping_neg()
    } else {
        value
    };
    Some((value as u32, &text[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::graph::tests::module;

    fn with_modinfo(mut m: ModuleInfo, entries: &[(&str, &str)]) -> ModuleInfo {
        m.modinfo = entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m
    }

    fn text(files: &[(&'static str, Vec<u8>)], name: &str) -> String {
        let (_, bytes) = files.iter().find(|(n, _)| *n == name).unwrap();
        String::from_utf8(bytes.clone()).unwrap()
    }

    #[test]
    fn text_files_in_depmods_formats() {
        let modules = vec![
            with_modinfo(
                module("top", &[], &["y", "x"]),
                &[
                    ("alias", "pci:v*d*"),
                    ("softdep", "pre: crc32c"),
                    ("alias", "devname:top"),
                    ("alias", "char-major-10-235"),
                    ("alias", "char-major-1-1"),
                ],
            ),
            module("mid", &["x"], &["z"]),
            with_modinfo(
                module("low", &["z", "y"], &[]),
                &[("alias", "devname:lonely"), ("alias", "fs-low")],
            ),
        ];
        let order = "kernel/top.ko\nkernel/mid.ko\nkernel/low.ko\n";
        let files = generate(&DepmodInput {
            modules: &modules,
            modules_order: Some(order),
            ..DepmodInput::default()
        })
        .unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, OUTPUT_FILES);
        assert_eq!(
            text(&files, "modules.dep"),
            "kernel/top.ko: kernel/mid.ko kernel/low.ko\n\
             kernel/mid.ko: kernel/low.ko\n\
             kernel/low.ko:\n"
        );
        assert_eq!(
            text(&files, "modules.alias"),
            "# Aliases extracted from modules themselves.\n\
             alias pci:v*d* top\n\
             alias devname:top top\n\
             alias char-major-10-235 top\n\
             alias char-major-1-1 top\n\
             alias devname:lonely low\n\
             alias fs-low low\n"
        );
        assert_eq!(
            text(&files, "modules.softdep"),
            "# Soft dependencies extracted from modules themselves.\n\
             softdep top pre: crc32c\n"
        );
        // kmod's hash of each symbol modulo 2048 orders the lines: z 20,
        // x 927, y 1588 (printed by kmod's hash_superfast, compiled).
        assert_eq!(
            text(&files, "modules.symbols"),
            "# Aliases for symbols, used by symbol_request().\n\
             alias symbol:z low\n\
             alias symbol:x mid\n\
             alias symbol:y low\n"
        );
        // The search stops once both parts are found; a devname without
        // numbers is left out.
        assert_eq!(
            text(&files, "modules.devname"),
            "# Device nodes to trigger on-demand module loading.\n\
             top top c10:235\n"
        );
        assert!(text(&files, "modules.builtin.bin").is_empty());
        assert!(text(&files, "modules.builtin.alias.bin").is_empty());
    }

    #[test]
    fn no_devnames_no_header() {
        let modules = vec![module("a", &[], &[])];
        let files = generate(&DepmodInput {
            modules: &modules,
            ..DepmodInput::default()
        })
        .unwrap();
        assert!(text(&files, "modules.devname").is_empty());
        assert_eq!(text(&files, "modules.dep"), "kernel/a.ko:\n");
    }

    /// Expected values printed by glibc's sscanf with depmod's formats.
    #[test]
    fn scanf_numbers() {
        assert_eq!(
            major_minor("char-major-10-235", "char-major-"),
            Some((10, 235))
        );
        assert_eq!(
            major_minor("block-major-8-0x", "block-major-"),
            Some((8, 0))
        );
        assert_eq!(major_minor("char-major- 4-+5", "char-major-"), Some((4, 5)));
        assert_eq!(major_minor("char-major-10-*", "char-major-"), None);
        assert_eq!(major_minor("char-major-10", "char-major-"), None);
        assert_eq!(
            major_minor("char-major--1-2", "char-major-"),
            Some((u32::MAX, 2))
        );
        assert_eq!(
            major_minor("char-major-99999999999-1", "char-major-"),
            Some((1_215_752_191, 1))
        );
    }
}
