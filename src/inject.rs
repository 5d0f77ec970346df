//! Guest agents: the files banger adds to every image it writes.
//!
//! [`inject_agents`] puts them into the in-memory [`Tree`] before the
//! formatter runs, root-owned with the modes a package manager would use:
//!
//! | path | what |
//! |---|---|
//! | `/usr/local/bin/banger-vsock-agent` (0755) | health daemon on vsock port [`DEFAULT_VSOCK_PORT`] unless configured |
//! | `/usr/local/lib/banger/banger-network.sh` (0755) | applies `ip=` from the kernel command line |
//! | `/usr/local/lib/banger/first-boot.sh` (0755) | installs and starts OpenSSH |
//! | `/etc/systemd/system/banger-*.service` (0644) | the three units |
//! | `/etc/systemd/system/multi-user.target.wants/banger-*.service` | symlinks enabling them |
//! | `/etc/modules-load.d/banger-vsock.conf` (0644) | loads the vsock modules |
//! | `/var/lib/banger/first-boot-pending` (0644, empty) | first-boot marker |
//!
//! The network unit reads the kernel's static form
//! `ip=<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:off:<dns0>:<dns1>`
//! (see `assets/banger-network.sh`). Existing entries at these paths are
//! replaced; missing parent directories are created root-owned with 0755,
//! and symlinked parents (merged-usr `/lib -> usr/lib`) are followed inside
//! the tree.

use std::sync::Arc;

use banger_ext4::tree::{FileContent, Metadata, NodeId, NodeKind, Timestamp, Tree};

use crate::guest::place::{place, PlaceError};

/// The vsock port the agent listens on unless [`InjectOptions`] says
/// otherwise. The same default as `banger-vsock-agent --port`.
pub const DEFAULT_VSOCK_PORT: u32 = 52;

/// The agent binary: a static-pie x86-64 ELF built by `build.rs` from the
/// `banger-vsock-agent` crate. It needs no loader, so it runs on glibc, musl
/// and libc-less guests alike.
pub static AGENT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/banger-vsock-agent"));

/// `banger-init`, the PID 1 for images without an init: a static-pie
/// x86-64 ELF built by `build.rs` from the same crate as the agent.
pub static INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/banger-init"));

/// Where the agent binary goes in the guest.
pub const AGENT_PATH: &str = "/usr/local/bin/banger-vsock-agent";
/// Where the network script goes in the guest.
pub const NETWORK_SCRIPT_PATH: &str = "/usr/local/lib/banger/banger-network.sh";
/// Where the first-boot script goes in the guest.
pub const FIRST_BOOT_SCRIPT_PATH: &str = "/usr/local/lib/banger/first-boot.sh";
/// The first-boot marker; `banger-first-boot.service` runs while it exists.
pub const FIRST_BOOT_MARKER_PATH: &str = "/var/lib/banger/first-boot-pending";
/// The modules-load.d entry for the vsock modules.
pub const MODULES_LOAD_PATH: &str = "/etc/modules-load.d/banger-vsock.conf";
/// Where the units go: the administrator's unit directory.
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// Where the enabling symlinks go, as `systemctl enable` would put them.
pub const WANTS_DIR: &str = "/etc/systemd/system/multi-user.target.wants";

/// Unit name of the agent.
pub const AGENT_UNIT: &str = "banger-vsock-agent.service";
/// Unit name of the network setup.
pub const NETWORK_UNIT: &str = "banger-network.service";
/// Unit name of the first-boot provisioning.
pub const FIRST_BOOT_UNIT: &str = "banger-first-boot.service";

const AGENT_UNIT_TEMPLATE: &str = include_str!("../assets/systemd/banger-vsock-agent.service");
const NETWORK_UNIT_TEXT: &str = include_str!("../assets/systemd/banger-network.service");
const FIRST_BOOT_UNIT_TEXT: &str = include_str!("../assets/systemd/banger-first-boot.service");
const NETWORK_SCRIPT: &str = include_str!("../assets/banger-network.sh");
const FIRST_BOOT_SCRIPT: &str = include_str!("../assets/first-boot.sh");
const MODULES_LOAD: &str = include_str!("../assets/modules-load.conf");

/// Mode of executables and of created directories.
const MODE_EXEC: u16 = 0o755;
/// Mode of data files and units.
const MODE_DATA: u16 = 0o644;
/// Mode the kernel reports for every symlink.
const MODE_SYMLINK: u16 = 0o777;

/// How to inject the agents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectOptions {
    /// The vsock port `banger-vsock-agent.service` passes to the agent.
    pub vsock_port: u32,
    /// Times of every injected file and created directory.
    pub time: Timestamp,
}

impl InjectOptions {
    /// Options with the default port and every time at `time`.
    pub fn new(time: Timestamp) -> Self {
        Self {
            vsock_port: DEFAULT_VSOCK_PORT,
            time,
        }
    }
}

/// What [`inject_agents`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InjectReport {
    /// Every path written, in the order written.
    pub paths: Vec<String>,
}

/// What one injected path holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestContent {
    /// A regular file with these bytes.
    File(Arc<[u8]>),
    /// A symlink with this target.
    Symlink(String),
}

/// One file or symlink that [`inject_agents`] writes. The list from
/// [`guest_files`] is also the specification tests check images against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestFile {
    /// Absolute guest path.
    pub path: String,
    /// Permission bits (owner is always root:root).
    pub mode: u16,
    /// Contents or symlink target.
    pub content: GuestContent,
}

impl GuestFile {
    fn file(path: &str, mode: u16, bytes: impl Into<Arc<[u8]>>) -> Self {
        Self {
            path: path.to_owned(),
            mode,
            content: GuestContent::File(bytes.into()),
        }
    }
}

/// Every file and symlink the agents consist of, in the order they are
/// written: contents before the symlinks that point at them.
pub fn guest_files(opts: &InjectOptions) -> Vec<GuestFile> {
    let agent_unit = AGENT_UNIT_TEMPLATE.replace("@VSOCK_PORT@", &opts.vsock_port.to_string());
    let mut files = vec![
        GuestFile::file(AGENT_PATH, MODE_EXEC, AGENT_BINARY),
        GuestFile::file(NETWORK_SCRIPT_PATH, MODE_EXEC, NETWORK_SCRIPT.as_bytes()),
        GuestFile::file(
            FIRST_BOOT_SCRIPT_PATH,
            MODE_EXEC,
            FIRST_BOOT_SCRIPT.as_bytes(),
        ),
        GuestFile::file(
            &format!("{UNIT_DIR}/{AGENT_UNIT}"),
            MODE_DATA,
            agent_unit.as_bytes(),
        ),
        GuestFile::file(
            &format!("{UNIT_DIR}/{NETWORK_UNIT}"),
            MODE_DATA,
            NETWORK_UNIT_TEXT.as_bytes(),
        ),
        GuestFile::file(
            &format!("{UNIT_DIR}/{FIRST_BOOT_UNIT}"),
            MODE_DATA,
            FIRST_BOOT_UNIT_TEXT.as_bytes(),
        ),
        GuestFile::file(MODULES_LOAD_PATH, MODE_DATA, MODULES_LOAD.as_bytes()),
        GuestFile::file(FIRST_BOOT_MARKER_PATH, MODE_DATA, Vec::new()),
    ];
    for unit in [AGENT_UNIT, NETWORK_UNIT, FIRST_BOOT_UNIT] {
        // Absolute targets, exactly what `systemctl enable` creates.
        files.push(GuestFile {
            path: format!("{WANTS_DIR}/{unit}"),
            mode: MODE_SYMLINK,
            content: GuestContent::Symlink(format!("{UNIT_DIR}/{unit}")),
        });
    }
    files
}

/// Adds the guest agents to `tree`, replacing whatever is at their paths.
/// Which init system runs them is [`crate::guest`]'s business.
pub fn inject_agents(tree: &mut Tree, opts: &InjectOptions) -> Result<InjectReport, PlaceError> {
    let mut report = InjectReport::default();
    let dir_meta = Metadata::new(MODE_EXEC, opts.time);
    for file in guest_files(opts) {
        let kind = match file.content {
            GuestContent::File(bytes) => NodeKind::File(FileContent::from_bytes(bytes)),
            GuestContent::Symlink(target) => NodeKind::Symlink(target.into_bytes()),
        };
        place(
            tree,
            &file.path,
            kind,
            Metadata::new(file.mode, opts.time),
            &dir_meta,
        )?;
        report.paths.push(file.path);
    }
    Ok(report)
}

/// Looks up `path`, following symlinks in every component, the last one
/// included. Creates nothing.
pub fn lookup_following(tree: &mut Tree, path: &str) -> Option<NodeId> {
    let mut path = path.to_owned();
    for _ in 0..=banger_ext4::tree::MAX_SYMLINK_FOLLOWS {
        let resolved = tree.resolve_parent(path.as_bytes(), None).ok()?;
        let id = resolved.existing?;
        match &tree.node(id).kind {
            NodeKind::Symlink(target) => {
                let target = String::from_utf8_lossy(target);
                path = if target.starts_with('/') {
                    target.into_owned()
                } else {
                    // Relative to the directory holding the link, which the
                    // lexical dirname of `path` resolves to.
                    let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
                    format!("{dir}/{target}")
                };
            }
            _ => return Some(id),
        }
    }
    None
}

/// Lists how `tree` differs from what [`inject_agents`] writes with `opts`:
/// missing entries, wrong types, modes, owners, contents or symlink targets.
/// Empty when every injected path is as it should be. Contents already
/// placed into an image are compared by size only.
pub fn injection_mismatches(tree: &mut Tree, opts: &InjectOptions) -> Vec<String> {
    let mut problems = Vec::new();
    for file in guest_files(opts) {
        let path = &file.path;
        let Some(id) = tree
            .resolve_parent(path.as_bytes(), None)
            .ok()
            .and_then(|r| r.existing)
        else {
            problems.push(format!("{path}: missing"));
            continue;
        };
        let node = tree.node(id);
        if node.meta.permissions != file.mode {
            problems.push(format!(
                "{path}: mode {:o}, expected {:o}",
                node.meta.permissions, file.mode
            ));
        }
        if (node.meta.uid, node.meta.gid) != (0, 0) {
            problems.push(format!("{path}: owner {}:{}", node.meta.uid, node.meta.gid));
        }
        match (&file.content, &node.kind) {
            (GuestContent::File(expected), NodeKind::File(content)) => {
                if let Some(problem) = content_mismatch(content, expected) {
                    problems.push(format!("{path}: {problem}"));
                }
            }
            (GuestContent::Symlink(expected), NodeKind::Symlink(target)) => {
                if target != expected.as_bytes() {
                    problems.push(format!(
                        "{path}: symlink to {:?}, expected {expected:?}",
                        String::from_utf8_lossy(target)
                    ));
                }
            }
            (_, kind) => problems.push(format!("{path}: wrong file type {:o}", kind.mode_type())),
        }
    }
    problems
}

fn content_mismatch(content: &FileContent, expected: &[u8]) -> Option<String> {
    if content.size() != expected.len() as u64 {
        return Some(format!(
            "size {}, expected {}",
            content.size(),
            expected.len()
        ));
    }
    let FileContent::Source(source) = content else {
        return None;
    };
    let mut actual = vec![0u8; expected.len()];
    let mut done = 0;
    while done < actual.len() {
        match source.read_at(done as u64, &mut actual[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) => return Some(format!("unreadable: {e}")),
        }
    }
    (actual != expected).then(|| "contents differ".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_ext4::tree::Node;

    const T: Timestamp = Timestamp::from_secs(1_700_000_000);

    fn opts() -> InjectOptions {
        InjectOptions::new(T)
    }

    fn meta(mode: u16) -> Metadata {
        Metadata::new(mode, Timestamp::from_secs(5))
    }

    /// Creates `path` (parents as 0755 directories) holding `kind`.
    fn put(tree: &mut Tree, path: &str, kind: NodeKind, meta: Metadata) -> NodeId {
        let r = tree
            .resolve_parent(path.as_bytes(), Some(&self::meta(0o755)))
            .unwrap();
        let id = tree.add(kind, meta);
        tree.link(r.parent, &r.name, id).unwrap();
        id
    }

    fn symlink(tree: &mut Tree, path: &str, target: &str) {
        put(tree, path, NodeKind::Symlink(target.into()), meta(0o777));
    }

    fn file(tree: &mut Tree, path: &str, bytes: &[u8]) -> NodeId {
        put(
            tree,
            path,
            NodeKind::File(FileContent::from_bytes(bytes.to_vec())),
            meta(0o755),
        )
    }

    /// The node at `path`, not following a final symlink.
    fn entry<'t>(tree: &'t mut Tree, path: &str) -> &'t Node {
        let id = tree
            .resolve_parent(path.as_bytes(), None)
            .unwrap()
            .existing
            .unwrap_or_else(|| panic!("{path} missing"));
        tree.node(id)
    }

    fn assert_root_dir(tree: &mut Tree, path: &str) {
        let node = entry(tree, path);
        assert!(node.kind.is_dir(), "{path}");
        assert_eq!(
            (node.meta.permissions, node.meta.uid, node.meta.gid),
            (0o755, 0, 0),
            "{path}"
        );
    }

    /// A merged-usr Debian-like root: /lib, /bin and /sbin are symlinks into /usr.
    fn merged_usr_tree() -> Tree {
        let mut tree = Tree::new(meta(0o755));
        for dir in ["bin", "lib", "sbin"] {
            symlink(&mut tree, dir, &format!("usr/{dir}"));
        }
        file(&mut tree, "/usr/lib/systemd/systemd", b"\x7fELF systemd");
        file(&mut tree, "/usr/bin/false", b"\x7fELF false");
        // As Debian ships it: /etc/os-release -> ../usr/lib/os-release.
        file(
            &mut tree,
            "/usr/lib/os-release",
            b"ID=debian\nVERSION_ID=\"12\"\n",
        );
        symlink(&mut tree, "/etc/os-release", "../usr/lib/os-release");
        tree
    }

    #[test]
    fn scratch_image_gets_every_file_with_exact_types_modes_and_owners() {
        let mut tree = Tree::new(meta(0o755));
        let report = inject_agents(&mut tree, &opts()).unwrap();
        assert_eq!(
            injection_mismatches(&mut tree, &opts()),
            Vec::<String>::new()
        );

        // Spelled out once, independently of guest_files().
        let expected: [(&str, u16, u16); 11] = [
            ("/usr/local/bin/banger-vsock-agent", 0o100000, 0o755),
            ("/usr/local/lib/banger/banger-network.sh", 0o100000, 0o755),
            ("/usr/local/lib/banger/first-boot.sh", 0o100000, 0o755),
            (
                "/etc/systemd/system/banger-vsock-agent.service",
                0o100000,
                0o644,
            ),
            (
                "/etc/systemd/system/banger-network.service",
                0o100000,
                0o644,
            ),
            (
                "/etc/systemd/system/banger-first-boot.service",
                0o100000,
                0o644,
            ),
            ("/etc/modules-load.d/banger-vsock.conf", 0o100000, 0o644),
            ("/var/lib/banger/first-boot-pending", 0o100000, 0o644),
            (
                "/etc/systemd/system/multi-user.target.wants/banger-vsock-agent.service",
                0o120000,
                0o777,
            ),
            (
                "/etc/systemd/system/multi-user.target.wants/banger-network.service",
                0o120000,
                0o777,
            ),
            (
                "/etc/systemd/system/multi-user.target.wants/banger-first-boot.service",
                0o120000,
                0o777,
            ),
        ];
        assert_eq!(
            report.paths,
            expected
                .iter()
                .map(|(p, _, _)| p.to_string())
                .collect::<Vec<_>>()
        );
        for (path, file_type, mode) in expected {
            let node = entry(&mut tree, path);
            assert_eq!(node.kind.mode_type(), file_type, "{path}");
            assert_eq!(node.meta, Metadata::new(mode, T), "{path}");
        }
        for unit in ["banger-vsock-agent", "banger-network", "banger-first-boot"] {
            let link = format!("/etc/systemd/system/multi-user.target.wants/{unit}.service");
            let NodeKind::Symlink(target) = &entry(&mut tree, &link).kind else {
                panic!("{link} is not a symlink");
            };
            assert_eq!(
                target,
                format!("/etc/systemd/system/{unit}.service").as_bytes()
            );
        }
        let NodeKind::File(marker) = &entry(&mut tree, FIRST_BOOT_MARKER_PATH).kind else {
            panic!("marker is not a file");
        };
        assert_eq!(marker.size(), 0);
        for dir in [
            "/etc",
            "/etc/systemd",
            "/etc/systemd/system",
            WANTS_DIR,
            "/etc/modules-load.d",
            "/usr",
            "/usr/local",
            "/usr/local/bin",
            "/usr/local/lib",
            "/usr/local/lib/banger",
            "/var",
            "/var/lib",
            "/var/lib/banger",
        ] {
            assert_root_dir(&mut tree, dir);
        }
        assert_eq!(entry(&mut tree, "/etc").meta.mtime, T);
    }

    #[test]
    fn existing_files_at_injected_paths_are_replaced() {
        let mut tree = merged_usr_tree();
        let old_unit = file(
            &mut tree,
            "/etc/systemd/system/banger-network.service",
            b"old",
        );
        tree.node_mut(old_unit).meta = Metadata {
            uid: 1000,
            gid: 1000,
            ..meta(0o600)
        };
        // A symlink at an injected path is replaced itself, not written through.
        symlink(&mut tree, AGENT_PATH, "/usr/bin/false");
        // A directory at an injected path is replaced too.
        file(&mut tree, "/var/lib/banger/first-boot-pending/junk", b"x");
        let other = "/etc/systemd/system/multi-user.target.wants/cron.service";
        symlink(&mut tree, other, "/lib/systemd/system/cron.service");

        inject_agents(&mut tree, &opts()).unwrap();
        assert_eq!(
            injection_mismatches(&mut tree, &opts()),
            Vec::<String>::new()
        );
        let NodeKind::File(false_bin) = &entry(&mut tree, "/usr/bin/false").kind else {
            panic!("/usr/bin/false changed type");
        };
        assert_eq!(false_bin.size(), 10, "/usr/bin/false was written through");
        assert_eq!(entry(&mut tree, "/usr/bin/false").meta, meta(0o755));
        assert!(matches!(entry(&mut tree, other).kind, NodeKind::Symlink(_)));
        // The old node is no longer reachable.
        assert!(!tree.reachable().contains(&old_unit));
        // /lib stayed a symlink.
        assert!(matches!(
            entry(&mut tree, "/lib").kind,
            NodeKind::Symlink(_)
        ));
    }

    #[test]
    fn symlinked_parents_are_followed_inside_the_tree() {
        let mut tree = merged_usr_tree();
        // /usr/local and /var/lib redirected, one relative and one absolute.
        symlink(&mut tree, "/usr/local", "../opt/local");
        symlink(&mut tree, "/var/lib", "/persist/lib");
        symlink(
            &mut tree,
            "/etc/systemd/system",
            "../../usr/lib/systemd/etc-system",
        );
        inject_agents(&mut tree, &opts()).unwrap();
        assert_eq!(
            injection_mismatches(&mut tree, &opts()),
            Vec::<String>::new()
        );
        for (through_link, real) in [
            (AGENT_PATH, "/opt/local/bin/banger-vsock-agent"),
            (
                FIRST_BOOT_SCRIPT_PATH,
                "/opt/local/lib/banger/first-boot.sh",
            ),
            (
                FIRST_BOOT_MARKER_PATH,
                "/persist/lib/banger/first-boot-pending",
            ),
            (
                "/etc/systemd/system/banger-vsock-agent.service",
                "/usr/lib/systemd/etc-system/banger-vsock-agent.service",
            ),
        ] {
            let via = tree
                .resolve_parent(through_link.as_bytes(), None)
                .unwrap()
                .existing;
            assert!(via.is_some(), "{through_link}");
            assert_eq!(tree.lookup_path(real.as_bytes()), via, "{real}");
        }
        for link in ["/usr/local", "/var/lib", "/etc/systemd/system"] {
            assert!(
                matches!(entry(&mut tree, link).kind, NodeKind::Symlink(_)),
                "{link}"
            );
        }
        assert_root_dir(&mut tree, "/opt/local/lib/banger");
        assert_root_dir(&mut tree, "/persist/lib/banger");
    }

    #[test]
    fn a_file_where_a_parent_directory_must_be_is_an_error() {
        let mut tree = Tree::new(meta(0o755));
        file(&mut tree, "/usr/local/lib", b"not a dir");
        let err = inject_agents(&mut tree, &opts()).unwrap_err();
        assert!(
            matches!(&err, PlaceError::Resolve { path, source: banger_ext4::tree::ResolveError::NotADirectory(_) }
                if path == NETWORK_SCRIPT_PATH),
            "{err:?}"
        );
    }

    #[test]
    fn the_agent_unit_carries_the_configured_port() {
        let unit_text = |opts: &InjectOptions| {
            let mut tree = Tree::new(meta(0o755));
            inject_agents(&mut tree, opts).unwrap();
            let path = format!("{UNIT_DIR}/{AGENT_UNIT}");
            let NodeKind::File(FileContent::Source(source)) = &entry(&mut tree, &path).kind else {
                panic!("unit is not an in-memory file");
            };
            let mut buf = vec![0u8; source.len() as usize];
            source.read_at(0, &mut buf).unwrap();
            String::from_utf8(buf).unwrap()
        };
        assert!(unit_text(&opts())
            .contains("\nExecStart=/usr/local/bin/banger-vsock-agent --port 52\n"));
        let custom = InjectOptions {
            vsock_port: 10_789,
            ..opts()
        };
        assert!(unit_text(&custom).contains("--port 10789\n"));
        assert_eq!(DEFAULT_VSOCK_PORT, banger_vsock_agent::DEFAULT_PORT);
    }

    #[test]
    fn units_name_the_injected_paths() {
        let agent = AGENT_UNIT_TEMPLATE;
        assert!(agent.contains(&format!("ExecStart={AGENT_PATH} ")));
        assert!(NETWORK_UNIT_TEXT.contains(&format!("ExecStart={NETWORK_SCRIPT_PATH}\n")));
        assert!(FIRST_BOOT_UNIT_TEXT.contains(&format!("ExecStart={FIRST_BOOT_SCRIPT_PATH}\n")));
        assert!(FIRST_BOOT_UNIT_TEXT
            .contains(&format!("ConditionPathExists={FIRST_BOOT_MARKER_PATH}\n")));
        assert!(FIRST_BOOT_SCRIPT.contains("/var/lib/banger/first-boot-pending"));
        assert_eq!(
            FIRST_BOOT_MARKER_PATH,
            banger_vsock_agent::FIRST_BOOT_MARKER
        );
        for unit in [agent, NETWORK_UNIT_TEXT, FIRST_BOOT_UNIT_TEXT] {
            assert!(
                unit.contains("\n[Install]\nWantedBy=multi-user.target\n"),
                "{unit}"
            );
        }
        // The agent's "vsock unavailable" exit status is not restarted.
        assert!(agent.contains("RestartPreventExitStatus=69\n"));
        // The list loaded at boot is the set banger writes into images.
        let listed: Vec<&str> = MODULES_LOAD
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(listed, crate::modules::GUEST_MODULES);
    }

    /// Writes `files` under `root` on the real filesystem, modes included.
    fn materialize(files: &[GuestFile], root: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt;
        for file in files {
            let path = root.join(file.path.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            match &file.content {
                GuestContent::File(bytes) => {
                    std::fs::write(&path, bytes).unwrap();
                    let mode = u32::from(file.mode);
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
                }
                GuestContent::Symlink(target) => {
                    std::os::unix::fs::symlink(target, &path).unwrap();
                }
            }
        }
    }

    /// systemd's own parser as the oracle for the units: `systemd-analyze
    /// verify` in a root holding the injected files and the host's units.
    #[test]
    fn units_pass_systemd_analyze_verify() {
        let host_units = std::path::Path::new("/lib/systemd/system");
        if !host_units.join("sysinit.target").exists() {
            eprintln!("SKIPPING: no systemd units on this host (/lib/systemd/system)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        materialize(&guest_files(&opts()), dir.path());
        std::fs::create_dir_all(dir.path().join("lib/systemd")).unwrap();
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(host_units)
            .arg(dir.path().join("lib/systemd/"))
            .status()
            .unwrap();
        assert!(copied.success());
        let out = match std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", dir.path().display()))
            .args([AGENT_UNIT, NETWORK_UNIT, FIRST_BOOT_UNIT])
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                eprintln!("SKIPPING: systemd-analyze not runnable: {e}");
                return;
            }
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && text.trim().is_empty(), "{text}");
    }

    /// The embedded agent is a static-pie x86-64 ELF: ET_DYN without a
    /// PT_INTERP program header, so it needs no loader or libc in the guest.
    #[test]
    fn the_embedded_agent_is_a_static_pie_that_runs() {
        const ET_DYN: u16 = 3;
        const EM_X86_64: u16 = 62;
        const PT_INTERP: u32 = 3;
        const PT_DYNAMIC: u32 = 2;
        let elf = AGENT_BINARY;
        let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
        assert_eq!(&elf[..6], b"\x7fELF\x02\x01", "64-bit little-endian ELF");
        assert_eq!((u16_at(16), u16_at(18)), (ET_DYN, EM_X86_64));
        let (phoff, phentsize, phnum) = (u64_at(32) as usize, u16_at(54) as usize, u16_at(56));
        let types: Vec<u32> = (0..phnum as usize)
            .map(|i| u32_at(phoff + i * phentsize))
            .collect();
        assert!(
            !types.contains(&PT_INTERP),
            "has an ELF interpreter: {types:?}"
        );
        assert!(
            types.contains(&PT_DYNAMIC),
            "static-pie keeps PT_DYNAMIC for self-relocation"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banger-vsock-agent");
        std::fs::write(&path, elf).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let out = std::process::Command::new(&path)
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "banger-vsock-agent 0.1.0\n"
        );
        // Alone in an otherwise empty root: no loader, no libc, no /proc.
        match std::process::Command::new("chroot")
            .arg(dir.path())
            .args(["/banger-vsock-agent", "--version"])
            .output()
        {
            Ok(out) if String::from_utf8_lossy(&out.stderr).contains("Operation not permitted") => {
                eprintln!("SKIPPING the empty-root run: chroot needs root");
            }
            Ok(out) => {
                assert!(out.status.success(), "in an empty root: {out:?}");
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    "banger-vsock-agent 0.1.0\n"
                );
            }
            Err(e) => eprintln!("SKIPPING the empty-root run: no chroot: {e}"),
        }
        match std::process::Command::new("file").arg(&path).output() {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(
                    text.contains("static-pie linked") && text.contains("x86-64"),
                    "{text}"
                );
            }
            Err(_) => eprintln!("`file` not installed; ELF headers checked by hand only"),
        }
    }
}
