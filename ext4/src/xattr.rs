//! Extended attributes: where each one goes (inode body or EA block) and the
//! bytes of both places.
//!
//! Geometry is fixed: 4 KiB blocks and 256-byte inodes with `i_extra_isize`
//! 32, so the in-inode area is inode bytes `0xA0..0x100`: a 4-byte magic, then
//! entries growing up and values growing down from the inode's end. Whatever
//! does not fit goes into one EA block (we do not support `ea_inode`). The
//! functions are pure; the writer decides where the inode and block live.
//!
//! References: the kernel's `fs/ext4/xattr.{c,h}`, e2fsprogs
//! `lib/ext2fs/ext_attr.c` (`ext2fs_xattr_set`, `ext2fs_xattrs_write`).

use std::borrow::Cow;

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::acl::{self, AclError};
use crate::checksum::ext4_chksum;
use crate::format::xattr::*;
use crate::spec::BLOCK_SIZE;
use crate::tree::Xattrs;

/// Why a node's xattrs cannot be stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum XattrError {
    /// The name has no prefix ext4 can store.
    #[error("unsupported xattr namespace: {}", String::from_utf8_lossy(.0))]
    UnsupportedNamespace(Vec<u8>),
    /// The name is only a prefix, like `user.`.
    #[error("xattr name {} has nothing after its prefix", String::from_utf8_lossy(.0))]
    EmptyName(Vec<u8>),
    /// The part after the prefix is longer than 255 bytes.
    #[error("xattr name {} is longer than 255 bytes after its prefix", String::from_utf8_lossy(.0))]
    NameTooLong(Vec<u8>),
    /// A POSIX ACL value is malformed.
    #[error("xattr {}", String::from_utf8_lossy(.name))]
    Acl {
        /// The ACL's full name.
        name: Vec<u8>,
        /// What is wrong with it.
        source: AclError,
    },
    /// The xattrs need more than the inode area plus one block.
    #[error("xattrs need {needed} bytes of EA block, only {available} exist")]
    TooLarge {
        /// Bytes the EA block would need (header, entries, terminator, values).
        needed: usize,
        /// The block size.
        available: usize,
    },
}

/// Where a node's xattrs go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XattrLayout {
    /// Exactly 96 bytes to copy to inode offset 0xA0. As with `mke2fs -d`,
    /// the magic is written whenever the node has xattrs (even if all of them
    /// went to the block) and the area is all zero when it has none.
    pub in_inode: [u8; IN_INODE_LEN],
    /// Entries that did not fit in the inode, as an EA block without its
    /// block-number-dependent fields.
    pub block: Option<XattrBlock>,
}

/// An EA block with refcount 1 and no checksum: compare two to decide
/// whether inodes can share one block.
#[derive(Clone)]
pub struct XattrBlock {
    raw: Box<RawBlock>,
}

/// An EA block: header, then entries growing up and values growing down.
#[derive(Clone, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
struct RawBlock {
    header: Ext4XattrHeader,
    body: [u8; BLOCK_SIZE as usize - size_of::<Ext4XattrHeader>()],
}
const _: () = assert!(size_of::<RawBlock>() == BLOCK_SIZE as usize);

impl XattrBlock {
    /// The block's bytes (refcount 1, checksum 0). Two inodes whose blocks
    /// compare equal may share one block (up to [`EXT4_XATTR_REFCOUNT_MAX`]).
    pub fn as_bytes(&self) -> &[u8] {
        self.raw.as_bytes()
    }

    /// The block as written at `block_nr`, shared by `refcount` inodes, in a
    /// filesystem whose checksum seed is `fs_seed`.
    pub fn finalize(
        &self,
        block_nr: u64,
        refcount: u32,
        fs_seed: u32,
    ) -> [u8; BLOCK_SIZE as usize] {
        let mut raw = (*self.raw).clone();
        raw.header.h_refcount = refcount.into();
        raw.header.h_checksum = 0.into();
        let csum = ext4_chksum(
            ext4_chksum(fs_seed, &block_nr.to_le_bytes()),
            raw.as_bytes(),
        );
        raw.header.h_checksum = csum.into();
        let mut out = [0u8; BLOCK_SIZE as usize];
        out.copy_from_slice(raw.as_bytes());
        out
    }
}

impl PartialEq for XattrBlock {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for XattrBlock {}

impl std::hash::Hash for XattrBlock {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for XattrBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XattrBlock")
            .field("header", &self.raw.header)
            .finish_non_exhaustive()
    }
}

/// One attribute ready to store: prefix index, name suffix, on-disk value.
#[derive(Debug)]
struct Attr<'a> {
    index: u8,
    name: &'a [u8],
    value: Cow<'a, [u8]>,
}

impl Attr<'_> {
    /// Bytes the attribute takes: its entry plus its padded value.
    fn size(&self) -> usize {
        entry_len(self.name.len()) + value_len(self.value.len())
    }

    /// The sort key of block entries: index, name length, name
    /// (e2fsprogs `xattr_find_position`, the kernel's `ext4_xattr_find_entry`).
    fn block_key(&self) -> (u8, usize, &[u8]) {
        (self.index, self.name.len(), self.name)
    }
}

/// `EXT4_XATTR_LEN`: an entry with a name of `name_len` bytes, padded.
pub(crate) fn entry_len(name_len: usize) -> usize {
    (name_len + EXT4_XATTR_ROUND + size_of::<Ext4XattrEntry>()) & !EXT4_XATTR_ROUND
}

/// `EXT4_XATTR_SIZE`: a value of `len` bytes, padded.
fn value_len(len: usize) -> usize {
    (len + EXT4_XATTR_ROUND) & !EXT4_XATTR_ROUND
}

/// Names stored whole under one index, with an empty suffix.
const WHOLE_NAMES: [(&[u8], u8); 3] = [
    (
        b"system.posix_acl_access",
        EXT4_XATTR_INDEX_POSIX_ACL_ACCESS,
    ),
    (
        b"system.posix_acl_default",
        EXT4_XATTR_INDEX_POSIX_ACL_DEFAULT,
    ),
    (b"system.richacl", EXT4_XATTR_INDEX_RICHACL),
];
/// Prefixes replaced by an index, the rest of the name stored as suffix.
const PREFIXES: [(&[u8], u8); 4] = [
    (b"user.", EXT4_XATTR_INDEX_USER),
    (b"trusted.", EXT4_XATTR_INDEX_TRUSTED),
    (b"security.", EXT4_XATTR_INDEX_SECURITY),
    (b"system.", EXT4_XATTR_INDEX_SYSTEM),
];

/// Splits a full name into its name index and suffix.
pub fn name_index(full: &[u8]) -> Result<(u8, &[u8]), XattrError> {
    if let Some(&(_, index)) = WHOLE_NAMES.iter().find(|(name, _)| *name == full) {
        return Ok((index, &[]));
    }
    let (index, suffix) = PREFIXES
        .iter()
        .find_map(|&(prefix, index)| full.strip_prefix(prefix).map(|suffix| (index, suffix)))
        .ok_or_else(|| XattrError::UnsupportedNamespace(full.to_vec()))?;
    if suffix.is_empty() {
        return Err(XattrError::EmptyName(full.to_vec()));
    }
    if suffix.len() > EXT4_XATTR_NAME_MAX {
        return Err(XattrError::NameTooLong(full.to_vec()));
    }
    Ok((index, suffix))
}

/// The full name stored as `index` and `suffix`: the inverse of
/// [`name_index`]. `None` for an index ext4 does not define here.
pub fn full_name(index: u8, suffix: &[u8]) -> Option<Vec<u8>> {
    let (known, _) = WHOLE_NAMES
        .iter()
        .chain(&PREFIXES)
        .find(|&&(_, i)| i == index)?;
    let mut name = known.to_vec();
    name.extend_from_slice(suffix);
    Some(name)
}

fn prepare<'a>(full: &'a [u8], value: &'a [u8]) -> Result<Attr<'a>, XattrError> {
    let (index, name) = name_index(full)?;
    let value = match index {
        EXT4_XATTR_INDEX_POSIX_ACL_ACCESS | EXT4_XATTR_INDEX_POSIX_ACL_DEFAULT => Cow::Owned(
            acl::vfs_acl_to_ext4(value).map_err(|source| XattrError::Acl {
                name: full.to_vec(),
                source,
            })?,
        ),
        _ => Cow::Borrowed(value),
    };
    Ok(Attr { index, name, value })
}

/// Hash of one block entry (`ext4_xattr_hash_entry`): the name bytes
/// (unsigned, as current kernels and e2fsprogs hash them), then the value as
/// zero-padded little-endian words.
pub fn entry_hash(name: &[u8], value: &[u8]) -> u32 {
    let mut hash = name
        .iter()
        .fold(0u32, |h, &b| h.rotate_left(5) ^ u32::from(b));
    for word in value.chunks(4) {
        let mut padded = [0u8; 4];
        padded[..word.len()].copy_from_slice(word);
        hash = hash.rotate_left(16) ^ u32::from_le_bytes(padded);
    }
    hash
}

/// Block hash (`ext4_xattr_rehash`): the entry hashes folded in order, or 0
/// if any entry hash is 0 (the kernel then never shares the block).
pub fn block_hash(entry_hashes: impl IntoIterator<Item = u32>) -> u32 {
    let mut hash = 0u32;
    for entry in entry_hashes {
        if entry == 0 {
            return 0;
        }
        hash = hash.rotate_left(16) ^ entry;
    }
    hash
}

/// Writes `attrs` into `area` as e2fsprogs' `write_xattrs_to_buffer` does:
/// entries from the start, values from the end downward in entry order, each
/// value offset counted from `area`'s start plus `offset_base`. Returns the
/// entry hashes (0 unless `hashed`).
fn write_entries(
    area: &mut [u8],
    attrs: &[Attr<'_>],
    offset_base: usize,
    hashed: bool,
) -> Vec<u32> {
    let mut entry_at = 0;
    let mut value_end = area.len();
    let mut hashes = Vec::with_capacity(attrs.len());
    for attr in attrs {
        let value = &attr.value[..];
        value_end -= value_len(value.len());
        area[value_end..value_end + value.len()].copy_from_slice(value);
        let hash = if hashed {
            entry_hash(attr.name, value)
        } else {
            0
        };
        hashes.push(hash);
        // Sizes were checked against the area, so these conversions cannot fail.
        let entry = Ext4XattrEntry {
            e_name_len: attr.name.len() as u8,
            e_name_index: attr.index,
            e_value_offs: ((value_end + offset_base) as u16).into(),
            e_value_inum: 0.into(),
            e_value_size: (value.len() as u32).into(),
            e_hash: hash.into(),
        };
        let header_end = entry_at + size_of::<Ext4XattrEntry>();
        area[entry_at..header_end].copy_from_slice(entry.as_bytes());
        area[header_end..header_end + attr.name.len()].copy_from_slice(attr.name);
        entry_at += entry_len(attr.name.len());
    }
    hashes
}

/// Decides where each of a node's xattrs goes and encodes both places.
///
/// Placement follows e2fsprogs 1.47 (`ext2fs_xattr_set` as `mke2fs -d` calls
/// it once per attribute), so images match mke2fs's given the same order:
/// attributes are taken in `xattrs` order (sorted by full name); each goes
/// into the inode, appended, if it still fits there (keeping 4 bytes for the
/// list terminator), else into the block. Block entries are then sorted by
/// (index, name length, name) and carry their hash; in-inode hashes are 0.
/// The block's `h_hash` is the kernel's `ext4_xattr_rehash` (e2fsprogs
/// leaves it 0, which also passes fsck but keeps the kernel from sharing).
pub fn layout_xattrs(xattrs: &Xattrs) -> Result<XattrLayout, XattrError> {
    let mut ibody_free = IN_INODE_LEN - size_of::<Ext4XattrIbodyHeader>() - 4;
    let mut in_inode = Vec::new();
    let mut in_block = Vec::new();
    for (name, value) in xattrs {
        let attr = prepare(name, value)?;
        if attr.size() <= ibody_free {
            ibody_free -= attr.size();
            in_inode.push(attr);
        } else {
            in_block.push(attr);
        }
    }

    let mut inode_area = [0u8; IN_INODE_LEN];
    if !xattrs.is_empty() {
        let ibody_header = Ext4XattrIbodyHeader {
            h_magic: EXT4_XATTR_MAGIC.into(),
        };
        inode_area[..4].copy_from_slice(ibody_header.as_bytes());
        write_entries(&mut inode_area[4..], &in_inode, 0, false);
    }

    let block = if in_block.is_empty() {
        None
    } else {
        Some(encode_block(&mut in_block)?)
    };
    Ok(XattrLayout {
        in_inode: inode_area,
        block,
    })
}

fn encode_block(attrs: &mut [Attr<'_>]) -> Result<XattrBlock, XattrError> {
    let header_len = size_of::<Ext4XattrHeader>();
    let needed = header_len + attrs.iter().map(Attr::size).sum::<usize>() + 4;
    if needed > BLOCK_SIZE as usize {
        return Err(XattrError::TooLarge {
            needed,
            available: BLOCK_SIZE as usize,
        });
    }
    attrs.sort_by(|a, b| a.block_key().cmp(&b.block_key()));
    let mut raw = Box::new(RawBlock::new_zeroed());
    let hashes = write_entries(&mut raw.body, attrs, header_len, true);
    raw.header = Ext4XattrHeader {
        h_magic: EXT4_XATTR_MAGIC.into(),
        h_refcount: 1.into(),
        h_blocks: 1.into(),
        h_hash: block_hash(hashes).into(),
        h_checksum: 0.into(),
        h_reserved: [0.into(); 3],
    };
    Ok(XattrBlock { raw })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xattrs(pairs: &[(&str, Vec<u8>)]) -> Xattrs {
        pairs
            .iter()
            .map(|(name, value)| (name.as_bytes().to_vec(), value.clone()))
            .collect()
    }

    /// Names of the entries in `area` from offset `first`, in order.
    fn entry_names(area: &[u8], first: usize) -> Vec<(u8, Vec<u8>)> {
        let mut names = Vec::new();
        let mut at = first;
        while area[at..at + 4] != [0; 4] {
            let len = usize::from(area[at]);
            names.push((area[at + 1], area[at + 16..at + 16 + len].to_vec()));
            at += entry_len(len);
        }
        names
    }

    fn b(n: usize, byte: u8) -> Vec<u8> {
        vec![byte; n]
    }

    /// A block the kernel (6.18) wrote for `user.big` = 3000 × 'B' and
    /// `trusted.t` = 300 × "xyz": entry hashes 0x00018547 and 0x780e787a,
    /// h_hash 0xfd49787b.
    #[test]
    fn hashes_match_a_kernel_written_block() {
        let big = b(3000, b'B');
        let xyz = b"xyz".repeat(300);
        assert_eq!(entry_hash(b"big", &big), 0x0001_8547);
        assert_eq!(entry_hash(b"t", &xyz), 0x780e_787a);
        assert_eq!(block_hash([0x0001_8547, 0x780e_787a]), 0xfd49_787b);
        assert_eq!(
            block_hash([0x0001_8547, 0]),
            0,
            "a zero entry hash disables sharing"
        );

        let layout = layout_xattrs(&xattrs(&[
            ("trusted.t", xyz.clone()),
            ("user.big", big.clone()),
        ]))
        .unwrap();
        let block = layout.block.unwrap();
        let mut kernel = vec![0u8; BLOCK_SIZE as usize];
        kernel[..0x48].copy_from_slice(
            &hex::decode(
                "000002ea 01000000 01000000 7b7849fd 00000000 000000000000000000000000 \
                 03014804 00000000 b80b0000 47850100 62696700 \
                 0104c400 00000000 84030000 7a780e78 74000000"
                    .replace(' ', ""),
            )
            .unwrap(),
        );
        kernel[1096..].copy_from_slice(&big);
        kernel[196..1096].copy_from_slice(&xyz);
        assert_eq!(block.as_bytes(), &kernel[..]);
        // Only the magic: nothing fitted in the inode.
        assert_eq!(layout.in_inode[..4], EXT4_XATTR_MAGIC.to_le_bytes());
        assert!(layout.in_inode[4..].iter().all(|&b| b == 0));
    }

    /// `user.foo=bar` as mke2fs 1.47.0 -d stores it: value at the inode's end,
    /// offset counted from the first entry, hash 0.
    #[test]
    fn small_xattr_matches_mke2fs() {
        let layout = layout_xattrs(&xattrs(&[("user.foo", b"bar".to_vec())])).unwrap();
        let mut expected =
            hex::decode("000002ea 03015800 00000000 03000000 00000000 666f6f00".replace(' ', ""))
                .unwrap();
        expected.resize(IN_INODE_LEN - 4, 0);
        expected.extend_from_slice(b"bar\0");
        assert_eq!(layout.in_inode[..], expected[..]);
        assert!(layout.block.is_none());
    }

    #[test]
    fn no_xattrs_leave_the_area_zero() {
        let layout = layout_xattrs(&Xattrs::new()).unwrap();
        assert_eq!(layout.in_inode, [0; IN_INODE_LEN]);
        assert!(layout.block.is_none());
    }

    #[test]
    fn maps_names_to_indexes() {
        assert_eq!(name_index(b"user.foo").unwrap(), (1, &b"foo"[..]));
        assert_eq!(
            name_index(b"system.posix_acl_access").unwrap(),
            (2, &b""[..])
        );
        assert_eq!(
            name_index(b"system.posix_acl_default").unwrap(),
            (3, &b""[..])
        );
        assert_eq!(
            name_index(b"trusted.overlay.opaque").unwrap(),
            (4, &b"overlay.opaque"[..])
        );
        assert_eq!(
            name_index(b"security.capability").unwrap(),
            (6, &b"capability"[..])
        );
        assert_eq!(name_index(b"system.data").unwrap(), (7, &b"data"[..]));
        assert_eq!(name_index(b"system.richacl").unwrap(), (8, &b""[..]));
        assert_eq!(
            name_index(b"system.posix_acl_accessx").unwrap(),
            (7, &b"posix_acl_accessx"[..])
        );
        let long = [b"user.".as_slice(), &[b'n'; 255]].concat();
        assert_eq!(name_index(&long).unwrap().1.len(), 255);
    }

    #[test]
    fn rejects_bad_names() {
        for name in [&b"foo.bar"[..], b"gnu.x", b"User.x", b"user"] {
            assert_eq!(
                layout_xattrs(&xattrs(&[(std::str::from_utf8(name).unwrap(), vec![])])),
                Err(XattrError::UnsupportedNamespace(name.to_vec()))
            );
        }
        assert_eq!(
            name_index(b"user."),
            Err(XattrError::EmptyName(b"user.".to_vec()))
        );
        let long = [b"user.".as_slice(), &[b'n'; 256]].concat();
        assert_eq!(
            name_index(&long),
            Err(XattrError::NameTooLong(long.clone()))
        );
    }

    #[test]
    fn converts_acls_and_reports_bad_ones() {
        let vfs = hex::decode(
            "02000000 01000600ffffffff 04000400ffffffff 20000400ffffffff".replace(' ', ""),
        )
        .unwrap();
        let layout = layout_xattrs(&xattrs(&[("system.posix_acl_access", vfs)])).unwrap();
        // One 16-byte entry with an empty name; its 16-byte value ends the inode.
        assert_eq!(layout.in_inode[4..8], [0, 2, 92 - 16, 0]);
        assert_eq!(
            layout.in_inode[IN_INODE_LEN - 16..],
            hex::decode("01000000 01000600 04000400 20000400".replace(' ', "")).unwrap()[..]
        );
        assert_eq!(
            layout_xattrs(&xattrs(&[("system.posix_acl_default", vec![1, 0, 0, 0])])),
            Err(XattrError::Acl {
                name: b"system.posix_acl_default".to_vec(),
                source: AclError::BadVersion {
                    found: 1,
                    expected: 2
                }
            })
        );
    }

    /// First fit in name order: a big value goes to the block, later small
    /// ones still go to the inode; 88 bytes (entries + values) fit, 89 do not.
    #[test]
    fn splits_like_e2fsprogs() {
        let layout = layout_xattrs(&xattrs(&[
            ("user.a", b(10, b'x')),
            ("user.big", b(3000, b'B')),
            ("user.c", b(5, b'y')),
        ]))
        .unwrap();
        assert_eq!(
            entry_names(&layout.in_inode, 4),
            [(1, b"a".to_vec()), (1, b"c".to_vec())]
        );
        let block = layout.block.unwrap();
        assert_eq!(entry_names(block.as_bytes(), 32), [(1, b"big".to_vec())]);

        // Entry 20 bytes ("user.a"), value 68: exactly the 88 usable bytes.
        let exact = layout_xattrs(&xattrs(&[("user.a", b(68, 1)), ("user.b", vec![])])).unwrap();
        assert_eq!(entry_names(&exact.in_inode, 4), [(1, b"a".to_vec())]);
        assert_eq!(
            entry_names(exact.block.unwrap().as_bytes(), 32),
            [(1, b"b".to_vec())]
        );
        let over = layout_xattrs(&xattrs(&[("user.a", b(69, 1))])).unwrap();
        assert_eq!(entry_names(&over.in_inode, 4), []);
        assert!(over.block.is_some());
    }

    #[test]
    fn sorts_block_entries_by_index_then_name_length_then_name() {
        let layout = layout_xattrs(&xattrs(&[
            ("security.s", b(100, 1)),
            ("trusted.a", b(100, 2)),
            ("user.a", b(100, 3)),
            ("user.bb", b(100, 4)),
            ("user.ba", b(100, 5)),
            ("user.c", b(100, 6)),
        ]))
        .unwrap();
        let block = layout.block.unwrap();
        let bytes = block.as_bytes();
        assert_eq!(
            entry_names(bytes, 32),
            [
                (1, b"a".to_vec()),
                (1, b"c".to_vec()),
                (1, b"ba".to_vec()),
                (1, b"bb".to_vec()),
                (4, b"a".to_vec()),
                (6, b"s".to_vec()),
            ]
        );
        // Values go down from the block end in entry order, 4-byte aligned,
        // and each entry hash covers its own value.
        let mut end = BLOCK_SIZE as usize;
        let mut at = 32;
        while bytes[at..at + 4] != [0; 4] {
            let offs = usize::from(u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]));
            assert_eq!(offs, end - 100);
            end = offs;
            let name_len = usize::from(bytes[at]);
            let hash = u32::from_le_bytes(bytes[at + 12..at + 16].try_into().unwrap());
            assert_eq!(
                hash,
                entry_hash(
                    &bytes[at + 16..at + 16 + name_len],
                    &bytes[offs..offs + 100]
                )
            );
            at += entry_len(name_len);
        }
    }

    #[test]
    fn refuses_more_than_inode_and_one_block() {
        let err = layout_xattrs(&xattrs(&[("user.a", b(3000, 1)), ("user.b", b(3000, 2))]));
        assert_eq!(
            err,
            Err(XattrError::TooLarge {
                needed: 32 + 2 * (20 + 3000) + 4,
                available: BLOCK_SIZE as usize
            })
        );
        // The largest single value a block holds: 4096 - 32 - 20 - 4.
        assert!(layout_xattrs(&xattrs(&[("user.a", b(4040, 1))])).is_ok());
        assert!(matches!(
            layout_xattrs(&xattrs(&[("user.a", b(4041, 1))])),
            Err(XattrError::TooLarge { needed: 4100, .. })
        ));
    }

    #[test]
    fn finalize_sets_refcount_and_checksum() {
        let layout = layout_xattrs(&xattrs(&[("user.big", b(3000, b'B'))])).unwrap();
        let block = layout.block.unwrap();
        let out = block.finalize(2066, 3, 0x1234_5678);
        assert_eq!(out[4..8], 3u32.to_le_bytes());
        let mut zeroed = out;
        zeroed[16..20].fill(0);
        let csum = ext4_chksum(ext4_chksum(0x1234_5678, &2066u64.to_le_bytes()), &zeroed);
        assert_eq!(out[16..20], csum.to_le_bytes());
        // Everything else is the sharing key.
        zeroed[4..8].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(&zeroed[..], block.as_bytes());
        assert_ne!(block.finalize(2067, 3, 0x1234_5678)[16..20], out[16..20]);
    }
}
