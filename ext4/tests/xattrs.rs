//! The xattr row: in-inode first, then a block shared between identical
//! sets; capabilities, user, trusted, security and POSIX ACLs.

mod common;

use banger_ext4::builder::{write_image, Options};
use banger_ext4::tree::Tree;
use common::*;

/// `getfattr` (VFS, version 2) form of `u::rw-,u:1000:rw-,g::r--,g:100:r--,m::rw-,o::r--`.
const ACL_VFS: &[u8] = &[
    2, 0, 0, 0, //
    1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, //
    2, 0, 6, 0, 0xe8, 3, 0, 0, //
    4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, //
    8, 0, 4, 0, 100, 0, 0, 0, //
    0x10, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, //
    0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
];

/// A v2 file capability granting cap_net_bind_service.
const CAPABILITY: &[u8] = &[0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn xattr_file(tree: &mut Tree, name: &str, attrs: &[(&str, &[u8])]) {
    let id = add_file(tree, Tree::ROOT, name, name.as_bytes(), 0o664);
    for (key, value) in attrs {
        tree.node_mut(id)
            .meta
            .xattrs
            .insert(key.as_bytes().to_vec(), value.to_vec());
    }
}

fn file_acl_block(img: &std::path::Path, path: &str) -> String {
    field(&debugfs(img, &format!("stat {path}")), "File ACL").to_string()
}

#[test]
fn xattrs_go_in_the_inode_then_a_shared_block() {
    let mut tree = new_tree();
    let big = vec![b'v'; 3000];
    xattr_file(&mut tree, "small", &[("user.k", b"v")]);
    xattr_file(&mut tree, "cap", &[("security.capability", CAPABILITY)]);
    xattr_file(
        &mut tree,
        "acl",
        &[("system.posix_acl_access", ACL_VFS), ("trusted.t", b"x")],
    );
    xattr_file(
        &mut tree,
        "big1",
        &[("user.big", &big), ("user.small", b"s")],
    );
    xattr_file(
        &mut tree,
        "big2",
        &[("user.big", &big), ("user.small", b"s")],
    );
    let img = write_checked(&tree, Options::default());

    assert_eq!(
        file_acl_block(&img.path, "/small"),
        "0",
        "fits in the inode"
    );
    let shared = file_acl_block(&img.path, "/big1");
    assert_ne!(shared, "0", "spills to a block");
    assert_eq!(
        file_acl_block(&img.path, "/big2"),
        shared,
        "identical sets share the block"
    );
    let list = debugfs(&img.path, "ea_list /acl");
    assert!(list.contains("system.posix_acl_access"), "{list}");
    assert!(list.contains("trusted.t"), "{list}");
    let cap = debugfs(&img.path, "ea_get /cap security.capability");
    assert!(!cap.trim().is_empty(), "{cap}");
}

#[test]
fn an_xattr_set_too_big_for_inode_and_block_is_an_error() {
    let mut tree = new_tree();
    xattr_file(
        &mut tree,
        "huge",
        &[("user.a", &[1u8; 3000]), ("user.b", &[2u8; 3000])],
    );
    let dir = tempfile::tempdir().expect("tmp");
    let err = write_image(&tree, &dir.path().join("x"), Options::default()).expect_err("too large");
    let text = err.to_string();
    assert!(text.contains("/huge"), "{text}");
}

#[test]
fn an_unknown_namespace_is_an_error() {
    let mut tree = new_tree();
    xattr_file(&mut tree, "odd", &[("nonsense.key", b"v")]);
    let dir = tempfile::tempdir().expect("tmp");
    assert!(write_image(&tree, &dir.path().join("x"), Options::default()).is_err());
}
