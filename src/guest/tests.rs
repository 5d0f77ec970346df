//! [`prepare_guest`] on small hand-made trees: which init the guest gets,
//! what is never replaced, and the warnings.

use banger_ext4::builder::{ImageBuilder, Options};
use banger_ext4::tree::{ContentStore, FileContent, Metadata, NodeKind, Timestamp, Tree};

use super::*;

const T: Timestamp = Timestamp::from_secs(1_700_000_000);

fn meta(mode: u16) -> Metadata {
    Metadata::new(mode, T)
}

fn builder(dir: &tempfile::TempDir) -> ImageBuilder {
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("image"))
        .unwrap();
    ImageBuilder::new(file, Options::default()).unwrap()
}

fn put(tree: &mut Tree, path: &str, kind: NodeKind, mode: u16) {
    let r = tree
        .resolve_parent(path.as_bytes(), Some(&meta(0o755)))
        .unwrap();
    let id = tree.add(kind, meta(mode));
    tree.link(r.parent, &r.name, id).unwrap();
}

fn file(tree: &mut Tree, path: &str, bytes: &[u8]) {
    put(
        tree,
        path,
        NodeKind::File(FileContent::from_bytes(bytes.to_vec())),
        0o755,
    );
}

fn symlink(tree: &mut Tree, path: &str, target: &str) {
    put(tree, path, NodeKind::Symlink(target.into()), 0o777);
}

/// A symlink's target at `path`, not following it.
fn link_target(tree: &mut Tree, path: &str) -> Option<String> {
    let id = tree.resolve_parent(path.as_bytes(), None).ok()?.existing?;
    match &tree.node(id).kind {
        NodeKind::Symlink(target) => Some(String::from_utf8_lossy(target).into_owned()),
        _ => None,
    }
}

fn opts() -> GuestOptions {
    GuestOptions {
        vsock_port: 52,
        init: InitChoice::Auto,
        modules: None,
        runtime: RuntimeConfig {
            cmd: vec!["/bin/sh".into()],
            ..RuntimeConfig::default()
        },
        time: T,
    }
}

fn prepare(tree: &mut Tree, opts: &GuestOptions) -> GuestReport {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = builder(&dir);
    prepare_guest(tree, &mut builder, opts).unwrap()
}

/// Debian's layout: `/sbin`, `/lib` and `/bin` are links into `/usr`.
fn merged_usr() -> Tree {
    let mut tree = Tree::new(meta(0o755));
    for dir in ["bin", "lib", "sbin"] {
        symlink(&mut tree, dir, &format!("usr/{dir}"));
    }
    file(&mut tree, "/usr/lib/os-release", b"ID=debian\n");
    symlink(&mut tree, "/etc/os-release", "../usr/lib/os-release");
    tree
}

#[test]
fn an_image_without_init_boots_banger_init_through_its_own_sbin_link() {
    let mut tree = merged_usr();
    let report = prepare(&mut tree, &opts());
    assert_eq!(report.record.init, "banger");
    assert_eq!(report.warnings, Vec::<String>::new());
    assert_eq!(
        link_target(&mut tree, "/usr/sbin/init").as_deref(),
        Some(INIT_PATH)
    );
    assert_eq!(link_target(&mut tree, "/sbin").as_deref(), Some("usr/sbin"));
    let config = crate::inject::lookup_following(&mut tree, INIT_CONFIG_PATH).unwrap();
    let NodeKind::File(FileContent::Source(source)) = &tree.node(config).kind else {
        panic!("init.json is not a file");
    };
    let mut bytes = vec![0; source.len() as usize];
    source.read_at(0, &mut bytes).unwrap();
    assert_eq!(bytes, b"{\"vsock_port\":52,\"cmd\":[\"/bin/sh\"]}\n");
}

#[test]
fn a_dangling_init_link_is_replaced_by_banger_init() {
    // No /bin/sh, no /tmp, no /run either: banger-init needs none of them.
    let mut tree = Tree::new(meta(0o755));
    symlink(&mut tree, "/sbin/init", "/lib/systemd/systemd");
    let report = prepare(&mut tree, &opts());
    assert_eq!(report.record.init, "banger");
    assert!(
        report.record.init_reason.contains("does not exist"),
        "{report:?}"
    );
    assert_eq!(
        link_target(&mut tree, "/sbin/init").as_deref(),
        Some(INIT_PATH)
    );
    // The one warning: no os-release, so first boot cannot provision.
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("first boot cannot identify"));
}

#[test]
fn an_existing_init_is_never_replaced() {
    // systemd: units only.
    let mut tree = merged_usr();
    file(&mut tree, "/usr/lib/systemd/systemd", b"\x7fELF");
    symlink(&mut tree, "/usr/sbin/init", "../lib/systemd/systemd");
    let report = prepare(&mut tree, &opts());
    assert_eq!(report.record.init, "systemd");
    assert_eq!(
        link_target(&mut tree, "/usr/sbin/init").as_deref(),
        Some("../lib/systemd/systemd")
    );

    // An init banger does not know: left alone, with a warning saying how
    // to use banger's instead.
    let mut tree = merged_usr();
    file(&mut tree, "/usr/sbin/init", b"#!/bin/sh\nexec tini\n");
    let report = prepare(&mut tree, &opts());
    assert_eq!(report.record.init, "unknown");
    assert!(
        report.warnings[0].contains("init=/usr/local/sbin/banger-init")
            && report.warnings[0].contains("--init banger"),
        "{:?}",
        report.warnings
    );
    assert_eq!(link_target(&mut tree, "/usr/sbin/init"), None);

    // Unless asked for.
    let mut tree = merged_usr();
    file(&mut tree, "/usr/sbin/init", b"#!/bin/sh\nexec tini\n");
    let report = prepare(
        &mut tree,
        &GuestOptions {
            init: InitChoice::Banger,
            ..opts()
        },
    );
    assert_eq!(report.record.init, "banger");
    assert_eq!(
        link_target(&mut tree, "/usr/sbin/init").as_deref(),
        Some(INIT_PATH)
    );
}

#[test]
fn busybox_init_gets_inittab_lines() {
    let mut tree = Tree::new(meta(0o755));
    file(&mut tree, "/bin/busybox", b"\x7fELF");
    symlink(&mut tree, "/sbin/init", "/bin/busybox");
    let report = prepare(&mut tree, &opts());
    assert_eq!(report.record.init, "busybox");
    let inittab = crate::inject::lookup_following(&mut tree, "/etc/inittab").unwrap();
    let NodeKind::File(FileContent::Source(source)) = &tree.node(inittab).kind else {
        panic!("no inittab");
    };
    let mut bytes = vec![0; source.len() as usize];
    source.read_at(0, &mut bytes).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("::sysinit:/etc/init.d/rcS\n"), "{text}");
    assert!(
        text.contains("::respawn:/usr/local/lib/banger/busybox/banger-vsock-agent"),
        "{text}"
    );
    assert_eq!(
        link_target(&mut tree, "/sbin/init").as_deref(),
        Some("/bin/busybox")
    );
}

#[test]
fn the_os_release_the_layers_placed_is_read_back() {
    // Stored through the builder, as the flattener stores every file.
    let dir = tempfile::tempdir().unwrap();
    let mut builder = builder(&dir);
    let text = b"ID=plan9\nID_LIKE=\"\"\n";
    let placed = builder
        .store(&mut &text[..], text.len() as u64, &[0..text.len() as u64])
        .unwrap();
    assert!(matches!(placed, FileContent::Placed(_)));
    let mut tree = Tree::new(meta(0o755));
    put(&mut tree, "/etc/os-release", NodeKind::File(placed), 0o644);
    let report = prepare_guest(&mut tree, &mut builder, &opts()).unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("/etc/os-release names ID=plan9"),
        "{:?}",
        report.warnings
    );

    // A derivative known through ID_LIKE needs no warning; /etc wins over
    // /usr/lib, and a dangling /etc/os-release falls back to /usr/lib.
    for (etc, usr_lib, warned) in [
        (
            Some("ID=rocky\nID_LIKE=\"rhel centos fedora\"\n"),
            None,
            false,
        ),
        (Some("ID=nixos\n"), Some("ID=debian\n"), true),
        (None, Some("ID=gentoo\n"), true),
    ] {
        let mut tree = Tree::new(meta(0o755));
        match etc {
            Some(text) => file(&mut tree, "/etc/os-release", text.as_bytes()),
            None => symlink(&mut tree, "/etc/os-release", "/nowhere"),
        }
        if let Some(text) = usr_lib {
            file(&mut tree, "/usr/lib/os-release", text.as_bytes());
        }
        let report = prepare(&mut tree, &opts());
        assert_eq!(
            !report.warnings.is_empty(),
            warned,
            "{etc:?} {usr_lib:?}: {report:?}"
        );
    }
}
