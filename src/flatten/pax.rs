//! pax extended headers (POSIX.1-2001): `"%d %s=%s\n"` records that override
//! header fields, carry sub-second times, xattrs and GNU sparse maps.

use std::collections::BTreeMap;

use banger_ext4::tree::Timestamp;

use super::error::TarError;

/// One `key=value` record, raw bytes (paths need not be UTF-8).
pub(crate) type Record = (Vec<u8>, Vec<u8>);

/// Splits the body of a pax header into records.
pub(crate) fn parse_records(mut body: &[u8]) -> Result<Vec<Record>, TarError> {
    let mut records = Vec::new();
    // Some writers pad the body with NULs; nothing follows them.
    while !body.is_empty() && body.iter().any(|&b| b != 0) {
        let space = body
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("record without a length"))?;
        let len = ascii_number(&body[..space])
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| bad("invalid record length"))?;
        if len <= space + 1 || len > body.len() {
            return Err(bad("record length out of bounds"));
        }
        let record = &body[space + 1..len];
        let Some((b'\n', record)) = record.split_last() else {
            return Err(bad("record not terminated by a newline"));
        };
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("record without '='"))?;
        records.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        body = &body[len..];
    }
    Ok(records)
}

/// The pax fields the flattener uses, after global and local records are
/// merged (local ones win; an empty value removes a global one).
#[derive(Debug, Default)]
pub(crate) struct PaxFields {
    pub(crate) path: Option<Vec<u8>>,
    pub(crate) link_path: Option<Vec<u8>>,
    pub(crate) size: Option<u64>,
    pub(crate) uid: Option<u64>,
    pub(crate) gid: Option<u64>,
    pub(crate) mtime: Option<Timestamp>,
    pub(crate) atime: Option<Timestamp>,
    pub(crate) ctime: Option<Timestamp>,
    pub(crate) dev_major: Option<u64>,
    pub(crate) dev_minor: Option<u64>,
    pub(crate) xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub(crate) sparse: SparseFields,
}

/// `GNU.sparse.*` records (formats 0.0, 0.1 and 1.0).
#[derive(Debug, Default)]
pub(crate) struct SparseFields {
    pub(crate) major: Option<Vec<u8>>,
    pub(crate) minor: Option<Vec<u8>>,
    pub(crate) name: Option<Vec<u8>>,
    /// `GNU.sparse.size` (0.x) or `GNU.sparse.realsize` (1.0).
    pub(crate) real_size: Option<u64>,
    /// Flattened offset/length pairs from `GNU.sparse.map` (0.1) or
    /// repeated `GNU.sparse.offset`/`GNU.sparse.numbytes` records (0.0).
    pub(crate) map: Option<Vec<u64>>,
}

impl SparseFields {
    /// Whether these records make the entry a GNU sparse file, as GNU tar
    /// and Go's archive/tar decide: explicit 0.0/0.1/1.0 version records, or
    /// a map without a version (formats 0.0 and 0.1).
    pub(crate) fn is_sparse(&self) -> Result<bool, TarError> {
        match (self.major.as_deref(), self.minor.as_deref()) {
            (Some(b"0"), Some(b"0" | b"1")) | (Some(b"1"), Some(b"0")) => Ok(true),
            (None, None) => Ok(self.map.is_some()),
            (major, minor) => Err(TarError::InvalidSparse(format!(
                "unknown GNU sparse format {}.{}",
                String::from_utf8_lossy(major.unwrap_or_default()),
                String::from_utf8_lossy(minor.unwrap_or_default())
            ))),
        }
    }
}

impl PaxFields {
    /// Applies records in order. Global records never set the per-entry
    /// `path`, `linkpath`, `size` or sparse fields: a global value for those
    /// would apply to every later entry, which no sane writer means.
    pub(crate) fn apply(&mut self, records: &[Record], global: bool) -> Result<(), TarError> {
        for (key, value) in records {
            self.apply_one(key, value, global)?;
        }
        Ok(())
    }

    /// Applies one record.
    pub(crate) fn apply_one(
        &mut self,
        key: &[u8],
        value: &[u8],
        global: bool,
    ) -> Result<(), TarError> {
        let set = !value.is_empty();
        let number = || -> Result<Option<u64>, TarError> {
            if !set {
                return Ok(None);
            }
            ascii_number(value)
                .map(Some)
                .ok_or_else(|| bad_value(key, value))
        };
        let time = || -> Result<Option<Timestamp>, TarError> {
            if !set {
                return Ok(None);
            }
            parse_time(value)
                .map(Some)
                .ok_or_else(|| bad_value(key, value))
        };
        let per_entry_only =
            matches!(key, b"path" | b"linkpath" | b"size") || key.starts_with(b"GNU.sparse.");
        if global && per_entry_only {
            return Ok(());
        }
        match key {
            b"path" => self.path = set.then(|| value.to_vec()),
            b"linkpath" => self.link_path = set.then(|| value.to_vec()),
            b"size" => self.size = number()?,
            b"uid" => self.uid = number()?,
            b"gid" => self.gid = number()?,
            b"mtime" => self.mtime = time()?,
            b"atime" => self.atime = time()?,
            b"ctime" => self.ctime = time()?,
            b"SCHILY.devmajor" => self.dev_major = number()?,
            b"SCHILY.devminor" => self.dev_minor = number()?,
            b"GNU.sparse.major" => self.sparse.major = set.then(|| value.to_vec()),
            b"GNU.sparse.minor" => self.sparse.minor = set.then(|| value.to_vec()),
            b"GNU.sparse.name" => self.sparse.name = set.then(|| value.to_vec()),
            b"GNU.sparse.size" | b"GNU.sparse.realsize" => self.sparse.real_size = number()?,
            b"GNU.sparse.map" => {
                let mut map = Vec::new();
                if set {
                    for item in value.split(|&b| b == b',') {
                        map.push(ascii_number(item).ok_or_else(|| bad_value(key, value))?);
                    }
                }
                self.sparse.map = Some(map);
            }
            // Format 0.0 repeats these two records, one pair per data run.
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                let n = ascii_number(value).ok_or_else(|| bad_value(key, value))?;
                let map = self.sparse.map.get_or_insert_with(Vec::new);
                let expect_offset = map.len().is_multiple_of(2);
                if expect_offset != (key == b"GNU.sparse.offset") {
                    return Err(bad("GNU.sparse.offset and numbytes records out of order"));
                }
                map.push(n);
            }
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    self.set_xattr(name.to_vec(), value);
                } else if let Some(name) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
                    // libarchive: %-encoded name, base64 value.
                    let name = percent_decode(name).ok_or_else(|| bad_value(key, value))?;
                    let value = base64_decode(value).ok_or_else(|| bad_value(key, value))?;
                    self.set_xattr(name, &value);
                }
                // Everything else (uname, gname, comment, charset, ...) is
                // not needed: ownership is numeric in OCI images.
            }
        }
        Ok(())
    }

    fn set_xattr(&mut self, name: Vec<u8>, value: &[u8]) {
        // Unlike other records, an empty value is a valid xattr value.
        self.xattrs.insert(name, value.to_vec());
    }
}

/// Parses a pax time: `[-]seconds[.fraction]`, kept to the nanosecond
/// (digits past the ninth are truncated, as GNU tar does).
pub(crate) fn parse_time(text: &[u8]) -> Option<Timestamp> {
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if whole.is_empty() || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let secs = i64::try_from(ascii_number(whole)?).ok()?;
    let mut nanos: u32 = 0;
    for i in 0..9 {
        let digit = fraction.get(i).map_or(0, |d| u32::from(d - b'0'));
        nanos = nanos * 10 + digit;
    }
    if !negative {
        return Some(Timestamp { secs, nanos });
    }
    // -1.25 is 2 s before the epoch plus 0.75 s.
    Some(if nanos == 0 {
        Timestamp {
            secs: -secs,
            nanos: 0,
        }
    } else {
        Timestamp {
            secs: -secs - 1,
            nanos: 1_000_000_000 - nanos,
        }
    })
}

/// Parses a non-empty run of ASCII decimal digits.
pub(crate) fn ascii_number(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn percent_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    Some(out)
}

fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let sextet = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let text: Vec<u8> = text.iter().copied().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= sextet(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

fn bad(what: &str) -> TarError {
    TarError::InvalidPax(what.to_owned())
}

fn bad_value(key: &[u8], value: &[u8]) -> TarError {
    TarError::InvalidPax(format!(
        "invalid value {:?} for {}",
        String::from_utf8_lossy(value),
        String::from_utf8_lossy(key)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_and_times_keep_nanoseconds() {
        let body = b"30 mtime=1700000000.123456789\n12 path=a/b\n";
        let records = parse_records(body).unwrap();
        assert_eq!(records[1], (b"path".to_vec(), b"a/b".to_vec()));
        let mut fields = PaxFields::default();
        fields.apply(&records, false).unwrap();
        assert_eq!(
            fields.mtime,
            Some(Timestamp {
                secs: 1_700_000_000,
                nanos: 123_456_789
            })
        );
        assert!(parse_records(b"99 path=x\n").is_err());
        assert!(parse_records(b"8 path=x\n").is_err());
        assert_eq!(parse_records(b"9 path=x\n").unwrap().len(), 1);
    }

    #[test]
    fn times_parse_signs_and_fractions() {
        let t = |s: &str| parse_time(s.as_bytes());
        assert_eq!(t("5"), Some(Timestamp { secs: 5, nanos: 0 }));
        assert_eq!(
            t("5.5"),
            Some(Timestamp {
                secs: 5,
                nanos: 500_000_000
            })
        );
        assert_eq!(t("1.0000000019"), Some(Timestamp { secs: 1, nanos: 1 }));
        assert_eq!(
            t("-1.25"),
            Some(Timestamp {
                secs: -2,
                nanos: 750_000_000
            })
        );
        assert_eq!(t("x"), None);
        assert_eq!(t("1.x"), None);
    }

    #[test]
    fn libarchive_xattrs_decode() {
        let mut fields = PaxFields::default();
        let records = vec![(
            b"LIBARCHIVE.xattr.user.a%3Db".to_vec(),
            b"aGVsbG8=".to_vec(),
        )];
        fields.apply(&records, false).unwrap();
        assert_eq!(
            fields.xattrs.get(&b"user.a=b"[..]),
            Some(&b"hello".to_vec())
        );
    }
}
