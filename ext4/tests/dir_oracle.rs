//! Checks the directory encoder against e2fsprogs: `debugfs dx_hash` for the
//! hash, and directories built by `mkfs.ext4 -d` + `e2fsck -fyD` for the
//! block format. Our blocks are spliced over e2fsck's and the image must stay
//! fsck-clean and readable (debugfs, ext4-view htree lookups).
//! Skips, with a message, when e2fsprogs is not installed.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use banger_ext4::checksum::{fs_seed, inode_seed};
use banger_ext4::dir::{
    build_directory, dx_hash, DirContext, DirEntry, HashParams, HashVersion, EXT4_FT_DIR,
    EXT4_FT_REG_FILE, EXT4_FT_SYMLINK, EXT4_INDEX_FL,
};
use banger_ext4::format::dir::{dx_block_csum, leaf_block_csum};

const BLOCK_SIZE: usize = banger_ext4::spec::BLOCK_SIZE as usize;

const UUID: &str = "6f2b5a4e-1c3d-4e5f-8a9b-0c1d2e3f4a5b";
const HASH_SEED: &str = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6";

/// Paths of the e2fsprogs binaries, or `None` (after saying so) if missing.
struct Tools {
    mkfs: PathBuf,
    e2fsck: PathBuf,
    debugfs: PathBuf,
}

impl Tools {
    fn find() -> Option<Self> {
        let find = |name: &str| {
            let path_dirs = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path_dirs)
                .chain(["/usr/sbin".into(), "/sbin".into()])
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        };
        match (find("mkfs.ext4"), find("e2fsck"), find("debugfs")) {
            (Some(mkfs), Some(e2fsck), Some(debugfs)) => Some(Self {
                mkfs,
                e2fsck,
                debugfs,
            }),
            _ => {
                eprintln!(
                    "SKIP: mkfs.ext4/e2fsck/debugfs not found; dir oracle tests need e2fsprogs"
                );
                None
            }
        }
    }

    fn debugfs(&self, img: &Path, request: &str) -> Vec<u8> {
        let out = Command::new(&self.debugfs)
            .arg("-R")
            .arg(request)
            .arg(img)
            .output()
            .unwrap();
        assert!(out.status.success(), "debugfs {request} failed");
        out.stdout
    }

    fn debugfs_script(&self, img: &Path, script: &[u8], dir: &Path) -> Vec<u8> {
        let path = dir.join("debugfs.cmds");
        std::fs::write(&path, script).unwrap();
        let out = Command::new(&self.debugfs)
            .arg("-f")
            .arg(&path)
            .arg(img)
            .output()
            .unwrap();
        assert!(out.status.success(), "debugfs -f failed");
        out.stdout
    }

    /// Runs `e2fsck -fn` and asserts it exits 0 and reports nothing.
    fn assert_fsck_clean(&self, img: &Path) {
        let out = Command::new(&self.e2fsck)
            .arg("-fn")
            .arg(img)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "e2fsck -fn failed:\n{text}");
        for line in text.lines() {
            let expected = line.starts_with("e2fsck ")
                || line.starts_with("Pass ")
                || line.contains(" files (")
                || line.trim().is_empty();
            assert!(expected, "e2fsck -fn said {line:?}:\n{text}");
        }
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A name of `len` bytes safe for a debugfs command line and a Linux
    /// file name: no whitespace, quotes, backslash, `/` or NUL; bytes ≥ 0x80
    /// when `high` so the signed/unsigned difference shows.
    fn name(&mut self, len: usize, high: bool) -> Vec<u8> {
        (0..len)
            .map(|_| loop {
                let b = if high && self.below(2) == 0 {
                    0x80 + self.below(0x80) as u8
                } else {
                    0x21 + self.below(0x5E) as u8
                };
                if !matches!(b, b'"' | b'\'' | b'\\' | b'/' | b'#') {
                    break b;
                }
            })
            .collect()
    }
}

fn uuid_bytes(uuid: &str) -> [u8; 16] {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn parse_hex(bytes: &[u8]) -> u32 {
    u32::from_str_radix(std::str::from_utf8(bytes).unwrap(), 16).unwrap()
}

/// (major, minor) from every "Hash of NAME is 0xH (minor 0xM)" line.
fn parse_dx_hash_output(out: &[u8]) -> Vec<(u32, u32)> {
    out.split(|&b| b == b'\n')
        .filter(|line| line.starts_with(b"Hash of "))
        .map(|line| {
            let is = line.windows(6).rposition(|w| w == b" is 0x").unwrap();
            let rest = &line[is + 6..];
            let space = rest.iter().position(|&b| b == b' ').unwrap();
            let minor = &rest[space + " (minor 0x".len()..rest.len() - 1];
            (parse_hex(&rest[..space]), parse_hex(minor))
        })
        .collect()
}

#[test]
fn dx_hash_matches_debugfs() {
    let Some(tools) = Tools::find() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("hash.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let status = Command::new(&tools.mkfs)
        .args(["-q", "-F"])
        .arg(&img)
        .status()
        .unwrap();
    assert!(status.success());

    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mut names: Vec<Vec<u8>> = vec![b"file_055".to_vec(), b"a".to_vec(), vec![0xC3, 0xA9]];
    for len in 1..=255 {
        names.push(rng.name(len, len % 2 == 0));
    }
    for _ in 0..200 {
        let len = 1 + rng.below(70) as usize;
        names.push(rng.name(len, true));
    }

    let seeds = [[0u8; 16], uuid_bytes(HASH_SEED)];
    let mut checked = 0;
    for version in [HashVersion::Legacy, HashVersion::HalfMd4, HashVersion::Tea] {
        for unsigned_chars in [false, true] {
            for seed in seeds {
                let alg = version.as_u8() + if unsigned_chars { 3 } else { 0 };
                let seed_text = {
                    let h = hex::encode(seed);
                    format!(
                        "{}-{}-{}-{}-{}",
                        &h[..8],
                        &h[8..12],
                        &h[12..16],
                        &h[16..20],
                        &h[20..]
                    )
                };
                let mut script = Vec::new();
                for name in &names {
                    script.extend_from_slice(
                        format!("dx_hash -h {alg} -s {seed_text} -- ").as_bytes(),
                    );
                    script.extend_from_slice(name);
                    script.push(b'\n');
                }
                let expected =
                    parse_dx_hash_output(&tools.debugfs_script(&img, &script, tmp.path()));
                assert_eq!(expected.len(), names.len(), "debugfs answered every name");
                let params = HashParams::from_seed_bytes(seed, version, unsigned_chars);
                for (name, &(major, minor)) in names.iter().zip(&expected) {
                    // The kernel (and we) move the EOF cookie 0xFFFFFFFE down; debugfs does not.
                    let major = if major == 0xFFFF_FFFE {
                        0xFFFF_FFFC
                    } else {
                        major
                    };
                    assert_eq!(
                        dx_hash(name, &params),
                        (major, minor),
                        "{version:?} unsigned={unsigned_chars} seed={seed_text} name={}",
                        hex::encode(name)
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 12 * names.len());
    // Pinned: debugfs 1.47.0 `dx_hash -h half_md4 file_055` with the default seed.
    let default = HashParams::from_seed_bytes([0; 16], HashVersion::HalfMd4, false);
    assert_eq!(dx_hash(b"file_055", &default), (0xBC77_25D6, 0x0666_6048));
}

/// What a filesystem's superblock says about directory hashing and checksums.
struct FsInfo {
    fs_seed: u32,
    hash: HashParams,
}

fn fs_info(image: &[u8]) -> FsInfo {
    let sb = &image[1024..2048];
    let le32 = |at: usize| u32::from_le_bytes(sb[at..at + 4].try_into().unwrap());
    let uuid: [u8; 16] = sb[0x68..0x78].try_into().unwrap();
    let fs_seed = if le32(0x60) & 0x2000 != 0 {
        le32(0x270)
    } else {
        fs_seed(&uuid)
    };
    let version = HashVersion::from_u8(sb[0xFC]).unwrap();
    let hash = HashParams::from_seed_bytes(
        sb[0xEC..0xFC].try_into().unwrap(),
        version,
        le32(0x160) & 2 != 0,
    );
    FsInfo { fs_seed, hash }
}

/// Inode number, generation and flags of `path`, from `debugfs stat`.
fn stat(tools: &Tools, img: &Path, path: &str) -> (u32, u32, u32) {
    let out = String::from_utf8_lossy(&tools.debugfs(img, &format!("stat {path}"))).into_owned();
    let field = |key: &str| {
        let at = out.find(key).unwrap_or_else(|| panic!("no {key} in {out}")) + key.len();
        out[at..].split_whitespace().next().unwrap().to_string()
    };
    let flags = u32::from_str_radix(field("Flags:").trim_start_matches("0x"), 16).unwrap();
    (
        field("Inode:").parse().unwrap(),
        field("Generation:").parse().unwrap(),
        flags,
    )
}

/// Physical blocks of `path` in logical order, from the EXTENTS list of
/// `debugfs stat` (`debugfs blocks` would include extent tree blocks).
fn blocks_of(tools: &Tools, img: &Path, path: &str) -> Vec<usize> {
    let out = String::from_utf8_lossy(&tools.debugfs(img, &format!("stat {path}"))).into_owned();
    let extents = &out[out.find("EXTENTS:").expect("extent-mapped directory") + 8..];
    let mut mapped: Vec<(usize, usize)> = Vec::new();
    for item in extents
        .split([',', '\n'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let (logical, physical) = item.split_once(':').unwrap();
        if logical.starts_with("(ETB") {
            continue;
        }
        let range = |text: &str| -> (usize, usize) {
            match text.split_once('-') {
                Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                None => (text.parse().unwrap(), text.parse().unwrap()),
            }
        };
        let (first, last) = range(logical.trim_matches(['(', ')']));
        let (start, _) = range(physical);
        mapped.extend((first..=last).map(|l| (l, start + l - first)));
    }
    mapped.sort_unstable();
    assert!(
        mapped.iter().enumerate().all(|(i, &(l, _))| i == l),
        "directory has holes"
    );
    mapped.into_iter().map(|(_, p)| p).collect()
}

/// Verifies the stored checksum of every block of a directory: leaf tails,
/// and the dx tails of the root and interior nodes of an htree.
fn assert_checksums_match(blocks: &[&[u8]], inode_seed: u32, indexed: bool) -> usize {
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let le16 =
        |b: &[u8], at: usize| usize::from(u16::from_le_bytes(b[at..at + 2].try_into().unwrap()));
    for (i, block) in blocks.iter().enumerate() {
        let is_node = indexed && i > 0 && le32(block, 0) == 0 && le16(block, 4) == BLOCK_SIZE;
        let count_offset = match (indexed && i == 0, is_node) {
            (true, _) => Some(0x20),
            (false, true) => Some(8),
            _ => None,
        };
        match count_offset {
            Some(off) => {
                let limit = le16(block, off);
                let stored = le32(block, off + 8 * limit + 4);
                assert_eq!(
                    dx_block_csum(inode_seed, block, off),
                    Some(stored),
                    "dx block {i}"
                );
            }
            None => {
                let stored = le32(block, BLOCK_SIZE - 4);
                assert_eq!(
                    leaf_block_csum(inode_seed, block),
                    Some(stored),
                    "leaf block {i}"
                );
            }
        }
    }
    blocks.len()
}

/// (name, inode, file type) of every live entry but `.`/`..`, walking the
/// blocks linearly (index blocks hide behind `..` or a free record).
fn parse_entries(blocks: &[&[u8]]) -> Vec<(Vec<u8>, u32, u8)> {
    let mut out = Vec::new();
    for block in blocks {
        let mut at = 0;
        while at + 8 <= block.len() {
            let inode = u32::from_le_bytes(block[at..at + 4].try_into().unwrap());
            let rec_len = usize::from(u16::from_le_bytes([block[at + 4], block[at + 5]]));
            let name = &block[at + 8..at + 8 + usize::from(block[at + 6])];
            if inode != 0 && name != b"." && name != b".." {
                out.push((name.to_vec(), inode, block[at + 7]));
            }
            assert!(rec_len >= 8, "bad rec_len");
            at += rec_len;
        }
    }
    out
}

/// Builds `/d` holding `names` with mkfs.ext4 -d, indexes it with e2fsck -fyD,
/// and checks our checksums and blocks against it, then splices our blocks in.
/// Returns (block count, indexed, indirect levels).
fn check_against_e2fsck(
    names: &[Vec<u8>],
    unsigned: bool,
    mixed_types: bool,
) -> Option<(usize, bool, u8)> {
    let tools = Tools::find()?;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let d = src.join("d");
    std::fs::create_dir_all(&d).unwrap();
    for (i, name) in names.iter().enumerate() {
        let path = d.join(std::ffi::OsStr::from_bytes(name));
        if mixed_types && i % 37 == 5 {
            std::fs::create_dir(&path).unwrap();
        } else if mixed_types && i % 41 == 7 {
            std::os::unix::fs::symlink("target", &path).unwrap();
        } else {
            std::fs::File::create(&path).unwrap();
        }
    }
    let img = tmp.path().join("ref.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let status = Command::new(&tools.mkfs)
        .args([
            "-q",
            "-F",
            "-b",
            "4096",
            "-O",
            "metadata_csum,64bit",
            "-U",
            UUID,
        ])
        .args(["-E", &format!("hash_seed={HASH_SEED}"), "-d"])
        .arg(&src)
        .arg(&img)
        .status()
        .unwrap();
    assert!(status.success(), "mkfs.ext4 failed");
    if unsigned {
        let out = Command::new(&tools.debugfs)
            .args(["-w", "-R", "ssv flags 2"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let status = Command::new(&tools.e2fsck)
        .arg("-fyD")
        .arg(&img)
        .output()
        .unwrap()
        .status;
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "e2fsck -fyD: {status}"
    );
    tools.assert_fsck_clean(&img);

    let mut image = std::fs::read(&img).unwrap();
    let info = fs_info(&image);
    assert_eq!(info.hash.unsigned_chars, unsigned);
    let (dir_inode, generation, flags) = stat(&tools, &img, "/d");
    let physical = blocks_of(&tools, &img, "/d");
    let on_disk: Vec<&[u8]> = physical
        .iter()
        .map(|&b| &image[b * BLOCK_SIZE..(b + 1) * BLOCK_SIZE])
        .collect();
    let indexed = flags & EXT4_INDEX_FL != 0;
    let inode_seed = inode_seed(info.fs_seed, dir_inode, generation);

    // (a) Our checksum routines reproduce e2fsck's.
    assert_checksums_match(&on_disk, inode_seed, indexed);

    // (b) Our encoding of the same entries, given in a scrambled order.
    let parsed = parse_entries(&on_disk);
    let found: BTreeSet<&[u8]> = parsed.iter().map(|(n, _, _)| n.as_slice()).collect();
    let wanted: BTreeSet<&[u8]> = names.iter().map(|n| n.as_slice()).collect();
    assert_eq!(found, wanted, "e2fsck's directory holds exactly our names");
    if mixed_types {
        let types: BTreeSet<u8> = parsed.iter().map(|e| e.2).collect();
        assert_eq!(
            types,
            BTreeSet::from([EXT4_FT_REG_FILE, EXT4_FT_DIR, EXT4_FT_SYMLINK])
        );
    }
    let mut entries: Vec<DirEntry> = parsed
        .iter()
        .map(|(name, inode, file_type)| DirEntry {
            name,
            inode: *inode,
            file_type: *file_type,
        })
        .collect();
    let mut rng = Rng(0xDEAD_BEEF);
    for i in (1..entries.len()).rev() {
        entries.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let ctx = DirContext {
        dir_inode,
        parent_inode: 2,
        generation,
        fs_seed: info.fs_seed,
        hash: info.hash,
    };
    let ours = build_directory(&entries, &ctx, 1).unwrap();
    assert_eq!(ours.indexed, indexed);
    assert_eq!(
        ours.block_count(),
        physical.len(),
        "same block count as e2fsck"
    );
    assert_checksums_match(&ours.blocks().collect::<Vec<_>>(), inode_seed, indexed);
    if indexed {
        // We lay htrees out exactly like e2fsck -D (same sort, slack and node order).
        for (i, (mine, theirs)) in ours.blocks().zip(&on_disk).enumerate() {
            if mine != *theirs {
                let at = mine
                    .iter()
                    .zip(theirs.iter())
                    .position(|(a, b)| a != b)
                    .unwrap();
                panic!("block {i} differs from e2fsck's at byte {at}");
            }
        }
    }
    let levels = if indexed { ours.data[0x1E] } else { 0 };

    // Splice our blocks over e2fsck's and ask the oracles.
    for (block, &phys) in ours.blocks().zip(&physical) {
        image[phys * BLOCK_SIZE..(phys + 1) * BLOCK_SIZE].copy_from_slice(block);
    }
    let spliced = tmp.path().join("spliced.img");
    std::fs::write(&spliced, &image).unwrap();
    tools.assert_fsck_clean(&spliced);

    let listing = tools.debugfs(&spliced, "ls -p /d");
    let listed: BTreeSet<&[u8]> = listing
        .split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b'/').nth(5))
        .filter(|name| !name.is_empty() && *name != b"." && *name != b"..")
        .collect();
    assert_eq!(listed, wanted, "debugfs ls lists every name");
    if indexed {
        // htree_dump reports bad blocks on stderr; a good tree leaves only the banner.
        let out = Command::new(&tools.debugfs)
            .args(["-R", "htree /d"])
            .arg(&spliced)
            .output()
            .unwrap();
        let errors = String::from_utf8_lossy(&out.stderr);
        assert!(
            errors.lines().all(|l| l.starts_with("debugfs ")),
            "debugfs htree: {errors}"
        );
        let dumped = out
            .stdout
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"Entry #"))
            .count();
        assert!(dumped > 0, "debugfs htree printed no index entries");
    }

    // ext4-view verifies block checksums and looks names up through the htree.
    let fs = ext4_view::Ext4::load(Box::new(image.clone())).unwrap();
    assert_eq!(fs.read_dir("/d").unwrap().count(), names.len() + 2);
    if !unsigned {
        // ext4-view always hashes with signed chars.
        for name in names {
            let path = [b"/d/".as_slice(), name].concat();
            assert!(
                fs.symlink_metadata(path.as_slice()).is_ok(),
                "lookup of {} failed",
                hex::encode(name)
            );
        }
    }

    // lost+found: empty, four blocks, byte-identical to e2fsprogs'.
    let (lf_inode, lf_generation, _) = stat(&tools, &img, "/lost+found");
    let lf_blocks = blocks_of(&tools, &img, "/lost+found");
    let lf_ctx = DirContext {
        dir_inode: lf_inode,
        generation: lf_generation,
        ..ctx
    };
    let lf = build_directory(&[], &lf_ctx, 4).unwrap();
    assert_eq!(lf.block_count(), lf_blocks.len());
    for (mine, &phys) in lf.blocks().zip(&lf_blocks) {
        assert_eq!(
            mine,
            &image[phys * BLOCK_SIZE..(phys + 1) * BLOCK_SIZE],
            "lost+found block"
        );
    }
    Some((ours.block_count(), indexed, levels))
}

fn numbered(n: usize, prefix: &str) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}{i:05}").into_bytes())
        .collect()
}

#[test]
fn linear_directory_of_5() {
    if let Some(shape) = check_against_e2fsck(&numbered(5, "file_"), false, false) {
        assert_eq!(shape, (1, false, 0));
    }
}

#[test]
fn htree_of_300() {
    if let Some((blocks, indexed, levels)) =
        check_against_e2fsck(&numbered(300, "file_"), false, false)
    {
        assert!(indexed && blocks > 2 && levels == 0);
    }
}

#[test]
fn htree_of_3000_mixed_types() {
    if let Some((_, indexed, levels)) = check_against_e2fsck(&numbered(3000, "entry-"), false, true)
    {
        assert!(indexed && levels == 0);
    }
}

#[test]
fn htree_of_10000() {
    if let Some((blocks, indexed, levels)) =
        check_against_e2fsck(&numbered(10000, "f"), false, false)
    {
        assert!(indexed && levels == 0 && blocks > 40);
    }
}

fn random_names(n: usize, min_len: usize, max_len: usize, high: bool, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    let mut set = BTreeSet::new();
    while set.len() < n {
        let len = min_len + rng.below((max_len - min_len + 1) as u64) as usize;
        set.insert(rng.name(len, high));
    }
    set.into_iter().collect()
}

#[test]
fn htree_with_high_bytes_signed() {
    let names = random_names(2500, 1, 60, true, 7);
    if let Some((_, indexed, _)) = check_against_e2fsck(&names, false, false) {
        assert!(indexed);
    }
}

#[test]
fn htree_with_high_bytes_unsigned() {
    let names = random_names(2500, 1, 60, true, 7);
    if let Some((_, indexed, _)) = check_against_e2fsck(&names, true, false) {
        assert!(indexed);
    }
}

#[test]
fn htree_with_index_nodes() {
    // ~14 long names per leaf: 7500 need more leaves than the root's 507.
    let names = random_names(7500, 240, 255, false, 11);
    if let Some((blocks, indexed, levels)) = check_against_e2fsck(&names, false, false) {
        assert!(indexed && levels == 1 && blocks > 508);
    }
}
