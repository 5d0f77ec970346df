//! Fields of one 512-byte tar header block, in the V7, ustar, star and GNU
//! layouts.
//!
//! Numbers are octal text or, for values that do not fit, GNU base-256
//! (first byte has its high bit set). Strings end at the first NUL or at the
//! end of their field.

use super::error::TarError;

/// Size of a tar block; headers and data are padded to it.
pub(crate) const BLOCK_SIZE: usize = 512;

/// One raw header block.
pub(crate) type Block = [u8; BLOCK_SIZE];

// Offsets and lengths of the fields (POSIX ustar, with GNU's reuse of the
// prefix area noted where it differs).
const NAME: (usize, usize) = (0, 100);
const MODE: (usize, usize) = (100, 8);
const UID: (usize, usize) = (108, 8);
const GID: (usize, usize) = (116, 8);
const SIZE: (usize, usize) = (124, 12);
const MTIME: (usize, usize) = (136, 12);
const CHKSUM: (usize, usize) = (148, 8);
const TYPEFLAG: usize = 156;
const LINKNAME: (usize, usize) = (157, 100);
const MAGIC: (usize, usize) = (257, 6);
const VERSION: (usize, usize) = (263, 2);
const DEVMAJOR: (usize, usize) = (329, 8);
const DEVMINOR: (usize, usize) = (337, 8);
const PREFIX: (usize, usize) = (345, 155);
/// star keeps atime/ctime after a shorter prefix and marks itself here.
const STAR_PREFIX: (usize, usize) = (345, 131);
const STAR_TRAILER: (usize, usize) = (508, 4);
const GNU_ATIME: (usize, usize) = (345, 12);
const GNU_CTIME: (usize, usize) = (357, 12);
/// Old GNU sparse map: four (offset, numbytes) pairs of 12-byte numbers.
pub(crate) const GNU_SPARSE: (usize, usize) = (386, 96);
const GNU_IS_EXTENDED: usize = 482;
const GNU_REAL_SIZE: (usize, usize) = (483, 12);

/// Header layouts, which decide how the bytes from offset 345 on are read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Original Unix tar: no magic, no prefix, no device numbers.
    V7,
    /// POSIX ustar (and pax): a 155-byte name prefix.
    Ustar,
    /// star: ustar with a 131-byte prefix.
    Star,
    /// Old GNU: times and a sparse map where ustar has its prefix.
    Gnu,
}

/// A view of one header block.
pub(crate) struct Header<'a>(pub(crate) &'a Block);

impl Header<'_> {
    /// Whether every byte is zero (an end-of-archive block).
    pub(crate) fn is_zero(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// Whether the stored checksum matches, as an unsigned or (historic)
    /// signed byte sum with the checksum field counted as spaces.
    pub(crate) fn checksum_ok(&self) -> bool {
        let Ok(stored) = parse_octal(field(self.0, CHKSUM)) else {
            return false;
        };
        // The sums run over the whole block (which vectorises), then trade
        // the checksum field's bytes for the spaces it counts as.
        let unsigned_sum = |bytes: &[u8]| bytes.iter().map(|&b| i64::from(b)).sum::<i64>();
        let signed_sum = |bytes: &[u8]| bytes.iter().map(|&b| i64::from(b as i8)).sum::<i64>();
        let chksum = field(self.0, CHKSUM);
        let spaces = i64::from(b' ') * chksum.len() as i64;
        let unsigned = unsigned_sum(self.0) - unsigned_sum(chksum) + spaces;
        let signed = signed_sum(self.0) - signed_sum(chksum) + spaces;
        i64::try_from(stored).is_ok_and(|s| s == unsigned || s == signed)
    }

    /// The header layout.
    pub(crate) fn flavor(&self) -> Flavor {
        let magic = field(self.0, MAGIC);
        let version = field(self.0, VERSION);
        if magic == b"ustar " && version == b" \0" {
            Flavor::Gnu
        } else if magic == b"ustar\0" {
            if field(self.0, STAR_TRAILER) == b"tar\0" {
                Flavor::Star
            } else {
                Flavor::Ustar
            }
        } else {
            Flavor::V7
        }
    }

    /// The type flag byte.
    pub(crate) fn typeflag(&self) -> u8 {
        self.0[TYPEFLAG]
    }

    /// The path, joined with the ustar prefix where there is one.
    pub(crate) fn path(&self) -> Vec<u8> {
        let name = c_string(field(self.0, NAME));
        let prefix = match self.flavor() {
            Flavor::Ustar => c_string(field(self.0, PREFIX)),
            Flavor::Star => c_string(field(self.0, STAR_PREFIX)),
            Flavor::V7 | Flavor::Gnu => &[],
        };
        if prefix.is_empty() {
            return name.to_vec();
        }
        let mut path = Vec::with_capacity(prefix.len() + 1 + name.len());
        path.extend_from_slice(prefix);
        path.push(b'/');
        path.extend_from_slice(name);
        path
    }

    /// The link target of hard and symbolic links.
    pub(crate) fn link_name(&self) -> Vec<u8> {
        c_string(field(self.0, LINKNAME)).to_vec()
    }

    /// The mode field (permission bits and, from some writers, type bits).
    pub(crate) fn mode(&self) -> Result<i64, TarError> {
        number(self.0, MODE, "mode")
    }

    /// The owner's user id.
    pub(crate) fn uid(&self) -> Result<i64, TarError> {
        number(self.0, UID, "uid")
    }

    /// The owner's group id.
    pub(crate) fn gid(&self) -> Result<i64, TarError> {
        number(self.0, GID, "gid")
    }

    /// The size field: bytes of data that follow the header in the archive.
    pub(crate) fn size(&self) -> Result<i64, TarError> {
        number(self.0, SIZE, "size")
    }

    /// Whether the size field is octal text at its largest value, which
    /// some pax writers leave when the real size is in a pax record.
    pub(crate) fn size_is_octal_max(&self) -> bool {
        let raw = field(self.0, SIZE);
        let digits = trim(raw);
        raw.first().is_some_and(|&b| b & 0x80 == 0)
            && digits.len() == 11
            && digits.iter().all(|&b| b == b'7')
    }

    /// Modification time in seconds since the epoch.
    pub(crate) fn mtime(&self) -> Result<i64, TarError> {
        number(self.0, MTIME, "mtime")
    }

    /// Device major and minor numbers (zero when the fields are empty).
    pub(crate) fn device(&self) -> Result<(i64, i64), TarError> {
        if self.flavor() == Flavor::V7 {
            return Ok((0, 0));
        }
        Ok((
            number(self.0, DEVMAJOR, "devmajor")?,
            number(self.0, DEVMINOR, "devminor")?,
        ))
    }

    /// GNU access and change times, when the header carries them.
    pub(crate) fn gnu_times(&self) -> Result<(Option<i64>, Option<i64>), TarError> {
        if self.flavor() != Flavor::Gnu {
            return Ok((None, None));
        }
        let nonzero = |v: i64| (v != 0).then_some(v);
        Ok((
            nonzero(number(self.0, GNU_ATIME, "atime")?),
            nonzero(number(self.0, GNU_CTIME, "ctime")?),
        ))
    }

    /// Old GNU sparse: the file's real size.
    pub(crate) fn gnu_real_size(&self) -> Result<i64, TarError> {
        number(self.0, GNU_REAL_SIZE, "realsize")
    }

    /// Old GNU sparse: whether extension blocks with more map entries follow.
    pub(crate) fn gnu_is_extended(&self) -> bool {
        self.0[GNU_IS_EXTENDED] != 0
    }
}

/// Parses the (offset, numbytes) pairs of an old-GNU sparse map area,
/// stopping at the first unused slot. Returns the pairs found.
pub(crate) fn gnu_sparse_pairs(area: &[u8]) -> Result<Vec<(i64, i64)>, TarError> {
    let mut pairs = Vec::new();
    for slot in area.chunks_exact(24) {
        if slot[0] == 0 {
            break;
        }
        let offset = parse_numeric(&slot[..12]).ok_or(TarError::InvalidNumber("sparse offset"))?;
        let len = parse_numeric(&slot[12..]).ok_or(TarError::InvalidNumber("sparse numbytes"))?;
        pairs.push((offset, len));
    }
    Ok(pairs)
}

fn field(block: &Block, (start, len): (usize, usize)) -> &[u8] {
    &block[start..start + len]
}

fn number(block: &Block, at: (usize, usize), name: &'static str) -> Result<i64, TarError> {
    parse_numeric(field(block, at)).ok_or(TarError::InvalidNumber(name))
}

/// Bytes up to the first NUL.
fn c_string(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// Trims the spaces and NULs that writers put around octal digits.
fn trim(bytes: &[u8]) -> &[u8] {
    let is_pad = |b: &u8| *b == b' ' || *b == 0;
    let start = bytes.iter().position(|b| !is_pad(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_pad(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Parses a numeric field: GNU base-256 when the high bit of the first byte
/// is set (two's complement, so negative times work), octal text otherwise.
pub(crate) fn parse_numeric(bytes: &[u8]) -> Option<i64> {
    match bytes.first() {
        Some(&first) if first & 0x80 != 0 => {
            let negative = first & 0x40 != 0;
            let invert = if negative { 0xff } else { 0 };
            let mut value: u64 = 0;
            for (i, &b) in bytes.iter().enumerate() {
                let mut b = b ^ invert;
                if i == 0 {
                    b &= 0x7f;
                }
                if value >> 56 != 0 {
                    return None;
                }
                value = value << 8 | u64::from(b);
            }
            let value = i64::try_from(value).ok()?;
            Some(if negative { !value } else { value })
        }
        _ => i64::try_from(parse_octal(bytes).ok()?).ok(),
    }
}

fn parse_octal(bytes: &[u8]) -> Result<u64, ()> {
    let digits = trim(bytes);
    let mut value: u64 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return Err(());
        }
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(())?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_as_octal_and_base256() {
        assert_eq!(parse_numeric(b"0000644\0"), Some(0o644));
        assert_eq!(parse_numeric(b"  17 \0"), Some(0o17));
        assert_eq!(parse_numeric(b"\0\0\0"), Some(0));
        assert_eq!(parse_numeric(b"12x"), None);
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[7] = 0x02; // 2 << 32
        assert_eq!(parse_numeric(&big), Some(2 << 32));
        assert_eq!(parse_numeric(&[0xff; 12]), Some(-1));
        let mut huge = [0xffu8; 12];
        huge[0] = 0x80;
        assert_eq!(parse_numeric(&huge), None);
    }

    #[test]
    fn checksums_match_as_unsigned_or_signed_sums() {
        // A block of zeros named "é" (0xC3 0xA9), the checksum field
        // counted as eight spaces: unsigned 195 + 169 + 256 = 620 = 0o1154,
        // signed (195 - 256) + (169 - 256) + 256 = 108 = 0o154.
        let with_checksum = |stored: &[u8]| {
            let mut block: Block = [0; BLOCK_SIZE];
            block[..2].copy_from_slice(&[0xC3, 0xA9]);
            block[148..148 + stored.len()].copy_from_slice(stored);
            Header(&block).checksum_ok()
        };
        assert!(with_checksum(b"0001154\0"));
        assert!(with_checksum(b"001154\0 "));
        assert!(with_checksum(b"0000154\0"));
        assert!(!with_checksum(b"0001155\0"));
        assert!(!with_checksum(b"0000153\0"));
        assert!(!with_checksum(b"garbage!"));
    }
}
