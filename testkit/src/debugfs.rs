//! `debugfs` as an oracle for what `ext4-view` cannot read: inode numbers,
//! link counts, ctime, device numbers and extended attributes.
//!
//! Commands run in batches (`debugfs -f`), one process per batch, and name
//! inodes as `<ino>` so file names never need quoting.

use std::io::{self, Write};
use std::path::Path;
use std::process::Command;

use banger_ext4::tree::{DeviceNumber, Timestamp};

use crate::skip::system_tool;

/// The stdout of each command in a batch, plus whatever went to stderr.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Output of each command, in order.
    pub outputs: Vec<Vec<u8>>,
    /// stderr without the version banner; debugfs reports failed commands here.
    pub errors: String,
}

/// Runs `commands` (no newlines inside) against a read-only `img` in one debugfs process.
pub fn run_batch(img: &Path, commands: &[Vec<u8>]) -> io::Result<Batch> {
    if commands.is_empty() {
        return Ok(Batch::default());
    }
    let mut script = tempfile::NamedTempFile::new()?;
    for command in commands {
        if command.contains(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "debugfs command contains a newline",
            ));
        }
        script.write_all(command)?;
        script.write_all(b"\n")?;
    }
    script.flush()?;
    let output = Command::new(system_tool("debugfs"))
        .arg("-f")
        .arg(script.path())
        .arg(img)
        .env("LC_ALL", "C")
        // stat and ls pipe through $PAGER otherwise, which reorders output.
        .env("DEBUGFS_PAGER", "__none__")
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "debugfs failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    // debugfs -f echoes `debugfs: COMMAND` before each command's output.
    let stdout = output.stdout;
    let mut starts = Vec::with_capacity(commands.len());
    let mut from = 0;
    for command in commands {
        let mut marker = b"debugfs: ".to_vec();
        marker.extend_from_slice(command);
        marker.push(b'\n');
        let at = find(&stdout[from..], &marker).ok_or_else(|| {
            io::Error::other(format!(
                "debugfs output lacks the echo of {:?}",
                String::from_utf8_lossy(command)
            ))
        })? + from;
        starts.push((at, at + marker.len()));
        from = at + marker.len();
    }
    let outputs = (0..starts.len())
        .map(|i| {
            let end = starts.get(i + 1).map_or(stdout.len(), |next| next.0);
            stdout[starts[i].1..end].to_vec()
        })
        .collect();
    let errors = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| !l.starts_with("debugfs ") || !l.ends_with(')'))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Batch { outputs, errors })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Quotes an argument for debugfs's command-line parser.
pub fn quote(arg: &[u8]) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &b in arg {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

/// One line of `ls -p`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LsEntry {
    /// Inode number.
    pub ino: u32,
    /// Full `i_mode` of the inode.
    pub mode: u32,
    /// Raw entry name.
    pub name: Vec<u8>,
}

/// Parses `ls -p` output: `/ino/mode/uid/gid/name/size/` per entry. Names
/// cannot contain `/`, so even names with newlines parse unambiguously.
pub fn parse_ls(out: &[u8]) -> Result<Vec<LsEntry>, String> {
    let mut entries = Vec::new();
    let mut rest = out;
    loop {
        while let Some((b'\n', tail)) = rest.split_first() {
            rest = tail;
        }
        if rest.is_empty() {
            return Ok(entries);
        }
        let bad = || {
            format!(
                "unparsable ls -p output: {:?}",
                String::from_utf8_lossy(out)
            )
        };
        rest = rest.strip_prefix(b"/").ok_or_else(bad)?;
        let mut fields = Vec::with_capacity(6);
        for _ in 0..6 {
            let end = rest.iter().position(|&b| b == b'/').ok_or_else(bad)?;
            fields.push(&rest[..end]);
            rest = &rest[end + 1..];
        }
        let number = |field: &[u8], radix| {
            std::str::from_utf8(field)
                .ok()
                .and_then(|s| u32::from_str_radix(s, radix).ok())
                .ok_or_else(bad)
        };
        entries.push(LsEntry {
            ino: number(fields[0], 10)?,
            mode: number(fields[1], 8)?,
            name: fields[4].to_vec(),
        });
    }
}

/// What `stat <ino>` says about an inode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InodeStat {
    /// `regular`, `directory`, `symlink`, `character special`, `block special`, `FIFO`, `socket`.
    pub file_type: String,
    /// The 12 permission bits.
    pub permissions: u16,
    /// Owner (both halves).
    pub uid: u32,
    /// Group (both halves).
    pub gid: u32,
    /// `i_size` (both halves).
    pub size: u64,
    /// `i_links_count`.
    pub links: u32,
    /// Access time.
    pub atime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Change time.
    pub ctime: Timestamp,
    /// Creation time, if the inode has room for it.
    pub crtime: Option<Timestamp>,
    /// Device number of character and block devices.
    pub device: Option<DeviceNumber>,
    /// Extended attribute names (as debugfs prints them) and value sizes.
    pub xattrs: Vec<(Vec<u8>, usize)>,
    /// Raw target of a fast symlink (stored in the inode).
    pub fast_link: Option<Vec<u8>>,
}

/// Decodes an ext4 timestamp: the low 32 bits are signed seconds; the
/// extra word holds nanoseconds << 2 and two epoch bits that extend the
/// seconds to 34 bits.
pub fn decode_time(base: u32, extra: Option<u32>) -> Timestamp {
    let epoch = extra.map_or(0, |e| i64::from(e & 3));
    Timestamp {
        secs: i64::from(base as i32) + (epoch << 32),
        nanos: extra.map_or(0, |e| e >> 2),
    }
}

/// Parses the output of `stat <ino>`.
pub fn parse_stat(out: &[u8]) -> Result<InodeStat, String> {
    let text = String::from_utf8_lossy(out);
    let bad = |what: &str| format!("cannot parse {what} from debugfs stat output:\n{text}");
    let mut stat = InodeStat::default();
    let mut seen_times = 0;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(rest) = line.strip_prefix("Inode: ") {
            let ty = rest.split_once("Type: ").ok_or_else(|| bad("type"))?.1;
            let (ty, mode) = ty.split_once("Mode:").ok_or_else(|| bad("mode"))?;
            stat.file_type = ty.trim().to_owned();
            let mode = mode.split_whitespace().next().ok_or_else(|| bad("mode"))?;
            stat.permissions = u16::from_str_radix(mode, 8).map_err(|_| bad("mode"))?;
        } else if line.starts_with("User:") || line.starts_with("Links:") {
            let tokens: Vec<&str> = line.split_whitespace().collect();
            for pair in tokens.windows(2) {
                let value = || pair[1].parse::<u64>().map_err(|_| bad(pair[0]));
                // Owners are printed with %d: ids above i32::MAX come out negative.
                let id = || {
                    pair[1]
                        .parse::<i64>()
                        .map(|v| v as u32)
                        .map_err(|_| bad(pair[0]))
                };
                match pair[0] {
                    "User:" => stat.uid = id()?,
                    "Group:" => stat.gid = id()?,
                    "Size:" => stat.size = value()?,
                    "Links:" => stat.links = value()? as u32,
                    _ => {}
                }
            }
        } else if let Some((key, value)) = trimmed
            .split_once(": 0x")
            .filter(|(k, _)| ["atime", "mtime", "ctime", "crtime"].contains(k))
        {
            let raw = value.split_whitespace().next().unwrap_or("");
            let (base, extra) = match raw.split_once(':') {
                Some((base, extra)) => (base, Some(extra)),
                None => (raw, None),
            };
            let hex = |s: &str| u32::from_str_radix(s, 16).map_err(|_| bad(key));
            let time = decode_time(hex(base)?, extra.map(hex).transpose()?);
            seen_times += 1;
            match key {
                "atime" => stat.atime = time,
                "mtime" => stat.mtime = time,
                "ctime" => stat.ctime = time,
                _ => stat.crtime = Some(time),
            }
        } else if let Some((_, dev)) = line.split_once("Device major/minor number: ") {
            let dev = dev.split_whitespace().next().ok_or_else(|| bad("device"))?;
            let (major, minor) = dev.split_once(':').ok_or_else(|| bad("device"))?;
            stat.device = Some(DeviceNumber {
                major: major.parse().map_err(|_| bad("device"))?,
                minor: minor.parse().map_err(|_| bad("device"))?,
            });
        } else if line == "Extended attributes:" {
            while let Some(entry) = lines.next_if(|l| l.starts_with("  ")) {
                stat.xattrs
                    .push(parse_xattr_line(&entry[2..]).ok_or_else(|| bad("xattr"))?);
            }
        }
    }
    // The target is printed raw; its length is the inode size.
    const FAST_LINK: &[u8] = b"Fast link dest: \"";
    if let Some(at) = out.windows(FAST_LINK.len()).position(|w| w == FAST_LINK) {
        let start = at + FAST_LINK.len();
        let end = start.saturating_add(stat.size as usize).min(out.len());
        stat.fast_link = Some(out[start..end].to_vec());
    }
    if stat.file_type.is_empty() || seen_times < 3 {
        return Err(bad("inode header and times"));
    }
    Ok(stat)
}

/// `NAME (SIZE) = VALUE` or `NAME (SIZE)`.
fn parse_xattr_line(line: &str) -> Option<(Vec<u8>, usize)> {
    let mut search = 0;
    while let Some(at) = line[search..].find(" (").map(|i| i + search) {
        let after = &line[at + 2..];
        if let Some(close) = after.find(')') {
            let digits = &after[..close];
            let tail = &after[close + 1..];
            if !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (tail.is_empty() || tail.starts_with(" = "))
            {
                return Some((line.as_bytes()[..at].to_vec(), digits.parse().ok()?));
            }
        }
        search = at + 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ls_with_odd_names() {
        let out = b"/2/040755/0/0/.//\n/18/100644/0/0/we\nird \xff/3/\n\n";
        let entries = parse_ls(out).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].name, b"we\nird \xff");
        assert_eq!((entries[1].ino, entries[1].mode), (18, 0o100644));
    }

    #[test]
    fn parses_stat() {
        let out = [
            "Inode: 13   Type: character special    Mode:  4644   Flags: 0x0",
            "Generation: 0    Version: 0x00000000:00000000",
            "User: 100000   Group: -1439651807   Project:     0   Size: 0",
            "File ACL: 0",
            "Links: 2   Blockcount: 0",
            " ctime: 0x6b08f0be:00000005 -- Fri Nov 27 02:53:50 2026",
            " atime: 0x80000000:00000000 -- Fri Dec 13 20:45:52 1901",
            " mtime: 0x00000001:00000004 -- x",
            "crtime: 0x6b08f0c1:00000000 -- Fri Nov 27 02:53:53 2026",
            "Size of extra inode fields: 32",
            "Extended attributes:",
            "  user.a (5) = 00 01 02 03 04 ",
            "  user.we ird (1) = \"1\"",
            "  user.e (0)",
            "Inode checksum: 0xf25b0949",
            "(New-style) Device major/minor number: 300:70000 (hex 12c:11170)",
        ]
        .join("\n");
        let stat = parse_stat(out.as_bytes()).unwrap();
        assert_eq!(stat.file_type, "character special");
        assert_eq!(
            (stat.permissions, stat.uid, stat.gid, stat.links),
            (0o4644, 100000, 2855315489, 2)
        );
        assert_eq!(
            stat.ctime,
            Timestamp {
                secs: 0x6b08f0be + (1 << 32),
                nanos: 1
            }
        );
        assert_eq!(stat.atime, Timestamp::from_secs(-(1 << 31)));
        assert_eq!(stat.mtime, Timestamp { secs: 1, nanos: 1 });
        assert_eq!(
            stat.device,
            Some(DeviceNumber {
                major: 300,
                minor: 70000
            })
        );
        assert_eq!(
            stat.xattrs,
            vec![
                (b"user.a".to_vec(), 5),
                (b"user.we ird".to_vec(), 1),
                (b"user.e".to_vec(), 0)
            ]
        );
    }
}
