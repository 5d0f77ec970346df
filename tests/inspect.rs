//! `banger image ls|cat|stat|export` against images written from known
//! trees: the expectations are written by hand, inode numbers come from
//! debugfs, and the exported tar is read back by GNU tar and by
//! `banger rootfs tar:`, whose image must equal the original.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use banger_testkit::debugfs::{parse_ls, run_batch};
use banger_testkit::materialize::tree_from_dir;
use banger_testkit::{assert_fsck_clean, assert_image_matches_tree, loop_mount_ro, CompareOptions};

/// Every entry of the known tree has this mtime: 2020-09-13 12:26:40 UTC.
const MTIME: u64 = 1_600_000_000;
/// `setcap cap_net_bind_service,cap_net_raw+ep` (vfs_cap_data revision 2).
const NET_EP: &str = "0100000200240000000000000000000000000000";
/// `setfacl -m u:1000:rw,g:100:r` in the VFS format (EXT4-FACTS §7).
const ACL: &str = "02000000010006 00ffffffff02000600e80300000400 0400ffffffff0800040064000000\
                   10000600ffffffff20000400ffffffff";

struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs banger with a private store, UTC times and a fixed creation time.
    fn banger(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_banger"))
            .args(args)
            .env("TZ", "UTC")
            .env("SOURCE_DATE_EPOCH", MTIME.to_string())
            .env("BANGER_STATE_DIR", self.path("state"))
            .env("BANGER_CACHE_DIR", self.path("cache"))
            .output()
            .unwrap()
    }

    /// Runs banger and returns its stdout, failing the test on a non-zero exit.
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.banger(args);
        assert!(
            out.status.success(),
            "banger {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn text(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok(args)).unwrap()
    }

    /// `banger rootfs tar:TAR -o IMG --no-agents`, then e2fsck on the image.
    fn rootfs_from_tar(&self, tar: &Path, img: &Path) {
        self.ok(&[
            "rootfs",
            &format!("tar:{}", tar.display()),
            "-o",
            img.to_str().unwrap(),
            "--no-agents",
            "--quiet",
        ]);
        assert_fsck_clean(img);
    }
}

/// The sparse file of the known tree: 1 MiB, 4 KiB of 'S' at 64 KiB.
fn sparse_contents() -> Vec<u8> {
    let mut sparse = vec![0u8; 1 << 20];
    sparse[65536..65536 + 4096].fill(b'S');
    sparse
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text.replace([' ', '\n'], "")).unwrap()
}

fn long_target() -> String {
    format!("a/{}/c", "b".repeat(255))
}

/// The known tree as a pax tar: a hard link, a sparse file (GNU sparse
/// 1.0, written by hand), devices in both encodings, a FIFO, a capability,
/// an ACL, a user xattr, a 259-byte symlink with a 255-byte component and a
/// time before 1970.
fn known_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(size);
        h.set_mtime(MTIME);
        h
    };
    let add = |b: &mut tar::Builder<Vec<u8>>, mut h: tar::Header, path: &str, data: &[u8]| {
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    };
    use tar::EntryType::*;
    add(&mut b, header(Directory, 0o755, 0, 0, 0), "./", b"");
    add(&mut b, header(Directory, 0o750, 1000, 100, 0), "./d/", b"");
    add(
        &mut b,
        header(Regular, 0o644, 1000, 100, 6),
        "./d/f",
        b"hello\n",
    );
    let mut link = header(Link, 0o644, 1000, 100, 0);
    link.set_link_name("./d/f").unwrap();
    add(&mut b, link, "./d/h", b"");
    add(&mut b, header(Directory, 0o755, 0, 0, 0), "./dev/", b"");
    let mut null = header(Char, 0o666, 0, 0, 0);
    null.set_device_major(1).unwrap();
    null.set_device_minor(3).unwrap();
    add(&mut b, null, "./dev/null", b"");
    let mut big = header(Block, 0o660, 0, 6, 0);
    big.set_device_major(259).unwrap();
    big.set_device_minor(65536).unwrap();
    add(&mut b, big, "./dev/big", b"");
    add(&mut b, header(Fifo, 0o600, 0, 0, 0), "./p", b"");
    b.append_pax_extensions([("SCHILY.xattr.security.capability", unhex(NET_EP).as_slice())])
        .unwrap();
    add(&mut b, header(Regular, 0o755, 0, 0, 5), "./ping", b"ping\n");
    let acl = unhex(ACL);
    b.append_pax_extensions([
        ("SCHILY.xattr.system.posix_acl_access", acl.as_slice()),
        ("SCHILY.xattr.user.note", b"hi".as_slice()),
    ])
    .unwrap();
    add(&mut b, header(Regular, 0o640, 0, 0, 0), "./acl", b"");
    let target = long_target();
    b.append_pax_extensions([("linkpath", target.as_bytes())])
        .unwrap();
    add(&mut b, header(Symlink, 0o777, 0, 0, 0), "./long", b"");
    let mut short = header(Symlink, 0o777, 0, 0, 0);
    short.set_link_name("d/f").unwrap();
    add(&mut b, short, "./short", b"");
    // 1 MiB with 4 KiB of 'S' at 64 KiB: GNU sparse 1.0, map block then data.
    b.append_pax_extensions([
        ("GNU.sparse.major", b"1".as_slice()),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.name", b"./sparse"),
        ("GNU.sparse.realsize", b"1048576"),
    ])
    .unwrap();
    let mut body = b"2\n65536\n4096\n1048576\n0\n".to_vec();
    body.resize(512, 0);
    body.extend(std::iter::repeat_n(b'S', 4096));
    add(
        &mut b,
        header(Regular, 0o644, 0, 0, body.len() as u64),
        "./GNUSparseFile.0/sparse",
        &body,
    );
    // 1969-01-01T00:00:00Z.
    b.append_pax_extensions([("mtime", b"-31536000".as_slice())])
        .unwrap();
    add(&mut b, header(Regular, 0o644, 0, 0, 4), "./neg", b"old\n");
    b.into_inner().unwrap()
}

/// Writes the known tree's image and checks it with e2fsck.
fn known_image(work: &Work) -> PathBuf {
    let tar = work.path("known.tar");
    fs::write(&tar, known_tar()).unwrap();
    let img = work.path("known.ext4");
    work.rootfs_from_tar(&tar, &img);
    img
}

#[test]
fn ls_lists_the_known_tree_as_written() {
    let work = Work::new();
    let img = known_image(&work);
    let img = img.to_str().unwrap();
    let long = long_target();
    let expected = format!(
        "\
-rw-r-----   1     0     0          0 2020-09-13 12:26 acl
drwxr-x---   2  1000   100       4096 2020-09-13 12:26 d
drwxr-xr-x   2     0     0       4096 2020-09-13 12:26 dev
lrwxrwxrwx   1     0     0        259 2020-09-13 12:26 long -> {long}
drwx------   2     0     0      16384 2020-09-13 12:26 lost+found
-rw-r--r--   1     0     0          4 1969-01-01 00:00 neg
prw-------   1     0     0          0 2020-09-13 12:26 p
-rwxr-xr-x   1     0     0          5 2020-09-13 12:26 ping
lrwxrwxrwx   1     0     0          3 2020-09-13 12:26 short -> d/f
-rw-r--r--   1     0     0    1048576 2020-09-13 12:26 sparse
"
    );
    assert_eq!(work.text(&["image", "ls", img, "/", "-l"]), expected);
    assert_eq!(
        work.text(&["image", "ls", img, "/dev", "-l"]),
        "\
brw-rw----   1     0     6 259, 65536 2020-09-13 12:26 big
crw-rw-rw-   1     0     0       1, 3 2020-09-13 12:26 null
"
    );
    assert_eq!(
        work.text(&["image", "ls", img, "/d", "-l"]),
        "\
-rw-r--r--   2  1000   100          6 2020-09-13 12:26 f
-rw-r--r--   2  1000   100          6 2020-09-13 12:26 h
"
    );
    assert_eq!(
        work.text(&["image", "ls", img, "/", "-R"]),
        "/acl\n/d\n/d/f\n/d/h\n/dev\n/dev/big\n/dev/null\n/long\n/lost+found\n/neg\n/p\n/ping\n/short\n/sparse\n"
    );
    let missing = work.banger(&["image", "ls", img, "/d/nope", "-l"]);
    assert_eq!(
        missing.status.code(),
        Some(3),
        "a missing path is 'not found'"
    );
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "error: reading the image: /d/nope: no such file or directory\n"
    );
    // A single file lists as itself; a symlink to a directory lists the directory.
    assert_eq!(work.text(&["image", "ls", img, "/d/f"]), "f\n");
    assert_eq!(work.text(&["image", "ls", img, "/short"]), "short\n");
}

#[test]
fn cat_reads_files_through_links_and_holes() {
    let work = Work::new();
    let img = known_image(&work);
    let img = img.to_str().unwrap();
    assert_eq!(work.ok(&["image", "cat", img, "/d/h"]), b"hello\n");
    assert_eq!(work.ok(&["image", "cat", img, "/short"]), b"hello\n");
    assert_eq!(work.ok(&["image", "cat", img, "/dev/../d/f"]), b"hello\n");
    assert!(work.ok(&["image", "cat", img, "/sparse"]) == sparse_contents());

    let missing = work.banger(&["image", "cat", img, "/d/nope"]);
    assert_eq!(
        missing.status.code(),
        Some(3),
        "a missing path is 'not found'"
    );
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "error: /d/nope: no such file or directory\n"
    );
    let dir = work.banger(&["image", "cat", img, "/d"]);
    assert_eq!(dir.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&dir.stderr),
        "error: /d: not a regular file\n"
    );
}

#[test]
fn stat_shows_inodes_xattrs_acls_and_capabilities() {
    let work = Work::new();
    let img = known_image(&work);
    // Inode numbers from debugfs, the independent reader.
    let batch = run_batch(&img, &[b"ls -p /d".to_vec(), b"ls -p /".to_vec()]).unwrap();
    let ino = |listing: &[u8], name: &[u8]| {
        parse_ls(listing)
            .unwrap()
            .into_iter()
            .find(|e| e.name == name)
            .unwrap()
            .ino
    };
    let f = ino(&batch.outputs[0], b"f");
    let ping = ino(&batch.outputs[1], b"ping");
    let acl = ino(&batch.outputs[1], b"acl");
    let img = img.to_str().unwrap();

    let at = "2020-09-13T12:26:40.000000000Z";
    assert_eq!(
        work.text(&["image", "stat", img, "/d/h"]),
        format!(
            "  File: /d/h\n  Type: regular file\n Inode: {f}  Links: 2\n  \
             Mode: 0644 (-rw-r--r--)  Uid: 1000  Gid: 100\n  Size: 6  Blocks: 8\n\
             Access: {at}\nModify: {at}\nChange: {at}\n Birth: {at}\n"
        )
    );
    let ping_stat = work.text(&["image", "stat", img, "/ping"]);
    assert!(
        ping_stat.contains(&format!(" Inode: {ping}  Links: 1\n")),
        "{ping_stat}"
    );
    assert!(
        ping_stat.ends_with(&format!(
            "Xattrs:\n  security.capability = 0x{NET_EP}\n    cap_net_bind_service,cap_net_raw=ep\n"
        )),
        "{ping_stat}"
    );
    let acl_stat = work.text(&["image", "stat", img, "/acl"]);
    assert!(
        acl_stat.contains(&format!(" Inode: {acl}  Links: 1\n")),
        "{acl_stat}"
    );
    let acl_hex = ACL.replace(' ', "");
    assert!(
        acl_stat.ends_with(&format!(
            "Xattrs:\n  system.posix_acl_access = 0x{acl_hex}\n    user::rw-\n    user:1000:rw-\n    \
             group::r--\n    group:100:r--\n    mask::rw-\n    other::r--\n  user.note = \"hi\"\n"
        )),
        "{acl_stat}"
    );
    let big = work.text(&["image", "stat", img, "/dev/big"]);
    assert!(big.contains("  Type: block special file\n"), "{big}");
    assert!(big.contains("Device: 259:65536\n"), "{big}");
    let long = work.text(&["image", "stat", img, "/long"]);
    assert!(
        long.contains(&format!("Target: {}\n", long_target())),
        "{long}"
    );
    assert!(long.contains("  Size: 259  Blocks: 8\n"), "{long}");
    let neg = work.text(&["image", "stat", img, "/neg"]);
    assert!(
        neg.contains("Modify: 1969-01-01T00:00:00.000000000Z\n"),
        "{neg}"
    );
}

/// GNU tar's verbose listing of a tar, for checking what an export holds.
fn gnu_tar_listing(tar: &Path) -> String {
    let out = Command::new("tar")
        .args(["--numeric-owner", "--full-time", "-tvf"])
        .arg(tar)
        .env("TZ", "UTC")
        .output()
        .expect("GNU tar is a test dependency");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn export_round_trips_the_known_tree() {
    let work = Work::new();
    let img = known_image(&work);
    let exported = work.path("export.tar");
    work.ok(&[
        "image",
        "export",
        img.to_str().unwrap(),
        "-o",
        exported.to_str().unwrap(),
    ]);
    // What GNU tar sees, written by hand.
    let t = "2020-09-13 12:26:40";
    let long = long_target();
    let expected = format!(
        "\
drwxr-xr-x 0/0               0 {t} ./
-rw-r----- 0/0               0 {t} ./acl
drwxr-x--- 1000/100          0 {t} ./d/
-rw-r--r-- 1000/100          6 {t} ./d/f
hrw-r--r-- 1000/100          0 {t} ./d/h link to ./d/f
drwxr-xr-x 0/0               0 {t} ./dev/
brw-rw---- 0/6       259,65536 {t} ./dev/big
crw-rw-rw- 0/0             1,3 {t} ./dev/null
lrwxrwxrwx 0/0               0 {t} ./long -> {long}
drwx------ 0/0               0 {t} ./lost+found/
-rw-r--r-- 0/0               4 1969-01-01 00:00:00 ./neg
prw------- 0/0               0 {t} ./p
-rwxr-xr-x 0/0               5 {t} ./ping
lrwxrwxrwx 0/0               0 {t} ./short -> d/f
-rw-r--r-- 0/0         1048576 {t} ./sparse
"
    );
    assert_eq!(gnu_tar_listing(&exported), expected);

    // GNU tar restores the sparse file with its hole and its data.
    let extracted = work.path("extracted");
    fs::create_dir(&extracted).unwrap();
    let status = Command::new("tar")
        .args(["-xf"])
        .arg(&exported)
        .arg("-C")
        .arg(&extracted)
        .arg("./sparse")
        .status()
        .unwrap();
    assert!(status.success());
    assert!(fs::read(extracted.join("sparse")).unwrap() == sparse_contents());
    // And the export is sparse, not 1 MiB of zeros GNU tar would write out:
    // the extracted file has its 4 KiB of data allocated, not 1 MiB (a dense
    // entry is extracted dense), and the whole tar is smaller than the file.
    let stat = Command::new("stat")
        .args(["--format=%b %B %s"])
        .arg(extracted.join("sparse"))
        .output()
        .unwrap();
    assert!(stat.status.success());
    let stat = String::from_utf8(stat.stdout).unwrap();
    let fields: Vec<u64> = stat
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    let (allocated, apparent) = (fields[0] * fields[1], fields[2]);
    assert_eq!(apparent, 1 << 20, "{stat}");
    assert!(
        allocated <= 64 << 10,
        "GNU tar extracted {allocated} bytes allocated for a 4 KiB-data sparse file: {stat}"
    );
    let tar_size = fs::metadata(&exported).unwrap().len();
    assert!(tar_size < 1 << 20, "the export is {tar_size} bytes");

    // Re-imported, the tar gives the same tree: the same listing, and the
    // same metadata, xattrs and data as the kernel reads the original.
    let again = work.path("again.ext4");
    work.rootfs_from_tar(&exported, &again);
    let listing = |img: &Path| work.text(&["image", "ls", img.to_str().unwrap(), "/", "-lR"]);
    assert_eq!(listing(&again), listing(&img));
    compare_images(&img, &again);
}

/// Asserts that `copy` holds the tree `original` does, read by the kernel
/// (a read-only loop mount of the original) and checked in the copy by
/// ext4-view and debugfs. Change times are compared too: the export
/// carries them. Without root it is skipped, loudly.
fn compare_images(original: &Path, copy: &Path) {
    let mount = match loop_mount_ro(original) {
        Ok(mount) => mount,
        Err(skip) => return skip.report(),
    };
    let tree = tree_from_dir(mount.path()).unwrap();
    let options = CompareOptions {
        crtime: false,
        ..CompareOptions::default()
    };
    assert_image_matches_tree(copy, &tree, &options);
    drop(mount);
}

#[test]
fn export_round_trips_the_debian_image() {
    let Some(root) = banger_testkit::debootstrap::debootstrap_tree() else {
        return;
    };
    let work = Work::new();
    let source = work.path("debian.tar");
    let status = Command::new("tar")
        .args([
            "--format=pax",
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-C",
        ])
        .arg(&root)
        .arg("-cf")
        .arg(&source)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let original = work.path("debian.ext4");
    work.rootfs_from_tar(&source, &original);
    let exported = work.path("exported.tar");
    work.ok(&[
        "image",
        "export",
        original.to_str().unwrap(),
        "-o",
        exported.to_str().unwrap(),
    ]);
    let copy = work.path("copy.ext4");
    work.rootfs_from_tar(&exported, &copy);
    compare_images(&original, &copy);

    // The store name works as well as the file, and stdout as well as a file.
    work.ok(&[
        "image",
        "pull",
        &format!("tar:{}", source.display()),
        "--name",
        "deb",
        "--no-agents",
        "--quiet",
    ]);
    let os_release = work.ok(&["image", "cat", "deb", "/etc/os-release"]);
    assert_eq!(
        os_release,
        fs::read(root.join("usr/lib/os-release")).unwrap()
    );
    let streamed = work.ok(&["image", "export", "deb", "-o", "-"]);
    assert_eq!(
        streamed.len() as u64,
        fs::metadata(&exported).unwrap().len()
    );
}
