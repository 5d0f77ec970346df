//! Small formatters shared by the human outputs: modes, times, sizes.

use banger_ext4::read::{FileKind, InodeView};
use banger_ext4::tree::Timestamp;

/// `ls -l`'s ten-character mode: type letter, then `rwx` triples with
/// setuid, setgid and sticky shown as `s`/`S` and `t`/`T`.
pub fn mode_string(kind: FileKind, permissions: u16) -> String {
    let mut out = String::with_capacity(10);
    out.push(kind.letter());
    let triples = [
        (0o700, 0o4000, 's'),
        (0o070, 0o2000, 's'),
        (0o007, 0o1000, 't'),
    ];
    for (shift, (mask, special, letter)) in [6u16, 3, 0].into_iter().zip(triples) {
        let bits = (permissions & mask) >> shift;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        let exec = bits & 1 != 0;
        out.push(match (permissions & special != 0, exec) {
            (true, true) => letter,
            (true, false) => letter.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    out
}

/// What `stat` calls each type.
pub fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Regular => "regular file",
        FileKind::Directory => "directory",
        FileKind::Symlink => "symbolic link",
        FileKind::CharDevice => "character special file",
        FileKind::BlockDevice => "block special file",
        FileKind::Fifo => "fifo",
        FileKind::Socket => "socket",
    }
}

/// The size column of `ls -l`: bytes, or `major, minor` for a device.
pub fn size_column(inode: &InodeView) -> String {
    match inode.device {
        Some(dev) => format!("{}, {}", dev.major, dev.minor),
        None => inode.size.to_string(),
    }
}

/// A broken-down time of `secs` since the epoch, with its UTC offset.
struct LocalTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    offset_secs: i64,
}

fn local_time(secs: i64) -> Option<LocalTime> {
    broken_down(secs, libc::localtime_r)
}

fn utc_time(secs: i64) -> Option<LocalTime> {
    broken_down(secs, libc::gmtime_r)
}

/// Breaks `secs` down with `localtime_r` or `gmtime_r`.
fn broken_down(
    secs: i64,
    convert: unsafe extern "C" fn(*const libc::time_t, *mut libc::tm) -> *mut libc::tm,
) -> Option<LocalTime> {
    let time = libc::time_t::try_from(secs).ok()?;
    // SAFETY: `tm` is plain data that the conversion fills in; both pointers
    // are valid for the call, and neither function keeps a reference to them.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if convert(&time, &mut tm).is_null() {
            return None;
        }
        tm
    };
    Some(LocalTime {
        year: i64::from(tm.tm_year) + 1900,
        month: u32::try_from(tm.tm_mon + 1).ok()?,
        day: u32::try_from(tm.tm_mday).ok()?,
        hour: u32::try_from(tm.tm_hour).ok()?,
        minute: u32::try_from(tm.tm_min).ok()?,
        second: u32::try_from(tm.tm_sec).ok()?,
        offset_secs: tm.tm_gmtoff,
    })
}

/// RFC 3339 in the local time zone (`TZ`), e.g. `2026-11-29T13:05:09+01:00`;
/// a time the C library cannot break down is shown as `@SECONDS`.
pub fn rfc3339(secs: i64) -> String {
    rfc3339_with_fraction(secs, None)
}

/// A timestamp with its nanoseconds, as `stat` prints it, in RFC 3339 form.
pub fn precise_time(time: Timestamp) -> String {
    rfc3339_with_fraction(time.secs, Some(time.nanos))
}

/// RFC 3339 in UTC whatever `TZ` says, for output that must not depend on
/// where it is read (JSON).
pub fn rfc3339_utc(secs: i64) -> String {
    match utc_time(secs) {
        Some(t) => format_rfc3339(&t, None),
        None => format!("@{secs}"),
    }
}

fn rfc3339_with_fraction(secs: i64, nanos: Option<u32>) -> String {
    match local_time(secs) {
        Some(t) => format_rfc3339(&t, nanos),
        None => format!("@{secs}"),
    }
}

fn format_rfc3339(t: &LocalTime, nanos: Option<u32>) -> String {
    let fraction = nanos.map(|n| format!(".{n:09}")).unwrap_or_default();
    let offset = t.offset_secs.unsigned_abs();
    let zone = match t.offset_secs {
        0 => "Z".to_string(),
        o => format!(
            "{}{:02}:{:02}",
            if o < 0 { '-' } else { '+' },
            offset / 3600,
            offset / 60 % 60
        ),
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}{zone}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `ls -l`'s time column: `2026-11-29 13:05`, local.
pub fn short_time(secs: i64) -> String {
    match local_time(secs) {
        Some(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year, t.month, t.day, t.hour, t.minute
        ),
        None => format!("@{secs}"),
    }
}

/// A byte count in IEC units with one decimal: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn iec(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Bytes as text when they are printable UTF-8, else as `0x` hex.
pub fn value_text(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
        _ => {
            let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_ls_shows_them() {
        assert_eq!(mode_string(FileKind::Regular, 0o755), "-rwxr-xr-x");
        assert_eq!(mode_string(FileKind::Regular, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(FileKind::Regular, 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string(FileKind::Directory, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(FileKind::Directory, 0o1770), "drwxrwx--T");
        assert_eq!(mode_string(FileKind::Symlink, 0o777), "lrwxrwxrwx");
        assert_eq!(mode_string(FileKind::CharDevice, 0o620), "crw--w----");
    }

    #[test]
    fn utc_times_match_date() {
        // `date -u -d @N +%FT%TZ`.
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_600_000_000), "2020-09-13T12:26:40Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn sizes_use_iec_units() {
        assert_eq!(iec(0), "0 B");
        assert_eq!(iec(1023), "1023 B");
        assert_eq!(iec(1536), "1.5 KiB");
        assert_eq!(iec(3 << 30), "3.0 GiB");
    }

    #[test]
    fn values_print_as_text_or_hex() {
        assert_eq!(value_text(b"hello"), "\"hello\"");
        assert_eq!(value_text(&[0, 1, 0xff]), "0x0001ff");
    }
}
