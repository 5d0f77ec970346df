//! `banger rootfs --modules-from DIR`: a kernel's modules written into the
//! image, checked against what the host's kmod says about the same modules.
//!
//! Debian's cloud kernel (`scripts/guest-kernel`) is the input. The oracle
//! for which modules the guest needs is `modinfo -F depends`, followed
//! recursively; for the indexes, the host's `depmod -b` run over a copy of
//! exactly the modules banger wrote. The image is read back with ext4-view
//! and checked with `e2fsck -fn`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use banger_testkit::skip::system_tool;
use banger_testkit::{assert_fsck_clean, Skip};

/// The modules banger's `--modules guest` asks for, spelled out by hand.
const WANTED: [&str; 7] = [
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "virtio_mmio",
    "vsock",
    "vmw_vsock_virtio_transport",
    "vsock_loopback",
];

/// The kernel's module directory (`.../lib/modules/RELEASE`) and release.
fn guest_kernel() -> Result<(PathBuf, String), Skip> {
    for tool in ["depmod", "modinfo"] {
        if !system_tool(tool).is_file() {
            return Err(Skip(format!("needs kmod's {tool}")));
        }
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/guest-kernel");
    let output = Command::new("bash")
        .arg(script)
        .output()
        .map_err(|e| Skip(format!("cannot run {script}: {e}")))?;
    match output.status.code() {
        Some(0) => {}
        Some(2) => return Err(Skip(String::from_utf8_lossy(&output.stderr).into_owned())),
        _ => panic!(
            "{script} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let release = fs::read_to_string(dir.join("release"))
        .expect("release")
        .trim()
        .to_owned();
    Ok((dir.join("lib/modules").join(&release), release))
}

/// Every `.ko` under `dir`: module name (`-` as `_`) -> path relative to `dir`.
fn module_files(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            {
                let relative = path.strip_prefix(dir).expect("under dir").to_path_buf();
                found.insert(stem.replace('-', "_"), relative);
            }
        }
    }
    found
}

/// `WANTED` and what they depend on, by `modinfo -F depends`.
fn modinfo_closure(dir: &Path, files: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let builtin: BTreeSet<String> = fs::read_to_string(dir.join("modules.builtin"))
        .expect("modules.builtin")
        .lines()
        .filter_map(|l| l.rsplit('/').next()?.strip_suffix(".ko"))
        .map(|m| m.replace('-', "_"))
        .collect();
    let mut needed = BTreeSet::new();
    let mut todo: Vec<String> = WANTED.iter().map(|m| m.to_string()).collect();
    while let Some(module) = todo.pop() {
        if builtin.contains(&module) || !needed.insert(module.clone()) {
            continue;
        }
        let path = dir.join(&files[&module]);
        let out = Command::new(system_tool("modinfo"))
            .args(["-F", "depends"])
            .arg(&path)
            .output()
            .expect("modinfo");
        todo.extend(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .split(',')
                .filter(|d| !d.is_empty())
                .map(|d| d.replace('-', "_")),
        );
    }
    needed
}

/// A merged-usr root as a tar: `/lib` is a link to `usr/lib`.
fn merged_usr_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for dir in ["usr/", "usr/lib/", "etc/"] {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        builder.append_data(&mut header, dir, &[][..]).expect("dir");
    }
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_mode(0o777);
    header.set_size(0);
    builder
        .append_link(&mut header, "lib", "usr/lib")
        .expect("symlink");
    builder.into_inner().expect("tar")
}

fn rootfs(work: &Path, modules_dir: &Path, set: &str) -> PathBuf {
    let tar = work.join("root.tar");
    fs::write(&tar, merged_usr_tar()).expect("tar");
    let image = work.join(format!("{set}.ext4"));
    let output = Command::new(env!("CARGO_BIN_EXE_banger"))
        .arg("rootfs")
        .arg(format!("tar:{}", tar.display()))
        .arg("-o")
        .arg(&image)
        .arg("--modules-from")
        .arg(modules_dir)
        .args(["--modules", set, "--quiet"])
        .env("BANGER_CACHE_DIR", work.join("cache"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("run banger");
    assert!(
        output.status.success(),
        "banger rootfs --modules {set} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_fsck_clean(&image);
    image
}

/// Every `.ko` in the image under `root`, relative to it.
fn image_modules(fs: &ext4_view::Ext4, root: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs.read_dir(dir.as_str()).expect("read_dir") {
            let entry = entry.expect("entry");
            let name = entry.file_name().as_str().expect("utf-8").to_owned();
            if name == "." || name == ".." {
                continue;
            }
            let path = format!("{dir}/{name}");
            if entry.file_type().expect("type").is_dir() {
                stack.push(path);
            } else if name.ends_with(".ko") {
                found.insert(path[root.len() + 1..].to_owned());
            }
        }
    }
    found
}

#[test]
fn guest_modules_land_under_lib_modules_with_depmods_indexes() {
    let (dir, release) = match guest_kernel() {
        Ok(k) => k,
        Err(skip) => {
            skip.report();
            return;
        }
    };
    let files = module_files(&dir);
    let needed = modinfo_closure(&dir, &files);
    let work = tempfile::tempdir().expect("tempdir");
    let image = rootfs(work.path(), &dir, "guest");
    let fs = ext4_view::Ext4::load_from_path(&image).expect("ext4-view");
    // Written through the image's own /lib -> usr/lib.
    let root = format!("/usr/lib/modules/{release}");
    let written = image_modules(&fs, &root);
    let expected: BTreeSet<String> = needed
        .iter()
        .map(|m| files[m].to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        written, expected,
        "the modules written are modinfo's closure"
    );
    for path in &written {
        let metadata = fs
            .metadata(format!("{root}/{path}").as_str())
            .expect("stat");
        assert_eq!((metadata.uid(), metadata.gid()), (0, 0), "{path}");
        assert_eq!(metadata.mode() & 0o7777, 0o644, "{path}");
        assert_eq!(
            fs.read(format!("{root}/{path}").as_str()).expect("read"),
            fs::read(dir.join(path)).expect("read source"),
            "{path}"
        );
    }

    // The host's depmod over the same modules writes the same indexes.
    let base = work.path().join("depmod");
    let tree = base.join("lib/modules").join(&release);
    for path in &written {
        let to = tree.join(path);
        fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        fs::copy(dir.join(path), to).expect("copy");
    }
    for list in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        fs::copy(dir.join(list), tree.join(list)).expect("copy list");
    }
    let status = Command::new(system_tool("depmod"))
        .arg("-b")
        .arg(&base)
        .arg(&release)
        .status()
        .expect("depmod");
    assert!(status.success());
    for index in [
        "modules.dep",
        "modules.dep.bin",
        "modules.alias",
        "modules.alias.bin",
        "modules.symbols",
        "modules.symbols.bin",
        "modules.softdep",
        "modules.devname",
        "modules.builtin.bin",
        "modules.builtin.alias.bin",
    ] {
        assert_eq!(
            fs.read(format!("{root}/{index}").as_str())
                .unwrap_or_else(|e| panic!("{index}: {e}")),
            fs::read(tree.join(index)).expect("depmod's"),
            "{index} differs from depmod's"
        );
    }
}

#[test]
fn all_or_no_modules() {
    let (dir, release) = match guest_kernel() {
        Ok(k) => k,
        Err(skip) => {
            skip.report();
            return;
        }
    };
    let work = tempfile::tempdir().expect("tempdir");
    let image = rootfs(work.path(), &dir, "all");
    let fs = ext4_view::Ext4::load_from_path(&image).expect("ext4-view");
    let root = format!("/usr/lib/modules/{release}");
    let written = image_modules(&fs, &root);
    let on_disk: BTreeSet<String> = module_files(&dir)
        .values()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, on_disk, "--modules all writes every module");

    let image = rootfs(work.path(), &dir, "none");
    let fs = ext4_view::Ext4::load_from_path(&image).expect("ext4-view");
    assert!(
        !fs.exists("/usr/lib/modules").expect("exists"),
        "--modules none writes no modules"
    );
}
