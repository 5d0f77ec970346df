//! The injected guest files, checked in a written ext4 image: e2fsck, a
//! full read-back, and each path's type, mode, owner and target by debugfs.

use std::process::Command;

use banger::ext4::builder::{write_image, Options};
use banger::ext4::tree::{Metadata, NodeKind, Timestamp, Tree};
use banger::inject::{guest_files, inject_agents, GuestContent, InjectOptions};
use banger_testkit::{assert_fsck_clean, assert_image_matches_tree, CompareOptions};

fn debugfs_stat(img: &std::path::Path, path: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", &format!("stat {path}")])
        .arg(img)
        .output()
        .expect("debugfs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn injected_files_land_in_the_image_root_owned_with_package_modes() {
    let time = Timestamp::from_secs(1_700_000_000);
    // A tree where /usr/local is a symlink, as some images have: the files
    // must land through it, inside the tree.
    let mut tree = Tree::new(Metadata::new(0o755, time));
    let usr = tree
        .ensure_dir(Tree::ROOT, b"usr", Metadata::new(0o755, time))
        .expect("usr");
    tree.ensure_dir(Tree::ROOT, b"opt", Metadata::new(0o755, time))
        .expect("opt");
    let local = tree.add(
        NodeKind::Symlink(b"../opt".to_vec()),
        Metadata::new(0o777, time),
    );
    tree.link(usr, b"local", local).expect("usr/local");
    let opts = InjectOptions {
        vsock_port: 1024,
        time,
    };
    inject_agents(&mut tree, &opts).expect("inject");

    let dir = tempfile::tempdir().expect("tmp");
    let img = dir.path().join("agents.ext4");
    write_image(&tree, &img, Options::default()).expect("write");
    assert_fsck_clean(&img);
    assert_image_matches_tree(&img, &tree, &CompareOptions::default());

    let files = guest_files(&opts);
    assert!(files.len() >= 9, "{} guest files", files.len());
    for file in files {
        let stat = debugfs_stat(&img, &file.path);
        assert!(
            stat.contains("User:     0   Group:     0"),
            "{}: {stat}",
            file.path
        );
        match &file.content {
            GuestContent::File(bytes) => {
                assert!(stat.contains("Type: regular"), "{}: {stat}", file.path);
                assert!(
                    stat.contains(&format!("Mode:  {:04o}", file.mode)),
                    "{}: {stat}",
                    file.path
                );
                assert!(
                    stat.contains(&format!("Size: {}", bytes.len())),
                    "{}: {stat}",
                    file.path
                );
            }
            GuestContent::Symlink(target) => {
                assert!(stat.contains("Type: symlink"), "{}: {stat}", file.path);
                assert!(
                    stat.contains(target.as_str()),
                    "{}: link to {target}: {stat}",
                    file.path
                );
            }
        }
    }
    let unit = debugfs_stat(&img, "/etc/systemd/system/banger-vsock-agent.service");
    assert!(unit.contains("Mode:  0644"), "{unit}");
    let agent = debugfs_stat(&img, "/opt/bin/banger-vsock-agent");
    assert!(
        agent.contains("Mode:  0755"),
        "the agent lands through the /usr/local symlink: {agent}"
    );
}
