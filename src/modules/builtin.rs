//! The kernel's built-in modules: `modules.builtin` (one path per line, e.g.
//! `kernel/fs/ext4/ext4.ko`) and `modules.builtin.modinfo` (the `.modinfo`
//! of every built-in module, as `name.key=value` strings each ending in
//! NUL), read the way depmod reads them.

use std::collections::BTreeSet;

use super::error::ModuleError;
use super::index::IndexBuilder;
use super::info::normalize_name;

/// The module names `modules.builtin` lists, as depmod derives them: lines
/// that start with an ASCII letter, file name up to its first `.`, `-` as
/// `_`.
pub fn builtin_names(modules_builtin: &str) -> Vec<String> {
    modules_builtin
        // depmod reads with fgets, so each line keeps its newline, which a
        // name without `.` would then contain: keep it too.
        .split_inclusive('\n')
        .filter(|line| line.starts_with(|c: char| c.is_ascii_alphabetic()))
        .filter_map(|line| {
            let file = line.rsplit('/').next().unwrap_or(line);
            // kmod's path_to_modname gives up on an empty file name.
            (!file.is_empty()).then(|| normalize_name(file))
        })
        .collect()
}

/// The built-in module names as a set, for [`super::select::closure`].
pub fn builtin_set(modules_builtin: &str) -> BTreeSet<String> {
    builtin_names(modules_builtin).into_iter().collect()
}

/// `modules.builtin.bin`: each built-in name, with an empty value.
pub fn builtin_index(modules_builtin: &str) -> Result<Vec<u8>, ModuleError> {
    let mut index = IndexBuilder::new("modules.builtin.bin");
    for name in builtin_names(modules_builtin) {
        index.insert(&name, "", 0)?;
    }
    index.write()
}

/// The `(module, alias)` pairs of `modules.builtin.modinfo`, found the way
/// depmod's stream parser finds them (including its quirks: an entry
/// without `=` makes it skip the next entry, and a last alias without its
/// NUL is dropped).
pub fn builtin_aliases(modinfo: &[u8]) -> Vec<(String, String)> {
    let mut stream = Stream {
        data: modinfo,
        pos: 0,
    };
    let mut aliases = Vec::new();
    while !stream.at_eof() {
        let module = stream.field(b'.');
        if module.is_empty() {
            continue;
        }
        let key = stream.field(b'=');
        if key != b"alias" {
            stream.skip_to_nul();
            continue;
        }
        let value = stream.field(0);
        if value.is_empty() {
            continue;
        }
        aliases.push((
            String::from_utf8_lossy(module).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    aliases
}

/// `modules.builtin.alias.bin`: each normalized alias with its module.
pub fn builtin_alias_index(modinfo: &[u8]) -> Result<Vec<u8>, ModuleError> {
    let mut index = IndexBuilder::new("modules.builtin.alias.bin");
    for (module, alias) in builtin_aliases(modinfo) {
        if let Some(alias) = normalize_alias(&alias) {
            index.insert(&alias, &module, 0)?;
        }
    }
    index.write()
}

/// kmod's `alias_normalize`: `-` becomes `_` outside `[...]` classes;
/// `None` for an unbalanced bracket (depmod skips such an alias).
pub fn normalize_alias(alias: &str) -> Option<String> {
    let mut out = String::with_capacity(alias.len());
    let mut in_class = false;
    for c in alias.chars() {
        match c {
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            ']' => return None,
            '-' if !in_class => {
                out.push('_');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    (!in_class).then_some(out)
}

/// A byte stream read like C's `fgetc` loops in depmod.
struct Stream<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Stream<'a> {
    /// Whether a read has hit the end (C's `feof` after a failed read; the
    /// same as being at the end here, since nothing reads past it).
    fn at_eof(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// depmod's `flush_stream_to`: the bytes up to `end`, a NUL or the end
    /// of data, consuming the terminator; empty unless `end` was the one
    /// found.
    fn field(&mut self, end: u8) -> &'a [u8] {
        let rest = &self.data[self.pos..];
        match rest.iter().position(|&b| b == end || b == 0) {
            Some(at) => {
                self.pos += at + 1;
                if rest[at] == end {
                    &rest[..at]
                } else {
                    &[]
                }
            }
            None => {
                self.pos = self.data.len();
                &[]
            }
        }
    }

    /// depmod's `flush_stream(in, '\0')`: skips past the next NUL.
    fn skip_to_nul(&mut self) {
        let _ = self.field(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_depmod_derives_them() {
        let text = "kernel/fs/ext4/ext4.ko\nkernel/drivers/foo-bar.ko\n\n# comment\n\
                    1bad\nkernel/x/noext\nkernel/last.ko";
        // A name without `.` keeps fgets' newline; the last line has none.
        assert_eq!(builtin_names(text), ["ext4", "foo_bar", "noext\n", "last"]);
        assert!(builtin_set(text).contains("foo_bar"));
    }

    #[test]
    fn aliases_with_depmods_stream_quirks() {
        let modinfo = b"ext4.alias=fs-ext4\0ext4.license=GPL\0virtio.alias=x-y\0\
                        broken\0mod.noeq\0mod.alias=skipped\0m.alias=no-nul-at-end";
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        // `mod.noeq` makes depmod skip the entry after it; the last alias
        // lacks its NUL and is dropped.
        assert_eq!(
            builtin_aliases(modinfo),
            pairs(&[("ext4", "fs-ext4"), ("virtio", "x-y")])
        );
        assert!(builtin_aliases(b"").is_empty());
    }

    #[test]
    fn alias_normalization() {
        assert_eq!(normalize_alias("a-b[0-9]-c").as_deref(), Some("a_b[0-9]_c"));
        assert_eq!(normalize_alias("plain").as_deref(), Some("plain"));
        assert_eq!(normalize_alias("a]"), None);
        assert_eq!(normalize_alias("a[0-9"), None);
        assert_eq!(normalize_alias("[[-]]"), None);
    }

    #[test]
    fn missing_builtin_files_mean_empty_indexes_elsewhere() {
        // An index of nothing is still a valid index (12 bytes): the empty
        // *file* depmod writes without modules.builtin is the caller's
        // choice, see depmod::generate.
        assert_eq!(builtin_index("").unwrap().len(), 12);
        assert_eq!(builtin_alias_index(b"").unwrap().len(), 12);
    }
}
