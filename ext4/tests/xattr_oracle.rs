//! Oracle tests for the xattr encoder: `mkfs.ext4 -d` (e2fsprogs 1.47) copies
//! a tree with xattrs set by the kernel; our in-inode bytes and EA blocks must
//! match its bytes, and `e2fsck -fn` must accept ours spliced into the image.
//!
//! Needs mkfs.ext4, debugfs, e2fsck, setfattr/getfattr (package `attr`),
//! setfacl (package `acl`) and a temp dir that supports user xattrs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use banger_ext4::acl::ext4_acl_to_vfs;
use banger_ext4::checksum::{ext4_chksum, fs_seed};
use banger_ext4::format::xattr::{IN_INODE_LEN, IN_INODE_OFFSET};
use banger_ext4::tree::Xattrs;
use banger_ext4::xattr::{layout_xattrs, XattrLayout};

const BLOCK_SIZE: usize = banger_ext4::spec::BLOCK_SIZE as usize;

const INODE_SIZE: usize = 256;

/// How a case's xattrs are put on the source file.
enum Set {
    /// `setfattr -n NAME -v VALUE`.
    Attr(&'static str, Vec<u8>),
    /// `setfacl ARGS...` (the kernel produces the VFS value).
    Facl(&'static [&'static str]),
}

struct Case {
    name: &'static str,
    dir: bool,
    sets: Vec<Set>,
}

fn cases() -> Vec<Case> {
    use Set::{Attr, Facl};
    let file = |name, sets| Case {
        name,
        dir: false,
        sets,
    };
    vec![
        file("one", vec![Attr("user.foo", b"bar".to_vec())]),
        file(
            "several",
            vec![
                Attr("user.a", b"vala".to_vec()),
                Attr("user.b", b"valb".to_vec()),
                Attr("user.c", b"valc".to_vec()),
            ],
        ),
        file(
            "spill",
            vec![
                Attr("user.a", vec![b'x'; 10]),
                Attr("user.big", vec![b'B'; 3000]),
                Attr("user.c", vec![b'y'; 5]),
            ],
        ),
        // Block entries sort by index first: user (1), trusted (4), security (6).
        file(
            "mixed",
            vec![
                Attr("security.b", (0..1000u32).map(|i| i as u8).collect()),
                Attr("trusted.a", vec![b'T'; 999]),
                Attr("user.a", b"small".to_vec()),
                Attr("user.zz", vec![b'Z'; 1001]),
                Attr("user.yyy", vec![7; 3]),
            ],
        ),
        // 20-byte entry + 68-byte value fill the 88 usable bytes exactly.
        file("exact", vec![Attr("user.a", vec![b'e'; 68])]),
        // 8 bytes stay free in the inode; an empty value still needs a 20-byte entry.
        file(
            "emptyblk",
            vec![Attr("user.a", vec![b'f'; 60]), Attr("user.b", Vec::new())],
        ),
        file("empty", vec![Attr("user.e", Vec::new())]),
        file(
            "cap",
            vec![Attr(
                "security.capability",
                hex::decode("0000000200200000000000000000000000000000").unwrap(),
            )],
        ),
        file("trust", vec![Attr("trusted.x", b"hello".to_vec())]),
        file("acl", vec![Facl(&["-m", "u:1000:rw,g:100:r"])]),
        Case {
            name: "dacl",
            dir: true,
            sets: vec![Facl(&["-d", "-m", "u:1000:rwx,g:100:rx"])],
        },
        // The security xattr fills the inode, so the ACL goes to the block.
        file(
            "aclblk",
            vec![
                Attr("security.x", vec![b's'; 60]),
                Facl(&["-m", "u:1000:rw"]),
            ],
        ),
        // Nothing fits in the inode, which still gets the magic.
        file("blockonly", vec![Attr("user.big", vec![b'b'; 3000])]),
        // No xattrs: mke2fs leaves the area zero.
        file("none", vec![]),
    ]
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads a file's xattrs as the kernel reports them (`getfattr -d -m- -e hex`).
fn getfattr(path: &Path) -> Xattrs {
    let out = run(Command::new("getfattr")
        .args(["--absolute-names", "-d", "-m-", "-e", "hex"])
        .arg(path));
    let mut xattrs = Xattrs::new();
    for line in out.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, value) = match line.split_once('=') {
            Some((name, value)) => (name, hex::decode(value.trim_start_matches("0x")).unwrap()),
            None => (line, Vec::new()),
        };
        xattrs.insert(name.as_bytes().to_vec(), value);
    }
    xattrs
}

/// A `mkfs.ext4 -d` image of all cases, with the kernel's view of their xattrs.
struct Reference {
    _dir: tempfile::TempDir,
    image: PathBuf,
    bytes: Vec<u8>,
    seed: u32,
    xattrs: Vec<(&'static str, Xattrs)>,
}

fn build_reference() -> Reference {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let mut xattrs = Vec::new();
    for case in cases() {
        let path = src.join(case.name);
        if case.dir {
            fs::create_dir(&path).unwrap();
        } else {
            fs::write(&path, b"").unwrap();
        }
        for set in &case.sets {
            match set {
                Set::Attr(name, value) => {
                    run(Command::new("setfattr")
                        .args(["-n", name, "-v"])
                        .arg(format!("0x{}", hex::encode(value)))
                        .arg(&path));
                }
                Set::Facl(args) => {
                    run(Command::new("setfacl").args(*args).arg(&path));
                }
            }
        }
        xattrs.push((case.name, getfattr(&path)));
    }
    let image = dir.path().join("img");
    run(Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-b",
            "4096",
            "-I",
            "256",
            "-O",
            "metadata_csum,64bit",
        ])
        .arg(&image)
        .arg("64M")
        .arg("-d")
        .arg(&src));
    let bytes = fs::read(&image).unwrap();
    let sb = &bytes[1024..2048];
    let incompat = u32::from_le_bytes(sb[0x60..0x64].try_into().unwrap());
    let seed = if incompat & 0x2000 != 0 {
        u32::from_le_bytes(sb[0x270..0x274].try_into().unwrap())
    } else {
        fs_seed(sb[0x68..0x78].try_into().unwrap())
    };
    Reference {
        _dir: dir,
        image,
        bytes,
        seed,
        xattrs,
    }
}

/// Inode number and byte offset of `/name` in the image (`debugfs imap`).
fn locate(image: &Path, name: &str) -> (u32, usize) {
    let out = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("imap /{name}"))
        .arg(image));
    let words: Vec<&str> = out.split_whitespace().collect();
    let ino = words[1].parse().unwrap();
    let block: usize = words[words.iter().rposition(|w| *w == "block").unwrap() + 1]
        .trim_end_matches(',')
        .parse()
        .unwrap();
    let offset = usize::from_str_radix(words.last().unwrap().trim_start_matches("0x"), 16).unwrap();
    (ino, block * BLOCK_SIZE + offset)
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn file_acl(inode: &[u8]) -> u64 {
    u64::from(le32(inode, 0x68)) | u64::from(u16::from_le_bytes([inode[0x76], inode[0x77]])) << 32
}

/// `csum(seed, le64 block, block with h_checksum zeroed)`, as EXT4-FACTS §7 states it.
fn ea_block_csum(seed: u32, block_nr: u64, block: &[u8]) -> u32 {
    let mut copy = block.to_vec();
    copy[16..20].fill(0);
    ext4_chksum(ext4_chksum(seed, &block_nr.to_le_bytes()), &copy)
}

/// Sets the inode checksum (EXT4-FACTS §3) after the inode was edited.
fn fix_inode_csum(seed: u32, ino: u32, inode: &mut [u8]) {
    inode[0x7C..0x7E].fill(0);
    inode[0x82..0x84].fill(0);
    let generation = &inode[0x64..0x68];
    let csum = ext4_chksum(
        ext4_chksum(ext4_chksum(seed, &ino.to_le_bytes()), generation),
        inode,
    );
    inode[0x7C..0x7E].copy_from_slice(&csum.to_le_bytes()[..2]);
    inode[0x82..0x84].copy_from_slice(&csum.to_le_bytes()[2..]);
}

fn oracles_available() -> bool {
    let tools = [
        "mkfs.ext4",
        "debugfs",
        "e2fsck",
        "setfattr",
        "getfattr",
        "setfacl",
    ];
    let missing: Vec<_> = tools
        .iter()
        .filter(|tool| Command::new(tool).arg("--version").output().is_err())
        .collect();
    if missing.is_empty() {
        return true;
    }
    eprintln!("SKIPPED: xattr oracle needs {missing:?} (e2fsprogs, attr, acl)");
    false
}

/// Our layout for every case, checked byte for byte against mke2fs.
#[test]
fn matches_mke2fs_byte_for_byte() {
    if !oracles_available() {
        return;
    }
    let reference = build_reference();
    let mut blocks = 0;
    for (name, xattrs) in &reference.xattrs {
        let (ino, at) = locate(&reference.image, name);
        let inode = &reference.bytes[at..at + INODE_SIZE];
        let ours: XattrLayout = layout_xattrs(xattrs).unwrap();
        assert_eq!(
            hex::encode(&inode[IN_INODE_OFFSET..]),
            hex::encode(ours.in_inode),
            "in-inode xattrs of /{name} (inode {ino})"
        );
        let blk = file_acl(inode);
        match &ours.block {
            None => assert_eq!(blk, 0, "/{name}: mke2fs used an EA block, we did not"),
            Some(block) => {
                assert_ne!(blk, 0, "/{name}: we used an EA block, mke2fs did not");
                blocks += 1;
                let start = usize::try_from(blk).unwrap() * BLOCK_SIZE;
                let theirs = &reference.bytes[start..start + BLOCK_SIZE];
                // Our checksum formula holds on mke2fs's block.
                assert_eq!(le32(theirs, 16), ea_block_csum(reference.seed, blk, theirs));
                // mke2fs 1.47.0 leaves h_hash 0; we set the kernel's
                // ext4_xattr_rehash. Everything else must be identical.
                let our_hash = le32(block.as_bytes(), 12);
                assert_ne!(our_hash, 0, "/{name}: block hash");
                let their_hash = le32(theirs, 12);
                assert!(their_hash == 0 || their_hash == our_hash, "/{name}: h_hash");
                let mut expected = theirs.to_vec();
                expected[12..16].copy_from_slice(&our_hash.to_le_bytes());
                let csum = ea_block_csum(reference.seed, blk, &expected);
                expected[16..20].copy_from_slice(&csum.to_le_bytes());
                let finalized = block.finalize(blk, 1, reference.seed);
                assert_eq!(
                    hex::encode(finalized),
                    hex::encode(&expected),
                    "EA block of /{name}"
                );
                // The sharing key is the block with refcount 1 and no checksum.
                let mut key = expected;
                key[16..20].fill(0);
                assert_eq!(block.as_bytes(), &key[..]);
            }
        }
    }
    assert_eq!(
        blocks, 5,
        "spill, mixed, emptyblk, aclblk and blockonly use EA blocks"
    );
}

/// `(index, name, value)` of the entries starting at `area[first..]`, whose
/// value offsets count from `area[value_base..]`.
fn entries(area: &[u8], first: usize, value_base: usize) -> Vec<(u8, Vec<u8>, Vec<u8>)> {
    let mut found = Vec::new();
    let mut at = first;
    while le32(area, at) != 0 {
        let name_len = usize::from(area[at]);
        let offs = usize::from(u16::from_le_bytes([area[at + 2], area[at + 3]]));
        let size = usize::try_from(le32(area, at + 8)).unwrap();
        let value = area[value_base + offs..value_base + offs + size].to_vec();
        found.push((
            area[at + 1],
            area[at + 16..at + 16 + name_len].to_vec(),
            value,
        ));
        at += (16 + name_len + 3) & !3;
    }
    found
}

/// The ACLs mke2fs stored (in ext4 format) read back as the kernel's VFS values.
#[test]
fn stored_acls_convert_back_to_getfattr_values() {
    if !oracles_available() {
        return;
    }
    let reference = build_reference();
    let mut checked = 0;
    for (name, xattrs) in &reference.xattrs {
        let (_, at) = locate(&reference.image, name);
        let inode = &reference.bytes[at..at + INODE_SIZE];
        let mut stored = entries(&inode[IN_INODE_OFFSET..], 4, 4);
        let blk = usize::try_from(file_acl(inode)).unwrap();
        if blk != 0 {
            stored.extend(entries(
                &reference.bytes[blk * BLOCK_SIZE..][..BLOCK_SIZE],
                32,
                0,
            ));
        }
        for (index, _, disk) in stored {
            let full: &[u8] = match index {
                2 => b"system.posix_acl_access",
                3 => b"system.posix_acl_default",
                _ => continue,
            };
            assert_eq!(
                hex::encode(ext4_acl_to_vfs(&disk).unwrap()),
                hex::encode(&xattrs[full]),
                "{} of /{name}",
                String::from_utf8_lossy(full)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3, "acl, dacl and aclblk hold one ACL each");
}

/// The image with every case's xattr area and EA block replaced by ours.
fn splice(reference: &Reference) -> Vec<u8> {
    let mut image = reference.bytes.clone();
    for (name, xattrs) in &reference.xattrs {
        let (ino, at) = locate(&reference.image, name);
        let ours = layout_xattrs(xattrs).unwrap();
        let inode = &mut image[at..at + INODE_SIZE];
        inode[IN_INODE_OFFSET..IN_INODE_OFFSET + IN_INODE_LEN].copy_from_slice(&ours.in_inode);
        fix_inode_csum(reference.seed, ino, inode);
        if let Some(block) = &ours.block {
            let blk = file_acl(inode);
            let start = usize::try_from(blk).unwrap() * BLOCK_SIZE;
            image[start..start + BLOCK_SIZE].copy_from_slice(&block.finalize(
                blk,
                1,
                reference.seed,
            ));
        }
    }
    image
}

/// Runs `e2fsck -fn` and asserts it found nothing at all.
fn assert_fsck_clean(image: &Path) {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let unexpected: Vec<&str> = text
        .lines()
        .filter(|l| !(l.starts_with("e2fsck ") || l.starts_with("Pass ") || l.contains(" files (")))
        .collect();
    assert!(unexpected.is_empty(), "e2fsck complained: {text}");
}

/// e2fsck accepts our bytes in place of mke2fs's.
#[test]
fn e2fsck_accepts_spliced_layouts() {
    if !oracles_available() {
        return;
    }
    let reference = build_reference();
    let image = splice(&reference);
    assert_ne!(image, reference.bytes, "our h_hash differs from mke2fs's 0");
    let spliced = reference.image.with_extension("spliced");
    fs::write(&spliced, &image).unwrap();
    assert_fsck_clean(&spliced);
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The kernel finds our EA block by its h_hash and shares it with a new file
/// given the same xattrs: proof that h_hash is the kernel's ext4_xattr_rehash.
/// It also reads every value back as `getfattr` showed it on the source.
#[test]
fn kernel_reads_and_shares_our_blocks() {
    if !oracles_available() {
        return;
    }
    let reference = build_reference();
    let spliced = reference.image.with_extension("spliced");
    fs::write(&spliced, splice(&reference)).unwrap();
    let mnt = reference.image.with_extension("mnt");
    fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "ext4", "-o", "loop"])
        .arg(&spliced)
        .arg(&mnt)
        .output()
        .unwrap();
    if !mounted.status.success() {
        eprintln!(
            "SKIPPED: cannot loop-mount (needs root and /dev/loop): {}",
            String::from_utf8_lossy(&mounted.stderr)
        );
        return;
    }
    let guard = Mount(mnt.clone());
    for (name, xattrs) in &reference.xattrs {
        assert_eq!(
            &getfattr(&mnt.join(name)),
            xattrs,
            "kernel's view of /{name}"
        );
    }
    // Reading /spill put its block in the kernel's cache; a new file with the
    // same xattrs, set in the same order, must reuse it.
    let copy = mnt.join("spill2");
    fs::write(&copy, b"").unwrap();
    let (_, spill_xattrs) = reference
        .xattrs
        .iter()
        .find(|(n, _)| *n == "spill")
        .unwrap();
    for (name, value) in spill_xattrs {
        run(Command::new("setfattr")
            .arg("-n")
            .arg(String::from_utf8_lossy(name).as_ref())
            .arg("-v")
            .arg(format!("0x{}", hex::encode(value)))
            .arg(&copy));
    }
    drop(guard);
    let file_acl_of = |name: &str| {
        let out = run(Command::new("debugfs")
            .arg("-R")
            .arg(format!("stat /{name}"))
            .arg(&spliced));
        let line = out
            .lines()
            .find(|l| l.contains("File ACL:"))
            .unwrap()
            .to_owned();
        line.split_whitespace()
            .nth(2)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let original = file_acl_of("spill");
    assert_ne!(original, 0);
    assert_eq!(
        file_acl_of("spill2"),
        original,
        "kernel did not share our EA block"
    );
    let after = fs::read(&spliced).unwrap();
    let start = usize::try_from(original).unwrap() * BLOCK_SIZE;
    assert_eq!(le32(&after, start + 4), 2, "refcount after sharing");
    assert_fsck_clean(&spliced);
}
