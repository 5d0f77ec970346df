//! Trees for tests: [`arb_tree`] for property tests and [`sample_tree`]
//! with one of everything.
//!
//! Every tree is one the Linux VFS can hold, so [`crate::materialize()`] can
//! write it and `mkfs.ext4 -d` can copy it: user xattrs and ACLs only on
//! files and directories, default ACLs only on directories, capabilities
//! only on files, symlinks always 0777, the group bits of a node with an
//! access ACL equal to its mask, paths under 3000 bytes, and no
//! `lost+found` at the root.

use std::sync::Arc;

use banger_ext4::tree::{
    validate_name, DeviceNumber, FileContent, Metadata, NodeId, NodeKind, Timestamp, Tree, Xattrs,
};
use proptest::prelude::*;
use proptest::sample::Index;

use crate::acl::{self, AclEntry};
use crate::content::SparseSource;

/// Earliest time ext4 can store: `i32::MIN` seconds.
pub const MIN_EXT4_SECS: i64 = i32::MIN as i64;
/// Latest time ext4 can store: 32 signed bits plus two epoch bits
/// (the kernel's `EXT4_EXTRA_TIMESTAMP_MAX`, 2446-05-10).
pub const MAX_EXT4_SECS: i64 = (1 << 34) - 1 + i32::MIN as i64;

/// Valid times (2310-04-04 to 2378) that e2fsck 1.47 flags anyway: epoch
/// bits 3 with a negative low word is how old kernels wrote pre-1970 times,
/// so it prints "Timestamp(s) on inode N beyond 2310-04-04 are likely
/// pre-1970". Generated trees avoid them so a clean e2fsck stays silent.
pub const E2FSCK_SUSPECT_SECS: std::ops::Range<i64> = (3 << 32) - (1 << 31)..3 << 32;

/// Keeps paths well under `PATH_MAX` so they can be materialized.
const MAX_PATH_LEN: usize = 3000;
/// Keeps a node's xattrs within one 4 KiB xattr block.
const MAX_XATTR_BYTES: usize = 3000;

/// A random tree of at most about 200 nodes with every node kind, odd
/// names, hard links, xattrs and ACLs, special permission bits, large ids
/// and times across ext4's whole range.
pub fn arb_tree() -> impl Strategy<Value = Tree> {
    (
        arb_meta(),
        prop::collection::vec(arb_node(), 0..120),
        prop::option::of((any::<Index>(), 5usize..40)),
        prop::collection::vec((any::<Index>(), any::<Index>(), arb_name()), 0..15),
    )
        .prop_map(|(root_meta, nodes, chain, links)| build(root_meta, nodes, chain, links))
}

/// One node before placement: where it goes, its name, kind and metadata.
#[derive(Clone, Debug)]
struct NodeSpec {
    parent: Index,
    name: Vec<u8>,
    kind: KindSpec,
    meta: MetaSpec,
}

#[derive(Clone, Debug)]
enum KindSpec {
    File(ContentSpec),
    Dir,
    Symlink(Vec<u8>),
    Char(DeviceNumber),
    Block(DeviceNumber),
    Fifo,
    Socket,
}

#[derive(Clone, Debug)]
enum ContentSpec {
    Bytes(Vec<u8>),
    /// Pseudo-random bytes: multi-block files without megabytes of shrink state.
    Pattern {
        len: usize,
        seed: u64,
    },
    /// `len` bytes with data at a few offsets and holes elsewhere.
    Sparse {
        len: u64,
        data: Vec<(u64, usize, u64)>,
    },
}

#[derive(Clone, Debug)]
struct MetaSpec {
    permissions: u16,
    uid: u32,
    gid: u32,
    times: [Timestamp; 4],
    xattrs: Vec<XattrSpec>,
}

#[derive(Clone, Debug)]
enum XattrSpec {
    User(String, Vec<u8>),
    Trusted(String, Vec<u8>),
    Capability {
        permitted: u64,
        inheritable: u64,
        effective: bool,
    },
    AccessAcl(AclSpec),
    DefaultAcl(AclSpec),
}

#[derive(Clone, Debug)]
struct AclSpec {
    user_obj: u16,
    group_obj: u16,
    other: u16,
    mask: u16,
    users: Vec<(u32, u16)>,
    groups: Vec<(u32, u16)>,
}

fn arb_node() -> impl Strategy<Value = NodeSpec> {
    (any::<Index>(), arb_name(), arb_kind(), arb_meta()).prop_map(|(parent, name, kind, meta)| {
        NodeSpec {
            parent,
            name,
            kind,
            meta,
        }
    })
}

fn arb_kind() -> impl Strategy<Value = KindSpec> {
    prop_oneof![
        8 => arb_content().prop_map(KindSpec::File),
        5 => Just(KindSpec::Dir),
        3 => arb_symlink_target().prop_map(KindSpec::Symlink),
        1 => arb_device().prop_map(KindSpec::Char),
        1 => arb_device().prop_map(KindSpec::Block),
        1 => Just(KindSpec::Fifo),
        1 => Just(KindSpec::Socket),
    ]
}

fn arb_content() -> impl Strategy<Value = ContentSpec> {
    prop_oneof![
        1 => Just(ContentSpec::Bytes(Vec::new())),
        4 => prop::collection::vec(any::<u8>(), 1..200).prop_map(ContentSpec::Bytes),
        2 => (4095usize..40_000, any::<u64>())
            .prop_map(|(len, seed)| ContentSpec::Pattern { len, seed }),
        1 => (1u64..3 << 20, prop::collection::vec((any::<Index>(), 1usize..9000, any::<u64>()), 0..4))
            .prop_map(|(len, data)| ContentSpec::Sparse {
                len,
                data: data
                    .into_iter()
                    .map(|(at, size, seed)| (at.index(len as usize) as u64, size, seed))
                    .collect(),
            }),
    ]
}

/// 1..200 bytes of anything but NUL, biased to both sides of the 60-byte
/// fast-symlink limit.
fn arb_symlink_target() -> impl Strategy<Value = Vec<u8>> {
    let len = prop_oneof![3 => 1usize..59, 1 => 59usize..=61, 2 => 61usize..=200];
    len.prop_flat_map(|len| prop::collection::vec(1u8..=255, len))
}

/// Old encoding (major and minor below 256) and new (12-bit major, 20-bit minor).
fn arb_device() -> impl Strategy<Value = DeviceNumber> {
    prop_oneof![
        (0u32..256, 0u32..256),
        (0u32..4096, 0u32..1 << 20),
        Just((4095, (1 << 20) - 1)),
    ]
    .prop_map(|(major, minor)| DeviceNumber { major, minor })
}

fn arb_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => "[a-z0-9_.]{1,12}".prop_map(String::into_bytes),
        2 => prop::collection::vec(1u8..=255, 1..24)
            .prop_map(|n| n.into_iter().map(|b| if b == b'/' { b'x' } else { b }).collect()),
        1 => "[a-z ]{1,10} [a-z]{1,10}".prop_map(String::into_bytes),
        1 => "-[a-z-]{0,10}".prop_map(String::into_bytes),
        1 => Just(b"...".to_vec()),
        1 => prop::collection::vec(b'a'..=b'z', 240..=255),
    ]
    .prop_filter("valid ext4 name", |n| validate_name(n).is_ok())
}

fn arb_timestamp() -> impl Strategy<Value = Timestamp> {
    let secs = prop_oneof![
        4 => 1_500_000_000i64..1_800_000_000,
        1 => MIN_EXT4_SECS..0,
        1 => (1i64 << 31)..=MAX_EXT4_SECS,
        1 => prop::sample::select(vec![
            MIN_EXT4_SECS, -1, 0, 1, i64::from(i32::MAX), 1 << 31, 1 << 32, MAX_EXT4_SECS,
        ]),
    ];
    let nanos = prop_oneof![2 => Just(0u32), 3 => 0u32..1_000_000_000, 1 => Just(999_999_999)];
    (secs, nanos).prop_map(|(mut secs, nanos)| {
        if E2FSCK_SUSPECT_SECS.contains(&secs) {
            secs -= 1 << 32;
        }
        Timestamp {
            secs,
            // The kernel drops the nanoseconds at both ends of the range, so
            // a materialized tree could not hold them.
            nanos: if secs == MAX_EXT4_SECS || secs == MIN_EXT4_SECS {
                0
            } else {
                nanos
            },
        }
    })
}

fn arb_id() -> impl Strategy<Value = u32> {
    // u32::MAX is not an id: chown(2) reads it as "leave unchanged".
    prop_oneof![3 => Just(0u32), 2 => 1u32..1000, 2 => 1000u32..70_000, 1 => 65_536u32..u32::MAX]
}

fn arb_meta() -> impl Strategy<Value = MetaSpec> {
    (
        prop_oneof![3 => 0u16..0o1000, 1 => 0u16..=0o7777],
        arb_id(),
        arb_id(),
        [
            arb_timestamp(),
            arb_timestamp(),
            arb_timestamp(),
            arb_timestamp(),
        ],
        prop::collection::vec(arb_xattr(), 0..4),
    )
        .prop_map(|(permissions, uid, gid, times, xattrs)| MetaSpec {
            permissions,
            uid,
            gid,
            times,
            xattrs,
        })
}

fn arb_xattr_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..24),
        2 => prop::collection::vec(any::<u8>(), 60..200),
        1 => prop::collection::vec(any::<u8>(), 500..1500),
    ]
}

fn arb_xattr() -> impl Strategy<Value = XattrSpec> {
    let name = "[a-z0-9_.]{1,20}";
    prop_oneof![
        4 => (name, arb_xattr_value()).prop_map(|(n, v)| XattrSpec::User(n, v)),
        2 => (name, arb_xattr_value()).prop_map(|(n, v)| XattrSpec::Trusted(n, v)),
        1 => (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(p, i, e)| {
            XattrSpec::Capability { permitted: p, inheritable: i, effective: e }
        }),
        2 => arb_acl().prop_map(XattrSpec::AccessAcl),
        1 => arb_acl().prop_map(XattrSpec::DefaultAcl),
    ]
}

fn arb_acl() -> impl Strategy<Value = AclSpec> {
    let perm = 0u16..8;
    let named = |max| prop::collection::vec((arb_id(), 0u16..8), 0..max);
    (
        perm.clone(),
        perm.clone(),
        perm.clone(),
        perm,
        named(12),
        named(4),
    )
        .prop_map(
            |(user_obj, group_obj, other, mask, users, groups)| AclSpec {
                user_obj,
                group_obj,
                other,
                mask,
                users,
                groups,
            },
        )
}

impl AclSpec {
    /// Entries in the order the kernel requires, with at least one named
    /// entry (`at_least_one_named`) so an access ACL is not folded into the mode.
    fn entries(&self, at_least_one_named: bool) -> Vec<AclEntry> {
        let mut users = self.users.clone();
        let mut groups = self.groups.clone();
        if at_least_one_named && users.is_empty() && groups.is_empty() {
            users.push((1000, 6));
        }
        for list in [&mut users, &mut groups] {
            list.sort_by_key(|(id, _)| *id);
            list.dedup_by_key(|(id, _)| *id);
        }
        let entry = |tag, perm, id| AclEntry { tag, perm, id };
        let mut out = vec![entry(acl::ACL_USER_OBJ, self.user_obj, None)];
        out.extend(
            users
                .iter()
                .map(|&(id, p)| entry(acl::ACL_USER, p, Some(id))),
        );
        out.push(entry(acl::ACL_GROUP_OBJ, self.group_obj, None));
        out.extend(
            groups
                .iter()
                .map(|&(id, p)| entry(acl::ACL_GROUP, p, Some(id))),
        );
        if !users.is_empty() || !groups.is_empty() {
            out.push(entry(acl::ACL_MASK, self.mask, None));
        }
        out.push(entry(acl::ACL_OTHER, self.other, None));
        out
    }

    /// The rwx bits of the mode an access ACL implies.
    fn mode_bits(entries: &[AclEntry]) -> u16 {
        let perm = |tag| {
            entries
                .iter()
                .find(|e| e.tag == tag)
                .map_or(0, |e| e.perm & 7)
        };
        let group = if entries.iter().any(|e| e.tag == acl::ACL_MASK) {
            perm(acl::ACL_MASK)
        } else {
            perm(acl::ACL_GROUP_OBJ)
        };
        perm(acl::ACL_USER_OBJ) << 6 | group << 3 | perm(acl::ACL_OTHER)
    }
}

/// A `vfs_cap_data` revision 2 value.
fn capability(permitted: u64, inheritable: u64, effective: bool) -> Vec<u8> {
    const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
    let mut out = (VFS_CAP_REVISION_2 | u32::from(effective))
        .to_le_bytes()
        .to_vec();
    for word in [
        permitted as u32,
        inheritable as u32,
        (permitted >> 32) as u32,
        (inheritable >> 32) as u32,
    ] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out
}

impl MetaSpec {
    /// Metadata for a node of `kind`, keeping only what the VFS allows on it.
    fn build(&self, kind: &KindSpec) -> Metadata {
        let [atime, mtime, ctime, crtime] = self.times;
        let mut meta = Metadata {
            permissions: self.permissions & 0o7777,
            uid: self.uid,
            gid: self.gid,
            atime,
            mtime,
            ctime,
            crtime,
            xattrs: Xattrs::new(),
        };
        let is_file = matches!(kind, KindSpec::File(_));
        let is_dir = matches!(kind, KindSpec::Dir);
        let mut budget = MAX_XATTR_BYTES;
        for spec in &self.xattrs {
            let (name, value) = match spec {
                XattrSpec::User(n, v) if is_file || is_dir => {
                    (format!("user.{n}").into_bytes(), v.clone())
                }
                XattrSpec::Trusted(n, v) => (format!("trusted.{n}").into_bytes(), v.clone()),
                XattrSpec::Capability {
                    permitted,
                    inheritable,
                    effective,
                } if is_file => (
                    b"security.capability".to_vec(),
                    capability(*permitted, *inheritable, *effective),
                ),
                XattrSpec::AccessAcl(a) if is_file || is_dir => {
                    let entries = a.entries(true);
                    meta.permissions = (meta.permissions & 0o7000) | AclSpec::mode_bits(&entries);
                    (acl::ACL_ACCESS.to_vec(), acl::to_vfs(&entries))
                }
                XattrSpec::DefaultAcl(a) if is_dir => {
                    (acl::ACL_DEFAULT.to_vec(), acl::to_vfs(&a.entries(false)))
                }
                _ => continue,
            };
            let cost = name.len() + value.len() + 24;
            if cost > budget || meta.xattrs.contains_key(&name) {
                continue;
            }
            budget -= cost;
            meta.xattrs.insert(name, value);
        }
        if let Some(acl) = meta
            .xattrs
            .get(acl::ACL_ACCESS)
            .and_then(|v| acl::parse_vfs(v))
        {
            // A later capability or user xattr does not touch the mode, but
            // keep the invariant explicit: group bits follow the ACL.
            meta.permissions = (meta.permissions & 0o7000) | AclSpec::mode_bits(&acl);
        }
        if matches!(kind, KindSpec::Symlink(_)) {
            meta.permissions = 0o777;
        }
        meta
    }
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

impl KindSpec {
    fn build(&self) -> NodeKind {
        match self {
            KindSpec::File(ContentSpec::Bytes(b)) => {
                NodeKind::File(FileContent::from_bytes(b.clone()))
            }
            KindSpec::File(ContentSpec::Pattern { len, seed }) => {
                NodeKind::File(FileContent::from_bytes(pattern(*len, *seed)))
            }
            KindSpec::File(ContentSpec::Sparse { len, data }) => {
                let data = data
                    .iter()
                    .map(|&(at, size, seed)| (at, pattern(size, seed)))
                    .collect();
                NodeKind::File(FileContent::Source(Arc::new(SparseSource::new(*len, data))))
            }
            KindSpec::Dir => NodeKind::Directory(Default::default()),
            KindSpec::Symlink(t) => NodeKind::Symlink(t.clone()),
            KindSpec::Char(d) => NodeKind::CharDevice(*d),
            KindSpec::Block(d) => NodeKind::BlockDevice(*d),
            KindSpec::Fifo => NodeKind::Fifo,
            KindSpec::Socket => NodeKind::Socket,
        }
    }
}

/// Places nodes into a tree, keeping names unique and paths short.
struct Builder {
    tree: Tree,
    /// Directories with their path length.
    dirs: Vec<(NodeId, usize)>,
    others: Vec<NodeId>,
}

impl Builder {
    /// Links `id` under a directory picked by `parent`.
    fn place(&mut self, parent: Index, name: &[u8], id: NodeId) -> Option<(NodeId, usize)> {
        let (dir, dir_len) = self.dirs[parent.index(self.dirs.len())];
        self.place_in(dir, dir_len, name, id)
    }

    /// Links `id` under `dir` (at the root if the path would get too long),
    /// returning the node and its path length once linked.
    fn place_in(
        &mut self,
        dir: NodeId,
        dir_len: usize,
        name: &[u8],
        id: NodeId,
    ) -> Option<(NodeId, usize)> {
        let (dir, dir_len) = if dir_len + 1 + name.len() > MAX_PATH_LEN {
            (Tree::ROOT, 0)
        } else {
            (dir, dir_len)
        };
        let name = unique_name(&self.tree, dir, name);
        self.tree.link(dir, &name, id).ok()?;
        let placed = (id, dir_len + 1 + name.len());
        if self.tree.node(id).kind.is_dir() {
            self.dirs.push(placed);
        } else {
            self.others.push(id);
        }
        Some(placed)
    }
}

/// `name`, or a variant of it that `dir` does not hold yet.
fn unique_name(tree: &Tree, dir: NodeId, name: &[u8]) -> Vec<u8> {
    let mut candidate = name.to_vec();
    let mut n = 0;
    while tree.lookup(dir, &candidate).is_some()
        || (dir == Tree::ROOT && candidate == b"lost+found")
    {
        let suffix = format!("~{n}");
        candidate = name[..name.len().min(255 - suffix.len())].to_vec();
        candidate.extend_from_slice(suffix.as_bytes());
        n += 1;
    }
    candidate
}

fn build(
    root_meta: MetaSpec,
    nodes: Vec<NodeSpec>,
    chain: Option<(Index, usize)>,
    links: Vec<(Index, Index, Vec<u8>)>,
) -> Tree {
    let mut b = Builder {
        tree: Tree::new(root_meta.build(&KindSpec::Dir)),
        dirs: vec![(Tree::ROOT, 0)],
        others: Vec::new(),
    };
    for spec in &nodes {
        let id = b.tree.add(spec.kind.build(), spec.meta.build(&spec.kind));
        b.place(spec.parent, &spec.name, id);
    }
    if let Some((start, depth)) = chain {
        // A deep path of short names, ending in a file.
        let meta = Metadata::new(0o755, Timestamp::from_secs(1_700_000_000));
        let mut at = b.dirs[start.index(b.dirs.len())];
        for level in 0..depth {
            let id = b
                .tree
                .add(NodeKind::Directory(Default::default()), meta.clone());
            if let Some(placed) = b.place_in(at.0, at.1, format!("deep{level}").as_bytes(), id) {
                at = placed;
            }
        }
        let file = b.tree.add(
            NodeKind::File(FileContent::from_bytes(b"bottom\n".to_vec())),
            meta,
        );
        b.place_in(at.0, at.1, b"bottom", file);
    }
    for (target, parent, name) in links {
        if b.others.is_empty() {
            break;
        }
        // A second name for an existing non-directory: a hard link.
        let id = b.others[target.index(b.others.len())];
        let (dir, dir_len) = b.dirs[parent.index(b.dirs.len())];
        let (dir, _) = if dir_len + 1 + name.len() > MAX_PATH_LEN {
            (Tree::ROOT, 0)
        } else {
            (dir, dir_len)
        };
        let name = unique_name(&b.tree, dir, &name);
        let _ = b.tree.link(dir, &name, id);
    }
    b.tree
}

/// A small fixed tree with one of everything: every node kind, empty,
/// multi-block, sparse and >4 GiB sparse files, fast and slow symlinks,
/// old- and new-encoding devices, hard links to a file, a symlink and a
/// device, odd names, a 30-level path, a directory with 300 entries,
/// setuid/setgid/sticky bits, ids above 65535, times before 1970, after
/// 2038 and at both ends of ext4's range, in-inode and block xattrs,
/// a capability and POSIX ACLs (access and default, small and large).
pub fn sample_tree() -> Tree {
    let t = |secs, nanos| Timestamp { secs, nanos };
    let base = t(1_700_000_000, 123_456_789);
    let meta = |perm: u16| Metadata::new(perm, base);
    let mut tree = Tree::new(meta(0o755));
    let add = |tree: &mut Tree, dir: NodeId, name: &[u8], kind: NodeKind, meta: Metadata| {
        let id = tree.add(kind, meta);
        tree.link(dir, name, id).expect("valid sample name");
        id
    };
    let dir = |tree: &mut Tree, parent: NodeId, name: &[u8], m: Metadata| {
        add(
            tree,
            parent,
            name,
            NodeKind::Directory(Default::default()),
            m,
        )
    };
    let file = |bytes: Vec<u8>| NodeKind::File(FileContent::from_bytes(bytes));
    let root = Tree::ROOT;

    // Files.
    let etc = dir(&mut tree, root, b"etc", meta(0o755));
    add(
        &mut tree,
        etc,
        b"hostname",
        file(b"sample\n".to_vec()),
        meta(0o644),
    );
    add(&mut tree, root, b"empty", file(Vec::new()), meta(0o600));
    add(
        &mut tree,
        root,
        b"multiblock",
        file(pattern(3 * 4096 + 7, 7)),
        meta(0o644),
    );
    let sparse = SparseSource::new(
        10 << 20,
        vec![
            (0, pattern(100, 1)),
            (5 << 20, pattern(10_000, 2)),
            ((10 << 20) - 3, vec![9; 3]),
        ],
    );
    add(
        &mut tree,
        root,
        b"sparse",
        NodeKind::File(FileContent::Source(Arc::new(sparse))),
        meta(0o644),
    );
    let hole_only = SparseSource::new(1 << 20, Vec::new());
    add(
        &mut tree,
        root,
        b"all-hole",
        NodeKind::File(FileContent::Source(Arc::new(hole_only))),
        meta(0o644),
    );
    let huge = SparseSource::new(
        (4 << 30) + 8192,
        vec![(4096, pattern(4096, 3)), (4 << 30, pattern(8192, 4))],
    );
    add(
        &mut tree,
        root,
        b"huge-sparse",
        NodeKind::File(FileContent::Source(Arc::new(huge))),
        meta(0o644),
    );

    // Symlinks, devices, FIFO, socket, with hard links to each kind.
    let fast = add(
        &mut tree,
        root,
        b"fast-link",
        NodeKind::Symlink(b"etc/hostname".to_vec()),
        meta(0o777),
    );
    let slow_target = [&b"/"[..], &[b'x'; 100][..], b"/\xff target"].concat();
    add(
        &mut tree,
        root,
        b"slow-link",
        NodeKind::Symlink(slow_target),
        meta(0o777),
    );
    add(
        &mut tree,
        root,
        b"link-59",
        NodeKind::Symlink(vec![b'a'; 59]),
        meta(0o777),
    );
    add(
        &mut tree,
        root,
        b"link-60",
        NodeKind::Symlink(vec![b'b'; 60]),
        meta(0o777),
    );
    let dev = dir(&mut tree, root, b"dev", meta(0o755));
    let null = add(
        &mut tree,
        dev,
        b"null",
        NodeKind::CharDevice(DeviceNumber { major: 1, minor: 3 }),
        meta(0o666),
    );
    let big = DeviceNumber {
        major: 4095,
        minor: (1 << 20) - 1,
    };
    add(
        &mut tree,
        dev,
        b"big",
        NodeKind::CharDevice(big),
        meta(0o600),
    );
    add(
        &mut tree,
        dev,
        b"sda",
        NodeKind::BlockDevice(DeviceNumber { major: 8, minor: 0 }),
        meta(0o660),
    );
    add(
        &mut tree,
        dev,
        b"nvme",
        NodeKind::BlockDevice(DeviceNumber {
            major: 259,
            minor: 70_000,
        }),
        meta(0o660),
    );
    add(&mut tree, dev, b"fifo", NodeKind::Fifo, meta(0o644));
    add(&mut tree, dev, b"socket", NodeKind::Socket, meta(0o755));
    tree.link(dev, b"null-again", null).expect("hard link");
    tree.link(etc, b"fast-link-2", fast).expect("hard link");
    let shared = add(
        &mut tree,
        root,
        b"shared",
        file(b"three names\n".to_vec()),
        meta(0o644),
    );
    tree.link(etc, b"shared", shared).expect("hard link");
    tree.link(dev, b"shared-too", shared).expect("hard link");

    // Odd names.
    let odd = dir(&mut tree, root, b"odd", meta(0o755));
    for name in [
        &b"\xff\xfe not utf-8"[..],
        b"with space",
        b"-leading-dash",
        b"...",
        b"new\nline",
        &[b'n'; 255],
    ] {
        add(&mut tree, odd, name, file(name.to_vec()), meta(0o644));
    }

    // Special bits, big ids, extreme times.
    let mut suid = meta(0o4755);
    (suid.uid, suid.gid) = (100_000, 200_000);
    add(
        &mut tree,
        root,
        b"setuid",
        file(b"#!/bin/sh\n".to_vec()),
        suid,
    );
    let shared_dir = dir(&mut tree, root, b"setgid-dir", meta(0o2775));
    let tmp = dir(&mut tree, root, b"tmp", meta(0o1777));
    let mut old = meta(0o644);
    (old.atime, old.mtime, old.ctime, old.crtime) = (
        t(-1_234_567_890, 5),
        t(MIN_EXT4_SECS, 0),
        t(-1, 999_999_999),
        t(0, 0),
    );
    add(&mut tree, tmp, b"old", file(b"1931\n".to_vec()), old);
    let mut future = meta(0o644);
    (future.atime, future.mtime, future.ctime, future.crtime) = (
        t(1 << 33, 1),
        t(MAX_EXT4_SECS - 1, 999_999_999),
        t(i64::from(i32::MAX) + 1, 0),
        t(MAX_EXT4_SECS, 0),
    );
    add(&mut tree, tmp, b"future", file(b"2446\n".to_vec()), future);

    // Xattrs and ACLs.
    let acl = |users: &[(u32, u16)], mask| AclSpec {
        user_obj: 7,
        group_obj: 5,
        other: 4,
        mask,
        users: users.to_vec(),
        groups: vec![(100, 4)],
    };
    let mut x = meta(0o644);
    x.xattrs.insert(b"user.small".to_vec(), b"v".to_vec());
    x.xattrs.insert(b"user.empty".to_vec(), Vec::new());
    x.xattrs.insert(b"trusted.t".to_vec(), vec![0, 1, 2, 255]);
    x.xattrs.insert(
        b"security.capability".to_vec(),
        capability(1 << 10 | 1 << 13, 0, true),
    );
    let small_acl = acl::to_vfs(&acl(&[(1000, 6)], 6).entries(true));
    x.permissions = AclSpec::mode_bits(&acl::parse_vfs(&small_acl).unwrap_or_default());
    x.xattrs.insert(acl::ACL_ACCESS.to_vec(), small_acl);
    add(&mut tree, shared_dir, b"xattrs", file(b"x\n".to_vec()), x);
    let mut big_x = meta(0o644);
    big_x.xattrs.insert(b"user.big".to_vec(), pattern(2000, 5));
    let users: Vec<(u32, u16)> = (0..15).map(|i| (70_000 + i, (i % 8) as u16)).collect();
    let big_acl = acl::to_vfs(&acl(&users, 7).entries(true));
    big_x.permissions = AclSpec::mode_bits(&acl::parse_vfs(&big_acl).unwrap_or_default());
    big_x.xattrs.insert(acl::ACL_ACCESS.to_vec(), big_acl);
    let mut acl_dir = meta(0o755);
    acl_dir.xattrs.insert(
        acl::ACL_DEFAULT.to_vec(),
        acl::to_vfs(&acl(&[(33, 7)], 7).entries(false)),
    );
    let acl_dir = dir(&mut tree, root, b"acl-dir", acl_dir);
    add(
        &mut tree,
        acl_dir,
        b"big-xattrs",
        file(b"big\n".to_vec()),
        big_x,
    );
    let mut fifo_x = meta(0o600);
    fifo_x
        .xattrs
        .insert(b"trusted.on-a-fifo".to_vec(), b"yes".to_vec());
    add(&mut tree, acl_dir, b"fifo", NodeKind::Fifo, fifo_x);

    // A deep path and a large directory.
    let mut at = root;
    for level in 0..30 {
        at = dir(&mut tree, at, format!("d{level}").as_bytes(), meta(0o755));
    }
    add(
        &mut tree,
        at,
        b"bottom",
        file(b"deep\n".to_vec()),
        meta(0o644),
    );
    let many = dir(&mut tree, root, b"many", meta(0o755));
    for i in 0..300 {
        add(
            &mut tree,
            many,
            format!("file_{i:03}").as_bytes(),
            file(Vec::new()),
            meta(0o644),
        );
    }
    tree
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    use super::*;
    use crate::expect::tree_paths;

    /// Names every feature a node shows, so coverage can be asserted.
    fn features(tree: &Tree, out: &mut BTreeSet<&'static str>) {
        let paths = tree_paths(tree);
        let mut names: HashMap<NodeId, usize> = HashMap::new();
        for (path, id) in &paths {
            *names.entry(*id).or_default() += 1;
            let name = &path[path.iter().rposition(|&b| b == b'/').unwrap_or(0) + 1..];
            let depth = path.iter().filter(|&&b| b == b'/').count();
            let checks: [(&'static str, bool); 6] = [
                ("non-utf8 name", std::str::from_utf8(name).is_err()),
                ("space in name", name.contains(&b' ')),
                ("255-byte name", name.len() == 255),
                ("leading dash", name.first() == Some(&b'-')),
                ("dots name", name == b"..."),
                ("deep path", depth >= 10),
            ];
            out.extend(checks.iter().filter(|c| c.1).map(|c| c.0));
        }
        for (id, count) in names {
            let node = tree.node(id);
            let m = &node.meta;
            let kind = match &node.kind {
                NodeKind::File(c) if c.size() == 0 => "empty file",
                NodeKind::File(FileContent::Source(s))
                    if s.data_ranges().len() != 1 || s.data_ranges()[0] != (0..s.len()) =>
                {
                    "sparse file"
                }
                NodeKind::File(c) if c.size() > 4096 => "multi-block file",
                NodeKind::File(_) => "small file",
                NodeKind::Directory(_) => "directory",
                NodeKind::Symlink(t) if t.len() < 60 => "fast symlink",
                NodeKind::Symlink(_) => "slow symlink",
                NodeKind::CharDevice(d) | NodeKind::BlockDevice(d)
                    if d.major < 256 && d.minor < 256 =>
                {
                    "old device"
                }
                NodeKind::CharDevice(_) | NodeKind::BlockDevice(_) => "new device",
                NodeKind::Fifo => "fifo",
                NodeKind::Socket => "socket",
            };
            out.insert(kind);
            let hard_link = match &node.kind {
                NodeKind::File(_) => "hard-linked file",
                NodeKind::Symlink(_) => "hard-linked symlink",
                NodeKind::CharDevice(_) | NodeKind::BlockDevice(_) => "hard-linked device",
                _ => "hard-linked other",
            };
            let times = [m.atime, m.mtime, m.ctime, m.crtime];
            let big_acl = m
                .xattrs
                .get(acl::ACL_ACCESS)
                .and_then(|v| acl::vfs_to_ext4(v))
                .is_some_and(|v| v.len() > 92);
            let checks: [(&'static str, bool); 16] = [
                (hard_link, count > 1),
                ("setuid", m.permissions & 0o4000 != 0),
                ("setgid", m.permissions & 0o2000 != 0),
                ("sticky", m.permissions & 0o1000 != 0),
                ("uid > 65535", m.uid > 65535),
                ("gid > 65535", m.gid > 65535),
                ("pre-1970", times.iter().any(|t| t.secs < 0)),
                (
                    "post-2038",
                    times.iter().any(|t| t.secs > i64::from(i32::MAX)),
                ),
                ("nanoseconds", times.iter().any(|t| t.nanos != 0)),
                (
                    "user xattr",
                    m.xattrs.keys().any(|k| k.starts_with(b"user.")),
                ),
                (
                    "trusted xattr",
                    m.xattrs.keys().any(|k| k.starts_with(b"trusted.")),
                ),
                (
                    "capability",
                    m.xattrs.contains_key(&b"security.capability"[..]),
                ),
                ("access acl", m.xattrs.contains_key(acl::ACL_ACCESS)),
                ("default acl", m.xattrs.contains_key(acl::ACL_DEFAULT)),
                ("acl over 92 bytes", big_acl),
                (
                    "xattrs over 92 bytes",
                    m.xattrs
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
                        > 92,
                ),
            ];
            out.extend(checks.iter().filter(|c| c.1).map(|c| c.0));
            if let Some(v) = m.xattrs.get(acl::ACL_ACCESS) {
                let entries = acl::parse_vfs(v).expect("valid ACL");
                assert_eq!(
                    m.permissions & 0o777,
                    AclSpec::mode_bits(&entries),
                    "mode follows the ACL"
                );
            }
            assert!(times
                .iter()
                .all(|t| (MIN_EXT4_SECS..=MAX_EXT4_SECS).contains(&t.secs)
                    && t.nanos < 1_000_000_000));
        }
    }

    /// The features `features` recognises that `sample_tree` must all show.
    const EVERY_FEATURE: &[&str] = &[
        "non-utf8 name",
        "space in name",
        "255-byte name",
        "leading dash",
        "dots name",
        "deep path",
        "empty file",
        "sparse file",
        "multi-block file",
        "directory",
        "fast symlink",
        "slow symlink",
        "old device",
        "new device",
        "fifo",
        "socket",
        "hard-linked file",
        "hard-linked symlink",
        "hard-linked device",
        "setuid",
        "setgid",
        "sticky",
        "uid > 65535",
        "gid > 65535",
        "pre-1970",
        "post-2038",
        "nanoseconds",
        "user xattr",
        "trusted xattr",
        "capability",
        "access acl",
        "default acl",
        "acl over 92 bytes",
        "xattrs over 92 bytes",
    ];

    #[test]
    fn random_trees_cover_every_feature() {
        let mut runner = TestRunner::deterministic();
        let mut seen = BTreeSet::new();
        for _ in 0..64 {
            let tree = arb_tree().new_tree(&mut runner).expect("tree").current();
            assert!(tree_paths(&tree).len() <= 200);
            features(&tree, &mut seen);
        }
        // Random trees must show everything the sample does, and small files.
        let all: Vec<&str> = EVERY_FEATURE
            .iter()
            .copied()
            .chain(["small file"])
            .collect();
        let missing: Vec<_> = all.iter().filter(|f| !seen.contains(*f)).collect();
        assert!(missing.is_empty(), "64 random trees never had: {missing:?}");
    }

    #[test]
    fn sample_tree_has_one_of_everything() {
        let mut seen = BTreeSet::new();
        features(&sample_tree(), &mut seen);
        let missing: Vec<_> = EVERY_FEATURE
            .iter()
            .copied()
            .filter(|f| !seen.contains(f))
            .collect();
        assert!(missing.is_empty(), "sample tree lacks {missing:?}");
    }
}
