//! The oracles checked against e2fsprogs and the kernel: images made by
//! `mkfs.ext4 -d` (and by the kernel itself) from materialized trees must
//! pass them, and damaged images or altered trees must fail them.

use std::path::Path;

use banger_ext4::tree::{DeviceNumber, FileContent, NodeKind, Tree};
use banger_testkit::materialize::adopt_ctimes;
use banger_testkit::mount::{assert_mounted_matches_tree_with, mounted_mismatches};
use banger_testkit::reference::{as_mkfs_stores_it, mkfs_ext4, ScratchFs};
use banger_testkit::{
    arb_tree, assert_fsck_clean, assert_image_matches_tree, fsck, image_mismatches, materialize,
    sample_tree, CompareOptions, Skip,
};
use proptest::test_runner::{Config, TestRunner};

/// Nothing but a formatter can set creation times.
fn no_crtime() -> CompareOptions {
    CompareOptions {
        crtime: false,
        ..CompareOptions::default()
    }
}

/// Materializes `tree` into a scratch ext4, then checks three ways:
/// the mounted directory, a `mkfs.ext4 -d` copy of it, and the scratch
/// image the kernel wrote. Returns the `mkfs.ext4 -d` image and the tree
/// as it expects, for further tests.
fn check_roundtrip(tree: &Tree, work: &Path) -> Result<(std::path::PathBuf, Tree), Skip> {
    let mut scratch = ScratchFs::new("256M")?;
    materialize(tree, scratch.path()).expect("materialize");
    let mut tree = tree.clone();
    adopt_ctimes(&mut tree, scratch.path()).expect("read back ctimes");

    assert_mounted_matches_tree_with(scratch.path(), &tree, &no_crtime());

    let img = work.join("mkfs-d.img");
    mkfs_ext4(&img, "64M", Some(scratch.path())).expect("mkfs.ext4 -d");
    assert_fsck_clean(&img);
    let mkfs_tree = as_mkfs_stores_it(&tree, &img).expect("expected mkfs tree");
    assert_image_matches_tree(&img, &mkfs_tree, &no_crtime());

    let kernel_img = scratch.unmount().expect("unmount scratch").to_path_buf();
    assert_fsck_clean(&kernel_img);
    assert_image_matches_tree(&kernel_img, &tree, &no_crtime());
    Ok((img, mkfs_tree))
}

#[test]
fn sample_tree_passes_every_oracle() {
    let work = tempfile::tempdir().unwrap();
    if let Err(skip) = check_roundtrip(&sample_tree(), work.path()) {
        skip.report();
    }
}

#[test]
fn random_trees_pass_every_oracle() {
    let cases = std::env::var("BANGER_ORACLE_CASES").map_or(6, |v| v.parse().unwrap_or(6));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&arb_tree(), |tree| {
        let work = tempfile::tempdir().unwrap();
        if let Err(skip) = check_roundtrip(&tree, work.path()) {
            skip.report();
        }
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

/// A `mkfs.ext4 -d` image of the sample tree and the tree it must match.
/// Without the 4 GiB sparse file: tests here read the image many times.
fn reference_image(work: &Path) -> Option<(std::path::PathBuf, Tree)> {
    let mut tree = sample_tree();
    tree.unlink(Tree::ROOT, b"huge-sparse")
        .expect("sample has a huge file");
    match check_roundtrip(&tree, work) {
        Ok(pair) => Some(pair),
        Err(skip) => {
            skip.report();
            None
        }
    }
}

fn debugfs(img: &Path, cmd: &str) -> String {
    let out = std::process::Command::new("debugfs")
        .args(["-R", cmd])
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn flip_byte(img: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(img)
        .unwrap();
    let mut b = [0u8];
    file.read_exact_at(&mut b, offset).unwrap();
    file.write_all_at(&[b[0] ^ 0x5a], offset).unwrap();
}

/// Byte offset of inode `path`'s on-disk record, via `debugfs imap`.
fn inode_offset(img: &Path, path: &str) -> u64 {
    let out = debugfs(img, &format!("imap {path}"));
    // "Inode 12 is part of block group 0\n\tlocated at block 41, offset 0x0b00"
    let (_, rest) = out.split_once("located at block ").unwrap();
    let (block, rest) = rest.split_once(", offset 0x").unwrap();
    let offset = u64::from_str_radix(rest.trim(), 16).unwrap();
    block.parse::<u64>().unwrap() * 4096 + offset
}

#[test]
fn e2fsck_and_readback_catch_a_corrupt_inode() {
    let work = tempfile::tempdir().unwrap();
    let Some((img, tree)) = reference_image(work.path()) else {
        return;
    };
    // The mode byte of /etc/hostname's inode.
    flip_byte(&img, inode_offset(&img, "/etc/hostname"));
    let report = fsck(&img);
    assert!(
        !report.is_clean(),
        "e2fsck missed a corrupt inode:\n{}",
        report.output
    );
    assert!(report.output.contains("checksum"), "{}", report.output);
    assert!(!image_mismatches(&img, &tree, &no_crtime()).is_empty());
}

#[test]
fn e2fsck_and_readback_catch_a_corrupt_directory_block() {
    let work = tempfile::tempdir().unwrap();
    let Some((img, tree)) = reference_image(work.path()) else {
        return;
    };
    let blocks = debugfs(&img, "blocks /etc");
    let block: u64 = blocks.split_whitespace().next().unwrap().parse().unwrap();
    // Inside the first entry after "." and "..": a name byte of a real entry.
    flip_byte(&img, block * 4096 + 30);
    let report = fsck(&img);
    assert!(
        !report.is_clean(),
        "e2fsck missed a corrupt directory:\n{}",
        report.output
    );
    let mismatches = image_mismatches(&img, &tree, &no_crtime());
    assert!(!mismatches.is_empty());
}

#[test]
fn fsck_judges_by_text_when_the_exit_code_is_zero() {
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("a.img");
    mkfs_ext4(&img, "16M", None).unwrap();
    assert_fsck_clean(&img);
    // debugfs rewrites the superblock checksum, so only the count is wrong.
    let out = std::process::Command::new("debugfs")
        .args(["-w", "-R", "ssv free_blocks_count 5"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success());
    let report = fsck(&img);
    assert_eq!(report.exit_code, Some(0), "{}", report.output);
    assert!(!report.is_clean(), "{}", report.output);
    assert!(report
        .unexpected_lines
        .iter()
        .any(|l| l.contains("Free blocks count wrong")));
}

/// Applies one change to the tree; readback must name the path and field.
fn expect_mismatch(
    img: &Path,
    tree: &Tree,
    path: &str,
    what: &str,
    change: impl FnOnce(&mut Tree),
) {
    let mut changed = tree.clone();
    change(&mut changed);
    let mismatches = image_mismatches(img, &changed, &no_crtime());
    assert!(
        mismatches
            .iter()
            .any(|m| m.starts_with(path) && m.contains(what)),
        "changing {what} of {path} went unnoticed; mismatches: {mismatches:#?}"
    );
}

#[test]
fn readback_reports_every_kind_of_difference() {
    let work = tempfile::tempdir().unwrap();
    let Some((img, tree)) = reference_image(work.path()) else {
        return;
    };
    assert!(image_mismatches(&img, &tree, &no_crtime()).is_empty());
    let id = |t: &Tree, p: &str| t.lookup_path(p.as_bytes()).unwrap();

    expect_mismatch(&img, &tree, "/etc/hostname", "content", |t| {
        let n = id(t, "/etc/hostname");
        t.node_mut(n).kind = NodeKind::File(FileContent::from_bytes(b"sampld\n".to_vec()));
    });
    expect_mismatch(&img, &tree, "/sparse", "content", |t| {
        let n = id(t, "/sparse");
        let bytes = vec![0u8; 10 << 20];
        t.node_mut(n).kind = NodeKind::File(FileContent::from_bytes(bytes));
    });
    expect_mismatch(&img, &tree, "/setuid", "permissions", |t| {
        t.node_mut(id(t, "/setuid")).meta.permissions = 0o755;
    });
    expect_mismatch(&img, &tree, "/etc", "uid", |t| {
        t.node_mut(id(t, "/etc")).meta.uid = 1
    });
    expect_mismatch(&img, &tree, "/etc", "gid", |t| {
        t.node_mut(id(t, "/etc")).meta.gid = 65537
    });
    expect_mismatch(&img, &tree, "/tmp/old", "atime", |t| {
        t.node_mut(id(t, "/tmp/old")).meta.atime.secs += 1;
    });
    expect_mismatch(&img, &tree, "/tmp/future", "mtime", |t| {
        t.node_mut(id(t, "/tmp/future")).meta.mtime.nanos = 1;
    });
    expect_mismatch(&img, &tree, "/empty", "ctime", |t| {
        t.node_mut(id(t, "/empty")).meta.ctime.secs -= 1;
    });
    expect_mismatch(&img, &tree, "/setgid-dir/xattrs", "xattr user.small", |t| {
        let m = &mut t.node_mut(id(t, "/setgid-dir/xattrs")).meta;
        m.xattrs.insert(b"user.small".to_vec(), b"w".to_vec());
    });
    expect_mismatch(
        &img,
        &tree,
        "/setgid-dir/xattrs",
        "xattr system.posix_acl_access",
        |t| {
            let m = &mut t.node_mut(id(t, "/setgid-dir/xattrs")).meta;
            let acl = m.xattrs.get_mut(&b"system.posix_acl_access"[..]).unwrap();
            acl[6] ^= 1; // the first entry's perm
        },
    );
    expect_mismatch(
        &img,
        &tree,
        "/acl-dir/big-xattrs",
        "unexpected xattr user.big",
        |t| {
            let m = &mut t.node_mut(id(t, "/acl-dir/big-xattrs")).meta;
            m.xattrs.remove(&b"user.big"[..]);
        },
    );
    expect_mismatch(&img, &tree, "/dev/fifo", "xattr trusted.new missing", |t| {
        let m = &mut t.node_mut(id(t, "/dev/fifo")).meta;
        m.xattrs.insert(b"trusted.new".to_vec(), Vec::new());
    });
    expect_mismatch(&img, &tree, "/dev/sda", "device", |t| {
        let n = id(t, "/dev/sda");
        t.node_mut(n).kind = NodeKind::BlockDevice(DeviceNumber { major: 8, minor: 1 });
    });
    expect_mismatch(&img, &tree, "/dev/big", "device", |t| {
        let n = id(t, "/dev/big");
        t.node_mut(n).kind = NodeKind::CharDevice(DeviceNumber {
            major: 4094,
            minor: (1 << 20) - 1,
        });
    });
    expect_mismatch(&img, &tree, "/dev/sda", "type", |t| {
        let n = id(t, "/dev/sda");
        t.node_mut(n).kind = NodeKind::CharDevice(DeviceNumber { major: 8, minor: 0 });
    });
    expect_mismatch(&img, &tree, "/slow-link", "symlink target", |t| {
        let n = id(t, "/slow-link");
        let NodeKind::Symlink(target) = &mut t.node_mut(n).kind else {
            unreachable!()
        };
        target[50] = b'y';
    });
    expect_mismatch(&img, &tree, "/odd/new\\nline", "unexpected", |t| {
        let odd = id(t, "/odd");
        let f = t.unlink(odd, b"new\nline").unwrap();
        t.link(odd, b"new\nlinf", f).unwrap();
    });
    expect_mismatch(&img, &tree, "/etc/shared", "shares inode", |t| {
        // Same data, but a separate inode: the image's shared inode must be flagged.
        let etc = id(t, "/etc");
        let copy = t.node(id(t, "/etc/shared")).clone();
        let fresh = t.add(copy.kind, copy.meta);
        t.link(etc, b"shared", fresh).unwrap();
    });
    expect_mismatch(&img, &tree, "/shared", "link count", |t| {
        let dev = id(t, "/dev");
        t.unlink(dev, b"shared-too");
    });
    expect_mismatch(&img, &tree, "/many", "link count", |t| {
        let many = id(t, "/many");
        t.ensure_dir(many, b"sub", t.node(many).meta.clone())
            .unwrap();
    });

    // All differences at once, not just the first.
    let mut changed = tree.clone();
    changed.node_mut(id(&changed, "/etc")).meta.uid = 1;
    changed.node_mut(id(&changed, "/empty")).meta.gid = 1;
    changed.node_mut(id(&changed, "/dev/fifo")).meta.permissions = 0;
    let mismatches = image_mismatches(&img, &changed, &no_crtime());
    assert_eq!(mismatches.len(), 3, "{mismatches:#?}");
}

#[test]
fn mounted_comparison_reports_differences() {
    let work = tempfile::tempdir().unwrap();
    let Some((img, tree)) = reference_image(work.path()) else {
        return;
    };
    let mount = match banger_testkit::loop_mount_ro(&img) {
        Ok(m) => m,
        Err(skip) => return skip.report(),
    };
    // mkfs -d stored only whole seconds and the mount reads what it stored.
    let opts = CompareOptions {
        crtime: false,
        ..CompareOptions::default()
    };
    assert_eq!(
        mounted_mismatches(mount.path(), &tree, &opts),
        Vec::<String>::new()
    );
    let mut changed = tree.clone();
    let n = changed.lookup_path(b"/dev/nvme").unwrap();
    changed.node_mut(n).kind = NodeKind::BlockDevice(DeviceNumber {
        major: 259,
        minor: 7,
    });
    let n = changed.lookup_path(b"/acl-dir").unwrap();
    changed.node_mut(n).meta.xattrs.clear();
    let mismatches = mounted_mismatches(mount.path(), &changed, &opts);
    assert_eq!(mismatches.len(), 2, "{mismatches:#?}");
}

/// A real rootfs nobody here wrote (about 8000 entries, setuid binaries,
/// hard links, an ACL) read into a tree and copied by `mkfs.ext4 -d`.
#[test]
fn debootstrap_rootfs_image_matches_its_tree() {
    let Some(root) = banger_testkit::debootstrap::debootstrap_tree() else {
        return;
    };
    let tree = banger_testkit::materialize::tree_from_dir(&root).expect("read the rootfs");
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("debootstrap.img");
    mkfs_ext4(&img, "1G", Some(&root)).expect("mkfs.ext4 -d");
    assert_fsck_clean(&img);
    let expected = as_mkfs_stores_it(&tree, &img).expect("expected mkfs tree");
    assert_image_matches_tree(&img, &expected, &no_crtime());
}

#[test]
fn debootstrap_tree_is_a_real_rootfs() {
    let Some(root) = banger_testkit::debootstrap::debootstrap_tree() else {
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    let su = std::fs::metadata(root.join("usr/bin/su")).expect("su in the debootstrap tree");
    assert_eq!(su.permissions().mode() & 0o4000, 0o4000, "su is setuid");
    assert!(
        root.join("usr/lib/systemd/systemd").exists() || root.join("lib/systemd/systemd").exists()
    );
}
