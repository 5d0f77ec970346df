//! `/etc/os-release` parsing and the distribution dispatch of first boot.
//!
//! The format (os-release(5)) is a newline-separated list of shell-style
//! assignments `KEY=value`. Values with spaces or special characters are
//! quoted; inside double quotes `\` escapes `$`, `"`, `'`, `` ` `` and `\`;
//! single quotes are literal. `#` lines are comments and blank lines are
//! ignored. Like systemd and Python's `platform.freedesktop_os_release`, the
//! parser skips lines it cannot read instead of failing, lets a later
//! assignment of a key win, and never panics on any input.
//!
//! [`package_manager`] repeats the choice `assets/first-boot.sh` makes in the
//! guest, so banger can warn while writing the image that first boot will
//! not be able to install an SSH server.

use std::collections::BTreeMap;

/// Where the guest looks for os-release, in order (first-boot.sh and
/// systemd agree): `/etc/os-release` wins when it exists.
pub const OS_RELEASE_PATHS: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

/// The parsed contents of an os-release file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`: the distribution's lower-case identifier (`debian`, `alpine`).
    pub id: Option<String>,
    /// `ID_LIKE`: identifiers of closely related distributions, most
    /// similar first.
    pub id_like: Vec<String>,
    /// `VERSION_ID`: the version, e.g. `12` or `3.19.1`.
    pub version_id: Option<String>,
    /// `NAME`: the distribution's name without version.
    pub name: Option<String>,
    /// `PRETTY_NAME`: a name for humans, version included.
    pub pretty_name: Option<String>,
    entries: BTreeMap<String, String>,
}

impl OsRelease {
    /// Parses os-release text. Lines that are not valid assignments are
    /// ignored.
    pub fn parse(text: &str) -> Self {
        let mut entries = BTreeMap::new();
        for line in text.lines() {
            if let Some((key, value)) = parse_line(line) {
                entries.insert(key.to_owned(), value);
            }
        }
        let get = |key: &str| entries.get(key).cloned();
        Self {
            id: get("ID"),
            id_like: entries
                .get("ID_LIKE")
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            version_id: get("VERSION_ID"),
            name: get("NAME"),
            pretty_name: get("PRETTY_NAME"),
            entries,
        }
    }

    /// Parses os-release bytes; invalid UTF-8 is replaced, not refused.
    pub fn parse_bytes(bytes: &[u8]) -> Self {
        Self::parse(&String::from_utf8_lossy(bytes))
    }

    /// The unquoted value of `key`, if the file assigns it.
    pub fn lookup(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Every assignment, by key.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Parses one line into a key and its unquoted value; `None` for comments,
/// blank lines and anything malformed.
fn parse_line(line: &str) -> Option<(&str, String)> {
    let line = line.trim_matches(is_blank);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (key, raw) = line.split_once('=')?;
    let valid_key = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_key {
        return None;
    }
    Some((key, unquote(raw)?))
}

/// Shell blanks plus the carriage return of files written on Windows.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r')
}

/// Undoes shell quoting of a value the way `sh` would for an assignment:
/// quoted and unquoted parts may be concatenated. `None` for an unterminated
/// quote or a trailing lone backslash or an unquoted blank inside the value
/// (which the shell would read as a command).
fn unquote(raw: &str) -> Option<String> {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next()? {
                    '\'' => break,
                    c => value.push(c),
                }
            },
            '"' => loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => match chars.next()? {
                        c @ ('$' | '"' | '\'' | '`' | '\\') => value.push(c),
                        // Any other escape keeps its backslash, as in sh.
                        c => {
                            value.push('\\');
                            value.push(c);
                        }
                    },
                    c => value.push(c),
                }
            },
            '\\' => value.push(chars.next()?),
            c if is_blank(c) => return None,
            c => value.push(c),
        }
    }
    Some(value)
}

/// The package manager family first boot uses to install OpenSSH.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PackageManager {
    /// `apt-get`: Debian, Ubuntu and derivatives.
    Apt,
    /// `apk`: Alpine.
    Apk,
    /// `dnf` (or `yum`, `microdnf`): Fedora and the RHEL family.
    Dnf,
    /// `pacman`: Arch and derivatives.
    Pacman,
    /// `zypper`: openSUSE and SLES.
    Zypper,
}

impl PackageManager {
    /// The name first-boot.sh uses for the family (`PM=` in the script).
    pub fn name(self) -> &'static str {
        match self {
            Self::Apt => "apt",
            Self::Apk => "apk",
            Self::Dnf => "dnf",
            Self::Pacman => "pacman",
            Self::Zypper => "zypper",
        }
    }

    /// The family of one distribution identifier, as `pick_family` in
    /// first-boot.sh decides it.
    pub fn for_id(id: &str) -> Option<Self> {
        Some(match id {
            "debian" | "ubuntu" | "kali" | "raspbian" | "linuxmint" | "pop" => Self::Apt,
            "alpine" => Self::Apk,
            "fedora" | "rhel" | "centos" | "rocky" | "almalinux" => Self::Dnf,
            "arch" | "archlinux" | "manjaro" => Self::Pacman,
            "suse" | "sles" => Self::Zypper,
            id if id.starts_with("opensuse") => Self::Zypper,
            _ => return None,
        })
    }
}

/// The package manager first boot will pick for `os`: the first word of
/// `ID`, then of `ID_LIKE`, that names a known family. `None` means first
/// boot gives up and installs no SSH server.
///
/// The script splits the unquoted values on the shell's blanks, which is
/// what is done here too. The script reads the *first* assignment of a key
/// and does not undo backslash escapes, where this parser (like systemd)
/// takes the last and unescapes; the two agree on every file that assigns
/// `ID` and `ID_LIKE` once with plain identifiers, which is what
/// distributions ship.
pub fn package_manager(os: &OsRelease) -> Option<PackageManager> {
    let shell_words = |s: &str| {
        s.split([' ', '\t', '\n'])
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let id_words = os.id.as_deref().map(shell_words).unwrap_or_default();
    let like_words = os.lookup("ID_LIKE").map(shell_words).unwrap_or_default();
    id_words
        .iter()
        .chain(&like_words)
        .find_map(|word| PackageManager::for_id(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_debian_file() {
        let text = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"#;
        let os = OsRelease::parse(text);
        assert_eq!(os.id.as_deref(), Some("debian"));
        assert_eq!(os.id_like, Vec::<String>::new());
        assert_eq!(os.version_id.as_deref(), Some("12"));
        assert_eq!(os.name.as_deref(), Some("Debian GNU/Linux"));
        assert_eq!(
            os.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(os.lookup("VERSION_CODENAME"), Some("bookworm"));
        assert_eq!(os.lookup("HOME_URL"), Some("https://www.debian.org/"));
        assert_eq!(os.lookup("MISSING"), None);
        assert_eq!(os.entries().count(), 7);
        assert_eq!(package_manager(&os), Some(PackageManager::Apt));
    }

    #[test]
    fn quoting_escapes_comments_and_blank_lines() {
        let text = "# a comment\n\n   \nA='single $quoted \"x\"'\nB=\"d \\\"q\\\" \\$HOME \\\\ \\` \\n\"\n\
                    C=plain\\ escaped\nD=con\"cat\"'enated'\n  E=indented  \r\nF=\n G = bad\n\
                    H=\"unterminated\nI='unterminated\nJ=two words\n1K=bad\nK-L=bad\n=x\nnoequals\n\
                    M=trailing\\\nN=\"\"\n#O=commented\nP=last\nP=wins\n";
        let os = OsRelease::parse(text);
        let entries: Vec<(&str, &str)> = os.entries().collect();
        assert_eq!(
            entries,
            [
                ("A", "single $quoted \"x\""),
                ("B", "d \"q\" $HOME \\ ` \\n"),
                ("C", "plain escaped"),
                ("D", "concatenated"),
                ("E", "indented"),
                ("F", ""),
                ("N", ""),
                ("P", "wins"),
            ]
        );
    }

    #[test]
    fn id_like_is_split_on_blanks() {
        let os = OsRelease::parse("ID=neon\nID_LIKE=\"ubuntu  debian\tx\"\n");
        assert_eq!(os.id_like, ["ubuntu", "debian", "x"]);
        assert_eq!(package_manager(&os), Some(PackageManager::Apt));
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for input in [
            &b"\xff\xfe=\x00"[..],
            b"ID=\"\\",
            b"ID='",
            b"\\",
            b"=",
            b"ID=\xc3",
            b"ID=\"\xf0\x9f\x98\x80\"",
        ] {
            let _ = OsRelease::parse_bytes(input);
        }
        assert_eq!(
            OsRelease::parse_bytes(b"ID=\"\xf0\x9f\x98\x80\"")
                .id
                .as_deref(),
            Some("\u{1f600}")
        );
    }

    #[test]
    fn dispatch_prefers_id_then_each_id_like_word() {
        let pm = |text: &str| package_manager(&OsRelease::parse(text));
        assert_eq!(pm("ID_LIKE=debian\nID=fedora\n"), Some(PackageManager::Dnf));
        assert_eq!(
            pm("ID=mylinux\nID_LIKE=\"unknownbase suse\"\n"),
            Some(PackageManager::Zypper)
        );
        assert_eq!(pm("ID=opensuse-tumbleweed\n"), Some(PackageManager::Zypper));
        assert_eq!(pm("ID=nixos\nID_LIKE=\"\"\n"), None);
        assert_eq!(pm(""), None);
        // The shell splits an unquoted $id into words too.
        assert_eq!(pm("ID=\"nixos alpine\"\n"), Some(PackageManager::Apk));
        // Case matters, as in the script's `case`.
        assert_eq!(pm("ID=Debian\n"), None);
    }
}
