//! Memory stays bounded: writing a 4 GiB file must peak under 64 MiB.
//!
//! The measurement runs in a child process (this test binary re-run on one
//! ignored test) so that only the writer's own peak RSS is counted.

mod common;

use banger_ext4::builder::Options;
use banger_ext4::tree::Tree;

const FOUR_GIB: u64 = 4 << 30;
const CHILD_ENV: &str = "BANGER_MEMORY_CHILD_IMAGE";

fn big_tree() -> Tree {
    let mut tree = common::new_tree();
    common::add_pattern_file(&mut tree, Tree::ROOT, "big", FOUR_GIB);
    tree
}

#[test]
#[ignore = "runs only as the child of writing_a_4_gib_file_peaks_under_64_mib"]
fn memory_child_writes_4_gib() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    banger_ext4::builder::write_image(&big_tree(), std::path::Path::new(&path), Options::default())
        .expect("written");
}

#[test]
// The child is reaped by wait4 below, which also gives its rusage.
#[allow(clippy::zombie_processes)]
fn writing_a_4_gib_file_peaks_under_64_mib() {
    let dir = tempfile::tempdir().expect("tmp");
    let img = dir.path().join("big.ext4");
    let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "memory_child_writes_4_gib",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &img)
        .spawn()
        .expect("spawn child");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status}"
    );
    let peak_mib = usage.ru_maxrss as f64 / 1024.0;
    eprintln!("peak RSS writing a 4 GiB file: {peak_mib:.1} MiB");
    assert!(peak_mib < 64.0, "peak RSS {peak_mib:.1} MiB");
    banger_testkit::assert_fsck_clean(&img);
    banger_testkit::assert_image_matches_tree(
        &img,
        &big_tree(),
        &banger_testkit::CompareOptions::default(),
    );
}
