//! The read-only ext4 reader and what is built on it (`image ls -R`,
//! `image stat`, `image export`) against corrupted images: a small valid
//! image with every kind of inode is written once, then each input flips
//! bytes in its non-zero blocks (superblock, descriptors, inode tables,
//! directories, extent trees, xattr blocks). Errors are expected; a panic,
//! a hang or unbounded memory is a crash.
#![no_main]

use std::io::{Seek, SeekFrom, Write};
use std::sync::{Arc, OnceLock};

use banger::inspect::export::export;
use banger::inspect::listing::{list, ListOptions};
use banger::inspect::stat::describe;
use banger_ext4::builder::{write_image, Options};
use banger_ext4::read::{FileKind, Image, InodeView};
use banger_ext4::tree::{DeviceNumber, FileContent, Metadata, NodeKind, Timestamp, Tree};
use libfuzzer_sys::fuzz_target;

/// The pristine image and the offsets of its non-zero 4 KiB blocks.
struct Pristine {
    bytes: Vec<u8>,
    used_blocks: Vec<usize>,
}

fn pristine() -> &'static Pristine {
    static PRISTINE: OnceLock<Pristine> = OnceLock::new();
    PRISTINE.get_or_init(|| {
        let time = Timestamp {
            secs: 1_700_000_000,
            nanos: 5,
        };
        let meta = |permissions| Metadata::new(permissions, time);
        let mut tree = Tree::new(meta(0o755));
        let root = tree.root();
        let add = |tree: &mut Tree, dir, name: &[u8], kind, meta| {
            let id = tree.add(kind, meta);
            tree.link(dir, name, id).expect("valid name");
            id
        };
        let etc = add(
            &mut tree,
            root,
            b"etc",
            NodeKind::Directory(Default::default()),
            meta(0o755),
        );
        let big = add(
            &mut tree,
            root,
            b"big",
            NodeKind::Directory(Default::default()),
            meta(0o755),
        );
        for i in 0..300 {
            let name = format!("entry-with-a-long-name-{i:04}");
            add(
                &mut tree,
                big,
                name.as_bytes(),
                NodeKind::File(FileContent::from_bytes(vec![i as u8; i])),
                meta(0o644),
            );
        }
        let mut with_xattrs = meta(0o640);
        with_xattrs
            .xattrs
            .insert(b"user.note".to_vec(), vec![b'x'; 300]);
        with_xattrs.xattrs.insert(
            b"security.capability".to_vec(),
            vec![
                1, 0, 0, 2, 0, 0x24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        );
        let file = add(
            &mut tree,
            etc,
            b"os-release",
            NodeKind::File(FileContent::from_bytes(b"ID=debian\n".to_vec())),
            with_xattrs,
        );
        tree.link(root, b"hard", file).expect("valid name");
        let fragmented: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        add(
            &mut tree,
            etc,
            b"data",
            NodeKind::File(FileContent::from_bytes(Arc::<[u8]>::from(fragmented))),
            meta(0o600),
        );
        add(
            &mut tree,
            root,
            b"long",
            NodeKind::Symlink(vec![b'l'; 300]),
            meta(0o777),
        );
        add(
            &mut tree,
            root,
            b"short",
            NodeKind::Symlink(b"etc/os-release".to_vec()),
            meta(0o777),
        );
        add(
            &mut tree,
            root,
            b"null",
            NodeKind::CharDevice(DeviceNumber { major: 1, minor: 3 }),
            meta(0o666),
        );
        add(
            &mut tree,
            root,
            b"disk",
            NodeKind::BlockDevice(DeviceNumber {
                major: 259,
                minor: 70_000,
            }),
            meta(0o660),
        );
        add(&mut tree, root, b"fifo", NodeKind::Fifo, meta(0o600));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pristine.ext4");
        write_image(
            &tree,
            &path,
            Options {
                size: Some(8 << 20),
                ..Options::default()
            },
        )
        .expect("the pristine image is valid");
        let bytes = std::fs::read(&path).expect("read back");
        let used_blocks = bytes
            .chunks(4096)
            .enumerate()
            .filter(|(_, block)| block.iter().any(|&b| b != 0))
            .map(|(i, _)| i * 4096)
            .collect();
        Pristine { bytes, used_blocks }
    })
}

/// Reads everything the inspection commands read, ignoring errors.
fn read_everything(image: &Image) {
    let _ = list(
        image,
        b"/",
        ListOptions {
            long: true,
            recursive: true,
        },
        &mut std::io::sink(),
    );
    let _ = export(image, &mut std::io::sink());
    for path in [
        &b"/hard"[..],
        b"/short",
        b"/long",
        b"/disk",
        b"/etc/data",
        b"/big/../etc/./os-release",
    ] {
        if let Ok(inode) = image.lookup(path, true) {
            stat(image, &inode);
            if inode.kind == FileKind::Regular && inode.size < 64 << 20 {
                let _ = image.copy_data(&inode, &mut std::io::sink());
            }
        }
    }
}

fn stat(image: &Image, inode: &InodeView) {
    if let Ok(xattrs) = image.xattrs(inode) {
        let _ = describe(image, "/x", inode, &xattrs);
    }
}

fuzz_target!(|data: &[u8]| {
    let pristine = pristine();
    let mut bytes = pristine.bytes.clone();
    // Each 4-byte chunk: which used block, where in it, and the new byte.
    for edit in data.chunks_exact(4) {
        let block = pristine.used_blocks
            [usize::from(u16::from_le_bytes([edit[0], edit[1]])) % pristine.used_blocks.len()];
        let offset = block + (usize::from(edit[2]) << 4 | usize::from(edit[3] >> 4)) % 4096;
        bytes[offset] ^= edit[3] | 1;
    }
    let mut file = tempfile::tempfile().expect("temp file");
    file.write_all(&bytes).expect("write image");
    file.seek(SeekFrom::Start(0)).expect("seek");
    if let Ok(image) = Image::from_file(file) {
        read_everything(&image);
    }
});
