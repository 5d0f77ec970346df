//! banger's service definitions for sysvinit, OpenRC and busybox init,
//! judged by the systems' own tools:
//!
//! * sysvinit: in a copy of a debootstrap'd sysvinit tree, Debian's
//!   `update-rc.d NAME defaults` (insserv) links banger's scripts; the
//!   `/etc/rc?.d` links and `.depend.*` files it leaves must be what
//!   `service_files` computed from the untouched tree.
//! * OpenRC: the same with Debian's openrc and `rc-update add NAME default`,
//!   then OpenRC's own dependency solver (`rc-update -u`, `rc-depend`).
//! * busybox: the inittab against busybox's built-in table, written out by
//!   hand from `init/init.c`.
//! * every generated script: `dash -n`, `busybox sh -n`, `shellcheck`.
//! * detection: each debootstrap flavor through a real tree on disk.
//!
//! The debootstrap trees need root and network; those tests skip with a
//! message where they cannot run.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use banger::initsys::files::resolve;
use banger::initsys::{
    detect, inittab, service_files, EntryKind, ImageFiles, InitSystem, ServiceContent, ServiceFile,
    BUSYBOX_DEFAULT_INITTAB,
};
use banger_testkit::debootstrap::debootstrap_tree_flavor;
use banger_testkit::skip::{is_root, Skip};

/// [`ImageFiles`] over a directory on the host holding a root tree. The
/// trait is only asked about real paths (no symlinked parents), so `lstat`
/// below the root never leaves it.
struct HostDir(PathBuf);

impl HostDir {
    fn host(&self, path: &str) -> PathBuf {
        self.0.join(path.trim_start_matches('/'))
    }
}

impl ImageFiles for HostDir {
    fn entry(&mut self, path: &str) -> Option<EntryKind> {
        let meta = std::fs::symlink_metadata(self.host(path)).ok()?;
        let ft = meta.file_type();
        Some(if ft.is_symlink() {
            let target = std::fs::read_link(self.host(path)).ok()?;
            EntryKind::Symlink(target.to_string_lossy().into_owned())
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File {
                mode: meta.mode() & 0o7777,
            }
        } else {
            EntryKind::Other
        })
    }

    fn read(&mut self, path: &str, max: usize) -> Option<Vec<u8>> {
        let real = resolve(self, path).ok()?;
        let mut bytes = std::fs::read(self.host(&real.path)).ok()?;
        bytes.truncate(max);
        Some(bytes)
    }

    fn list_dir(&mut self, path: &str) -> Option<Vec<String>> {
        let entries = std::fs::read_dir(self.host(path)).ok()?;
        Some(
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
        )
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

/// A debootstrap tree of `flavor`, or `None` after saying why not.
fn tree(flavor: &str) -> Option<PathBuf> {
    if !is_root() {
        Skip(format!("the {flavor} debootstrap tree needs root")).report();
        return None;
    }
    debootstrap_tree_flavor(flavor)
}

/// A writable copy of `tree` (the cached tree stays untouched).
fn copy_tree(tree: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let status = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(format!("{}/.", tree.display()))
        .arg(dir.path())
        .status()
        .expect("cp");
    assert!(status.success(), "cp -a {}", tree.display());
    dir
}

/// Writes the regular files of `out` under `root` (scripts only; links and
/// removals are the tools' job in these tests).
fn write_scripts(out: &[ServiceFile], root: &Path, under: &str) {
    for f in out.iter().filter(|f| f.path.starts_with(under)) {
        if let ServiceContent::File(bytes) = &f.content {
            let path = root.join(f.path.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(u32::from(f.mode)))
                .unwrap();
        }
    }
}

/// Runs `args` chrooted into `root`; returns stdout and stderr, panicking
/// on a non-zero exit.
fn chroot(root: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new("chroot")
        .arg(root)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .output()
        .expect("chroot");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "chroot {args:?}: {stdout}{stderr}");
    (stdout, stderr)
}

/// Every symlink in the directories `dirs` (relative to `root`): guest
/// path to target.
fn links_in(root: &Path, dirs: &[String]) -> BTreeMap<String, String> {
    let mut links = BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(root.join(dir.trim_start_matches('/'))) else {
            continue;
        };
        for e in entries.map(Result::unwrap) {
            if e.file_type().unwrap().is_symlink() {
                let target = std::fs::read_link(e.path()).unwrap();
                links.insert(
                    format!("{dir}/{}", e.file_name().to_string_lossy()),
                    target.to_string_lossy().into_owned(),
                );
            }
        }
    }
    links
}

/// `before`, changed as `out` says (removals and symlinks only).
fn apply_links(before: &BTreeMap<String, String>, out: &[ServiceFile]) -> BTreeMap<String, String> {
    let mut after = before.clone();
    for f in out {
        match &f.content {
            ServiceContent::Remove => {
                assert!(
                    after.remove(&f.path).is_some(),
                    "removes missing {}",
                    f.path
                );
            }
            ServiceContent::Symlink(target) => {
                assert_eq!(f.mode, 0o777);
                after.insert(f.path.clone(), target.clone());
            }
            ServiceContent::File(_) => {}
        }
    }
    after
}

/// A `.depend.*` makefile as startpar reads it: the target list, the
/// interactive list and each rule's prerequisites, as sets.
fn makefile(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(" =").or_else(|| line.split_once(':'))?;
            Some((
                key.to_owned(),
                value.split_whitespace().map(str::to_owned).collect(),
            ))
        })
        .collect()
}

fn rc_dirs() -> Vec<String> {
    "0123456S"
        .chars()
        .map(|c| format!("/etc/rc{c}.d"))
        .collect()
}

/// Computes banger's sysvinit files from `root` as it is, then lets the
/// image's own `update-rc.d` link banger's scripts there and checks that
/// the links, the `.depend` makefiles and their modes came out as
/// computed. Returns what banger computed.
fn assert_update_rc_d_agrees(root: &Path) -> Vec<ServiceFile> {
    let out = service_files(&InitSystem::SysVinit, &mut HostDir(root.to_owned()), 52)
        .expect("service files");
    for f in out
        .iter()
        .filter(|f| !matches!(f.content, ServiceContent::File(_)))
    {
        eprintln!("{:?} {}", f.content, f.path);
    }
    let before = links_in(root, &rc_dirs());
    write_scripts(&out, root, "/etc/init.d/banger-");
    let mut stderr = String::new();
    for name in ["banger-network", "banger-vsock-agent", "banger-first-boot"] {
        let (_, err) = chroot(root, &["update-rc.d", name, "defaults"]);
        stderr.push_str(&err);
    }
    // insserv accepts the headers: not one warning for the three calls.
    assert_eq!(stderr, "", "update-rc.d printed warnings");

    let actual = links_in(root, &rc_dirs());
    let expected = apply_links(&before, &out);
    assert_eq!(
        actual, expected,
        "links: update-rc.d (left) vs banger (right)"
    );

    let depend: Vec<&ServiceFile> = out
        .iter()
        .filter(|f| f.path.starts_with("/etc/init.d/.depend."))
        .collect();
    assert_eq!(depend.len(), 3);
    for f in depend {
        let ServiceContent::File(ours) = &f.content else {
            panic!("{}", f.path)
        };
        let real_path = root.join(f.path.trim_start_matches('/'));
        let real = std::fs::read_to_string(&real_path).unwrap();
        // Order within a line is readdir-dependent; only the sets count.
        if real.as_bytes() != ours.as_slice() {
            eprintln!(
                "{}: same rules, other order:\n--- insserv\n{real}--- banger\n{}",
                f.path,
                String::from_utf8_lossy(ours)
            );
        }
        assert_eq!(
            makefile(&real),
            makefile(&String::from_utf8_lossy(ours)),
            "{}:\n--- insserv\n{real}--- banger\n{}",
            f.path,
            String::from_utf8_lossy(ours)
        );
        let mode = std::fs::metadata(&real_path).unwrap().mode() & 0o7777;
        assert_eq!(u32::from(f.mode), mode, "{}", f.path);
    }
    for f in out
        .iter()
        .filter(|f| f.path.starts_with("/etc/init.d/banger-"))
    {
        assert_eq!(f.mode, 0o755, "{}", f.path);
    }

    // Running banger again on the updated tree changes no link.
    let again = service_files(&InitSystem::SysVinit, &mut HostDir(root.to_owned()), 52).unwrap();
    let changes: Vec<_> = again
        .iter()
        .filter(|f| !matches!(f.content, ServiceContent::File(_)))
        .collect();
    assert_eq!(changes, Vec::<&ServiceFile>::new(), "a second run");
    out
}

#[test]
fn sysvinit_links_are_what_update_rc_d_makes() {
    let Some(tree) = tree("sysvinit") else {
        return;
    };
    let copy = copy_tree(&tree);
    let out = assert_update_rc_d_agrees(copy.path());
    // The tree has a $all script (rc.local): banger's chain of two
    // (network, then first boot) moves it from S02 to S03, which is the
    // part that needs insserv's whole-graph view.
    assert!(out.contains(&ServiceFile {
        path: "/etc/rc2.d/S02rc.local".into(),
        mode: 0,
        content: ServiceContent::Remove
    }));
    assert!(out.iter().any(|f| f.path == "/etc/rc2.d/S03rc.local"));
}

/// An LSB script for the fixtures below.
fn lsb_script(fields: &[(&str, &str)]) -> String {
    let mut text = String::from("#!/bin/sh\n### BEGIN INIT INFO\n");
    for (key, value) in fields {
        text.push_str(&format!("# {key}: {value}\n"));
    }
    text.push_str("### END INIT INFO\nexit 0\n");
    text
}

/// The same check on a busier graph: scripts that provide system
/// facilities and aliases, an interactive one, `$all` for start and stop,
/// an `ssh` that banger's first boot must start before, and a daemon that
/// names banger's network before it exists. They are enabled with the
/// image's own update-rc.d first.
#[test]
fn sysvinit_links_agree_on_a_busier_graph() {
    let Some(tree) = tree("sysvinit") else {
        return;
    };
    let copy = copy_tree(&tree);
    let root = copy.path();
    let fixtures: [(&str, Vec<(&str, &str)>); 6] = [
        (
            "fx-syslog",
            vec![
                ("Provides", "fx-syslog rsyslog"),
                ("Required-Start", "$remote_fs $time"),
                ("Required-Stop", "$remote_fs $time"),
                ("Default-Start", "2 3 4 5"),
                ("Default-Stop", "0 1 6"),
            ],
        ),
        (
            "fx-networking",
            vec![
                ("Provides", "networking ifupdown"),
                ("Required-Start", "mountkernfs $local_fs urandom"),
                ("Required-Stop", "$local_fs"),
                ("Default-Start", "S"),
                ("Default-Stop", "0 6"),
            ],
        ),
        (
            "fx-console",
            vec![
                ("Provides", "fx-console"),
                ("Required-Start", "$remote_fs"),
                ("Required-Stop", ""),
                ("Default-Start", "2 3 4 5"),
                ("Default-Stop", ""),
                ("X-Interactive", "true"),
            ],
        ),
        (
            "fx-last",
            vec![
                ("Provides", "fx-last"),
                ("Required-Start", "$all"),
                ("Required-Stop", "$all"),
                ("Default-Start", "2 3 4 5"),
                ("Default-Stop", "0 6"),
            ],
        ),
        (
            "ssh",
            vec![
                ("Provides", "sshd"),
                ("Required-Start", "$remote_fs $syslog"),
                ("Required-Stop", "$remote_fs $syslog"),
                ("Default-Start", "2 3 4 5"),
                ("Default-Stop", ""),
            ],
        ),
        (
            "fx-daemon",
            vec![
                ("Provides", "fx-daemon"),
                ("Required-Start", "$remote_fs $syslog $network"),
                ("Required-Stop", "$remote_fs $syslog $network"),
                ("Should-Start", "banger-network"),
                ("X-Stop-After", "ssh"),
                ("Default-Start", "2 3 4 5"),
                ("Default-Stop", "0 1 6"),
            ],
        ),
    ];
    for (name, fields) in &fixtures {
        let path = root.join("etc/init.d").join(name);
        std::fs::write(&path, lsb_script(fields)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for (name, _) in &fixtures {
        chroot(root, &["update-rc.d", name, "defaults"]);
    }
    assert_update_rc_d_agrees(root);
    // first boot comes before ssh, as X-Start-Before asks.
    let links = links_in(root, &rc_dirs());
    let number = |name: &str| {
        links
            .keys()
            .find_map(|p| {
                let file = p.strip_prefix("/etc/rc2.d/S")?;
                (&file[2..] == name).then(|| file[..2].parse::<u32>().unwrap())
            })
            .unwrap_or_else(|| panic!("no S link for {name} in rc2.d"))
    };
    assert!(number("banger-first-boot") < number("ssh"));
    assert!(number("banger-network") < number("banger-first-boot"));
}

/// The OpenRC deptree cache (`/run/openrc/deptree`) as `service -> type ->
/// values`: what OpenRC itself parsed out of every `depend()`.
fn deptree(root: &Path) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let text = std::fs::read_to_string(root.join("run/openrc/deptree")).expect("deptree");
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut tree: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for line in text.lines() {
        // depinfo_<n>_service='name' or depinfo_<n>_<type>_<i>='value'
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim_matches('\'').to_owned();
        let mut parts = key.splitn(3, '_').skip(1);
        let (Some(n), Some(rest)) = (parts.next(), parts.next()) else {
            continue;
        };
        if rest == "service" {
            names.insert(n.to_owned(), value);
        } else if let Some((kind, _)) = rest.rsplit_once('_') {
            let name = names.get(n).cloned().unwrap_or_default();
            tree.entry(name)
                .or_default()
                .entry(kind.to_owned())
                .or_default()
                .push(value);
        }
    }
    tree
}

#[test]
fn openrc_links_are_what_rc_update_makes_and_openrc_reads_the_dependencies() {
    let Some(tree) = tree("openrc") else {
        return;
    };
    let copy = copy_tree(&tree);
    let root = copy.path();
    let out = service_files(&InitSystem::OpenRc, &mut HostDir(root.to_owned()), 52)
        .expect("service files");
    let levels: Vec<String> = std::fs::read_dir(root.join("etc/runlevels"))
        .unwrap()
        .map(|e| {
            format!(
                "/etc/runlevels/{}",
                e.unwrap().file_name().to_string_lossy()
            )
        })
        .collect();
    let before = links_in(root, &levels);
    write_scripts(&out, root, "/etc/init.d/banger-");
    let mut stderr = String::new();
    for name in ["banger-network", "banger-vsock-agent", "banger-first-boot"] {
        let (_, err) = chroot(root, &["rc-update", "add", name, "default"]);
        stderr.push_str(&err);
    }
    assert_eq!(stderr, "", "rc-update add");
    assert_eq!(links_in(root, &levels), apply_links(&before, &out));
    assert_eq!(
        out.iter()
            .filter(|f| matches!(f.content, ServiceContent::Symlink(_)))
            .count(),
        3
    );

    // OpenRC's own parser and solver on the scripts.
    let (_, err) = chroot(root, &["rc-update", "-u"]);
    assert_eq!(err, "", "rc-update -u");
    let deps = deptree(root);
    let get = |service: &str, kind: &str| -> Vec<String> {
        deps.get(service)
            .and_then(|d| d.get(kind))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(get("banger-network", "iprovide"), ["net"]);
    assert!(get("net", "providedby").contains(&"banger-network".to_owned()));
    assert!(get("banger-first-boot", "iafter").contains(&"banger-network".to_owned()));
    assert!(get("banger-first-boot", "ibefore").contains(&"sshd".to_owned()));
    assert_eq!(get("banger-first-boot", "keyword"), ["-timeout"]);
    assert!(get("banger-vsock-agent", "iafter").contains(&"banger-network".to_owned()));
    assert!(get("banger-vsock-agent", "iafter").contains(&"modules".to_owned()));
    // The start order OpenRC computes for the default runlevel.
    let out = Command::new("chroot")
        .arg(root)
        .args([
            "/usr/lib/rc/bin/rc-depend",
            "-a",
            "-t",
            "ineed,iuse,iwant,iafter",
        ])
        .args(["banger-first-boot", "banger-vsock-agent", "banger-network"])
        .env("RC_RUNLEVEL", "default")
        .output()
        .expect("rc-depend");
    let order = String::from_utf8_lossy(&out.stdout);
    let pos = |name: &str| {
        order
            .split_whitespace()
            .position(|s| s == name)
            .unwrap_or_else(|| panic!("{name} not in {order}"))
    };
    assert!(pos("banger-network") < pos("banger-first-boot"), "{order}");
    assert!(pos("banger-network") < pos("banger-vsock-agent"), "{order}");
    // Debian's openrc has no modules service: the scripts load the modules.
    let network = std::fs::read_to_string(root.join("etc/init.d/banger-network")).unwrap();
    assert!(network.contains("load_modules=yes\n"));
}

/// busybox's built-in table, written out by hand from `parse_inittab` in
/// busybox 1.35's `init/init.c` (INIT_SCRIPT is `/etc/init.d/rcS`,
/// `bb_default_login_shell` is `-/bin/sh`, VC_2..VC_4 are `/dev/tty2`..4,
/// which an inittab names `tty2`..`tty4`).
const BUILTIN_INITTAB: &str = "::sysinit:/etc/init.d/rcS
::askfirst:-/bin/sh
tty2::askfirst:-/bin/sh
tty3::askfirst:-/bin/sh
tty4::askfirst:-/bin/sh
::ctrlaltdel:reboot
::shutdown:umount -a -r
::shutdown:swapoff -a
::restart:init
";

const BANGER_INITTAB: &str =
    "# banger: begin (written by banger; replaced whenever banger writes the image)
::sysinit:/usr/local/lib/banger/busybox/banger-network
::once:/usr/local/lib/banger/busybox/banger-first-boot
::respawn:/usr/local/lib/banger/busybox/banger-vsock-agent
::respawn:/usr/local/lib/banger/busybox/banger-sshd
# banger: end
";

fn inittab_of(out: &[ServiceFile]) -> String {
    let f = out
        .iter()
        .find(|f| f.path == "/etc/inittab")
        .expect("inittab");
    assert_eq!(f.mode, 0o644);
    let ServiceContent::File(bytes) = &f.content else {
        panic!("inittab is not a file")
    };
    String::from_utf8(bytes.clone()).unwrap()
}

#[test]
fn busybox_without_an_inittab_gets_the_builtin_table_then_banger_lines() {
    let mut files = banger::initsys::MemFiles::new();
    files
        .symlink("/sbin/init", "/bin/busybox")
        .exec("/bin/busybox", "");
    assert_eq!(detect(&mut files).system, InitSystem::Busybox);
    let out = service_files(&InitSystem::Busybox, &mut files, 52).unwrap();
    assert_eq!(
        inittab_of(&out),
        format!("{BUILTIN_INITTAB}{BANGER_INITTAB}")
    );
    assert_eq!(BUSYBOX_DEFAULT_INITTAB, BUILTIN_INITTAB);
    // Every wrapper the lines name is written, executable.
    for line in BANGER_INITTAB.lines().filter(|l| !l.starts_with('#')) {
        let path = line.rsplit(':').next().unwrap();
        let f = out
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path}"));
        assert_eq!(f.mode, 0o755, "{path}");
    }
}

#[test]
fn busybox_keeps_every_line_of_an_existing_inittab_and_replaces_its_own() {
    let alpine = "# /etc/inittab\n\n::sysinit:/sbin/openrc sysinit\n::wait:/sbin/openrc default\n\
                  tty1::respawn:/sbin/getty 38400 tty1\n::ctrlaltdel:/sbin/reboot\n::shutdown:/sbin/openrc shutdown";
    let mut files = banger::initsys::MemFiles::new();
    files.file("/etc/inittab", alpine);
    let out = service_files(&InitSystem::Busybox, &mut files, 52).unwrap();
    let first = inittab_of(&out);
    assert_eq!(first, format!("{alpine}\n{BANGER_INITTAB}"));
    // Written again over its own output: the same file.
    files.file("/etc/inittab", first.clone());
    assert_eq!(
        inittab_of(&service_files(&InitSystem::Busybox, &mut files, 52).unwrap()),
        first
    );
    assert_eq!(inittab(Some(first.as_bytes())), first.into_bytes());
}

/// Every script banger generates, for every system, with the placeholders
/// filled in.
fn all_generated_scripts() -> Vec<(String, Vec<u8>)> {
    let mut scripts = Vec::new();
    for system in [
        InitSystem::SysVinit,
        InitSystem::OpenRc,
        InitSystem::Busybox,
    ] {
        let mut files = banger::initsys::MemFiles::new();
        files.dir("/etc/init.d").dir("/etc/runlevels/default");
        for f in service_files(&system, &mut files, 52).unwrap() {
            if let ServiceContent::File(bytes) = f.content {
                if bytes.starts_with(b"#!") {
                    scripts.push((format!("{system}:{}", f.path), bytes));
                }
            }
        }
    }
    assert_eq!(scripts.len(), 3 + 3 + 4);
    scripts
}

#[test]
fn generated_scripts_parse_in_dash_and_busybox_sh_and_pass_shellcheck() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (i, (name, bytes)) in all_generated_scripts().iter().enumerate() {
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains('@'), "{name}: unfilled placeholder");
        let path = dir.path().join(format!("script{i}"));
        std::fs::write(&path, bytes).unwrap();
        for (shell, args) in [("dash", &["-n"][..]), ("busybox", &["sh", "-n"][..])] {
            let Some(program) = find_program(shell) else {
                Skip(format!("{shell} is not installed")).report();
                continue;
            };
            let out = Command::new(program)
                .args(args)
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{shell} -n {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
        let Some(shellcheck) = find_program("shellcheck") else {
            Skip("shellcheck is not installed".into()).report();
            continue;
        };
        // openrc-run scripts say `shell=sh` themselves; the rest are #!/bin/sh.
        let out = Command::new(shellcheck)
            .args(["--shell=sh", "--severity=style"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck {name}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn sysvinit_headers_are_complete_lsb() {
    for (name, bytes) in all_generated_scripts() {
        if !name.starts_with("sysvinit:") {
            continue;
        }
        let text = String::from_utf8(bytes).unwrap();
        let begin = text.find("### BEGIN INIT INFO\n").expect(&name);
        let end = text.find("### END INIT INFO\n").expect(&name);
        let header = &text[begin..end];
        for key in [
            "Provides",
            "Required-Start",
            "Required-Stop",
            "Default-Start",
            "Default-Stop",
        ] {
            assert!(header.contains(&format!("\n# {key}:")), "{name}: {key}");
        }
        let provides = header
            .lines()
            .find(|l| l.starts_with("# Provides:"))
            .unwrap();
        assert!(
            name.ends_with(provides.split_whitespace().last().unwrap()),
            "{name}"
        );
    }
}

fn detected(flavor: &str) -> Option<banger::initsys::Detection> {
    let tree = tree(flavor)?;
    Some(detect(&mut HostDir(tree)))
}

#[test]
fn detection_on_real_debian_trees() {
    for (flavor, system) in [
        ("systemd", InitSystem::Systemd),
        ("minbase", InitSystem::None),
        ("sysvinit", InitSystem::SysVinit),
        ("openrc", InitSystem::OpenRc),
    ] {
        let Some(d) = detected(flavor) else {
            continue;
        };
        eprintln!("{flavor}: {d}");
        assert_eq!(d.system, system, "{flavor}: {d}");
        // bookworm is merged-usr: the decision went through /sbin -> usr/sbin.
        if system != InitSystem::None {
            assert!(
                d.evidence.contains(&"/sbin -> usr/sbin".to_owned()),
                "{flavor}: {d}"
            );
        }
    }
}

/// A generated script with its guest paths moved under `dir`, so it can
/// run on the host: the agent and banger-init become the fakes in
/// `dir/bin`, `/run` and `/var/log` become `dir/run` and `dir/log`.
fn relocated(system: InitSystem, path: &str, dir: &Path) -> PathBuf {
    let mut files = banger::initsys::MemFiles::new();
    files.dir("/etc/init.d").dir("/etc/runlevels/default");
    let out = service_files(&system, &mut files, 52).unwrap();
    let f = out.iter().find(|f| f.path == path).unwrap();
    let ServiceContent::File(bytes) = &f.content else {
        panic!("{path}")
    };
    let d = dir.display();
    let text = String::from_utf8(bytes.clone())
        .unwrap()
        .replace(
            "/usr/local/bin/banger-vsock-agent",
            &format!("{d}/bin/banger-vsock-agent"),
        )
        .replace(
            "/usr/local/sbin/banger-init",
            &format!("{d}/bin/banger-init"),
        )
        .replace("/run/", &format!("{d}/run/"))
        .replace("/var/log/", &format!("{d}/log/"));
    for sub in ["bin", "run", "log"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let script = dir.join(path.rsplit('/').next().unwrap());
    std::fs::write(&script, text).unwrap();
    script
}

fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// The sysvinit agent script under dash and busybox sh: start writes a
/// pidfile and loads the modules, a second start sees the running agent,
/// status follows, stop ends the agent and removes the pidfile, and a
/// pidfile naming some other process counts as stale.
#[test]
fn sysvinit_agent_script_starts_checks_and_stops_the_agent() {
    for (shell, args) in [("dash", &[][..]), ("busybox", &["sh"][..])] {
        let Some(program) = find_program(shell) else {
            Skip(format!("{shell} is not installed")).report();
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let script = relocated(InitSystem::SysVinit, "/etc/init.d/banger-vsock-agent", d);
        let calls = d.join("calls");
        write_exec(
            &d.join("bin/banger-vsock-agent"),
            &format!(
                "#!/bin/sh\necho \"agent $*\" >> {}\ntrap 'exit 0' TERM\nwhile :; do sleep 1; done\n",
                calls.display()
            ),
        );
        write_exec(
            &d.join("bin/banger-init"),
            &format!(
                "#!/bin/sh\necho \"banger-init $*\" >> {}\n",
                calls.display()
            ),
        );
        let run = |action: &str| {
            let out = Command::new(&program)
                .args(args)
                .arg(&script)
                .arg(action)
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let pidfile = d.join("run/banger-vsock-agent.pid");
        assert_eq!(run("status").0, Some(3), "{shell}");
        assert_eq!(run("start").0, Some(0), "{shell}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The agent has exec'd once it has logged its arguments.
        for _ in 0..50 {
            if std::fs::read_to_string(&calls)
                .unwrap_or_default()
                .contains("agent --port 52")
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(
            std::fs::read_to_string(&calls).unwrap(),
            "banger-init modules\nagent --port 52\n",
            "{shell}"
        );
        let (code, text) = run("status");
        assert_eq!(
            (code, text),
            (
                Some(0),
                format!("banger-vsock-agent is running (pid {pid})\n")
            )
        );
        let (code, text) = run("start");
        assert_eq!(code, Some(0));
        assert!(text.contains("already running"), "{shell}: {text}");
        assert!(alive(pid));
        assert_eq!(run("stop").0, Some(0), "{shell}");
        assert!(!pidfile.exists(), "{shell}: pidfile kept");
        for _ in 0..50 {
            if !alive(pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let gone = !alive(pid);
        if !gone {
            // SAFETY: plain kill of a process this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        assert!(gone, "{shell}: the agent survived stop");
        assert_eq!(run("status").0, Some(3), "{shell}");
        // A pidfile naming a process that is not the agent.
        std::fs::write(&pidfile, format!("{}\n", std::process::id())).unwrap();
        assert_eq!(run("status").0, Some(1), "{shell}: stale pidfile");
        assert_eq!(run("stop").0, Some(0), "{shell}");
        assert!(!pidfile.exists());
    }
}

/// The busybox respawn wrapper: after exit 69 it stays (asleep) instead of
/// returning to init, which would respawn the agent at once; other exits
/// are passed on after a pause.
#[test]
fn busybox_agent_wrapper_sleeps_after_exit_69_and_passes_other_exits_on() {
    use std::os::unix::process::CommandExt;
    for (shell, args) in [("dash", &[][..]), ("busybox", &["sh"][..])] {
        let Some(program) = find_program(shell) else {
            Skip(format!("{shell} is not installed")).report();
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let wrapper = relocated(
            InitSystem::Busybox,
            "/usr/local/lib/banger/busybox/banger-vsock-agent",
            d,
        );
        let agent = d.join("bin/banger-vsock-agent");
        write_exec(&agent, "#!/bin/sh\nexit 69\n");
        let mut child = Command::new(&program)
            .args(args)
            .arg(&wrapper)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(3));
        let still_there = child.try_wait().unwrap().is_none();
        // SAFETY: ends the process group this test started.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let out = child.wait_with_output().unwrap();
        assert!(still_there, "{shell}: the wrapper returned after exit 69");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no vsock in this guest; not restarting"),
            "{shell}"
        );

        write_exec(&agent, "#!/bin/sh\nexit 3\n");
        let started = std::time::Instant::now();
        let status = Command::new(&program)
            .args(args)
            .arg(&wrapper)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(3), "{shell}");
        assert!(
            started.elapsed() >= std::time::Duration::from_secs(2),
            "{shell}: no pause"
        );
    }
}
