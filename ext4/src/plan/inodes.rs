//! What every inode needs, measured before the geometry is chosen: mode,
//! link count, body, xattr placement and the blocks it will allocate.

use std::collections::HashMap;

use crate::error::BuildError;
use crate::extent;
use crate::format::xattr::EXT4_XATTR_REFCOUNT_MAX;
use crate::inode::encode_device;
use crate::spec::{
    BLOCKS_PER_GROUP, EXT4_FIRST_INO, EXT4_LINK_MAX, FAST_SYMLINK_MAX, MAX_SYMLINK_LEN,
};
use crate::tree::{DeviceNumber, NodeId, NodeKind};
use crate::xattr::{self, XattrBlock};

use super::dirs::{path_of, DirEncoder};
use super::links::link_counts;
use super::{placed_of, SourcePlacements};

/// What an inode carries besides its metadata.
pub(crate) enum Body {
    /// A directory of `blocks` blocks, encoded again when written: holding
    /// every directory's bytes from planning to writing cost 4 KiB or more
    /// per directory (1.4 GB for 300 000 empty ones).
    Directory {
        blocks: u64,
        indexed: bool,
    },
    File,
    /// Target in `i_block`; the bytes come from the tree when written.
    FastSymlink,
    /// Target in a block of its own.
    SlowSymlink,
    /// Checked encodable when planned.
    Device(DeviceNumber),
    Empty,
}

/// Everything measured about one inode before the geometry is chosen.
pub(crate) struct InodePlan {
    pub(crate) ino: u32,
    /// The tree node, or `None` for a lost+found banger creates.
    pub(crate) node: Option<NodeId>,
    pub(crate) mode: u16,
    pub(crate) links: u16,
    pub(crate) body: Body,
    /// The in-inode xattr area, `None` for the many inodes without one.
    pub(crate) xattrs: Option<Box<[u8; 96]>>,
    /// Index into the shared xattr blocks.
    pub(crate) xattr_block: Option<u32>,
    /// Blocks this inode allocates after the geometry is known.
    pub(crate) metadata_blocks: u64,
}

pub(crate) struct Plans {
    pub(crate) inodes: Vec<InodePlan>,
    /// Distinct xattr blocks with their reference counts.
    pub(crate) xattr_blocks: Vec<(XattrBlock, u32)>,
}

impl Plans {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &InodePlan> {
        self.inodes.iter()
    }
}

/// Measures every inode: link counts, directory blocks, xattr placement,
/// extent tree sizes.
pub(crate) fn plan_inodes(
    encoder: &DirEncoder,
    contents: &SourcePlacements,
) -> Result<Plans, BuildError> {
    let (tree, inodes) = (encoder.tree, encoder.inodes);
    let links = link_counts(tree, inodes);
    let mut shared = SharedXattrBlocks::default();
    let mut plans = Vec::with_capacity(inodes.order.len() + 1);

    if inodes.tree_lost_found.is_none() {
        let blocks = encoder.encode(None, EXT4_FIRST_INO)?;
        plans.push(InodePlan {
            ino: EXT4_FIRST_INO,
            node: None,
            mode: 0o040700,
            links: 2,
            metadata_blocks: blocks.block_count() as u64 + extent::tree_blocks_needed(1),
            body: Body::Directory {
                blocks: blocks.block_count() as u64,
                indexed: blocks.indexed,
            },
            xattrs: None,
            xattr_block: None,
        });
    }

    for &id in &inodes.order {
        let node = tree.node(id);
        let ino = inodes.ino_of(id);
        let path = || path_of(tree, id);
        let stored_links = stored_links(&node.kind, links[id.index()], path)?;
        let (body, metadata_blocks) = body_of(encoder, contents, id, ino)?;
        let layout =
            xattr::layout_xattrs(&node.meta.xattrs).map_err(|source| BuildError::Xattr {
                path: path(),
                source,
            })?;
        plans.push(InodePlan {
            ino,
            node: Some(id),
            mode: node.kind.mode_type() | (node.meta.permissions & 0o7777),
            links: stored_links,
            body,
            xattrs: (layout.in_inode != [0; 96]).then(|| Box::new(layout.in_inode)),
            xattr_block: layout.block.map(|block| shared.share(block)),
            metadata_blocks,
        });
    }
    plans.sort_by_key(|p| p.ino);
    Ok(Plans {
        inodes: plans,
        xattr_blocks: shared.blocks,
    })
}

/// The link count as stored: a directory past ext4's limit stores 1 (the
/// dir_nlink convention); any other node past it is an error.
fn stored_links(kind: &NodeKind, count: u32, path: impl Fn() -> String) -> Result<u16, BuildError> {
    let count = count as usize;
    match kind {
        NodeKind::Directory(_) if count > EXT4_LINK_MAX => Ok(1),
        _ if count > EXT4_LINK_MAX => Err(BuildError::TooManyLinks {
            path: path(),
            links: count,
        }),
        _ => Ok(count as u16),
    }
}

/// What node `id` (inode `ino`) carries besides its metadata, and the
/// blocks it allocates once the geometry is known.
fn body_of(
    encoder: &DirEncoder,
    contents: &SourcePlacements,
    id: NodeId,
    ino: u32,
) -> Result<(Body, u64), BuildError> {
    let tree = encoder.tree;
    let path = || path_of(tree, id);
    Ok(match &tree.node(id).kind {
        NodeKind::Directory(_) => {
            let blocks = encoder.encode(Some(id), ino)?;
            let n = blocks.block_count() as u64;
            // Directory blocks come from one allocation: at most one run
            // per group crossed, so a small tree always suffices.
            let runs = n.div_ceil(BLOCKS_PER_GROUP) as usize + 1;
            (
                Body::Directory {
                    blocks: n,
                    indexed: blocks.indexed,
                },
                n + extent::tree_blocks_needed(runs),
            )
        }
        NodeKind::File(_) => {
            let placed = placed_of(tree, contents, id);
            let leaves =
                extent::leaf_entries(&placed.extents).map_err(|source| BuildError::Extent {
                    path: path(),
                    source,
                })?;
            (Body::File, extent::tree_blocks_needed(leaves.len()))
        }
        NodeKind::Symlink(target) if target.len() > MAX_SYMLINK_LEN => {
            return Err(BuildError::SymlinkTooLong {
                path: path(),
                len: target.len(),
            })
        }
        NodeKind::Symlink(target) if target.is_empty() => {
            return Err(BuildError::EmptySymlink(path()))
        }
        NodeKind::Symlink(target) if target.len() <= FAST_SYMLINK_MAX => (Body::FastSymlink, 0),
        NodeKind::Symlink(_) => (Body::SlowSymlink, 1),
        NodeKind::CharDevice(dev) | NodeKind::BlockDevice(dev) => {
            if encode_device(*dev).is_none() {
                return Err(BuildError::DeviceNumber {
                    path: path(),
                    major: dev.major,
                    minor: dev.minor,
                });
            }
            (Body::Device(*dev), 0)
        }
        NodeKind::Fifo | NodeKind::Socket => (Body::Empty, 0),
    })
}

/// The distinct xattr blocks, each with the number of inodes sharing it.
#[derive(Default)]
struct SharedXattrBlocks {
    blocks: Vec<(XattrBlock, u32)>,
    /// Index of the block currently shared for each content.
    index: HashMap<Vec<u8>, usize>,
}

impl SharedXattrBlocks {
    /// Adds one reference to `block`; returns the index of its copy.
    /// Identical sets share one block, up to the kernel's reference count
    /// limit; past it a fresh copy starts.
    fn share(&mut self, block: XattrBlock) -> u32 {
        let key = block.as_bytes().to_vec();
        let index = match self.index.get(&key) {
            Some(&i) if self.blocks[i].1 < EXT4_XATTR_REFCOUNT_MAX => i,
            _ => {
                self.blocks.push((block, 0));
                self.index.insert(key, self.blocks.len() - 1);
                self.blocks.len() - 1
            }
        };
        self.blocks[index].1 += 1;
        u32::try_from(index).expect("fewer xattr blocks than inodes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dir::{HashParams, HashVersion};
    use crate::plan::numbering::InodeMap;
    use crate::tree::{FileContent, Metadata, PlacedData, Timestamp, Tree};

    fn meta() -> Metadata {
        Metadata::new(0o644, Timestamp::from_secs(1_700_000_000))
    }

    fn plan(tree: &Tree) -> Result<Plans, BuildError> {
        let inodes = InodeMap::assign(tree)?;
        let encoder = DirEncoder {
            tree,
            inodes: &inodes,
            hash: HashParams::from_seed_bytes([1; 16], HashVersion::HalfMd4, false),
            fs_seed: 7,
        };
        plan_inodes(&encoder, &SourcePlacements::new())
    }

    fn add(tree: &mut Tree, name: &[u8], kind: NodeKind) -> NodeId {
        let id = tree.add(kind, meta());
        tree.link(Tree::ROOT, name, id).expect("link");
        id
    }

    #[test]
    fn link_counts_past_the_limit_fail_for_files_and_read_1_for_directories() {
        let path = || "/x".to_string();
        let dir = NodeKind::Directory(Default::default());
        let fifo = NodeKind::Fifo;
        assert_eq!(stored_links(&dir, 65_001, path).expect("a directory"), 1);
        assert_eq!(
            stored_links(&fifo, 65_000, path).expect("at the limit"),
            65_000
        );
        assert!(matches!(
            stored_links(&fifo, 65_001, path),
            Err(BuildError::TooManyLinks { links: 65_001, .. })
        ));
    }

    #[test]
    fn each_kind_plans_its_body_and_the_blocks_it_will_take() {
        let mut tree = Tree::new(meta());
        add(&mut tree, b"fast", NodeKind::Symlink(vec![b'f'; 59]));
        add(&mut tree, b"slow", NodeKind::Symlink(vec![b's'; 60]));
        let placed = PlacedData {
            size: 0,
            extents: Vec::new(),
        };
        add(
            &mut tree,
            b"empty",
            NodeKind::File(FileContent::Placed(placed)),
        );
        let dev = DeviceNumber { major: 8, minor: 1 };
        add(&mut tree, b"sda1", NodeKind::BlockDevice(dev));
        let plans = plan(&tree).expect("planned");
        let shape: Vec<(u32, u64, &str)> = plans
            .iter()
            .map(|p| {
                let body = match p.body {
                    Body::Directory { .. } => "dir",
                    Body::File => "file",
                    Body::FastSymlink => "fast",
                    Body::SlowSymlink => "slow",
                    Body::Device(_) => "dev",
                    Body::Empty => "empty",
                };
                (p.ino, p.metadata_blocks, body)
            })
            .collect();
        // Root and the lost+found banger adds (four blocks), then the nodes
        // in name order.
        assert_eq!(
            shape,
            [
                (2, 1, "dir"),
                (11, 4, "dir"),
                (12, 0, "file"),
                (13, 0, "fast"),
                (14, 0, "dev"),
                (15, 1, "slow"),
            ]
        );
        assert!(plans.xattr_blocks.is_empty());
    }

    #[test]
    fn unrepresentable_nodes_are_refused_with_their_path() {
        let refused = |kind: NodeKind| {
            let mut tree = Tree::new(meta());
            add(&mut tree, b"odd", kind);
            plan(&tree).err().expect("refused")
        };
        assert!(matches!(
            refused(NodeKind::Symlink(Vec::new())),
            BuildError::EmptySymlink(path) if path == "/odd"
        ));
        assert!(matches!(
            refused(NodeKind::Symlink(vec![b'x'; MAX_SYMLINK_LEN + 1])),
            BuildError::SymlinkTooLong { .. }
        ));
        let big = DeviceNumber {
            major: 1 << 12,
            minor: 0,
        };
        assert!(matches!(
            refused(NodeKind::CharDevice(big)),
            BuildError::DeviceNumber { major: 4096, .. }
        ));
    }

    #[test]
    fn identical_xattr_blocks_are_shared_up_to_the_kernels_refcount_limit() {
        let mut tree = Tree::new(meta());
        let mut big = meta();
        big.xattrs.insert(b"user.big".to_vec(), vec![b'B'; 1000]);
        let count = EXT4_XATTR_REFCOUNT_MAX as usize + 1;
        for i in 0..count {
            let id = tree.add(NodeKind::Fifo, big.clone());
            tree.link(Tree::ROOT, format!("{i:05}").as_bytes(), id)
                .expect("link");
        }
        let plans = plan(&tree).expect("planned");
        let refs: Vec<u32> = plans.xattr_blocks.iter().map(|(_, n)| *n).collect();
        assert_eq!(refs, [EXT4_XATTR_REFCOUNT_MAX, 1]);
        let last = plans.iter().last().expect("a plan");
        assert_eq!(last.xattr_block, Some(1));
    }
}
