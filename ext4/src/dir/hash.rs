//! The htree name hash (`ext4fs_dirhash` in the kernel's fs/ext4/hash.c,
//! `ext2fs_dirhash` in e2fsprogs' lib/ext2fs/dirhash.c).
//!
//! Which hash a filesystem uses is set once in the superblock
//! (`s_def_hash_version`, `s_hash_seed`, and the signed/unsigned bit of
//! `s_flags`); every indexed directory must be built with the same one.

/// Hash algorithm numbers as stored in `s_def_hash_version` and `dx_root_info.hash_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HashVersion {
    /// `DX_HASH_LEGACY`: the original ext3 "hack" hash; 32 bits, no seed.
    Legacy = 0,
    /// `DX_HASH_HALF_MD4`: mke2fs' default.
    HalfMd4 = 1,
    /// `DX_HASH_TEA`.
    Tea = 2,
}

impl HashVersion {
    /// The on-disk number (0, 1 or 2); the unsigned variants are never stored.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Parses an on-disk `s_def_hash_version`.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::Legacy),
            1 => Some(Self::HalfMd4),
            2 => Some(Self::Tea),
            _ => None,
        }
    }
}

pub use crate::spec::{EXT2_FLAGS_SIGNED_HASH, EXT2_FLAGS_UNSIGNED_HASH};

/// The filesystem-wide parameters of the htree hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// `s_hash_seed` as four little-endian words; all-zero selects the
    /// default MD4 initial values.
    pub seed: [u32; 4],
    /// `s_def_hash_version`.
    pub version: HashVersion,
    /// True when `s_flags` has [`EXT2_FLAGS_UNSIGNED_HASH`]; x86 mke2fs
    /// sets the signed flag, so this is normally false.
    pub unsigned_chars: bool,
}

impl HashParams {
    /// Parameters from the 16 raw `s_hash_seed` bytes.
    pub fn from_seed_bytes(seed: [u8; 16], version: HashVersion, unsigned_chars: bool) -> Self {
        let mut words = [0u32; 4];
        for (word, chunk) in words.iter_mut().zip(seed.chunks_exact(4)) {
            *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        Self {
            seed: words,
            version,
            unsigned_chars,
        }
    }
}

/// The largest 32-bit hash the kernel hands out: `EXT4_HTREE_EOF_32BIT << 1`
/// is reserved as the readdir end-of-directory cookie.
const EXT4_HTREE_EOF_HASH: u32 = 0x7FFF_FFFF << 1;

/// Hashes `name` as the kernel does: returns `(major, minor)`, major with bit
/// 0 clear (it is the collision flag in index entries).
///
/// Like the kernel (and unlike `debugfs dx_hash`), a major hash of
/// `0xFFFFFFFE` is mapped to `0xFFFFFFFC`, so lookups find the name.
pub fn dx_hash(name: &[u8], params: &HashParams) -> (u32, u32) {
    let (hash, minor) = raw_hash(name, params);
    let hash = hash & !1;
    if hash == EXT4_HTREE_EOF_HASH {
        ((0x7FFF_FFFF - 1) << 1, minor)
    } else {
        (hash, minor)
    }
}

fn raw_hash(name: &[u8], params: &HashParams) -> (u32, u32) {
    let signed = !params.unsigned_chars;
    let mut buf = if params.seed == [0; 4] {
        [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476]
    } else {
        params.seed
    };
    match params.version {
        HashVersion::Legacy => (dx_hack_hash(name, signed), 0),
        HashVersion::HalfMd4 => {
            for chunk_start in (0..name.len()).step_by(32) {
                let mut input = [0u32; 8];
                str2hashbuf(&name[chunk_start..], &mut input, signed);
                half_md4_transform(&mut buf, &input);
            }
            (buf[1], buf[2])
        }
        HashVersion::Tea => {
            for chunk_start in (0..name.len()).step_by(16) {
                let mut input = [0u32; 4];
                str2hashbuf(&name[chunk_start..], &mut input, signed);
                tea_transform(&mut buf, &input);
            }
            (buf[0], buf[1])
        }
    }
}

/// A name byte as C `char` would widen it: sign-extended on signed-char hosts.
fn char_value(byte: u8, signed: bool) -> u32 {
    if signed {
        byte as i8 as i32 as u32
    } else {
        u32::from(byte)
    }
}

/// The ext3 legacy hash.
fn dx_hack_hash(name: &[u8], signed: bool) -> u32 {
    let (mut hash0, mut hash1) = (0x12A3_FE2Du32, 0x37AB_E8F9u32);
    for &byte in name {
        let c = char_value(byte, signed);
        let mut hash = hash1.wrapping_add(hash0 ^ c.wrapping_mul(7_152_373));
        if hash & 0x8000_0000 != 0 {
            hash = hash.wrapping_sub(0x7FFF_FFFF);
        }
        hash1 = hash0;
        hash0 = hash;
    }
    hash0 << 1
}

/// Packs up to `4 * out.len()` bytes of `rest` (the name from the current
/// round on) into big-endian-ish words, padding with a length-derived word.
/// The padding uses the length of the whole remainder, not of this round.
fn str2hashbuf(rest: &[u8], out: &mut [u32], signed: bool) {
    // Same arithmetic as C's `(__u32)len | (__u32)len << 8`; names are at
    // most 255 bytes, so the length fits.
    let len = rest.len() as u32;
    let mut pad = len | (len << 8);
    pad |= pad << 16;

    let take = rest.len().min(out.len() * 4);
    let mut val = pad;
    let mut words = out.iter_mut();
    for (i, &byte) in rest[..take].iter().enumerate() {
        val = char_value(byte, signed).wrapping_add(val << 8);
        if i % 4 == 3 {
            if let Some(word) = words.next() {
                *word = val;
            }
            val = pad;
        }
    }
    // A partial last word keeps its accumulated value; the rest is padding.
    if !take.is_multiple_of(4) {
        if let Some(word) = words.next() {
            *word = val;
        }
    }
    for word in words {
        *word = pad;
    }
}

fn half_md4_transform(buf: &mut [u32; 4], input: &[u32; 8]) {
    const K2: u32 = 0x5A82_7999;
    const K3: u32 = 0x6ED9_EBA1;
    fn f(x: u32, y: u32, z: u32) -> u32 {
        z ^ (x & (y ^ z))
    }
    fn g(x: u32, y: u32, z: u32) -> u32 {
        (x & y).wrapping_add((x ^ y) & z)
    }
    fn h(x: u32, y: u32, z: u32) -> u32 {
        x ^ y ^ z
    }
    fn round(
        func: fn(u32, u32, u32) -> u32,
        a: u32,
        b: u32,
        c: u32,
        d: u32,
        x: u32,
        s: u32,
    ) -> u32 {
        a.wrapping_add(func(b, c, d)).wrapping_add(x).rotate_left(s)
    }

    let [mut a, mut b, mut c, mut d] = *buf;
    let x = input;

    a = round(f, a, b, c, d, x[0], 3);
    d = round(f, d, a, b, c, x[1], 7);
    c = round(f, c, d, a, b, x[2], 11);
    b = round(f, b, c, d, a, x[3], 19);
    a = round(f, a, b, c, d, x[4], 3);
    d = round(f, d, a, b, c, x[5], 7);
    c = round(f, c, d, a, b, x[6], 11);
    b = round(f, b, c, d, a, x[7], 19);

    a = round(g, a, b, c, d, x[1].wrapping_add(K2), 3);
    d = round(g, d, a, b, c, x[3].wrapping_add(K2), 5);
    c = round(g, c, d, a, b, x[5].wrapping_add(K2), 9);
    b = round(g, b, c, d, a, x[7].wrapping_add(K2), 13);
    a = round(g, a, b, c, d, x[0].wrapping_add(K2), 3);
    d = round(g, d, a, b, c, x[2].wrapping_add(K2), 5);
    c = round(g, c, d, a, b, x[4].wrapping_add(K2), 9);
    b = round(g, b, c, d, a, x[6].wrapping_add(K2), 13);

    a = round(h, a, b, c, d, x[3].wrapping_add(K3), 3);
    d = round(h, d, a, b, c, x[7].wrapping_add(K3), 9);
    c = round(h, c, d, a, b, x[2].wrapping_add(K3), 11);
    b = round(h, b, c, d, a, x[6].wrapping_add(K3), 15);
    a = round(h, a, b, c, d, x[1].wrapping_add(K3), 3);
    d = round(h, d, a, b, c, x[5].wrapping_add(K3), 9);
    c = round(h, c, d, a, b, x[0].wrapping_add(K3), 11);
    b = round(h, b, c, d, a, x[4].wrapping_add(K3), 15);

    buf[0] = buf[0].wrapping_add(a);
    buf[1] = buf[1].wrapping_add(b);
    buf[2] = buf[2].wrapping_add(c);
    buf[3] = buf[3].wrapping_add(d);
}

fn tea_transform(buf: &mut [u32; 4], input: &[u32; 4]) {
    const DELTA: u32 = 0x9E37_79B9;
    let (mut b0, mut b1) = (buf[0], buf[1]);
    let [a, b, c, d] = *input;
    let mut sum = 0u32;
    for _ in 0..16 {
        sum = sum.wrapping_add(DELTA);
        b0 = b0.wrapping_add(
            (b1 << 4).wrapping_add(a) ^ b1.wrapping_add(sum) ^ (b1 >> 5).wrapping_add(b),
        );
        b1 = b1.wrapping_add(
            (b0 << 4).wrapping_add(c) ^ b0.wrapping_add(sum) ^ (b0 >> 5).wrapping_add(d),
        );
    }
    buf[0] = buf[0].wrapping_add(b0);
    buf[1] = buf[1].wrapping_add(b1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(version: HashVersion) -> HashParams {
        HashParams {
            seed: [0; 4],
            version,
            unsigned_chars: false,
        }
    }

    #[test]
    fn str2hashbuf_pads_with_the_remaining_length() {
        let mut out = [0u32; 8];
        str2hashbuf(b"abcde", &mut out, true);
        let pad = 0x0505_0505;
        assert_eq!(out[0], 0x6162_6364);
        // 'e' shifted into the pad word.
        assert_eq!(out[1], (pad << 8) + 0x65);
        assert!(out[2..].iter().all(|&w| w == pad));
    }

    #[test]
    fn str2hashbuf_sign_extends_high_bytes_only_when_signed() {
        let mut signed = [0u32; 4];
        let mut unsigned = [0u32; 4];
        str2hashbuf(&[0xFF], &mut signed, true);
        str2hashbuf(&[0xFF], &mut unsigned, false);
        assert_eq!(unsigned[0], 0x0101_01FF);
        assert_eq!(signed[0], 0x0101_01FFu32.wrapping_sub(0x100));
    }

    #[test]
    fn majors_have_bit_zero_clear() {
        for version in [HashVersion::Legacy, HashVersion::HalfMd4, HashVersion::Tea] {
            for name in [&b"a"[..], b"file_055", b"\xff\xfe", &[b'x'; 255]] {
                assert_eq!(dx_hash(name, &params(version)).0 & 1, 0);
            }
        }
    }

    #[test]
    fn legacy_has_no_minor() {
        assert_eq!(dx_hash(b"hello", &params(HashVersion::Legacy)).1, 0);
    }
}
