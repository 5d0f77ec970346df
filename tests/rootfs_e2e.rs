//! End-to-end acceptance tests of `banger rootfs`: the real binary, every
//! transport, judged by `e2fsck -fn` and a full read-back against what the
//! layers mean (trees written by hand, entry by entry, with the documented
//! agent files), plus a real Debian rootfs through a real registry and the
//! errors bad input must give.

mod support;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use banger::ext4::tree::{DeviceNumber, FileContent, Metadata, NodeId, NodeKind, Timestamp, Tree};
use banger::inject::{AGENT_BINARY, INIT_BINARY};
use banger_testkit::debugfs::{parse_stat, run_batch};
use banger_testkit::{assert_fsck_clean, assert_image_matches_tree, CompareOptions};
use sha2::{Digest as _, Sha256};
use support::cache_entries;
use support::fake::{FakeServer, Reply, Request};
use support::oci::{
    build_docker_archive, build_layout, compress, sha256, write_single_image, Comp, ImageSpec,
    LayerSpec, WrittenLayer,
};
use support::registry::TestRegistry;

/// `SOURCE_DATE_EPOCH` of every run: the root's and the agents' times.
const EPOCH: i64 = 1_700_000_000;
/// mtime of every entry the tests write.
const MTIME: u64 = 1_690_000_000;

// ------------------------------------------------------------ layer tars

/// A layer tar written entry by entry, every field as the test says.
struct LayerTar(tar::Builder<Vec<u8>>);

fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(MTIME);
    h.set_size(0);
    h
}

impl LayerTar {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.dir_owned(path, mode, 0, 0)
    }

    fn dir_owned(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut h = header(tar::EntryType::Directory, mode, uid, gid);
        self.0.append_data(&mut h, path, io::empty()).expect("dir");
        self
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.file_owned(path, mode, 0, 0, data)
    }

    fn file_owned(&mut self, path: &str, mode: u32, uid: u64, gid: u64, data: &[u8]) -> &mut Self {
        let mut h = header(tar::EntryType::Regular, mode, uid, gid);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, path, data).expect("file");
        self
    }

    /// A file with `SCHILY.xattr.*` PAX records, as containerd and GNU tar write them.
    fn file_xattrs(
        &mut self,
        path: &str,
        mode: u32,
        data: &[u8],
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        self.pax_xattrs(xattrs);
        self.file(path, mode, data)
    }

    fn pax_xattrs(&mut self, xattrs: &[(&str, &[u8])]) {
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(name, value)| (format!("SCHILY.xattr.{name}"), *value))
            .collect();
        self.0
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
            .expect("pax");
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0);
        self.0.append_link(&mut h, path, target).expect("symlink");
        self
    }

    fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Link, 0o644, 0, 0);
        self.0.append_link(&mut h, path, target).expect("hard link");
        self
    }

    fn device(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        gid: u64,
        dev: (u32, u32),
    ) -> &mut Self {
        let mut h = header(kind, mode, 0, gid);
        h.set_device_major(dev.0).expect("major");
        h.set_device_minor(dev.1).expect("minor");
        self.0
            .append_data(&mut h, path, io::empty())
            .expect("device");
        self
    }

    fn fifo(&mut self, path: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Fifo, 0o600, 0, 0);
        self.0.append_data(&mut h, path, io::empty()).expect("fifo");
        self
    }

    /// An entry whose name is written raw (the tar crate refuses `..` and `/abs`).
    fn raw_file(&mut self, name: &[u8], data: &[u8]) -> &mut Self {
        let mut h = header(tar::EntryType::Regular, 0o644, 0, 0);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        self.0.append(&h, data).expect("raw entry");
        self
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().expect("tar finish")
    }
}

/// A POSIX ACL in the VFS format (`SCHILY.xattr.system.posix_acl_access`):
/// user::rwx user:1000:r-x group::r-x mask::r-x other::---.
fn vfs_acl() -> Vec<u8> {
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 7u16, u32::MAX),
        (0x02, 5, 1000),
        (0x04, 5, u32::MAX),
        (0x10, 5, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    acl
}

/// `security.capability` v2 granting cap_net_raw (bit 13), effective.
fn net_raw_capability() -> Vec<u8> {
    let mut cap = 0x0200_0001u32.to_le_bytes().to_vec();
    for word in [1u32 << 13, 0, 0, 0] {
        cap.extend_from_slice(&word.to_le_bytes());
    }
    cap
}

/// Deterministic bytes that do not compress to nothing.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The base layer: every kind of entry an image holds.
fn base_layer(arch: &str) -> Vec<u8> {
    let mut t = LayerTar::new();
    t.dir("etc", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .hardlink("etc/passwd-", "etc/passwd")
        .file("etc/group", 0o644, b"root:x:0:\nshadow:x:42:\ntty:x:5:\n")
        .file_owned("etc/shadow", 0o640, 0, 42, b"root:*:19000:0:99999:7:::\n")
        .file("etc/motd", 0o644, b"to be whited out\n")
        .file("etc/arch", 0o644, arch.as_bytes())
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/su", 0o4755, &noise(3000, 1))
        .file_owned("usr/bin/wall", 0o2755, 0, 5, &noise(1000, 2))
        .file_xattrs(
            "usr/bin/ping",
            0o755,
            &noise(5000, 3),
            &[
                ("security.capability", &net_raw_capability()),
                ("user.origin", b"e2e test"),
            ],
        )
        .file("usr/bin/gunzip", 0o755, b"#!/bin/sh\nexec gzip -d \"$@\"\n")
        .hardlink("usr/bin/uncompress", "usr/bin/gunzip")
        .symlink("usr/bin/sh", "dash")
        .file("usr/bin/dash", 0o755, &noise(2000, 4))
        .dir("usr/lib", 0o755)
        .file("usr/lib/libbig.so.1", 0o644, &noise(300_000, 5))
        .symlink("usr/lib/libbig.so", "/usr/lib/libbig.so.1")
        .file("usr/lib/systemd/systemd", 0o755, b"not really systemd\n")
        .symlink("bin", "usr/bin")
        .symlink("lib", "usr/lib")
        .dir("tmp", 0o1777)
        .dir("dev", 0o755)
        .device("dev/null", tar::EntryType::Char, 0o666, 0, (1, 3))
        .device("dev/sda", tar::EntryType::Block, 0o660, 6, (8, 0))
        .dir("run", 0o755)
        .fifo("run/initctl")
        .dir("var/log", 0o755);
    t.pax_xattrs(&[("system.posix_acl_access", &vfs_acl())]);
    t.dir("var/log/journal", 0o2755)
        .file("var/cache/apt/pkgcache.bin", 0o644, &noise(4000, 6))
        .dir("opt/app", 0o755)
        .file("opt/app/old", 0o644, b"old\n")
        .file("opt/app/sub/deep", 0o644, b"deep\n")
        .dir_owned("home/user", 0o700, 1000, 1000)
        .file_owned("home/user/notes", 0o600, 1000, 1000, b"mine\n");
    t.finish()
}

/// Whiteouts, an opaque directory, an overwritten hard-link target, a hard
/// link across layers.
fn middle_layer() -> Vec<u8> {
    let mut t = LayerTar::new();
    t.file("etc/.wh.motd", 0o644, b"")
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/bash\n")
        .file("opt/app/.wh..wh..opq", 0o644, b"")
        .file("opt/app/new", 0o644, b"new\n")
        .file("var/.wh.cache", 0o644, b"")
        .hardlink("usr/bin/zcat", "usr/bin/gunzip")
        .file("usr/lib/os-release", 0o644, b"ID=banger-e2e\n")
        .symlink("etc/os-release", "../usr/lib/os-release");
    t.finish()
}

/// A directory re-added after its whiteout, a whiteout of a setgid file.
fn top_layer() -> Vec<u8> {
    let mut t = LayerTar::new();
    t.dir("var/cache", 0o755)
        .file("var/cache/fresh", 0o644, b"fresh\n")
        .file("usr/bin/.wh.wall", 0o644, b"")
        .file("etc/hostname", 0o644, b"e2e\n");
    t.finish()
}

fn rich_layers() -> Vec<Vec<u8>> {
    vec![base_layer("amd64"), middle_layer(), top_layer()]
}

/// One tar holding every kind of entry, for the single-layer `tar:` source.
fn rootfs_tar() -> Vec<u8> {
    let mut t = LayerTar::new();
    t.dir("etc", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .hardlink("etc/passwd-", "etc/passwd")
        .file_owned("etc/shadow", 0o640, 0, 42, b"root:*:19000::::::\n")
        .file("usr/bin/su", 0o4755, &noise(3000, 7))
        .file_xattrs("usr/bin/ping", 0o755, &noise(900, 8), &[("user.x", b"y")])
        .symlink("bin", "usr/bin")
        .device("dev/null", tar::EntryType::Char, 0o666, 0, (1, 3))
        .fifo("run/fifo")
        .dir("tmp", 0o1777)
        // A whiteout in a lone layer hides nothing but must not appear.
        .file("etc/.wh.nothing", 0o644, b"")
        .file("usr/lib/data", 0o644, &noise(200_000, 9));
    t.finish()
}

// ------------------------------------------------------------ the oracle

/// What banger-init reads in an image from `support::oci::config_json`
/// (registry, `oci:` and `docker-archive:` sources), written by hand.
const OCI_INIT_JSON: &str = concat!(
    r#"{"vsock_port":52,"entrypoint":["/bin/sh"],"cmd":["-c","true"],"#,
    r#""env":["PATH=/usr/bin:/bin"],"working_dir":"/root"}"#,
    "\n"
);
/// The same for a `tar:` source, which has no config.
const TAR_INIT_JSON: &str = "{\"vsock_port\":52}\n";

/// An image's tree written by hand, entry by entry, as the layer tars above
/// mean it after whiteouts: every entry the tars name has their metadata
/// (all at `MTIME`); a parent no entry names is root-owned 0755 at the time
/// of the entry that needs it; the root is 0755 at `EPOCH`. Nothing of
/// banger's flattener or agent injection is used to build it.
struct Expected(Tree);

impl Expected {
    fn new() -> Self {
        Self(Tree::new(Metadata::new(0o755, Timestamp::from_secs(EPOCH))))
    }

    /// Metadata as a tar header of the tests gives it.
    fn meta(mode: u16, uid: u32, gid: u32) -> Metadata {
        let mut meta = Metadata::new(mode, Timestamp::from_secs(MTIME as i64));
        meta.uid = uid;
        meta.gid = gid;
        meta
    }

    fn put(&mut self, path: &str, kind: NodeKind, meta: Metadata) -> &mut Self {
        let implied = Metadata::new(0o755, meta.mtime);
        let slot = self
            .0
            .resolve_parent(format!("/{path}").as_bytes(), Some(&implied))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let node = self.0.add(kind, meta);
        self.0
            .link(slot.parent, &slot.name, node)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        self
    }

    fn dir(&mut self, path: &str, mode: u16) -> &mut Self {
        self.dir_owned(path, mode, 0, 0)
    }

    fn dir_owned(&mut self, path: &str, mode: u16, uid: u32, gid: u32) -> &mut Self {
        let kind = NodeKind::Directory(Default::default());
        self.put(path, kind, Self::meta(mode, uid, gid))
    }

    fn file(&mut self, path: &str, mode: u16, data: &[u8]) -> &mut Self {
        self.file_owned(path, mode, 0, 0, data)
    }

    fn file_owned(&mut self, path: &str, mode: u16, uid: u32, gid: u32, data: &[u8]) -> &mut Self {
        let kind = NodeKind::File(FileContent::from_bytes(data.to_vec()));
        self.put(path, kind, Self::meta(mode, uid, gid))
    }

    fn file_xattrs(
        &mut self,
        path: &str,
        mode: u16,
        data: &[u8],
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        let mut meta = Self::meta(mode, 0, 0);
        for (name, value) in xattrs {
            meta.xattrs.insert(name.as_bytes().to_vec(), value.to_vec());
        }
        let kind = NodeKind::File(FileContent::from_bytes(data.to_vec()));
        self.put(path, kind, meta)
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let kind = NodeKind::Symlink(target.as_bytes().to_vec());
        self.put(path, kind, Self::meta(0o777, 0, 0))
    }

    /// `path` names the node at `target` too.
    fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let node = self
            .0
            .lookup_path(format!("/{target}").as_bytes())
            .unwrap_or_else(|| panic!("{target} is missing"));
        let slot = self
            .0
            .resolve_parent(format!("/{path}").as_bytes(), None)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        self.0
            .link(slot.parent, &slot.name, node)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        self
    }

    fn device(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        mode: u16,
        gid: u32,
        dev: (u32, u32),
    ) -> &mut Self {
        let number = DeviceNumber {
            major: dev.0,
            minor: dev.1,
        };
        let kind = match kind {
            tar::EntryType::Char => NodeKind::CharDevice(number),
            _ => NodeKind::BlockDevice(number),
        };
        self.put(path, kind, Self::meta(mode, 0, gid))
    }

    fn fifo(&mut self, path: &str) -> &mut Self {
        self.put(path, NodeKind::Fifo, Self::meta(0o600, 0, 0))
    }

    /// What `banger rootfs` adds to an image without an init, root-owned at
    /// `EPOCH`: the agent files listed in docs (src/inject.rs's table), with
    /// the assets' bytes, banger's init as `/sbin/init` and its `init_json`.
    fn with_agents(&mut self, init_json: &str) -> &mut Self {
        let owned = |mode| Metadata::new(mode, Timestamp::from_secs(EPOCH));
        let file = |bytes: &[u8]| NodeKind::File(FileContent::from_bytes(bytes.to_vec()));
        let link = |target: &str| NodeKind::Symlink(target.as_bytes().to_vec());
        let agent_unit = include_str!("../assets/systemd/banger-vsock-agent.service")
            .replace("@VSOCK_PORT@", "52");
        self.put(
            "usr/local/bin/banger-vsock-agent",
            file(AGENT_BINARY),
            owned(0o755),
        )
        .put(
            "usr/local/lib/banger/banger-network.sh",
            file(include_bytes!("../assets/banger-network.sh")),
            owned(0o755),
        )
        .put(
            "usr/local/lib/banger/first-boot.sh",
            file(include_bytes!("../assets/first-boot.sh")),
            owned(0o755),
        )
        .put(
            "etc/systemd/system/banger-vsock-agent.service",
            file(agent_unit.as_bytes()),
            owned(0o644),
        )
        .put(
            "etc/systemd/system/banger-network.service",
            file(include_bytes!("../assets/systemd/banger-network.service")),
            owned(0o644),
        )
        .put(
            "etc/systemd/system/banger-first-boot.service",
            file(include_bytes!(
                "../assets/systemd/banger-first-boot.service"
            )),
            owned(0o644),
        )
        .put(
            "etc/modules-load.d/banger-vsock.conf",
            file(include_bytes!("../assets/modules-load.conf")),
            owned(0o644),
        )
        .put("var/lib/banger/first-boot-pending", file(b""), owned(0o644));
        for unit in [
            "banger-vsock-agent.service",
            "banger-network.service",
            "banger-first-boot.service",
        ] {
            self.put(
                &format!("etc/systemd/system/multi-user.target.wants/{unit}"),
                link(&format!("/etc/systemd/system/{unit}")),
                owned(0o777),
            );
        }
        self.put(
            "usr/local/sbin/banger-init",
            file(INIT_BINARY),
            owned(0o755),
        )
        .put(
            "etc/banger/init.json",
            file(init_json.as_bytes()),
            owned(0o644),
        )
        .put(
            "sbin/init",
            link("/usr/local/sbin/banger-init"),
            owned(0o777),
        )
    }

    fn tree(&self) -> Tree {
        self.0.clone()
    }
}

/// [`base_layer`] alone.
fn base_expected(arch: &str) -> Expected {
    let mut e = Expected::new();
    e.dir("etc", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .hardlink("etc/passwd-", "etc/passwd")
        .file("etc/group", 0o644, b"root:x:0:\nshadow:x:42:\ntty:x:5:\n")
        .file_owned("etc/shadow", 0o640, 0, 42, b"root:*:19000:0:99999:7:::\n")
        .file("etc/motd", 0o644, b"to be whited out\n")
        .file("etc/arch", 0o644, arch.as_bytes())
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/su", 0o4755, &noise(3000, 1))
        .file_owned("usr/bin/wall", 0o2755, 0, 5, &noise(1000, 2))
        .file_xattrs(
            "usr/bin/ping",
            0o755,
            &noise(5000, 3),
            &[
                ("security.capability", &net_raw_capability()),
                ("user.origin", b"e2e test"),
            ],
        )
        .file("usr/bin/gunzip", 0o755, b"#!/bin/sh\nexec gzip -d \"$@\"\n")
        .hardlink("usr/bin/uncompress", "usr/bin/gunzip")
        .symlink("usr/bin/sh", "dash")
        .file("usr/bin/dash", 0o755, &noise(2000, 4))
        .dir("usr/lib", 0o755)
        .file("usr/lib/libbig.so.1", 0o644, &noise(300_000, 5))
        .symlink("usr/lib/libbig.so", "/usr/lib/libbig.so.1")
        .file("usr/lib/systemd/systemd", 0o755, b"not really systemd\n")
        .symlink("bin", "usr/bin")
        .symlink("lib", "usr/lib")
        .dir("tmp", 0o1777)
        .dir("dev", 0o755)
        .device("dev/null", tar::EntryType::Char, 0o666, 0, (1, 3))
        .device("dev/sda", tar::EntryType::Block, 0o660, 6, (8, 0))
        .dir("run", 0o755)
        .fifo("run/initctl")
        .dir("var/log", 0o755)
        .dir("var/log/journal", 0o2755)
        .file("var/cache/apt/pkgcache.bin", 0o644, &noise(4000, 6))
        .dir("opt/app", 0o755)
        .file("opt/app/old", 0o644, b"old\n")
        .file("opt/app/sub/deep", 0o644, b"deep\n")
        .dir_owned("home/user", 0o700, 1000, 1000)
        .file_owned("home/user/notes", 0o600, 1000, 1000, b"mine\n");
    e.acl("var/log/journal");
    e
}

/// [`rich_layers`]: the base as [`middle_layer`] and [`top_layer`] leave it.
fn rich_expected() -> Expected {
    let mut e = Expected::new();
    e.dir("etc", 0o755)
        // The middle layer replaced passwd; the base's hard link keeps the old file.
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/bash\n")
        .file("etc/passwd-", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .file("etc/group", 0o644, b"root:x:0:\nshadow:x:42:\ntty:x:5:\n")
        .file_owned("etc/shadow", 0o640, 0, 42, b"root:*:19000:0:99999:7:::\n")
        .file("etc/arch", 0o644, b"amd64")
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("etc/hostname", 0o644, b"e2e\n")
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/su", 0o4755, &noise(3000, 1))
        .file_xattrs(
            "usr/bin/ping",
            0o755,
            &noise(5000, 3),
            &[
                ("security.capability", &net_raw_capability()),
                ("user.origin", b"e2e test"),
            ],
        )
        .file("usr/bin/gunzip", 0o755, b"#!/bin/sh\nexec gzip -d \"$@\"\n")
        .hardlink("usr/bin/uncompress", "usr/bin/gunzip")
        .hardlink("usr/bin/zcat", "usr/bin/gunzip")
        .symlink("usr/bin/sh", "dash")
        .file("usr/bin/dash", 0o755, &noise(2000, 4))
        .dir("usr/lib", 0o755)
        .file("usr/lib/libbig.so.1", 0o644, &noise(300_000, 5))
        .symlink("usr/lib/libbig.so", "/usr/lib/libbig.so.1")
        .file("usr/lib/systemd/systemd", 0o755, b"not really systemd\n")
        .file("usr/lib/os-release", 0o644, b"ID=banger-e2e\n")
        .symlink("bin", "usr/bin")
        .symlink("lib", "usr/lib")
        .dir("tmp", 0o1777)
        .dir("dev", 0o755)
        .device("dev/null", tar::EntryType::Char, 0o666, 0, (1, 3))
        .device("dev/sda", tar::EntryType::Block, 0o660, 6, (8, 0))
        .dir("run", 0o755)
        .fifo("run/initctl")
        .dir("var/log", 0o755)
        .dir("var/log/journal", 0o2755)
        // Whited out by the middle layer, made again by the top one.
        .dir("var/cache", 0o755)
        .file("var/cache/fresh", 0o644, b"fresh\n")
        // Made opaque by the middle layer.
        .dir("opt/app", 0o755)
        .file("opt/app/new", 0o644, b"new\n")
        .dir_owned("home/user", 0o700, 1000, 1000)
        .file_owned("home/user/notes", 0o600, 1000, 1000, b"mine\n");
    e.acl("var/log/journal");
    e
}

/// [`rootfs_tar`].
fn rootfs_tar_expected() -> Expected {
    let mut e = Expected::new();
    e.dir("etc", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .hardlink("etc/passwd-", "etc/passwd")
        .file_owned("etc/shadow", 0o640, 0, 42, b"root:*:19000::::::\n")
        .file("usr/bin/su", 0o4755, &noise(3000, 7))
        .file_xattrs("usr/bin/ping", 0o755, &noise(900, 8), &[("user.x", b"y")])
        .symlink("bin", "usr/bin")
        .device("dev/null", tar::EntryType::Char, 0o666, 0, (1, 3))
        .fifo("run/fifo")
        .dir("tmp", 0o1777)
        .file("usr/lib/data", 0o644, &noise(200_000, 9));
    e
}

impl Expected {
    /// Gives `path` the POSIX ACL the base layer's pax header carries.
    fn acl(&mut self, path: &str) {
        let node = self
            .0
            .lookup_path(format!("/{path}").as_bytes())
            .unwrap_or_else(|| panic!("{path} is missing"));
        self.0
            .node_mut(node)
            .meta
            .xattrs
            .insert(b"system.posix_acl_access".to_vec(), vfs_acl());
    }
}

// ------------------------------------------------------------ the binary

/// A scratch area: `out/` holds nothing but the image, `cache/` is the blob cache.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("out")).expect("out dir");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Runs `banger ARGS` with the cache here, stdin from `stdin`.
    fn banger(&self, args: &[&str], stdin: Option<Vec<u8>>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_banger"))
            .args(args)
            .env("BANGER_CACHE_DIR", self.cache())
            .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run banger");
        let writer = stdin.map(|bytes| {
            let mut pipe = child.stdin.take().expect("stdin");
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            })
        });
        let output = child.wait_with_output().expect("wait for banger");
        if let Some(writer) = writer {
            writer.join().expect("stdin writer");
        }
        output
    }

    /// `banger rootfs SOURCE -o out/NAME EXTRA...`.
    fn rootfs(
        &self,
        source: &str,
        name: &str,
        extra: &[&str],
        stdin: Option<Vec<u8>>,
    ) -> (PathBuf, Output) {
        let img = self.out(name);
        let img_arg = img.to_str().expect("utf-8 path").to_owned();
        let mut args = vec!["rootfs", source, "-o", &img_arg];
        args.extend_from_slice(extra);
        let output = self.banger(&args, stdin);
        (img, output)
    }

    /// [`Work::rootfs`] of the `tar:` source `file`, with no stdin.
    fn rootfs_tar(&self, file: &Path, name: &str, extra: &[&str]) -> (PathBuf, Output) {
        self.rootfs(&format!("tar:{}", file.display()), name, extra, None)
    }
}

/// sha256 of a file, streamed (images are sparse and large).
fn file_sha256(path: &Path) -> String {
    let mut hashing = Hashing {
        inner: io::sink(),
        hasher: Sha256::new(),
        len: 0,
    };
    io::copy(&mut fs::File::open(path).expect("open"), &mut hashing).expect("read");
    hex::encode(hashing.hasher.finalize())
}

/// Names in a directory, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit 0, the image and nothing else beside it, e2fsck clean, and every
/// path as `expected` says.
fn assert_built(output: &Output, img: &Path, expected: &Tree) {
    assert!(
        output.status.success(),
        "banger failed ({}): {}",
        output.status,
        stderr(output)
    );
    let dir = img.parent().expect("parent");
    let name = img
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let others: Vec<String> = listing(dir).into_iter().filter(|n| *n != name).collect();
    assert!(
        others.iter().all(|n| !n.starts_with('.')),
        "temporary files left beside the image: {others:?}"
    );
    assert!(img.is_file(), "{} was not written", img.display());
    assert_fsck_clean(img);
    assert_image_matches_tree(img, expected, &CompareOptions::default());
}

/// Exit non-zero, one `error:` line naming everything in `needles`, no output
/// file and nothing beside it. Returns the line.
fn assert_failed(output: &Output, img: &Path, needles: &[&str]) -> String {
    let text = stderr(output);
    assert!(
        !output.status.success(),
        "banger succeeded where it must fail; stderr: {text}"
    );
    assert_ne!(output.status.code(), Some(0));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "stderr must be one line, got:\n{text}");
    let line = lines[0];
    eprintln!("{line}");
    assert!(line.starts_with("error: "), "{line}");
    for needle in needles {
        assert!(
            line.contains(needle),
            "the error does not name {needle:?}: {line}"
        );
    }
    // No cause is printed twice (an error chain whose messages embed their sources).
    let parts: Vec<&str> = line.split(": ").filter(|p| p.len() >= 12).collect();
    let unique: BTreeSet<&str> = parts.iter().copied().collect();
    assert_eq!(
        unique.len(),
        parts.len(),
        "the error repeats itself: {line}"
    );
    assert!(!img.exists(), "{} exists after a failure", img.display());
    let dir = img.parent().expect("parent");
    let hidden: Vec<String> = listing(dir)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert_eq!(
        hidden,
        Vec::<String>::new(),
        "temporary files left in {}",
        dir.display()
    );
    line.to_owned()
}

/// An amd64 image of `layers`, compressed as `comps`.
fn amd64_image(layers: &[Vec<u8>], comps: &[Comp]) -> ImageSpec {
    image_spec("linux/amd64", layers, comps.iter().copied())
}

fn image_spec(platform: &str, layers: &[Vec<u8>], comps: impl Iterator<Item = Comp>) -> ImageSpec {
    let specs = layers
        .iter()
        .zip(comps)
        .map(|(tar, comp)| LayerSpec::from_tar(comp, tar.clone()))
        .collect();
    ImageSpec::new(platform, specs)
}

/// An OCI layout of `layers` (compressed as `comps`) under tag `tag`.
fn layout_of(dir: &Path, tag: &str, layers: &[Vec<u8>], comps: &[Comp]) -> support::oci::Layout {
    build_layout(dir, tag, &[amd64_image(layers, comps)])
}

/// The two-platform index's images: the rich image for amd64 (gzip), a
/// one-layer one for arm64 (zstd).
fn two_platform_images() -> [ImageSpec; 2] {
    [
        image_spec(
            "linux/arm64/v8",
            &[base_layer("arm64")],
            std::iter::repeat(Comp::Zstd),
        ),
        image_spec("linux/amd64", &rich_layers(), std::iter::repeat(Comp::Gzip)),
    ]
}

// ------------------------------------------------------------ transports

#[test]
fn registry_oci_manifest_gzip_and_zstd_layers_with_agents() {
    let Some(mut registry) =
        TestRegistry::start("registry_oci_manifest_gzip_and_zstd_layers_with_agents")
    else {
        return;
    };
    let work = Work::new();
    let layers = rich_layers();
    let (layout, reference) = registry.push_images(
        &work.path("layout"),
        "e2e/rich",
        "v1",
        &[amd64_image(&layers, &[Comp::Gzip, Comp::Zstd, Comp::Gzip])],
        &[],
    );

    let expected = rich_expected().with_agents(OCI_INIT_JSON).tree();
    let (img, output) = work.rootfs(&reference, "rich.ext4", &[], None);
    assert_built(&output, &img, &expected);
    let cached = cache_entries(&work.cache());
    assert!(
        cached
            .iter()
            .all(|n| !n.contains("tmp") && !n.starts_with('.')),
        "{cached:?}"
    );
    for digest in &layout.images[0].layer_digests {
        assert!(
            cached.contains(&digest[7..].to_string()),
            "{digest} not cached: {cached:?}"
        );
    }

    // From the cache alone (by digest: a tag must be asked for), the same bytes again.
    let manifest = cached
        .iter()
        .find(|name| {
            let bytes = fs::read(work.cache().join("oci/blobs/sha256").join(name)).unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .is_ok_and(|v| v.get("layers").is_some())
        })
        .expect("the manifest is cached");
    registry.stop();
    let by_digest = format!("{}/e2e/rich@sha256:{manifest}", registry.host());
    let (again, output) = work.rootfs(&by_digest, "again.ext4", &[], None);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        file_sha256(&img),
        file_sha256(&again),
        "a rebuild from the cache differs"
    );
}

#[test]
fn registry_docker_schema2_gzip_layers_no_agents() {
    let Some(registry) = TestRegistry::start("registry_docker_schema2_gzip_layers_no_agents")
    else {
        return;
    };
    let work = Work::new();
    let layers = rich_layers();
    let (_, reference) = registry.push_images(
        &work.path("layout"),
        "e2e/v2s2",
        "v2",
        &[amd64_image(&layers, &[Comp::Gzip; 3])],
        &["--format", "v2s2"],
    );
    let reference = format!("docker://{reference}");

    let (img, output) = work.rootfs(
        &reference,
        "v2s2.ext4",
        &["--no-agents", "--size", "64M"],
        None,
    );
    assert_built(&output, &img, &rich_expected().tree());
}

#[test]
fn registry_two_platform_index() {
    let Some(registry) = TestRegistry::start("registry_two_platform_index") else {
        return;
    };
    let work = Work::new();
    let images = two_platform_images();
    let (_, reference) = registry.push_images(
        &work.path("layout"),
        "e2e/multi",
        "multi",
        &images,
        &["--all"],
    );

    let (img, output) = work.rootfs(
        &reference,
        "amd64.ext4",
        &["--no-agents", "--size", "64M"],
        None,
    );
    assert_built(&output, &img, &rich_expected().tree());
    let (img, output) = work.rootfs(
        &reference,
        "arm64.ext4",
        &["--platform", "linux/arm64/v8", "--size", "64M"],
        None,
    );
    assert_built(
        &output,
        &img,
        &base_expected("arm64").with_agents(OCI_INIT_JSON).tree(),
    );
    let (img, output) = work.rootfs(
        &reference,
        "s390x.ext4",
        &["--platform", "linux/s390x"],
        None,
    );
    assert_failed(
        &output,
        &img,
        &["linux/s390x", "linux/amd64", "linux/arm64", "--platform"],
    );
}

#[test]
fn oci_layout_with_and_without_tag() {
    let work = Work::new();
    let layers = rich_layers();
    let layout = layout_of(
        &work.path("layout"),
        "t1",
        &layers,
        &[Comp::Zstd, Comp::None, Comp::Gzip],
    );
    let dir = layout.dir.to_str().unwrap();

    let (img, output) = work.rootfs(
        &format!("oci:{dir}:t1"),
        "tagged.ext4",
        &["--size", "64M"],
        None,
    );
    assert_built(
        &output,
        &img,
        &rich_expected().with_agents(OCI_INIT_JSON).tree(),
    );
    let (img, output) = work.rootfs(
        &format!("oci:{dir}"),
        "untagged.ext4",
        &["--no-agents", "--size", "64M"],
        None,
    );
    assert_built(&output, &img, &rich_expected().tree());
    // A local layout is read in place: nothing enters the cache.
    assert_eq!(cache_entries(&work.cache()), Vec::<String>::new());
}

#[test]
fn docker_archive_in_docker_save_format() {
    let work = Work::new();
    let layers = rich_layers();
    let specs: Vec<LayerSpec> = layers
        .iter()
        .map(|t| LayerSpec::from_tar(Comp::None, t.clone()))
        .collect();
    let archive = work.path("image.tar");
    build_docker_archive(&archive, &specs, false);

    let source = format!("docker-archive:{}", archive.display());
    let (img, output) = work.rootfs(&source, "archive.ext4", &["--size", "64M"], None);
    assert_built(
        &output,
        &img,
        &rich_expected().with_agents(OCI_INIT_JSON).tree(),
    );
}

#[test]
fn tar_file_plain_gzip_and_zstd() {
    let work = Work::new();
    let tar = rootfs_tar();
    let expected_plain = rootfs_tar_expected().tree();
    assert!(
        expected_plain.lookup_path(b"/etc/.wh.nothing").is_none(),
        "the oracle keeps a whiteout marker"
    );
    for (comp, name, agents) in [
        (Comp::None, "plain", false),
        (Comp::Gzip, "gzip", true),
        (Comp::Zstd, "zstd", false),
    ] {
        let file = work.path(&format!("rootfs.{name}"));
        fs::write(&file, compress(&tar, comp)).unwrap();
        let mut extra = vec!["--size", "64M"];
        if !agents {
            extra.push("--no-agents");
        }
        let (img, output) = work.rootfs_tar(&file, &format!("{name}.ext4"), &extra);
        assert_built(&output, &img, &{
            let mut expected = rootfs_tar_expected();
            if agents {
                expected.with_agents(TAR_INIT_JSON);
            }
            expected.tree()
        });
    }
}

/// The layers' own os-release is read back from the image being written
/// (its data is already in place when the guest is prepared), so first
/// boot's warning names a distribution it does not know.
/// A plain `tar:` file is read through 2 MiB memory-mapped windows, and
/// its file data is lent to the image writer rather than copied: files
/// that straddle windows, end mid-block, are exactly a block, hold zero
/// blocks (holes) or a single byte all land intact, among hundreds of
/// small ones whose tails are zeros the writer adds.
#[test]
fn tar_file_data_lent_from_its_map_lands_intact() {
    const MIB: usize = 1 << 20;
    let mut with_holes = noise(3 * 4096 + 700, 21);
    with_holes[4096..3 * 4096].fill(0);
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("big/five-mib".into(), noise(5 * MIB + 123, 11)),
        ("big/two-mib-less-one".into(), noise(2 * MIB - 1, 12)),
        ("big/two-mib-and-one".into(), noise(2 * MIB + 1, 13)),
        ("edge/empty".into(), Vec::new()),
        ("edge/one".into(), vec![0x5a]),
        ("edge/zero-byte".into(), vec![0]),
        ("edge/block".into(), noise(4096, 14)),
        ("edge/block-and-one".into(), noise(4097, 15)),
        ("edge/with-holes".into(), with_holes),
    ];
    for i in 0..400 {
        files.push((
            format!("small/f{i:03}"),
            noise(1 + i * 37 % 9000, 100 + i as u64),
        ));
    }
    let mut t = LayerTar::new();
    let mut e = Expected::new();
    for dir in ["big", "edge", "small"] {
        t.dir(dir, 0o755);
        e.dir(dir, 0o755);
    }
    for (path, data) in &files {
        t.file(path, 0o644, data);
        e.file(path, 0o644, data);
    }
    let tar = t.finish();
    assert!(tar.len() > 6 * MIB, "the tar spans several map windows");
    let work = Work::new();
    let file = work.path("lent.tar");
    fs::write(&file, &tar).unwrap();
    let (img, output) = work.rootfs_tar(&file, "lent.ext4", &["--size", "64M", "--no-agents"]);
    assert_built(&output, &img, &e.tree());
}

#[test]
fn an_unknown_distribution_in_the_layers_is_warned_about() {
    let work = Work::new();
    let mut tar = LayerTar::new();
    tar.dir("etc", 0o755)
        .file("etc/os-release", 0o644, b"NAME=Plan 9\nID=plan9\n");
    let file = work.path("plan9.tar");
    fs::write(&file, tar.finish()).unwrap();
    let (img, output) = work.rootfs_tar(&file, "plan9.ext4", &["--size", "64M"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "warning: /etc/os-release names ID=plan9 ID_LIKE=\"\", which first boot does not know"
        ),
        "{}",
        stderr(&output)
    );
    assert_fsck_clean(&img);
}

#[test]
fn tar_from_stdin() {
    let work = Work::new();
    let tar = rootfs_tar();
    let (img, output) = work.rootfs(
        "tar:-",
        "stdin.ext4",
        &["--size", "64M"],
        Some(compress(&tar, Comp::Zstd)),
    );
    assert_built(
        &output,
        &img,
        &rootfs_tar_expected().with_agents(TAR_INIT_JSON).tree(),
    );
}

/// A named pipe is read as the stream it is (a regular file would be
/// mapped), opened once, so the writer's bytes all reach the image.
#[test]
fn tar_from_a_fifo() {
    let work = Work::new();
    let fifo = work.path("rootfs.fifo");
    let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo reads nothing else.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0, "mkfifo");
    let writer = {
        let (fifo, tar) = (fifo.clone(), rootfs_tar());
        std::thread::spawn(move || fs::write(fifo, tar))
    };
    let (img, output) = work.rootfs_tar(&fifo, "fifo.ext4", &["--size", "64M", "--no-agents"]);
    writer.join().unwrap().expect("writing the FIFO");
    assert_built(&output, &img, &rootfs_tar_expected().tree());
}

// ------------------------------------------------------------ bad input

#[test]
fn path_traversal_lands_inside_the_root() {
    let work = Work::new();
    let mut t = LayerTar::new();
    t.raw_file(b"../../etc/passwd", b"inside\n")
        .raw_file(b"/abs/file", b"absolute\n")
        .raw_file(b"a/../../../escaped", b"escaped\n");
    let tar = t.finish();
    let expected = Expected::new()
        .file("etc/passwd", 0o644, b"inside\n")
        .file("abs/file", 0o644, b"absolute\n")
        .file("escaped", 0o644, b"escaped\n")
        .tree();
    for path in [&b"/etc/passwd"[..], &b"/abs/file"[..], &b"/escaped"[..]] {
        assert!(
            expected.lookup_path(path).is_some(),
            "{}",
            path.escape_ascii()
        );
    }
    let file = work.path("traversal.tar");
    fs::write(&file, &tar).unwrap();
    let (img, output) = work.rootfs_tar(&file, "t.ext4", &["--no-agents", "--size", "16M"]);
    assert_built(&output, &img, &expected);
}

#[test]
fn hard_link_to_a_missing_target_names_layer_and_entry() {
    let work = Work::new();
    let mut t = LayerTar::new();
    t.file("etc/present", 0o644, b"x")
        .hardlink("usr/bin/broken", "usr/bin/missing");
    let file = work.path("hardlink.tar");
    fs::write(&file, t.finish()).unwrap();
    let (img, output) = work.rootfs_tar(&file, "h.ext4", &[]);
    assert_failed(
        &output,
        &img,
        &["layer 0", "usr/bin/broken", "usr/bin/missing"],
    );
}

#[test]
fn truncated_gzip_layer() {
    let work = Work::new();
    let gz = compress(&rootfs_tar(), Comp::Gzip);
    let file = work.path("truncated.tar.gz");
    fs::write(&file, &gz[..gz.len() / 2]).unwrap();
    let (img, output) = work.rootfs_tar(&file, "t.ext4", &[]);
    let line = assert_failed(&output, &img, &["layer 0"]);
    assert!(
        ["truncated", "unexpected end", "end of file", "incomplete"]
            .iter()
            .any(|w| line.contains(w)),
        "does not say the stream is cut short: {line}"
    );
}

#[test]
fn diff_id_mismatch_names_the_layer() {
    let work = Work::new();
    let layers = rich_layers();
    let mut spec = image_spec("linux/amd64", &layers, std::iter::repeat(Comp::Gzip));
    spec.bad_last_diff_id = true;
    let layout = build_layout(&work.path("layout"), "bad", &[spec]);
    let source = format!("oci:{}:bad", layout.dir.display());
    let (img, output) = work.rootfs(&source, "d.ext4", &[], None);
    let short = &layout.images[0].layer_digests[2][7..19];
    assert_failed(&output, &img, &["layer 2", short, "diff_id"]);
}

/// Plain tars are hashed on their read-ahead thread, and one whose diff_id
/// is its digest only once: both checks still hold there.
#[test]
fn plain_layers_are_checked_against_their_diff_id_and_digest() {
    let work = Work::new();
    let layers = rich_layers();
    let plain = |bad_diff_id: bool| {
        let mut spec = image_spec("linux/amd64", &layers, std::iter::repeat(Comp::None));
        spec.bad_last_diff_id = bad_diff_id;
        spec
    };
    let layout = build_layout(&work.path("wrong-diff-id"), "bad", &[plain(true)]);
    let (img, output) = work.rootfs(
        &format!("oci:{}:bad", layout.dir.display()),
        "d.ext4",
        &[],
        None,
    );
    let short = &layout.images[0].layer_digests[2][7..19];
    assert_failed(&output, &img, &["layer 2", short, "diff_id"]);

    // Its digest is its diff_id: a changed byte of a file's contents (the
    // tar still parses) is the digest's to catch.
    let layout = build_layout(&work.path("changed"), "c", &[plain(false)]);
    let digest = &layout.images[0].layer_digests[2];
    let blob = layout.dir.join("blobs/sha256").join(&digest[7..]);
    let mut bytes = fs::read(&blob).unwrap();
    let at = bytes
        .windows(6)
        .position(|w| w == b"fresh\n")
        .expect("the top layer holds var/cache/fresh");
    bytes[at] = b'F';
    fs::write(&blob, bytes).unwrap();
    let (img, output) = work.rootfs(
        &format!("oci:{}:c", layout.dir.display()),
        "c.ext4",
        &[],
        None,
    );
    assert_failed(&output, &img, &["layer 2", &digest[7..19]]);
}

#[test]
fn corrupt_blob_in_an_oci_layout() {
    let work = Work::new();
    let layers = rich_layers();
    let layout = layout_of(
        &work.path("layout"),
        "c",
        &layers,
        &[Comp::Gzip, Comp::Zstd, Comp::Gzip],
    );
    // A byte of the gzip header's MTIME: the stream still inflates to the
    // right tar, so only the blob digest can tell.
    let digest = &layout.images[0].layer_digests[2];
    let blob = layout.dir.join("blobs/sha256").join(&digest[7..]);
    let mut bytes = fs::read(&blob).unwrap();
    bytes[5] ^= 0x40;
    fs::write(&blob, bytes).unwrap();

    let (img, output) = work.rootfs(
        &format!("oci:{}:c", layout.dir.display()),
        "c.ext4",
        &[],
        None,
    );
    assert_failed(&output, &img, &["layer 2", &digest[7..19], "corrupt"]);
    assert_eq!(cache_entries(&work.cache()), Vec::<String>::new());
}

/// Serves `blobs` (by digest) and the manifest tagged `tag` like a registry,
/// with `corrupt` served one byte wrong.
fn fake_registry(
    layout: &support::oci::Layout,
    tag: &'static str,
    corrupt: Option<String>,
) -> FakeServer {
    let mut blobs = std::collections::HashMap::new();
    for entry in fs::read_dir(layout.dir.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
        let mut bytes = fs::read(entry.path()).unwrap();
        if corrupt.as_ref() == Some(&digest) {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x01;
        }
        blobs.insert(digest, bytes);
    }
    let top = layout.top_digest.clone();
    let blobs = Arc::new(blobs);
    FakeServer::start("127.0.0.1", move |request: &Request| {
        let path = request.path();
        if path == "/v2/" {
            return Reply::new(200, "{}");
        }
        if let Some(reference) = path.strip_prefix("/v2/e2e/img/manifests/") {
            let digest = if reference == tag {
                top.clone()
            } else {
                reference.to_string()
            };
            return match blobs.get(&digest) {
                Some(body) => Reply::new(200, body.clone())
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .header("Docker-Content-Digest", &digest),
                None => Reply::new(
                    404,
                    r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                ),
            };
        }
        if let Some(digest) = path.strip_prefix("/v2/e2e/img/blobs/") {
            if let Some(body) = blobs.get(digest) {
                return Reply::new(200, body.clone());
            }
        }
        Reply::new(
            404,
            r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}"#,
        )
    })
}

#[test]
fn corrupt_blob_from_a_registry_is_not_cached() {
    let work = Work::new();
    let layers = rich_layers();
    let layout = layout_of(
        &work.path("layout"),
        "v1",
        &layers,
        &[Comp::Gzip, Comp::Zstd, Comp::Gzip],
    );
    let bad = layout.images[0].layer_digests[1].clone();
    let server = fake_registry(&layout, "v1", Some(bad.clone()));
    let reference = format!("{}/e2e/img:v1", server.addr);

    let (img, output) = work.rootfs(&reference, "r.ext4", &[], None);
    assert_failed(&output, &img, &[&bad[7..19]]);
    let cached = cache_entries(&work.cache());
    assert!(
        !cached.contains(&bad[7..].to_string()),
        "the corrupt blob was cached: {cached:?}"
    );
    assert!(
        cached.iter().all(|n| n.len() == 64),
        "temporary files left in the cache: {cached:?}"
    );
}

#[test]
fn schema1_manifest_is_a_clear_error() {
    let work = Work::new();
    let server = FakeServer::start("127.0.0.1", |request: &Request| {
        match request.path() {
        "/v2/" => Reply::new(200, "{}"),
        "/v2/e2e/old/manifests/v1" => Reply::new(
            200,
            r#"{"schemaVersion":1,"name":"e2e/old","tag":"v1","architecture":"amd64","fsLayers":[],"history":[]}"#,
        )
        .header("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws"),
        _ => Reply::new(404, r#"{"errors":[{"code":"NOT_FOUND","message":"not found"}]}"#),
    }
    });
    let (img, output) = work.rootfs(&format!("{}/e2e/old:v1", server.addr), "s.ext4", &[], None);
    assert_failed(&output, &img, &["schema 1", "e2e/old"]);
}

#[test]
fn unknown_platform_lists_what_exists() {
    let work = Work::new();
    build_layout(&work.path("layout"), "multi", &two_platform_images());
    let source = format!("oci:{}:multi", work.path("layout").display());
    let (img, output) = work.rootfs(&source, "p.ext4", &["--platform", "linux/riscv64"], None);
    assert_failed(
        &output,
        &img,
        &["linux/riscv64", "linux/amd64", "linux/arm64/v8"],
    );
}

#[test]
fn too_small_size_names_the_size_needed() {
    let work = Work::new();
    let file = work.path("rootfs.tar");
    fs::write(&file, rootfs_tar()).unwrap();
    let (img, output) = work.rootfs_tar(&file, "small.ext4", &["--size", "1M"]);
    let line = assert_failed(&output, &img, &["1048576", "at least"]);
    // The size it names is the truth: more than asked, and enough.
    let needed: u64 = line
        .split("at least ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size after \"at least\": {line}"));
    assert!(needed > 1 << 20, "{line}");
    let size = needed.to_string();
    let (img, output) = work.rootfs_tar(&file, "exact.ext4", &["--size", &size]);
    assert_built(
        &output,
        &img,
        &rootfs_tar_expected().with_agents(TAR_INIT_JSON).tree(),
    );
    assert_eq!(fs::metadata(&img).unwrap().len(), needed);
}

#[test]
fn a_size_past_the_largest_is_refused_and_writes_nothing() {
    let work = Work::new();
    let file = work.path("rootfs.tar");
    fs::write(&file, rootfs_tar()).unwrap();
    // 64 TiB (524 288 groups of 128 MiB, the largest size the tests check
    // with e2fsck) is the largest; one 128 MiB group more, and far more.
    for (size, bytes) in [
        ("67108992M", "70368878395392"),
        ("1024T", "1125899906842624"),
    ] {
        let (img, output) = work.rootfs_tar(&file, "huge.ext4", &["--size", size]);
        assert_failed(
            &output,
            &img,
            &[
                bytes,
                "exceeds the largest supported size of 70368744177664 bytes",
            ],
        );
    }
}

#[test]
fn help_mentions_every_transport() {
    let work = Work::new();
    let output = work.banger(&["rootfs", "--help"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "docker://",
        "oci:DIR",
        "docker-archive:FILE",
        "tar:FILE",
        "tar:-",
        "--platform",
        "--no-agents",
    ] {
        assert!(
            text.contains(needle),
            "--help does not mention {needle}:\n{text}"
        );
    }
}

// ------------------------------------------------------------ a real rootfs

/// Hashes what passes through.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams a layer blob into `layout`: `fill` writes the tar, which is hashed
/// (diff_id), compressed, hashed again (digest) and stored under its digest.
fn write_layer_blob(
    layout: &Path,
    comp: Comp,
    fill: impl FnOnce(&mut tar::Builder<Hashing<Box<dyn Write + '_>>>) -> io::Result<()>,
) -> WrittenLayer {
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let temp = blobs.join("incoming");
    let mut stored = Hashing {
        inner: fs::File::create(&temp).unwrap(),
        hasher: Sha256::new(),
        len: 0,
    };
    let diff_id = {
        let compressor: Box<dyn Write + '_> = match comp {
            Comp::None => Box::new(&mut stored),
            Comp::Gzip => Box::new(flate2::write::GzEncoder::new(
                &mut stored,
                flate2::Compression::fast(),
            )),
            Comp::Zstd => Box::new(zstd::Encoder::new(&mut stored, 1).unwrap().auto_finish()),
        };
        let mut builder = tar::Builder::new(Hashing {
            inner: compressor,
            hasher: Sha256::new(),
            len: 0,
        });
        fill(&mut builder).unwrap();
        let mut tar = builder.into_inner().unwrap();
        tar.flush().unwrap();
        let diff_id = format!("sha256:{}", hex::encode(tar.hasher.finalize()));
        drop(tar.inner); // finishes the compressed stream
        diff_id
    };
    let digest = format!("sha256:{}", hex::encode(stored.hasher.finalize()));
    fs::rename(&temp, blobs.join(&digest[7..])).unwrap();
    WrittenLayer {
        digest,
        size: stored.len,
        comp,
        diff_id,
    }
}

/// Every path under `root` (relative, parents first, names sorted).
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(root.join(&rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names.into_iter().rev() {
            let child = rel.join(name);
            if fs::symlink_metadata(root.join(&child)).unwrap().is_dir() {
                stack.push(child.clone());
            }
            out.push(child);
        }
    }
    // Parents before children: sort by path, which puts `a` before `a/b`.
    out.sort();
    out
}

/// Appends `rel` (under `root`) to a layer the way containerd writes a layer
/// from a snapshot: owners, modes, devices, PAX nanosecond mtime, PAX `path`
/// and `linkpath` when too long for the header, every xattr as
/// `SCHILY.xattr.*`, second and later names of an inode as hard links.
fn append_host_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    links: &mut std::collections::HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let host = root.join(rel);
    let meta = fs::symlink_metadata(&host)?;
    let name: &[u8] = if rel.as_os_str().is_empty() {
        b"./"
    } else {
        rel.as_os_str().as_bytes()
    };
    let ft = meta.file_type();
    let mut h = tar::Header::new_ustar();
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(u64::from(meta.uid()));
    h.set_gid(u64::from(meta.gid()));
    h.set_mtime(meta.mtime() as u64);
    h.set_size(0);
    let mut link: Option<Vec<u8>> = None;
    let mut data: Option<fs::File> = None;
    let first_name = (!ft.is_dir() && meta.nlink() > 1)
        .then(|| links.get(&(meta.dev(), meta.ino())).cloned())
        .flatten();
    if let Some(first) = first_name {
        h.set_entry_type(tar::EntryType::Link);
        link = Some(first.into_os_string().into_vec());
    } else {
        if !ft.is_dir() && meta.nlink() > 1 {
            links.insert((meta.dev(), meta.ino()), rel.to_path_buf());
        }
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
        } else if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            data = Some(fs::File::open(&host)?);
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            link = Some(fs::read_link(&host)?.into_os_string().into_vec());
        } else {
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                return Err(io::Error::other(format!(
                    "{}: a socket cannot be in a tar",
                    host.display()
                )));
            });
            h.set_device_major(rustix::fs::major(meta.rdev()))?;
            h.set_device_minor(rustix::fs::minor(meta.rdev()))?;
        }
    }
    let mut pax: Vec<(String, Vec<u8>)> = vec![(
        "mtime".into(),
        format!("{}.{:09}", meta.mtime(), meta.mtime_nsec()).into_bytes(),
    )];
    if name.len() > 100 {
        pax.push(("path".into(), name.to_vec()));
    }
    if let Some(target) = link.as_ref().filter(|t| t.len() > 100) {
        pax.push(("linkpath".into(), target.clone()));
    }
    for xattr in xattr_names(&host)? {
        let value = xattr_value(&host, &xattr)?;
        let key = format!(
            "SCHILY.xattr.{}",
            String::from_utf8(xattr).expect("utf-8 xattr name")
        );
        pax.push((key, value));
    }
    builder.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    let old = h.as_old_mut();
    let n = name.len().min(100);
    old.name[..n].copy_from_slice(&name[..n]);
    if let Some(target) = &link {
        let n = target.len().min(100);
        old.linkname[..n].copy_from_slice(&target[..n]);
    }
    h.set_cksum();
    match data {
        Some(file) => builder.append(&h, file),
        None => builder.append(&h, io::empty()),
    }
}

/// xattr names of a path (not following symlinks).
fn xattr_names(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 1 << 16];
    let n = rustix::fs::llistxattr(path, &mut buf[..])?;
    Ok(buf[..n]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

fn xattr_value(path: &Path, name: &[u8]) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 1 << 16];
    let n = rustix::fs::lgetxattr(path, OsStr::from_bytes(name), &mut buf[..])?;
    buf.truncate(n);
    Ok(buf)
}

/// The gid of `group` in an `/etc/group`.
fn group_gid(etc_group: &str, group: &str) -> u32 {
    etc_group
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(group))
                .then(|| fields.nth(1).and_then(|gid| gid.parse().ok()))
                .flatten()
        })
        .unwrap_or_else(|| panic!("no group {group} in /etc/group"))
}

#[test]
fn debootstrap_rootfs_through_a_real_registry() {
    let Some(root) = banger_testkit::debootstrap::debootstrap_tree() else {
        return;
    };
    let Some(registry) = TestRegistry::start("debootstrap_rootfs_through_a_real_registry") else {
        return;
    };
    let work = Work::new();
    let layout = work.path("layout");
    let started = std::time::Instant::now();

    // Layer 0: everything but /usr; layer 1: /usr; layer 2: whiteouts, an
    // opaque directory and new files.
    let paths = walk(&root);
    let in_usr = |p: &&PathBuf| p.starts_with("usr");
    let mut links = std::collections::HashMap::new();
    let rest = write_layer_blob(&layout, Comp::Gzip, |b| {
        append_host_entry(b, &root, Path::new(""), &mut links)?;
        for rel in paths.iter().filter(|p| !in_usr(p)) {
            append_host_entry(b, &root, rel, &mut links)?;
        }
        Ok(())
    });
    let usr = write_layer_blob(&layout, Comp::Zstd, |b| {
        for rel in paths.iter().filter(in_usr) {
            append_host_entry(b, &root, rel, &mut links)?;
        }
        Ok(())
    });
    let top = {
        let mut t = LayerTar::new();
        t.file("etc/.wh.motd", 0o644, b"")
            .file("usr/share/doc/.wh.apt", 0o644, b"")
            .file("etc/default/.wh..wh..opq", 0o644, b"")
            .file("etc/default/banger", 0o644, b"BANGER=1\n")
            .file("etc/banger-release", 0o644, b"e2e\n");
        t.finish()
    };
    let top = {
        let gz = compress(&top, Comp::Gzip);
        let (digest, size) = support::oci::write_blob(&layout, &gz);
        WrittenLayer {
            digest,
            size,
            comp: Comp::Gzip,
            diff_id: sha256(&top),
        }
    };
    write_single_image(&layout, "test", "linux/amd64", &[rest, usr, top]);
    registry.push(&layout, "test", "debian", &[]);
    eprintln!("layers written and pushed in {:?}", started.elapsed());

    let (img, output) = work.rootfs(
        &format!("{}/debian:test", registry.host()),
        "debian.ext4",
        &["--no-agents"],
        None,
    );
    assert!(
        output.status.success(),
        "banger failed: {}",
        stderr(&output)
    );
    eprintln!("banger rootfs done at {:?}", started.elapsed());
    assert_eq!(listing(&work.path("out")), ["debian.ext4"]);
    assert_fsck_clean(&img);

    // The expected tree: the debootstrap tree with layer 2 applied by hand.
    let mut expected = banger_testkit::materialize::tree_from_dir(&root).unwrap();
    let lookup = |tree: &Tree, p: &[u8]| {
        tree.lookup_path(p)
            .unwrap_or_else(|| panic!("{}", p.escape_ascii()))
    };
    let etc = lookup(&expected, b"/etc");
    assert!(
        expected.unlink(etc, b"motd").is_some(),
        "no /etc/motd to white out"
    );
    let doc = lookup(&expected, b"/usr/share/doc");
    assert!(
        expected.unlink(doc, b"apt").is_some(),
        "no /usr/share/doc/apt to white out"
    );
    let default = lookup(&expected, b"/etc/default");
    expected.clear_dir(default);
    let new_file = |tree: &mut Tree, dir: NodeId, name: &[u8], data: &[u8]| {
        let id = tree.add(
            NodeKind::File(FileContent::from_bytes(data.to_vec())),
            Metadata::new(0o644, Timestamp::from_secs(MTIME as i64)),
        );
        tree.link(dir, name, id).unwrap();
    };
    new_file(&mut expected, default, b"banger", b"BANGER=1\n");
    new_file(&mut expected, etc, b"banger-release", b"e2e\n");
    // Layers carry no atime or ctime: the flattener takes the mtime for both.
    for id in expected.reachable() {
        let meta = &mut expected.node_mut(id).meta;
        meta.atime = meta.mtime;
    }
    let options = CompareOptions {
        crtime: false,
        ctime: false,
        ..CompareOptions::default()
    };
    assert_image_matches_tree(&img, &expected, &options);
    eprintln!("read back at {:?}", started.elapsed());

    // The facts a distribution depends on, spelled out.
    let group = fs::read_to_string(root.join("etc/group")).unwrap();
    let shadow_gid = group_gid(&group, "shadow");
    let acl_paths: Vec<Vec<u8>> = paths_with_acl(&expected);
    assert!(
        !acl_paths.is_empty(),
        "the debootstrap tree has no POSIX ACL to check"
    );
    let mut commands: Vec<Vec<u8>> = [
        "stat /usr/bin/su",
        "stat /usr/bin/passwd",
        "stat /etc/shadow",
    ]
    .iter()
    .map(|c| c.as_bytes().to_vec())
    .collect();
    for path in &acl_paths {
        let mut c = b"ea_list ".to_vec();
        c.extend_from_slice(path);
        commands.push(c);
    }
    let batch = run_batch(&img, &commands).unwrap();
    for (i, path) in ["/usr/bin/su", "/usr/bin/passwd"].iter().enumerate() {
        let stat = parse_stat(&batch.outputs[i]).unwrap();
        assert_eq!(
            (stat.permissions, stat.uid, stat.gid),
            (0o4755, 0, 0),
            "{path}"
        );
    }
    let shadow = parse_stat(&batch.outputs[2]).unwrap();
    assert_eq!(
        (shadow.permissions, shadow.uid, shadow.gid),
        (0o640, 0, shadow_gid),
        "/etc/shadow"
    );
    for (path, out) in acl_paths.iter().zip(&batch.outputs[3..]) {
        let text = String::from_utf8_lossy(out);
        assert!(
            text.contains("system.posix_acl_access"),
            "{}: {text}",
            path.escape_ascii()
        );
    }
    assert_eq!(batch.errors.trim(), "", "debugfs errors");
}

/// Paths of the tree whose node carries a POSIX access ACL.
fn paths_with_acl(tree: &Tree) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut stack = vec![(Vec::new(), Tree::ROOT)];
    while let Some((path, id)) = stack.pop() {
        if tree
            .node(id)
            .meta
            .xattrs
            .contains_key(&b"system.posix_acl_access"[..])
        {
            out.push(if path.is_empty() {
                b"/".to_vec()
            } else {
                path.clone()
            });
        }
        if let Some(dir) = tree.dir(id) {
            for (name, child) in dir.iter() {
                let mut p = path.clone();
                p.push(b'/');
                p.extend_from_slice(name);
                stack.push((p, child));
            }
        }
    }
    out
}
