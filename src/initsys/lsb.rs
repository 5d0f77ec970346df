//! LSB init script headers, read the way insserv 1.24 reads them.
//!
//! insserv matches each line between `### BEGIN INIT INFO` and
//! `### END INIT INFO` against case-insensitive POSIX regexes such as
//! `^#[[:blank:]]*required[-_]+start:[[:blank:]]*([[:print:]]*)`; the first
//! match of a key wins, the value is the printable run after the colon.
//! Lists are split on space, comma, semicolon and tab, and, a quirk this
//! module keeps, reading a list stops at the first empty item (two spaces in
//! a row end it).

/// The keys of one header; `None` for a key that is absent, `Some("")` for
/// one that is present but empty (insserv tells the two apart).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LsbHeader {
    /// `Provides:`.
    pub provides: Option<String>,
    /// `Required-Start:`.
    pub required_start: Option<String>,
    /// `Required-Stop:`.
    pub required_stop: Option<String>,
    /// `Should-Start:` (or `X-Foo-Should-Start:`).
    pub should_start: Option<String>,
    /// `Should-Stop:`.
    pub should_stop: Option<String>,
    /// `X-Start-Before:`.
    pub start_before: Option<String>,
    /// `X-Stop-After:`.
    pub stop_after: Option<String>,
    /// `Default-Start:`.
    pub default_start: Option<String>,
    /// `Default-Stop:`.
    pub default_stop: Option<String>,
    /// `X-Interactive:`.
    pub interactive: Option<String>,
}

/// What reading a script found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scanned {
    /// A complete `BEGIN`/`END` block.
    Header(Box<LsbHeader>),
    /// `### BEGIN INIT INFO` without an end: insserv refuses such a script
    /// (a fatal error unless forced).
    Unterminated,
    /// No header at all.
    None,
}

impl LsbHeader {
    /// Whether insserv would call the header incomplete ("script X is
    /// broken: incomplete LSB comment"), a warning on stderr.
    pub fn incomplete(&self) -> bool {
        self.provides.as_deref().is_none_or(str::is_empty)
            || self.required_start.is_none()
            || self.required_stop.is_none()
            || self.default_start.is_none()
            || self.default_stop.is_none()
    }
}

/// Reads the header of a script: from the first `### BEGIN INIT INFO` to
/// the next `### END INIT INFO`; within it the first value of a key wins
/// (a second `BEGIN` line is just another line, as in insserv).
pub fn scan(text: &[u8]) -> Scanned {
    let mut header = LsbHeader::default();
    let mut begun = false;
    for line in text.split(|&b| b == b'\n') {
        if !begun {
            begun = contains(line, b"### BEGIN INIT INFO");
            continue;
        }
        scan_line(line, &mut header);
        if contains(line, b"### END INIT INFO") {
            return Scanned::Header(Box::new(header));
        }
    }
    if begun {
        Scanned::Unterminated
    } else {
        Scanned::None
    }
}

fn scan_line(line: &[u8], h: &mut LsbHeader) {
    // `^#[[:blank:]]*`
    let Some(rest) = line.strip_prefix(b"#") else {
        return;
    };
    let rest = trim_blank(rest);
    let Some(colon) = rest.iter().position(|&b| b == b':') else {
        return;
    };
    let key = String::from_utf8_lossy(&rest[..colon]).to_ascii_lowercase();
    let slot = if key == "provides" {
        &mut h.provides
    } else if is_key(&key, "required", "start", false) {
        &mut h.required_start
    } else if is_key(&key, "required", "stop", false) {
        &mut h.required_stop
    } else if is_key(&key, "default", "start", false) {
        &mut h.default_start
    } else if is_key(&key, "default", "stop", false) {
        &mut h.default_stop
    } else if is_key(&key, "should", "start", true) {
        &mut h.should_start
    } else if is_key(&key, "should", "stop", true) {
        &mut h.should_stop
    } else if is_key(&key, "start", "before", true) {
        &mut h.start_before
    } else if is_key(&key, "stop", "after", true) {
        &mut h.stop_after
    } else if is_key(&key, "interactive", "", true) {
        &mut h.interactive
    } else {
        return;
    };
    if slot.is_none() {
        *slot = Some(value_of(&rest[colon + 1..]));
    }
}

/// Whether `key` (lower case) is `first[-_]+second` (just `first` when
/// `second` is empty), optionally behind an `x[-_]+[a-z0-9_-]*` prefix.
fn is_key(key: &str, first: &str, second: &str, x_prefix: bool) -> bool {
    let bare = |k: &str| {
        let Some(rest) = k.strip_prefix(first) else {
            return false;
        };
        if second.is_empty() {
            return rest.is_empty();
        }
        let sep = rest.len() - rest.trim_start_matches(['-', '_']).len();
        sep > 0 && &rest[sep..] == second
    };
    if bare(key) {
        return true;
    }
    x_prefix
        && key.char_indices().any(|(i, _)| {
            let (prefix, tail) = key.split_at(i);
            bare(tail) && is_x_prefix(prefix)
        })
}

/// `x[-_]+[a-z0-9_-]*`.
fn is_x_prefix(prefix: &str) -> bool {
    let Some(rest) = prefix.strip_prefix('x') else {
        return false;
    };
    let body = rest.trim_start_matches(['-', '_']);
    body.len() < rest.len()
        && body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `[[:blank:]]*([[:print:]]*)`: blanks skipped, then printable ASCII up
/// to the first byte that is not.
fn value_of(after_colon: &[u8]) -> String {
    let v = trim_blank(after_colon);
    let end = v
        .iter()
        .position(|&b| !(0x20..=0x7e).contains(&b))
        .unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

fn trim_blank(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    &s[start..]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Splits a list the way insserv's `strsep` loops do: on any of
/// `" ,;\t"`, stopping at the first empty item.
pub fn tokens(list: &str) -> Vec<&str> {
    list.split([' ', ',', ';', '\t'])
        .take_while(|t| !t.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RMNOLOGIN: &str = "#! /bin/sh\n### BEGIN INIT INFO\n# Provides:          rmnologin\n\
        # Required-Start:    $remote_fs\n# Required-Stop: \n# Default-Start:     2 3 4 5\n\
        # Default-Stop:\n# Short-Description: Remove /run/nologin at boot\n### END INIT INFO\n";

    #[test]
    fn a_debian_header() {
        let Scanned::Header(h) = scan(RMNOLOGIN.as_bytes()) else {
            panic!()
        };
        assert_eq!(h.provides.as_deref(), Some("rmnologin"));
        assert_eq!(h.required_start.as_deref(), Some("$remote_fs"));
        assert_eq!(h.required_stop.as_deref(), Some(""));
        assert_eq!(h.default_start.as_deref(), Some("2 3 4 5"));
        assert_eq!(h.default_stop.as_deref(), Some(""));
        assert_eq!(h.should_start, None);
        assert!(!h.incomplete());
    }

    #[test]
    fn keys_are_case_insensitive_and_x_prefixes_are_accepted() {
        let text = "### BEGIN INIT INFO\n#provides: a b\n# REQUIRED_START:\tx\n\
            # X-Foo-Should-Start: s\n# x-start-before: ssh\n# X-Stop-After: y\n\
            # X-Interactive: true\n# Should-Stop: z\n# Required--Stop: w\n### END INIT INFO\n";
        let Scanned::Header(h) = scan(text.as_bytes()) else {
            panic!()
        };
        assert_eq!(h.provides.as_deref(), Some("a b"));
        assert_eq!(h.required_start.as_deref(), Some("x"));
        assert_eq!(h.should_start.as_deref(), Some("s"));
        assert_eq!(h.start_before.as_deref(), Some("ssh"));
        assert_eq!(h.stop_after.as_deref(), Some("y"));
        assert_eq!(h.interactive.as_deref(), Some("true"));
        assert_eq!(h.should_stop.as_deref(), Some("z"));
        assert_eq!(h.required_stop.as_deref(), Some("w"));
        assert!(h.incomplete(), "no Default-Start");
    }

    #[test]
    fn first_value_wins_even_after_a_second_begin() {
        let text = "### BEGIN INIT INFO\n# Provides: old\n### BEGIN INIT INFO\n\
            # Provides: new\n# Provides: newer\n### END INIT INFO\n";
        let Scanned::Header(h) = scan(text.as_bytes()) else {
            panic!()
        };
        assert_eq!(h.provides.as_deref(), Some("old"));
        assert_eq!(
            scan(b"### BEGIN INIT INFO\n# Provides: x\n"),
            Scanned::Unterminated
        );
        assert_eq!(scan(b"#!/bin/sh\n"), Scanned::None);
    }

    #[test]
    fn token_lists_stop_at_an_empty_item() {
        assert_eq!(
            tokens("$local_fs,kmod;udev\tx"),
            ["$local_fs", "kmod", "udev", "x"]
        );
        assert_eq!(tokens("a  b"), ["a"]);
        assert_eq!(tokens(""), Vec::<&str>::new());
        assert_eq!(tokens("a "), ["a"]);
    }
}
