//! Reading what insserv reads: `/etc/insserv.conf` (and `.d`), the links
//! in `/etc/rc?.d`, and the LSB header of every script in `/etc/init.d`
//! (or its override in `/etc/insserv/overrides`,
//! `/usr/share/insserv/overrides`), in insserv's order: configuration,
//! links, the scripts named on the command line, then the rest.
//!
//! The runlevel directories and `/etc/init.d` are read in the order
//! [`ImageFiles::list_dir`] gives, as insserv reads them in `readdir`
//! order: where insserv is order-dependent (which of two equally deep
//! requirements `.depend` files list first, and so which one shadows
//! another), the same order gives the same result.

use super::super::files::{
    is_file, list_as_given, list_sorted, read_file, resolve, EntryKind, ImageFiles, Resolved,
};
use super::super::lsb::{scan, LsbHeader, Scanned};
use super::graph::{req, serv, Graph};

/// Most bytes of a script or configuration file read; LSB headers sit at
/// the top of scripts.
const MAX_READ: usize = 1 << 20;

/// The runlevel directories, in insserv's order, with their bits.
pub(super) const RUNLEVELS: [(char, u16); 8] = [
    ('0', 0x01),
    ('1', 0x02),
    ('2', 0x04),
    ('3', 0x08),
    ('4', 0x10),
    ('5', 0x20),
    ('6', 0x40),
    ('S', 0x80),
];

/// `/etc/rcX.d`.
pub(super) fn rc_dir(key: char) -> String {
    format!("/etc/rc{key}.d")
}

/// A `[SK]NNname` entry found in a runlevel directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RcEntry {
    /// Index into [`RUNLEVELS`].
    pub level: usize,
    /// The file name, e.g. `S02rc.local`.
    pub file: String,
    /// `S` or `K`.
    pub kind: char,
    /// The name after the two digits (what insserv compares with scripts).
    pub script: String,
}

/// A script banger adds, as if it were in `/etc/init.d` already.
pub(crate) struct NewScript<'a> {
    pub name: &'a str,
    pub text: &'a [u8],
}

/// `str2lvl`: runlevel bits of a `Default-Start`-style list.
pub(super) fn str2lvl(list: &str) -> u16 {
    list.split([' ', ',', ';', '\t'])
        .filter(|t| t.len() == 1)
        .filter_map(|t| {
            let c = t.chars().next()?.to_ascii_uppercase();
            RUNLEVELS.iter().find(|(k, _)| *k == c).map(|(_, b)| *b)
        })
        .fold(0, |a, b| a | b)
}

/// insserv.conf: facilities and `<interactive>` services.
pub(super) fn load_conf(g: &mut Graph, files: &mut dyn ImageFiles) {
    let mut paths = vec!["/etc/insserv.conf".to_owned()];
    // insserv scans the .d directory with alphasort, then reads it from the
    // last entry to the first.
    let mut extra: Vec<String> = list_sorted(files, "/etc/insserv.conf.d")
        .into_iter()
        .filter(|n| !n.starts_with('.') && !filtered_suffix(n, &[]))
        .map(|n| format!("/etc/insserv.conf.d/{n}"))
        .filter(|p| is_file(files, p))
        .collect();
    extra.reverse();
    paths.extend(extra);
    let mut raw: Vec<(String, Vec<String>)> = Vec::new();
    for path in paths {
        let Some(bytes) = read_file(files, &path, MAX_READ) else {
            continue;
        };
        for line in String::from_utf8_lossy(&bytes).lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((key, value)) = conf_line(line, '$') {
                let list: Vec<String> = split_all(value);
                match raw.iter_mut().find(|(k, _)| k == key) {
                    Some((_, l)) => l.extend(list),
                    None => raw.push((key.to_owned(), list)),
                }
            } else if let Some((key, value)) = conf_line(line, '<') {
                if "<interactive>".starts_with(key) {
                    for name in split_all(value) {
                        let s = g.add_service(&name);
                        let o = g.orig(s);
                        g.services[o].flags |= serv::INTRACT;
                    }
                }
            }
        }
    }
    // `expand_conf`: nested facilities are replaced by their contents,
    // appended at the end of the list.
    let expanded = raw
        .iter()
        .map(|(k, list)| {
            let mut out: Vec<String> = list
                .iter()
                .filter(|t| !t.starts_with('$'))
                .cloned()
                .collect();
            for t in list.iter().filter(|t| t.starts_with('$')) {
                expand(&raw, t, &mut out, 0);
            }
            (k.clone(), out)
        })
        .collect();
    g.facilities = expanded;
}

fn expand(raw: &[(String, Vec<String>)], name: &str, out: &mut Vec<String>, depth: usize) {
    let Some((_, list)) = raw.iter().find(|(k, _)| k == name) else {
        return;
    };
    if depth > 10 {
        return;
    }
    for t in list {
        if t.starts_with('$') {
            expand(raw, t, out, depth + 1);
        } else {
            out.push(t.clone());
        }
    }
}

/// `^(\$name)([[:blank:]]*[=:][[:blank:]]*|[[:blank:]]+)([[:print:]]*)`
/// (or `<name>` for `lead` `<`), case-insensitive.
fn conf_line(line: &str, lead: char) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(lead)?;
    let mut end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    if lead == '<' {
        if !rest[end..].starts_with('>') {
            return None;
        }
        end += 1;
    }
    if end == 0 {
        return None;
    }
    let key = &line[..end + 1];
    let after = &rest[end..];
    let trimmed = after.trim_start_matches([' ', '\t']);
    let value = if let Some(v) = trimmed.strip_prefix(['=', ':']) {
        v.trim_start_matches([' ', '\t'])
    } else if trimmed.len() < after.len() {
        trimmed
    } else {
        return None;
    };
    let printable = value
        .find(|c: char| !(' '..='~').contains(&c))
        .unwrap_or(value.len());
    Some((key, &value[..printable]))
}

fn split_all(value: &str) -> Vec<String> {
    value
        .split([' ', ',', ';', '\t'])
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `cfgfile_filter`'s suffix rules (plus `/etc/insserv/file-filters`).
pub(super) fn filtered_suffix(name: &str, extra: &[String]) -> bool {
    if let Some((_, ext)) = name.rsplit_once('.') {
        let fixed = ["old", "new", "org", "orig", "save", "swp", "core"];
        if ["rpm", "ba", "dpkg", "ucf"]
            .iter()
            .any(|p| ext.starts_with(p))
            || fixed.contains(&ext)
            || extra.iter().any(|e| e == ext)
        {
            return true;
        }
    }
    name.rsplit_once(',').is_some_and(|(_, v)| v == "v")
}

/// `/etc/insserv/file-filters`: more suffixes to skip.
pub(super) fn file_filters(files: &mut dyn ImageFiles) -> Vec<String> {
    read_file(files, "/etc/insserv/file-filters", MAX_READ)
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('\r'))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// What insserv learns from one script: its header, or the defaults it
/// assumes for OpenRC scripts (`#!/sbin/openrc-run`).
pub(super) fn script_header(
    files: &mut dyn ImageFiles,
    name: &str,
    text: Option<&[u8]>,
    path: &str,
) -> (LsbHeader, bool) {
    let owned;
    let text = match text {
        Some(t) => t,
        None => {
            owned = read_file(files, path, MAX_READ).unwrap_or_default();
            &owned
        }
    };
    let first: String = String::from_utf8_lossy(&text[..text.len().min(63)])
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if first.starts_with("#!/sbin/openrc-run") {
        return (LsbHeader::default(), true);
    }
    for dir in ["/etc/insserv/overrides", "/usr/share/insserv/overrides"] {
        let over = format!("{dir}/{name}");
        if let Some(bytes) = read_file(files, &over, MAX_READ) {
            if let Scanned::Header(h) = scan(&bytes) {
                return (*h, false);
            }
        }
    }
    match scan(text) {
        Scanned::Header(h) => (*h, false),
        _ => (LsbHeader::default(), false),
    }
}

/// `scan_script_locations`: the links already in the runlevel
/// directories. Returns every `[SK]NN` entry and the dangling ones
/// insserv deletes.
pub(super) fn scan_links(g: &mut Graph, files: &mut dyn ImageFiles) -> (Vec<RcEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut dangling = Vec::new();
    for (level, &(key, bit)) in RUNLEVELS.iter().enumerate() {
        let dir = rc_dir(key);
        for file in list_as_given(files, &dir) {
            let Some(entry) = parse_link(level, &file) else {
                continue;
            };
            let path = format!("{dir}/{file}");
            if resolve(files, &path).is_err() {
                dangling.push(path);
                continue;
            }
            entries.push(entry.clone());
            // The script is the base name of the link's own target.
            let Some(EntryKind::Symlink(target)) = files.entry(&path) else {
                continue;
            };
            let first = target.rsplit('/').next().unwrap_or_default().to_owned();
            let real = resolve(files, &path)
                .ok()
                .map(|Resolved { path, .. }| path)
                .unwrap_or_default();
            let base = real.rsplit('/').next().unwrap_or_default().to_owned();
            let (h, _) = script_header(files, &base, None, &path);
            let provides = match h.provides.as_deref() {
                Some(p) if !p.is_empty() => p.to_owned(),
                _ => entry.script.clone(),
            };
            let order: u8 = file[1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u32>()
                .map_or(0, |n| n.min(255) as u8);
            let mut first_serv = None;
            for token in super::super::lsb::tokens(&provides) {
                if token.starts_with('$') || token.starts_with('#') {
                    continue;
                }
                let s = g.add_service(token);
                // `current_structure`
                let d = g.services[s].dir;
                if entry.kind == 'K' {
                    let k = &mut g.services[s].korder;
                    if *k == 0 {
                        *k = 99;
                    }
                    *k = (*k).min(order);
                    g.dirs[d].stop.lvl |= bit;
                } else {
                    let so = &mut g.services[s].sorder;
                    *so = (*so).max(order);
                    g.dirs[d].start.lvl |= bit;
                }
                match first_serv {
                    Some(f) => g.nick_service(f, s),
                    None => first_serv = Some(s),
                }
                if !g.make_prov(s, &first) {
                    continue;
                }
                if g.services[s].flags & serv::KNOWN != 0 {
                    continue;
                }
                g.services[s].flags |= serv::KNOWN | serv::ENABLED;
                add_requirements(g, s, &h, true);
            }
        }
    }
    (entries, dangling)
}

/// `[SK]` and at least two digits.
fn parse_link(level: usize, file: &str) -> Option<RcEntry> {
    let kind = file.chars().next().filter(|c| *c == 'S' || *c == 'K')?;
    let digits = file[1..].chars().take_while(char::is_ascii_digit).count();
    (digits >= 2).then(|| RcEntry {
        level,
        file: file.to_owned(),
        kind,
        script: file[3..].to_owned(),
    })
}

/// The requirement part of a header, in the order insserv registers it
/// (the link scan and the script scan differ slightly in order).
pub(super) fn add_requirements(g: &mut Graph, s: usize, h: &LsbHeader, from_links: bool) {
    let some = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
    if let Some(v) = some(&h.required_start) {
        g.remember_req(s, req::MUST, &v);
    }
    if let Some(v) = some(&h.should_start) {
        g.remember_req(s, req::SHLD, &v);
    }
    if from_links {
        if let Some(v) = some(&h.start_before) {
            g.reverse_req(s, req::SHLD, &v);
        }
    }
    if let Some(v) = some(&h.required_stop) {
        g.remember_req(s, req::MUST | req::KILL, &v);
    }
    if let Some(v) = some(&h.should_stop) {
        g.remember_req(s, req::SHLD | req::KILL, &v);
    }
    if from_links {
        if let Some(v) = some(&h.stop_after) {
            g.reverse_req(s, req::SHLD | req::KILL, &v);
        }
    }
    if h.interactive.as_deref() == Some("true") {
        g.services[s].flags |= serv::INTRACT;
    }
}
