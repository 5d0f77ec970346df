//! The writer of kmod's `.bin` index files (`modules.dep.bin`,
//! `modules.alias.bin`, ...), which libkmod reads instead of the text files.
//!
//! An index maps ASCII keys to lists of values, each with a priority. On
//! disk (all integers 32-bit big-endian):
//!
//! ```text
//! u32 magic = 0xB007F457, u32 version = 0x00020001, u32 root node offset
//! node:  [prefix bytes, NUL]                      if flag 0x80000000
//!        [first char, last char,
//!         u32 child offsets for first..=last]     if flag 0x20000000
//!        [u32 count, count × (u32 priority,
//!         value bytes, NUL)]                      if flag 0x40000000
//! ```
//!
//! A node offset's high nibble holds the flags of the fields present; a
//! missing child is offset 0. The trie is path-compressed: a node's
//! `prefix` holds the characters after the one that selects it in its
//! parent's child table. Nodes are written children first (post-order), and
//! this writer builds the trie with depmod's own insertion algorithm, so for
//! the same insertions it writes the same bytes as depmod.

use super::error::ModuleError;

const MAGIC: u32 = 0xB007_F457;
const VERSION: u32 = 0x0002_0001;
const HAS_PREFIX: u32 = 0x8000_0000;
const HAS_VALUES: u32 = 0x4000_0000;
const HAS_CHILDREN: u32 = 0x2000_0000;
/// Node offsets keep 28 bits for the offset itself.
const OFFSET_MASK: u32 = 0x0FFF_FFFF;

/// A node of the in-memory trie; children are indexes into the arena.
#[derive(Default)]
struct Node {
    prefix: Vec<u8>,
    /// `(priority, value)`, lowest priority first; among equal priorities
    /// the latest insertion first (depmod's `index_add_value`).
    values: Vec<(u32, Vec<u8>)>,
    /// `(character, node)`, sorted by character.
    children: Vec<(u8, usize)>,
}

/// An index being built, then written with [`IndexBuilder::write`].
pub struct IndexBuilder {
    file: &'static str,
    /// The arena (a flat vector, so that deep tries need no recursion to
    /// build, write or drop); node 0 is the root, whose prefix stays empty.
    nodes: Vec<Node>,
}

impl IndexBuilder {
    /// An empty index for the file `file` (named in errors).
    pub fn new(file: &'static str) -> Self {
        Self {
            file,
            nodes: vec![Node::default()],
        }
    }

    /// Adds `value` with `priority` under `key`. A key may hold several
    /// values, even equal ones (depmod keeps duplicates too). Both strings
    /// must be 7-bit ASCII without NUL.
    pub fn insert(&mut self, key: &str, value: &str, priority: u32) -> Result<(), ModuleError> {
        for text in [key, value] {
            if text.bytes().any(|b| b == 0 || b >= 0x80) {
                return Err(ModuleError::NotAscii {
                    file: self.file,
                    text: text.to_owned(),
                });
            }
        }
        let key = key.as_bytes();
        let mut node = 0;
        let mut i = 0;
        loop {
            // Make the node's prefix a prefix of the rest of the key,
            // splitting the node where they differ.
            let prefix = &self.nodes[node].prefix;
            let common = prefix
                .iter()
                .zip(&key[i..])
                .take_while(|(a, b)| a == b)
                .count();
            if common < prefix.len() {
                self.split(node, common);
            }
            i += common;
            let Some(&ch) = key.get(i) else {
                add_value(&mut self.nodes[node].values, value, priority);
                return Ok(());
            };
            let children = &self.nodes[node].children;
            match children.binary_search_by_key(&ch, |&(c, _)| c) {
                Ok(at) => {
                    node = children[at].1;
                    i += 1;
                }
                Err(at) => {
                    let child = self.nodes.len();
                    self.nodes.push(Node {
                        prefix: key[i + 1..].to_vec(),
                        values: vec![(priority, value.as_bytes().to_vec())],
                        children: Vec::new(),
                    });
                    self.nodes[node].children.insert(at, (ch, child));
                    return Ok(());
                }
            }
        }
    }

    /// Splits `node` at byte `at` of its prefix: a new child takes the rest
    /// of the prefix after the character at `at`, the values and the
    /// children; `node` keeps `prefix[..at]` and that one child.
    fn split(&mut self, node: usize, at: usize) {
        let old = &mut self.nodes[node];
        let ch = old.prefix[at];
        let child = Node {
            prefix: old.prefix[at + 1..].to_vec(),
            values: std::mem::take(&mut old.values),
            children: std::mem::take(&mut old.children),
        };
        old.prefix.truncate(at);
        let index = self.nodes.len();
        self.nodes[node].children.push((ch, index));
        self.nodes.push(child);
    }

    /// The index file's bytes.
    pub fn write(&self) -> Result<Vec<u8>, ModuleError> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        // Post-order without recursion: (node, children written so far,
        // their offsets).
        let mut stack: Vec<(usize, usize, Vec<u32>)> = vec![(0, 0, Vec::new())];
        let mut root = 0;
        while let Some((node, next, _)) = stack.last_mut() {
            let children = &self.nodes[*node].children;
            if let Some(&(_, child)) = children.get(*next) {
                *next += 1;
                stack.push((child, 0, Vec::new()));
                continue;
            }
            let Some((node, _, offsets)) = stack.pop() else {
                break;
            };
            let offset = self.write_node(&self.nodes[node], &offsets, &mut out)?;
            match stack.last_mut() {
                Some((_, _, parent)) => parent.push(offset),
                None => root = offset,
            }
        }
        out[8..12].copy_from_slice(&root.to_be_bytes());
        Ok(out)
    }

    /// Appends one node whose children were written at `child_offsets`;
    /// returns its offset with flags.
    fn write_node(
        &self,
        node: &Node,
        child_offsets: &[u32],
        out: &mut Vec<u8>,
    ) -> Result<u32, ModuleError> {
        let mut offset = u32::try_from(out.len())
            .ok()
            .filter(|&o| o <= OFFSET_MASK)
            .ok_or(ModuleError::IndexTooLarge { file: self.file })?;
        if !node.prefix.is_empty() {
            out.extend_from_slice(&node.prefix);
            out.push(0);
            offset |= HAS_PREFIX;
        }
        if let (Some(&(first, _)), Some(&(last, _))) = (node.children.first(), node.children.last())
        {
            out.push(first);
            out.push(last);
            let mut table = vec![0u32; usize::from(last - first) + 1];
            for (&(ch, _), &child) in node.children.iter().zip(child_offsets) {
                table[usize::from(ch - first)] = child;
            }
            for child in table {
                out.extend_from_slice(&child.to_be_bytes());
            }
            offset |= HAS_CHILDREN;
        }
        if !node.values.is_empty() {
            // A value count beyond u32 would need a 64 GiB index.
            out.extend_from_slice(&(node.values.len() as u32).to_be_bytes());
            for (priority, value) in &node.values {
                out.extend_from_slice(&priority.to_be_bytes());
                out.extend_from_slice(value);
                out.push(0);
            }
            offset |= HAS_VALUES;
        }
        Ok(offset)
    }
}

/// Inserts before the first value of equal or higher priority.
fn add_value(values: &mut Vec<(u32, Vec<u8>)>, value: &str, priority: u32) {
    let at = values.partition_point(|&(p, _)| p < priority);
    values.insert(at, (priority, value.as_bytes().to_vec()));
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: [u8; 8] = [0xB0, 0x07, 0xF4, 0x57, 0x00, 0x02, 0x00, 0x01];

    fn index(entries: &[(&str, &str, u32)]) -> Vec<u8> {
        let mut index = IndexBuilder::new("test.bin");
        for (key, value, priority) in entries {
            index.insert(key, value, *priority).unwrap();
        }
        index.write().unwrap()
    }

    /// Concatenates byte strings (the expected files below are written out
    /// field by field from the format description).
    fn bytes(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn empty_index_is_a_bare_root() {
        // The root node at offset 12 has no fields at all.
        assert_eq!(index(&[]), bytes(&[&HEADER, &[0, 0, 0, 12]]));
    }

    #[test]
    fn one_key() {
        let expected = bytes(&[
            &HEADER,
            &[0x20, 0, 0, 24], // root at 24, with children
            // 12: the node for "a", prefix "b", one value.
            b"b\0",
            &[0, 0, 0, 1],
            &[0, 0, 0, 3],
            b"x\0",
            // 24: the root: children 'a'..'a'.
            b"aa",
            &[0xC0, 0, 0, 12], // prefix + values flags, offset 12
        ]);
        assert_eq!(index(&[("ab", "x", 3)]), expected);
    }

    #[test]
    fn split_nodes_child_gaps_and_value_order() {
        let got = index(&[
            ("abc", "1", 0),
            ("abd", "2", 0),
            ("c", "m1", 5),
            ("c", "m2", 1),
            ("c", "m3", 5),
        ]);
        let expected = bytes(&[
            &HEADER,
            &[0x20, 0, 0, 69],
            // 12: "abc" (below "ab", at 'c'): values only.
            &[0, 0, 0, 1, 0, 0, 0, 0],
            b"1\0",
            // 22: "abd".
            &[0, 0, 0, 1, 0, 0, 0, 0],
            b"2\0",
            // 32: "a" + prefix "b", children 'c'..'d'.
            b"b\0",
            b"cd",
            &[0x40, 0, 0, 12, 0x40, 0, 0, 22],
            // 44: "c": lowest priority first, and among equal priorities
            // the latest insertion first.
            &[0, 0, 0, 3],
            &[0, 0, 0, 1],
            b"m2\0",
            &[0, 0, 0, 5],
            b"m3\0",
            &[0, 0, 0, 5],
            b"m1\0",
            // 69: the root, children 'a'..'c' with no 'b'.
            b"ac",
            &[0xA0, 0, 0, 32, 0, 0, 0, 0, 0x40, 0, 0, 44],
        ]);
        assert_eq!(got, expected);
    }

    #[test]
    fn a_key_that_is_a_prefix_of_another() {
        let expected = bytes(&[
            &HEADER,
            &[0x20, 0, 0, 38],
            // 12: "ab", split off below "a" at 'b'.
            &[0, 0, 0, 1, 0, 0, 0, 0],
            b"x\0",
            // 22: "a": a child and a value.
            b"bb",
            &[0x40, 0, 0, 12],
            &[0, 0, 0, 1, 0, 0, 0, 0],
            b"y\0",
            // 38: the root.
            b"aa",
            &[0x60, 0, 0, 22],
        ]);
        assert_eq!(index(&[("ab", "x", 0), ("a", "y", 0)]), expected);
    }

    #[test]
    fn rejects_what_the_format_cannot_hold() {
        let mut index = IndexBuilder::new("t.bin");
        for (key, value) in [("é", "v"), ("k", "\u{80}"), ("a\0b", "v")] {
            let err = index.insert(key, value, 0).unwrap_err();
            assert!(
                matches!(err, ModuleError::NotAscii { file: "t.bin", .. }),
                "{err:?}"
            );
        }
    }

    #[test]
    fn deep_tries_need_no_recursion() {
        // Each key extends the previous one: a trie 4 000 nodes deep, built
        // and written on a 64 KiB stack, which recursion would overflow.
        let keys = 4_000;
        let thread = std::thread::Builder::new().stack_size(64 << 10);
        let written = thread
            .spawn(move || {
                let mut index = IndexBuilder::new("t.bin");
                let mut key = String::new();
                for _ in 0..keys {
                    key.push('a');
                    index.insert(&key, "v", 0).unwrap();
                }
                index.write().unwrap().len()
            })
            .unwrap()
            .join()
            .unwrap();
        // Header, 16 bytes per inner node (a one-child table and one
        // value), 10 for the leaf, 6 for the root.
        assert_eq!(written, 12 + (keys - 1) * 16 + 10 + 6);
    }
}
