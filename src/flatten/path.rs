//! Lexical cleaning of tar paths, before they are resolved in the tree.

/// Splits `path` into components the way containerd's `filepath.Clean`
/// does before resolving: empty components and `.` vanish, and `..` removes
/// the previous component but never climbs above the root, so `../x`,
/// `a/../../x` and `/x` all name `x`. The remaining components never
/// contain `..`; symlinks met while resolving them still stay inside the
/// root ([`banger_ext4::tree::Tree::resolve_parent`]).
pub(crate) fn clean(path: &[u8]) -> Vec<&[u8]> {
    // One allocation: a path has at most one component more than slashes.
    let slashes = path.iter().filter(|&&b| b == b'/').count();
    let mut out: Vec<&[u8]> = Vec::with_capacity(slashes + 1);
    for component in path.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            name => out.push(name),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_dot_never_leaves_the_root() {
        assert_eq!(clean(b"../x"), vec![&b"x"[..]]);
        assert_eq!(clean(b"a/../../x"), vec![&b"x"[..]]);
        assert_eq!(clean(b"/abs//./x/"), vec![&b"abs"[..], b"x"]);
        assert!(clean(b"./").is_empty());
        assert_eq!(clean(b"./a/b/../c"), vec![&b"a"[..], b"c"]);
    }
}
