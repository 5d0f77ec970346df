//! The image builder: streams file data into the image while the tree is
//! built, then lays out and writes all metadata in one pass.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use zerocopy::{FromZeros, IntoBytes};

use crate::alloc::{BlockAllocator, Run, SuperblockAreas};
use crate::bitmap::{self, UsedBlocks};
use crate::data::{DataError, DataWriter};
use crate::dir::{self, DirContext, DirEntry, HashParams, HashVersion};
use crate::extent::{self, ExtentError, Owner};
use crate::format::{Ext4GroupDesc, Ext4Inode, Ext4SuperBlock, JournalSuperblock};
use crate::geometry::{Demand, Geometry, GeometryError};
use crate::inode::{build_inode, encode_device, InodeFields};
use crate::spec::*;
use crate::tree::{
    ContentStore, DeviceNumber, FileContent, Metadata, NodeId, NodeKind, PlacedData, Timestamp,
    Tree,
};
use crate::xattr::{self, XattrBlock, XattrError};

/// Largest image the default descriptor reservation supports: 4 TiB.
pub const DEFAULT_MAX_SIZE: u64 = 4 << 40;

/// How to build an image.
#[derive(Clone, Debug)]
pub struct Options {
    /// Image size in bytes; `None` sizes it to 1.5 × the content, at least 1 GiB.
    pub size: Option<u64>,
    /// Filesystem UUID. Derive it from the input for reproducible images.
    pub uuid: [u8; 16],
    /// Seed of the directory hash. Derive it from the input too.
    pub hash_seed: [u8; 16],
    /// Time written for the filesystem itself and for what banger creates
    /// (lost+found, the journal): `SOURCE_DATE_EPOCH` for reproducible builds.
    pub timestamp: Timestamp,
    /// Volume label, at most 16 bytes.
    pub label: Vec<u8>,
    /// Largest size the image may reach; sets how many descriptor blocks are
    /// reserved after each superblock copy.
    pub max_size: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            size: None,
            uuid: *b"banger-ext4-uuid",
            hash_seed: *b"banger-dirhash-s",
            timestamp: Timestamp::default(),
            label: Vec::new(),
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Reading or writing failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Streaming a file's data failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// No geometry fits the content.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    /// A file is too large for extents.
    #[error("{path}")]
    Extent {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: ExtentError,
    },
    /// A directory could not be encoded.
    #[error("directory {path}")]
    Directory {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: dir::DirError,
    },
    /// Extended attributes could not be stored.
    #[error("{path}")]
    Xattr {
        /// The node.
        path: String,
        /// The cause.
        #[source]
        source: XattrError,
    },
    /// A symlink target is longer than ext4 allows.
    #[error("{path}: symlink target of {len} bytes exceeds {MAX_SYMLINK_LEN}")]
    SymlinkTooLong {
        /// The symlink.
        path: String,
        /// Target length.
        len: usize,
    },
    /// A device number does not fit ext4's 12:20-bit encoding.
    #[error(
        "{path}: device number {major}:{minor} does not fit ext4's 12-bit major, 20-bit minor"
    )]
    DeviceNumber {
        /// The device node.
        path: String,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A file has more hard links than ext4 allows.
    #[error("{path}: {links} hard links exceed ext4's limit of {EXT4_LINK_MAX}")]
    TooManyLinks {
        /// One of the names.
        path: String,
        /// Its link count.
        links: usize,
    },
    /// The planned layout did not fit (a bug: the geometry is chosen to fit).
    #[error("internal layout error")]
    NoSpace(#[from] crate::alloc::OutOfSpace),
    /// A symlink with an empty target, which ext4 cannot store.
    #[error("{0}: symlink has an empty target")]
    EmptySymlink(String),
    /// More inodes than ext4 can number.
    #[error("{0} inodes exceed ext4's 2^32 limit")]
    TooManyInodes(usize),
}

fn io_error(context: &'static str) -> impl FnOnce(io::Error) -> BuildError {
    move |source| BuildError::Io { context, source }
}

/// What was built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// The chosen geometry.
    pub geometry: Geometry,
    /// Inodes in use, reserved ones included.
    pub used_inodes: u64,
    /// Blocks in use.
    pub used_blocks: u64,
}

/// Builds one image: file data streams in through [`ContentStore`], then
/// [`ImageBuilder::finish`] writes the metadata for a tree.
#[derive(Debug)]
pub struct ImageBuilder {
    image: File,
    options: Options,
    areas: SuperblockAreas,
    alloc: BlockAllocator,
    data: DataWriter,
}

/// Creates (or truncates) `path` and writes `tree` into it as an ext4 image.
pub fn write_image(tree: &Tree, path: &Path, options: Options) -> Result<ImageSummary, BuildError> {
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io_error("creating the image file"))?;
    ImageBuilder::new(file, options)?.finish(tree)
}

impl ImageBuilder {
    /// Starts an image in `image`, which is truncated: unwritten blocks stay
    /// holes and read as zeros.
    pub fn new(image: File, options: Options) -> Result<Self, BuildError> {
        // Refused before any data is placed: the descriptor reservation,
        // which fixes where data goes, follows from this size.
        let max_bytes = options.size.unwrap_or(options.max_size);
        if max_bytes > crate::geometry::MAX_SIZE {
            return Err(GeometryError::TooLarge {
                bytes: max_bytes,
                max: crate::geometry::MAX_SIZE,
            }
            .into());
        }
        image
            .set_len(0)
            .map_err(io_error("truncating the image file"))?;
        let max_blocks = max_bytes.max(1) / BLOCK_SIZE;
        let max_groups = max_blocks.div_ceil(BLOCKS_PER_GROUP);
        let areas = SuperblockAreas {
            gdt_reserve: max_groups.div_ceil(DESCS_PER_BLOCK).max(1),
        };
        // File data streams in before the total is known, so it is not held
        // to an explicit size: `finish` plans the geometry with everything
        // counted and, if the size is too small, names what it must be.
        Ok(Self {
            image,
            alloc: BlockAllocator::new(areas, u64::MAX),
            areas,
            options,
            data: DataWriter::default(),
        })
    }

    /// Replaces the UUID and directory hash seed given in the options. Both
    /// are first used by [`ImageBuilder::finish`], so a caller may derive
    /// them from the content it streamed in.
    pub fn set_ids(&mut self, uuid: [u8; 16], hash_seed: [u8; 16]) {
        self.options.uuid = uuid;
        self.options.hash_seed = hash_seed;
    }

    /// Writes all metadata for `tree` and completes the image. Files whose
    /// contents come from a [`crate::tree::ContentSource`] are streamed now.
    pub fn finish(mut self, tree: &Tree) -> Result<ImageSummary, BuildError> {
        let fs_seed = crate::checksum::fs_seed(&self.options.uuid);
        let inodes = InodeMap::assign(tree)?;
        let contents = self.place_sources(tree, &inodes)?;
        self.data.flush(&self.image)?;

        let hash = HashParams::from_seed_bytes(self.options.hash_seed, HashVersion::HalfMd4, false);
        let encoder = DirEncoder {
            tree,
            inodes: &inodes,
            hash,
            fs_seed,
        };
        let plans = plan_inodes(&encoder, &contents)?;
        let pending: u64 =
            plans.iter().map(|p| p.metadata_blocks).sum::<u64>() + plans.xattr_blocks.len() as u64;
        let demand = Demand {
            allocator: &self.alloc,
            used_inodes: u64::from(inodes.max_ino),
            pending_blocks: pending,
            journal_tree_blocks: |runs| extent::tree_blocks_needed(runs),
        };
        let geometry = demand.plan(self.options.size, self.areas)?;
        self.alloc.set_limit(geometry.blocks_count);

        let mut used = UsedBlocks::default();
        for g in 0..geometry.group_count {
            if group_has_super(g) {
                used.push(Run {
                    start: g * BLOCKS_PER_GROUP,
                    len: 1 + geometry.gdt_blocks,
                });
            }
        }
        let layout = GroupLayout::allocate(&mut self.alloc, &geometry, &mut used)?;
        let journal = self.write_journal(&geometry, fs_seed, &mut used)?;

        let xattr_block_nrs = self.write_xattr_blocks(&plans.xattr_blocks, fs_seed, &mut used)?;
        let mut tables = InodeTables::new(&geometry, &layout);
        tables.put(&self.image, EXT4_JOURNAL_INO, &journal)?;
        for plan in plans.iter() {
            let inode = self.write_inode_metadata(
                tree,
                &encoder,
                plan,
                &contents,
                &xattr_block_nrs,
                fs_seed,
                &mut used,
            )?;
            tables.put(&self.image, plan.ino, &inode)?;
        }
        tables.flush(&self.image)?;

        for plan in plans.iter() {
            if let (Body::File, Some(node)) = (&plan.body, plan.node) {
                for e in &placed_of(tree, &contents, node).extents {
                    used.push(Run {
                        start: e.physical_block,
                        len: e.len,
                    });
                }
            }
        }
        self.punch_dead_data(&mut used)?;

        let free_blocks =
            self.write_group_metadata(&geometry, &layout, &mut used, &inodes, fs_seed, &journal)?;
        let used_blocks = geometry.blocks_count - free_blocks;
        self.image
            .set_len(geometry.blocks_count * BLOCK_SIZE)
            .map_err(io_error("sizing the image file"))?;
        Ok(ImageSummary {
            used_inodes: u64::from(inodes.max_ino),
            used_blocks,
            geometry,
        })
    }

    /// Streams every reachable file that still has a source.
    fn place_sources(
        &mut self,
        tree: &Tree,
        inodes: &InodeMap,
    ) -> Result<SourcePlacements, BuildError> {
        let mut contents = SourcePlacements::new();
        for &id in &inodes.order {
            if let NodeKind::File(FileContent::Source(source)) = &tree.node(id).kind {
                let placed =
                    self.data
                        .store_source(&self.image, &mut self.alloc, source.as_ref())?;
                contents.insert(id, placed);
            }
        }
        Ok(contents)
    }

    fn write_block(
        &self,
        block: u64,
        bytes: &[u8],
        context: &'static str,
    ) -> Result<(), BuildError> {
        self.image
            .write_all_at(bytes, block * BLOCK_SIZE)
            .map_err(io_error(context))
    }

    fn alloc_blocks(&mut self, count: u64, used: &mut UsedBlocks) -> Result<Vec<u64>, BuildError> {
        let runs = self.alloc.alloc_many(count)?;
        let mut blocks = Vec::with_capacity(count as usize);
        for run in runs {
            used.push(run);
            blocks.extend(run.start..run.end());
        }
        Ok(blocks)
    }

    /// Allocates and writes the journal; returns its inode.
    fn write_journal(
        &mut self,
        geometry: &Geometry,
        fs_seed: u32,
        used: &mut UsedBlocks,
    ) -> Result<Ext4Inode, BuildError> {
        let runs = self.alloc.alloc_many(geometry.journal_blocks)?;
        let mut extents = Vec::with_capacity(runs.len());
        let mut logical = 0;
        for run in &runs {
            used.push(*run);
            extents.push(crate::tree::PlacedExtent {
                logical_block: logical,
                physical_block: run.start,
                len: run.len,
            });
            logical += run.len;
        }
        let mut jsb = JournalSuperblock::new_zeroed();
        jsb.h_magic = JBD2_MAGIC_NUMBER.into();
        jsb.h_blocktype = JBD2_SUPERBLOCK_V2.into();
        jsb.s_blocksize = (BLOCK_SIZE as u32).into();
        jsb.s_maxlen = (geometry.journal_blocks as u32).into();
        jsb.s_first = 1.into();
        jsb.s_sequence = 1.into();
        jsb.s_uuid = self.options.uuid;
        jsb.s_nr_users = 1.into();
        self.write_block(runs[0].start, jsb.as_bytes(), "writing the journal")?;

        let owner = Owner {
            ino: EXT4_JOURNAL_INO,
            generation: 0,
            fs_seed,
        };
        let leaves = extent::leaf_entries(&extents).map_err(|source| BuildError::Extent {
            path: "<journal>".into(),
            source,
        })?;
        let tree_blocks = self.alloc_blocks(extent::tree_blocks_needed(leaves.len()), used)?;
        let tree = extent::build(&leaves, &tree_blocks, owner);
        for block in &tree.blocks {
            self.write_block(
                block.physical,
                &block.bytes,
                "writing the journal's extent tree",
            )?;
        }
        let meta = Metadata::new(0o600, self.options.timestamp);
        let fields = InodeFields {
            mode: 0o100600,
            size: geometry.journal_blocks * BLOCK_SIZE,
            links: 1,
            fs_blocks: geometry.journal_blocks + tree_blocks.len() as u64,
            flags: EXT4_EXTENTS_FL,
            i_block: tree.i_block,
            xattr_block: 0,
            xattrs: [0; 96],
        };
        Ok(build_inode(&meta, &fields, EXT4_JOURNAL_INO, fs_seed))
    }

    /// Writes the shared xattr blocks; returns their block numbers.
    fn write_xattr_blocks(
        &mut self,
        blocks: &[(XattrBlock, u32)],
        fs_seed: u32,
        used: &mut UsedBlocks,
    ) -> Result<Vec<u64>, BuildError> {
        let numbers = self.alloc_blocks(blocks.len() as u64, used)?;
        for ((block, refcount), &nr) in blocks.iter().zip(&numbers) {
            let bytes = block.finalize(nr, *refcount, fs_seed);
            self.write_block(nr, &bytes[..], "writing an xattr block")?;
        }
        Ok(numbers)
    }

    /// Allocates and writes an inode's own blocks (directory, extent tree,
    /// slow symlink) and returns the inode.
    #[allow(clippy::too_many_arguments)]
    fn write_inode_metadata(
        &mut self,
        tree: &Tree,
        encoder: &DirEncoder,
        plan: &InodePlan,
        contents: &SourcePlacements,
        xattr_block_nrs: &[u64],
        fs_seed: u32,
        used: &mut UsedBlocks,
    ) -> Result<Ext4Inode, BuildError> {
        let owner = Owner {
            ino: plan.ino,
            generation: 0,
            fs_seed,
        };
        let (xattr_block, xattr_fs_blocks) = match plan.xattr_block {
            Some(i) => (xattr_block_nrs[i as usize], 1),
            None => (0, 0),
        };
        let mut fields = InodeFields {
            mode: plan.mode,
            size: 0,
            links: plan.links,
            fs_blocks: xattr_fs_blocks,
            flags: 0,
            i_block: [0; 60],
            xattr_block,
            xattrs: plan.xattrs.as_deref().copied().unwrap_or([0; 96]),
        };
        match &plan.body {
            Body::Directory {
                blocks: planned,
                indexed,
            } => {
                let blocks = encoder.encode(plan.node, plan.ino)?;
                let count = blocks.block_count() as u64;
                // Same tree, same inode numbers, same seeds: the same bytes.
                assert_eq!(
                    (count, blocks.indexed),
                    (*planned, *indexed),
                    "directory inode {} encoded differently when written than when planned",
                    plan.ino
                );
                let physical = self.alloc_blocks(count, used)?;
                let extents = runs_of(&physical);
                for (run, chunk) in coalesce(&physical).zip(blocks_chunks(&blocks.data, &physical))
                {
                    self.write_block(run.start, chunk, "writing a directory")?;
                }
                let tree_blocks =
                    self.map_with_extents(&extents, owner, used, &mut fields, "directory")?;
                fields.size = count * BLOCK_SIZE;
                fields.fs_blocks += count + tree_blocks;
                fields.flags |= if *indexed { EXT4_INDEX_FL } else { 0 };
            }
            Body::File => {
                let node = plan.node.expect("only tree nodes are planned as files");
                let placed = placed_of(tree, contents, node);
                let data_blocks: u64 = placed.extents.iter().map(|e| e.len).sum();
                let tree_blocks =
                    self.map_with_extents(&placed.extents, owner, used, &mut fields, "file")?;
                fields.size = placed.size;
                fields.fs_blocks += data_blocks + tree_blocks;
            }
            Body::FastSymlink => {
                let target = symlink_target(tree, plan);
                fields.i_block[..target.len()].copy_from_slice(target);
                fields.size = target.len() as u64;
            }
            Body::SlowSymlink => {
                let target = symlink_target(tree, plan);
                let physical = self.alloc_blocks(1, used)?;
                let mut block = vec![0u8; BLOCK_SIZE as usize];
                block[..target.len()].copy_from_slice(target);
                self.write_block(physical[0], &block, "writing a symlink")?;
                let extents = runs_of(&physical);
                self.map_with_extents(&extents, owner, used, &mut fields, "symlink")?;
                fields.size = target.len() as u64;
                fields.fs_blocks += 1;
            }
            Body::Device(dev) => {
                fields.i_block =
                    encode_device(*dev).expect("device numbers are checked when planned")
            }
            Body::Empty => {}
        }
        let default_meta;
        let meta = match plan.node {
            Some(node) => &tree.node(node).meta,
            None => {
                default_meta = Metadata::new(0o700, self.options.timestamp);
                &default_meta
            }
        };
        Ok(build_inode(meta, &fields, plan.ino, fs_seed))
    }

    /// Builds the extent tree for `extents`, writing any tree blocks, and
    /// sets `i_block` and the extents flag. Returns the tree block count.
    fn map_with_extents(
        &mut self,
        extents: &[crate::tree::PlacedExtent],
        owner: Owner,
        used: &mut UsedBlocks,
        fields: &mut InodeFields,
        what: &str,
    ) -> Result<u64, BuildError> {
        let leaves = extent::leaf_entries(extents).map_err(|source| BuildError::Extent {
            path: format!("{what} inode {}", owner.ino),
            source,
        })?;
        let physical = self.alloc_blocks(extent::tree_blocks_needed(leaves.len()), used)?;
        let tree = extent::build(&leaves, &physical, owner);
        for block in &tree.blocks {
            self.write_block(block.physical, &block.bytes, "writing an extent tree block")?;
        }
        fields.i_block = tree.i_block;
        fields.flags |= EXT4_EXTENTS_FL;
        Ok(physical.len() as u64)
    }

    /// Punches holes where data was written for files no longer in the
    /// tree (overwritten or whited out in a later layer), so their bytes do
    /// not linger in the image, and makes the list of used blocks final.
    fn punch_dead_data(&mut self, used: &mut UsedBlocks) -> Result<(), BuildError> {
        used.normalize();
        let mut written: Vec<Run> = self
            .data
            .written()
            .iter()
            .map(|e| Run {
                start: e.physical_block,
                len: e.len,
            })
            .collect();
        written.sort_unstable();
        for dead in used.uncovered(&written) {
            punch_hole(&self.image, dead.start * BLOCK_SIZE, dead.len * BLOCK_SIZE)
                .map_err(io_error("discarding data of removed files"))?;
        }
        Ok(())
    }

    /// Writes bitmaps, descriptors and every superblock copy; returns the
    /// free block count.
    fn write_group_metadata(
        &self,
        geometry: &Geometry,
        layout: &GroupLayout,
        used: &mut UsedBlocks,
        inodes: &InodeMap,
        fs_seed: u32,
        journal: &Ext4Inode,
    ) -> Result<u64, BuildError> {
        let mut gdt = vec![0u8; (geometry.gdt_blocks * BLOCK_SIZE) as usize];
        let runs = used.runs();
        let mut cursor = 0;
        let mut free_blocks = 0u64;
        let ipg = geometry.inodes_per_group;
        let dirs = inodes.dirs_per_group(geometry.group_count, ipg);
        for g in 0..geometry.group_count {
            let i = g as usize;
            let blocks = bitmap::block_bitmap(g, geometry.blocks_count, runs, &mut cursor, fs_seed);
            let used_inodes = inodes.used_in_group(g, ipg);
            let (inode_bits, inode_csum) = bitmap::inode_bitmap(used_inodes, ipg, fs_seed);
            self.write_block(
                layout.block_bitmaps[i],
                &blocks.bytes,
                "writing a block bitmap",
            )?;
            self.write_block(
                layout.inode_bitmaps[i],
                &inode_bits,
                "writing an inode bitmap",
            )?;
            free_blocks += u64::from(blocks.free);
            let mut desc = Ext4GroupDesc::default();
            desc.set_locations(
                layout.block_bitmaps[i],
                layout.inode_bitmaps[i],
                layout.inode_tables[i],
            );
            let unused = ipg as u32 - used_inodes;
            desc.set_counts(blocks.free, unused, dirs[i], unused);
            let mut flags = EXT4_BG_INODE_ZEROED;
            if used_inodes == 0 {
                flags |= EXT4_BG_INODE_UNINIT;
            }
            desc.bg_flags = flags.into();
            desc.set_bitmap_checksums(blocks.checksum, inode_csum);
            desc.update_checksum(g as u32, fs_seed);
            let at = i * DESC_SIZE as usize;
            gdt[at..at + DESC_SIZE as usize].copy_from_slice(desc.as_bytes());
        }
        let mut sb = self.superblock(geometry, free_blocks, inodes, journal);
        for g in (0..geometry.group_count).filter(|&g| group_has_super(g)) {
            sb.s_block_group_nr = (g as u16).into();
            sb.update_checksum();
            let start = g * BLOCKS_PER_GROUP;
            let offset = if g == 0 {
                SUPERBLOCK_OFFSET
            } else {
                start * BLOCK_SIZE
            };
            self.image
                .write_all_at(sb.as_bytes(), offset)
                .map_err(io_error("writing a superblock"))?;
            self.write_block(start + 1, &gdt, "writing group descriptors")?;
        }
        Ok(free_blocks)
    }

    fn superblock(
        &self,
        geometry: &Geometry,
        free_blocks: u64,
        inodes: &InodeMap,
        journal: &Ext4Inode,
    ) -> Ext4SuperBlock {
        let mut sb = Ext4SuperBlock::new_zeroed();
        let reserved = geometry.blocks_count * 5 / 100;
        let set64 = |lo: &mut zerocopy::little_endian::U32,
                     hi: &mut zerocopy::little_endian::U32,
                     v: u64| {
            *lo = (v as u32).into();
            *hi = ((v >> 32) as u32).into();
        };
        sb.s_inodes_count = (geometry.inodes_count() as u32).into();
        set64(
            &mut sb.s_blocks_count_lo,
            &mut sb.s_blocks_count_hi,
            geometry.blocks_count,
        );
        set64(
            &mut sb.s_r_blocks_count_lo,
            &mut sb.s_r_blocks_count_hi,
            reserved,
        );
        set64(
            &mut sb.s_free_blocks_count_lo,
            &mut sb.s_free_blocks_count_hi,
            free_blocks,
        );
        sb.s_free_inodes_count =
            ((geometry.inodes_count() - u64::from(inodes.max_ino)) as u32).into();
        sb.s_log_block_size = LOG_BLOCK_SIZE_MINUS_10.into();
        sb.s_log_cluster_size = LOG_BLOCK_SIZE_MINUS_10.into();
        sb.s_blocks_per_group = (BLOCKS_PER_GROUP as u32).into();
        sb.s_clusters_per_group = (BLOCKS_PER_GROUP as u32).into();
        sb.s_inodes_per_group = (geometry.inodes_per_group as u32).into();
        let (time, time_extra) = crate::inode::encode_time(self.options.timestamp);
        let time_hi = (time_extra & 3) as u8;
        sb.s_wtime = time.into();
        sb.s_wtime_hi = time_hi;
        sb.s_lastcheck = time.into();
        sb.s_lastcheck_hi = time_hi;
        sb.s_mkfs_time = time.into();
        sb.s_mkfs_time_hi = time_hi;
        sb.s_max_mnt_count = u16::MAX.into();
        sb.s_magic = EXT4_SUPER_MAGIC.into();
        sb.s_state = EXT4_VALID_FS.into();
        sb.s_errors = EXT4_ERRORS_CONTINUE.into();
        sb.s_creator_os = EXT4_OS_LINUX.into();
        sb.s_rev_level = EXT4_DYNAMIC_REV.into();
        sb.s_first_ino = EXT4_FIRST_INO.into();
        sb.s_inode_size = (INODE_SIZE as u16).into();
        sb.s_feature_compat = FEATURE_COMPAT.into();
        sb.s_feature_incompat = FEATURE_INCOMPAT.into();
        sb.s_feature_ro_compat = FEATURE_RO_COMPAT.into();
        sb.s_uuid = self.options.uuid;
        let label_len = self.options.label.len().min(16);
        sb.s_volume_name[..label_len].copy_from_slice(&self.options.label[..label_len]);
        sb.s_journal_inum = EXT4_JOURNAL_INO.into();
        for (word, bytes) in sb
            .s_hash_seed
            .iter_mut()
            .zip(self.options.hash_seed.chunks_exact(4))
        {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]).into();
        }
        sb.s_def_hash_version = DX_HASH_HALF_MD4;
        sb.s_jnl_backup_type = EXT3_JNL_BACKUP_BLOCKS;
        sb.s_desc_size = (DESC_SIZE as u16).into();
        sb.s_default_mount_opts = (EXT4_DEFM_XATTR_USER | EXT4_DEFM_ACL).into();
        for (i, word) in journal.i_block.chunks_exact(4).enumerate() {
            sb.s_jnl_blocks[i] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]).into();
        }
        sb.s_jnl_blocks[15] = journal.i_size_high;
        sb.s_jnl_blocks[16] = journal.i_size_lo;
        sb.s_min_extra_isize = EXTRA_ISIZE.into();
        sb.s_want_extra_isize = EXTRA_ISIZE.into();
        sb.s_flags = EXT2_FLAGS_SIGNED_HASH.into();
        sb.s_log_groups_per_flex = LOG_GROUPS_PER_FLEX;
        sb.s_checksum_type = EXT4_CRC32C_CHKSUM;
        sb
    }
}

impl ContentStore for ImageBuilder {
    type Error = BuildError;

    fn store(
        &mut self,
        reader: &mut dyn io::Read,
        size: u64,
        data_ranges: &[Range<u64>],
    ) -> Result<FileContent, BuildError> {
        let placed = self
            .data
            .store(&self.image, &mut self.alloc, reader, size, data_ranges)?;
        Ok(FileContent::Placed(placed))
    }
}

impl ImageBuilder {
    /// Reads up to `max` bytes from the start of a file whose contents were
    /// stored through this builder (or are still a source), so that callers
    /// can look at what the layers put in place (`/etc/os-release`, the
    /// image's init) before the metadata is written. Holes read as zeros.
    pub fn read_content(&mut self, content: &FileContent, max: u64) -> Result<Vec<u8>, BuildError> {
        let len = usize::try_from(content.size().min(max)).unwrap_or(usize::MAX);
        let mut bytes = vec![0u8; len];
        match content {
            FileContent::Source(source) => {
                let mut done = 0;
                while done < len {
                    match source.read_at(done as u64, &mut bytes[done..]) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) => return Err(io_error("reading a file's contents")(e)),
                    }
                }
                bytes.truncate(done);
            }
            FileContent::Placed(placed) => {
                // Blocks of this file may still sit in the write buffer.
                self.data.flush(&self.image)?;
                for extent in &placed.extents {
                    let start = extent.logical_block * BLOCK_SIZE;
                    if start >= len as u64 {
                        break;
                    }
                    let end = (start + extent.len * BLOCK_SIZE).min(len as u64);
                    self.image
                        .read_exact_at(
                            &mut bytes[start as usize..end as usize],
                            extent.physical_block * BLOCK_SIZE,
                        )
                        .map_err(io_error("reading back a file's contents"))?;
                }
            }
        }
        Ok(bytes)
    }
}

/// Where files whose tree content is a source were placed by
/// [`ImageBuilder::finish`]; a map, not a vector per node, since most
/// files arrive already placed.
type SourcePlacements = HashMap<NodeId, PlacedData>;

/// Where a reachable file's data is: in the tree if it was stored while
/// the tree was built, else where `finish` streamed it.
fn placed_of<'a>(tree: &'a Tree, contents: &'a SourcePlacements, node: NodeId) -> &'a PlacedData {
    match &tree.node(node).kind {
        NodeKind::File(FileContent::Placed(placed)) => placed,
        _ => contents
            .get(&node)
            .expect("every reachable file's source was placed before planning"),
    }
}

/// Physical blocks as extents of consecutive blocks, from logical block 0.
fn runs_of(physical: &[u64]) -> Vec<crate::tree::PlacedExtent> {
    let mut logical = 0;
    coalesce(physical)
        .map(|run| {
            let e = crate::tree::PlacedExtent {
                logical_block: logical,
                physical_block: run.start,
                len: run.len,
            };
            logical += run.len;
            e
        })
        .collect()
}

/// Groups consecutive block numbers into runs.
fn coalesce(physical: &[u64]) -> impl Iterator<Item = Run> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let start = *physical.get(i)?;
        let mut len = 1;
        while physical.get(i + len as usize) == Some(&(start + len)) {
            len += 1;
        }
        i += len as usize;
        Some(Run { start, len })
    })
}

/// Splits `data` into the byte chunks that go to each run of `physical`.
fn blocks_chunks<'a>(data: &'a [u8], physical: &'a [u64]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut offset = 0usize;
    coalesce(physical).map(move |run| {
        let len = (run.len * BLOCK_SIZE) as usize;
        let chunk = &data[offset..offset + len];
        offset += len;
        chunk
    })
}

/// Frees the blocks of `[offset, offset + len)` in the image file.
fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate only reads its integer arguments; the descriptor is
    // owned by `file` and open for writing.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() != Some(libc::EOPNOTSUPP) {
        return Err(error);
    }
    // No hole punching here: overwrite with zeros instead.
    let zeros = vec![0u8; BLOCK_SIZE as usize];
    for block in 0..len / BLOCK_SIZE {
        file.write_all_at(&zeros, offset + block * BLOCK_SIZE)?;
    }
    Ok(())
}

/// Inode numbers for reachable nodes: the root is 2, lost+found 11, the
/// rest from 12 in tree order.
pub(crate) struct InodeMap {
    /// Inode number by node index; 0 for unreachable nodes.
    by_node: Vec<u32>,
    /// Reachable nodes in tree order.
    order: Vec<NodeId>,
    /// The highest inode number used.
    pub(crate) max_ino: u32,
    /// Whether the tree has its own lost+found directory.
    tree_lost_found: Option<NodeId>,
    /// Directory inode numbers, sorted (for per-group counts).
    dir_inos: Vec<u32>,
}

impl InodeMap {
    fn assign(tree: &Tree) -> Result<Self, BuildError> {
        let order = tree.reachable();
        // A tree's own /lost+found keeps inode 11, whatever it is.
        let tree_lost_found = tree.lookup(Tree::ROOT, LOST_FOUND);
        let mut by_node = vec![0u32; tree.node_count()];
        let mut next: u64 = u64::from(EXT4_FIRST_INO) + 1;
        let mut dir_inos = vec![EXT4_ROOT_INO];
        if tree_lost_found.is_none_or(|id| tree.node(id).kind.is_dir()) {
            dir_inos.push(EXT4_FIRST_INO);
        }
        for &id in &order {
            let ino = if id == Tree::ROOT {
                EXT4_ROOT_INO
            } else if Some(id) == tree_lost_found {
                EXT4_FIRST_INO
            } else {
                let ino =
                    u32::try_from(next).map_err(|_| BuildError::TooManyInodes(order.len()))?;
                next += 1;
                if tree.node(id).kind.is_dir() {
                    dir_inos.push(ino);
                }
                ino
            };
            by_node[id.index()] = ino;
        }
        Ok(Self {
            by_node,
            order,
            max_ino: (next - 1) as u32,
            tree_lost_found,
            dir_inos,
        })
    }

    /// The inode number of reachable node `id`.
    fn ino_of(&self, id: NodeId) -> u32 {
        let ino = self.by_node[id.index()];
        assert_ne!(
            ino,
            0,
            "node {} is unreachable but was asked for its inode",
            id.index()
        );
        ino
    }

    /// Inodes in use in `group` (reserved ones count as used).
    pub(crate) fn used_in_group(&self, group: u64, ipg: u64) -> u32 {
        (u64::from(self.max_ino).saturating_sub(group * ipg)).min(ipg) as u32
    }

    /// Directories in each group.
    fn dirs_per_group(&self, groups: u64, ipg: u64) -> Vec<u32> {
        let mut counts = vec![0u32; groups as usize];
        for &ino in &self.dir_inos {
            counts[(u64::from(ino - 1) / ipg) as usize] += 1;
        }
        counts
    }
}

/// What an inode carries besides its metadata.
enum Body {
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
struct InodePlan {
    ino: u32,
    /// The tree node, or `None` for a lost+found banger creates.
    node: Option<NodeId>,
    mode: u16,
    links: u16,
    body: Body,
    /// The in-inode xattr area, `None` for the many inodes without one.
    xattrs: Option<Box<[u8; 96]>>,
    /// Index into the shared xattr blocks.
    xattr_block: Option<u32>,
    /// Blocks this inode allocates after the geometry is known.
    metadata_blocks: u64,
}

struct Plans {
    inodes: Vec<InodePlan>,
    /// Distinct xattr blocks with their reference counts.
    xattr_blocks: Vec<(XattrBlock, u32)>,
}

impl Plans {
    fn iter(&self) -> impl Iterator<Item = &InodePlan> {
        self.inodes.iter()
    }
}

/// Finds a printable path for `id`, for error messages.
fn path_of(tree: &Tree, id: NodeId) -> String {
    fn walk(tree: &Tree, dir: NodeId, target: NodeId, prefix: &mut Vec<u8>) -> bool {
        let Some(d) = tree.dir(dir) else { return false };
        for (name, child) in d.iter() {
            let len = prefix.len();
            prefix.push(b'/');
            prefix.extend_from_slice(name);
            if child == target
                || (tree.node(child).kind.is_dir() && walk(tree, child, target, prefix))
            {
                return true;
            }
            prefix.truncate(len);
        }
        false
    }
    let mut path = Vec::new();
    if id == Tree::ROOT || !walk(tree, Tree::ROOT, id, &mut path) {
        return "/".into();
    }
    String::from_utf8_lossy(&path).into_owned()
}

fn file_type(kind: &NodeKind) -> u8 {
    match kind {
        NodeKind::File(_) => dir::EXT4_FT_REG_FILE,
        NodeKind::Directory(_) => dir::EXT4_FT_DIR,
        NodeKind::Symlink(_) => dir::EXT4_FT_SYMLINK,
        NodeKind::CharDevice(_) => dir::EXT4_FT_CHRDEV,
        NodeKind::BlockDevice(_) => dir::EXT4_FT_BLKDEV,
        NodeKind::Fifo => dir::EXT4_FT_FIFO,
        NodeKind::Socket => dir::EXT4_FT_SOCK,
    }
}

/// The target of the symlink `plan` describes.
fn symlink_target<'t>(tree: &'t Tree, plan: &InodePlan) -> &'t [u8] {
    match plan.node.map(|node| &tree.node(node).kind) {
        Some(NodeKind::Symlink(target)) => target,
        _ => unreachable!("inode {} was planned as a symlink", plan.ino),
    }
}

/// Encodes directories: once when planning (to count their blocks) and
/// again when writing, so no directory's bytes are held in between.
struct DirEncoder<'a> {
    tree: &'a Tree,
    inodes: &'a InodeMap,
    hash: HashParams,
    fs_seed: u32,
}

impl DirEncoder<'_> {
    /// The blocks of directory `node` (inode `ino`), or of the lost+found
    /// banger adds when `node` is `None`.
    fn encode(&self, node: Option<NodeId>, ino: u32) -> Result<dir::DirBlocks, BuildError> {
        let tree = self.tree;
        let ino_of = |id: NodeId| self.inodes.ino_of(id);
        let (mut entries, parent): (Vec<DirEntry>, u32) = match node {
            None => (Vec::new(), EXT4_ROOT_INO),
            Some(id) => {
                let entries = tree
                    .dir(id)
                    .expect("only directories are encoded as directories")
                    .iter()
                    .map(|(name, child)| DirEntry {
                        name,
                        inode: ino_of(child),
                        file_type: file_type(&tree.node(child).kind),
                    })
                    .collect();
                let parent = ino_of(tree.parent(id).expect("a reachable node has a parent"));
                (entries, parent)
            }
        };
        if node == Some(Tree::ROOT) && self.inodes.tree_lost_found.is_none() {
            entries.push(DirEntry {
                name: LOST_FOUND,
                inode: EXT4_FIRST_INO,
                file_type: dir::EXT4_FT_DIR,
            });
        }
        let min_blocks = if ino == EXT4_FIRST_INO {
            LOST_FOUND_BLOCKS
        } else {
            1
        };
        let ctx = DirContext {
            dir_inode: ino,
            parent_inode: parent,
            generation: 0,
            fs_seed: self.fs_seed,
            hash: self.hash,
        };
        dir::build_directory(&entries, &ctx, min_blocks).map_err(|source| BuildError::Directory {
            path: node.map_or_else(|| "/lost+found".into(), |id| path_of(tree, id)),
            source,
        })
    }
}

/// Measures every inode: link counts, directory blocks, xattr placement,
/// extent tree sizes.
fn plan_inodes(encoder: &DirEncoder, contents: &SourcePlacements) -> Result<Plans, BuildError> {
    let (tree, inodes) = (encoder.tree, encoder.inodes);
    // Link counts: names for non-directories, 2 + subdirectories for directories.
    // u32: a tree has fewer than 2^32 nodes, so no count can overflow it.
    let mut links = vec![0u32; tree.node_count()];
    for &id in &inodes.order {
        if let Some(d) = tree.dir(id) {
            links[id.index()] += 2;
            for (_, child) in d.iter() {
                if tree.node(child).kind.is_dir() {
                    links[id.index()] += 1;
                } else {
                    links[child.index()] += 1;
                }
            }
        }
    }
    if inodes.tree_lost_found.is_none() {
        links[Tree::ROOT.index()] += 1;
    }

    let mut xattr_index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut xattr_blocks: Vec<(XattrBlock, u32)> = Vec::new();
    let mut plans = Vec::with_capacity(inodes.order.len() + 1);
    let ino_of = |id: NodeId| inodes.ino_of(id);

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
        let ino = ino_of(id);
        let path = || path_of(tree, id);
        let link_count = links[id.index()] as usize;
        let stored_links = match &node.kind {
            NodeKind::Directory(_) if link_count > EXT4_LINK_MAX => 1,
            _ if link_count > EXT4_LINK_MAX => {
                return Err(BuildError::TooManyLinks {
                    path: path(),
                    links: link_count,
                })
            }
            _ => link_count as u16,
        };
        let (body, metadata_blocks) = match &node.kind {
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
        };
        let layout =
            xattr::layout_xattrs(&node.meta.xattrs).map_err(|source| BuildError::Xattr {
                path: path(),
                source,
            })?;
        let xattr_block = match layout.block {
            None => None,
            Some(block) => {
                // Identical sets share one block, up to the kernel's
                // reference count limit; past it a fresh copy starts.
                let key = block.as_bytes().to_vec();
                let index = match xattr_index.get(&key) {
                    Some(&i)
                        if xattr_blocks[i].1 < crate::format::xattr::EXT4_XATTR_REFCOUNT_MAX =>
                    {
                        i
                    }
                    _ => {
                        xattr_blocks.push((block, 0));
                        xattr_index.insert(key, xattr_blocks.len() - 1);
                        xattr_blocks.len() - 1
                    }
                };
                xattr_blocks[index].1 += 1;
                Some(u32::try_from(index).expect("fewer xattr blocks than inodes"))
            }
        };
        plans.push(InodePlan {
            ino,
            node: Some(id),
            mode: node.kind.mode_type() | (node.meta.permissions & 0o7777),
            links: stored_links,
            body,
            xattrs: (layout.in_inode != [0; 96]).then(|| Box::new(layout.in_inode)),
            xattr_block,
            metadata_blocks,
        });
    }
    plans.sort_by_key(|p| p.ino);
    Ok(Plans {
        inodes: plans,
        xattr_blocks,
    })
}

/// Name of the directory e2fsck reconnects orphans into.
const LOST_FOUND: &[u8] = b"lost+found";

/// lost+found gets 16 KiB so e2fsck can reconnect files without allocating.
const LOST_FOUND_BLOCKS: usize = 4;

/// Where each group's bitmaps and inode table are.
pub(crate) struct GroupLayout {
    block_bitmaps: Vec<u64>,
    inode_bitmaps: Vec<u64>,
    inode_tables: Vec<u64>,
}

impl GroupLayout {
    fn allocate(
        alloc: &mut BlockAllocator,
        geometry: &Geometry,
        used: &mut UsedBlocks,
    ) -> Result<Self, BuildError> {
        let space = BuildError::NoSpace;
        let mut singles = |count: u64, used: &mut UsedBlocks| -> Result<Vec<u64>, BuildError> {
            let mut blocks = Vec::with_capacity(count as usize);
            for run in alloc.alloc_many(count).map_err(space)? {
                used.push(run);
                blocks.extend(run.start..run.end());
            }
            Ok(blocks)
        };
        let block_bitmaps = singles(geometry.group_count, used)?;
        let inode_bitmaps = singles(geometry.group_count, used)?;
        let mut inode_tables = Vec::with_capacity(geometry.group_count as usize);
        for _ in 0..geometry.group_count {
            let run = alloc
                .alloc_contiguous(geometry.inode_table_blocks())
                .map_err(space)?;
            used.push(run);
            inode_tables.push(run.start);
        }
        Ok(Self {
            block_bitmaps,
            inode_bitmaps,
            inode_tables,
        })
    }
}

/// Gathers one group's inodes at a time into a single table write.
struct InodeTables<'a> {
    geometry: &'a Geometry,
    layout: &'a GroupLayout,
    group: Option<u64>,
    buffer: Vec<u8>,
}

impl<'a> InodeTables<'a> {
    fn new(geometry: &'a Geometry, layout: &'a GroupLayout) -> Self {
        Self {
            geometry,
            layout,
            group: None,
            buffer: Vec::new(),
        }
    }

    /// Places inode `ino`; inodes must come group by group.
    fn put(&mut self, image: &File, ino: u32, inode: &Ext4Inode) -> Result<(), BuildError> {
        let index = u64::from(ino - 1);
        let group = index / self.geometry.inodes_per_group;
        if self.group != Some(group) {
            self.write_group(image)?;
            self.group = Some(group);
        }
        let offset = ((index % self.geometry.inodes_per_group) * INODE_SIZE) as usize;
        let end = offset + INODE_SIZE as usize;
        if self.buffer.len() < end {
            self.buffer.resize(end, 0);
        }
        self.buffer[offset..end].copy_from_slice(inode.as_bytes());
        Ok(())
    }

    fn write_group(&mut self, image: &File) -> Result<(), BuildError> {
        if let Some(group) = self.group.take() {
            let start = self.layout.inode_tables[group as usize];
            image
                .write_all_at(&self.buffer, start * BLOCK_SIZE)
                .map_err(io_error("writing an inode table"))?;
            self.buffer.clear();
        }
        Ok(())
    }

    fn flush(mut self, image: &File) -> Result<(), BuildError> {
        self.write_group(image)
    }
}
