//! Packs benchmark inputs as OCI image layouts, cached on disk.
//!
//! Layers are gzip streams written with flate2 while two sha256 hashers
//! watch the uncompressed (diff_id) and compressed (digest) bytes go by, so
//! nothing is held in memory, not even the 4 GiB layer.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// The tag every benchmark layout is written under.
pub const TAG: &str = "bench";

/// Names the file listing the layer digests; written last, so its presence
/// means the layout is complete.
const LAYERS_LIST: &str = "bench-layers.txt";

/// A written layer blob.
#[derive(Debug, Clone)]
struct Blob {
    digest: String,
    diff_id: String,
    size: u64,
}

/// A `Write` that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Gzips whatever `fill` writes into a new blob of `layout`.
fn write_layer(
    layout: &Path,
    level: Compression,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<Blob> {
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir)?;
    let temp = dir.join(".layer.partial");
    let compressed = Hashing::new(BufWriter::with_capacity(1 << 20, File::create(&temp)?));
    let mut tar = Hashing::new(GzEncoder::new(compressed, level));
    fill(&mut tar)?;
    let diff_id = tar.digest();
    let mut compressed = tar.inner.finish()?;
    compressed.flush()?;
    let blob = Blob {
        digest: compressed.digest(),
        diff_id,
        size: compressed.bytes,
    };
    fs::rename(&temp, blob_path(layout, &blob.digest))?;
    Ok(blob)
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(&digest["sha256:".len()..])
}

/// Writes a small JSON blob and returns its descriptor fields.
fn write_json_blob(layout: &Path, value: &serde_json::Value) -> io::Result<(String, u64)> {
    let bytes = serde_json::to_vec(value)?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    fs::write(blob_path(layout, &digest), &bytes)?;
    Ok((digest, bytes.len() as u64))
}

/// Writes config, manifest and index for `layers` under [`TAG`].
fn finish_layout(layout: &Path, layers: &[Blob]) -> io::Result<()> {
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let config = json!({
        "created": "2024-01-02T03:04:05Z",
        "os": "linux",
        "architecture": "amd64",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/bash"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (config_digest, config_size) = write_json_blob(layout, &config)?;
    let descriptors: Vec<_> = layers
        .iter()
        .map(|l| {
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": l.digest, "size": l.size})
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": descriptors,
    });
    let (manifest_digest, manifest_size) = write_json_blob(layout, &manifest)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": TAG}}],
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    let list: String = layers.iter().map(|l| format!("{}\n", l.digest)).collect();
    fs::write(layout.join(LAYERS_LIST), list)?;
    Ok(())
}

/// The layer blobs of a complete cached layout, in order.
fn cached_layers(layout: &Path) -> Option<Vec<PathBuf>> {
    let list = fs::read_to_string(layout.join(LAYERS_LIST)).ok()?;
    let paths: Vec<PathBuf> = list.lines().map(|d| blob_path(layout, d)).collect();
    paths.iter().all(|p| p.is_file()).then_some(paths)
}

/// Builds a layout in a scratch directory and renames it into place.
fn build_cached(
    layout: &Path,
    build: impl FnOnce(&Path) -> io::Result<Vec<Blob>>,
) -> io::Result<Vec<PathBuf>> {
    if let Some(paths) = cached_layers(layout) {
        return Ok(paths);
    }
    let scratch = layout.with_extension("partial");
    let _ = fs::remove_dir_all(&scratch);
    let _ = fs::remove_dir_all(layout);
    fs::create_dir_all(&scratch)?;
    let layers = build(&scratch)?;
    finish_layout(&scratch, &layers)?;
    fs::rename(&scratch, layout)?;
    cached_layers(layout).ok_or_else(|| io::Error::other("layout vanished after writing"))
}

/// Streams GNU tar's archive of `paths` (relative to `root`) into `out`.
///
/// pax format for xattrs and ACLs, but without per-file atime/ctime/mtime
/// records: like Docker's layers, times are whole seconds in the ustar
/// header, so the tar is not twice as many headers as files.
fn gnu_tar(root: &Path, args: &[&str], out: &mut dyn Write) -> io::Result<()> {
    let mut child = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args([
            "--numeric-owner",
            "--xattrs",
            "--acls",
            "--format=posix",
            "--pax-option=delete=atime,delete=ctime,delete=mtime",
            "--sort=name",
            "-cf",
            "-",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no pipe"))?;
    let copied = copy_big(&mut stdout, out);
    let status = child.wait()?;
    copied?;
    if !status.success() {
        return Err(io::Error::other(format!("tar -c {args:?}: {status}")));
    }
    Ok(())
}

fn copy_big(from: &mut dyn Read, to: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                to.write_all(&buf[..n])?;
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The third layer: a changed file, a new file, and whiteouts of a file
/// and of a directory.
fn top_layer(out: &mut dyn Write) -> io::Result<()> {
    let mut builder = tar::Builder::new(out);
    let mut add = |path: &str, data: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_704_164_645);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, data)
    };
    add("etc/hostname", b"banger-bench\n")?;
    add("etc/bench-release", b"layer 3 of the banger benchmark\n")?;
    add("etc/.wh.motd", b"")?;
    add("usr/share/doc/.wh.bash", b"")?;
    builder.into_inner()?.flush()
}

/// The Debian tree at `root` as three gzip layers (default level):
/// `/usr`; everything else; a small top layer with whiteouts.
pub fn debian_layout(root: &Path, layout: &Path) -> io::Result<Vec<PathBuf>> {
    build_cached(layout, |dir| {
        let level = Compression::default();
        Ok(vec![
            write_layer(dir, level, |out| gnu_tar(root, &["./usr"], out))?,
            write_layer(dir, level, |out| {
                gnu_tar(root, &["--anchored", "--exclude=./usr", "."], out)
            })?,
            write_layer(dir, level, top_layer)?,
        ])
    })
}

/// Bytes of the repeating pattern in the big file.
const PATTERN: usize = 1 << 20;

/// A reader of `len` bytes repeating one pseudo-random 1 MiB block of
/// 16 letters: compresses to about half, unlike zeros or noise.
struct Pattern {
    block: Vec<u8>,
    pos: u64,
    len: u64,
}

impl Pattern {
    fn new(len: u64) -> Self {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let block = (0..PATTERN)
            .map(|_| {
                // xorshift64: deterministic and dependency-free.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b'a' + (state >> 60) as u8
            })
            .collect();
        Self { block, pos: 0, len }
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let at = (self.pos % PATTERN as u64) as usize;
        let n = buf
            .len()
            .min(PATTERN - at)
            .min((self.len - self.pos) as usize);
        buf[..n].copy_from_slice(&self.block[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// A one-layer image whose only file is `/big` of `size` bytes (gzip level 1).
pub fn big_file_layout(layout: &Path, size: u64) -> io::Result<Vec<PathBuf>> {
    build_cached(layout, |dir| {
        let layer = write_layer(dir, Compression::fast(), |out| {
            let mut builder = tar::Builder::new(out);
            let mut header = tar::Header::new_gnu();
            header.set_size(size);
            header.set_mode(0o644);
            header.set_mtime(1_704_164_645);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, "big", Pattern::new(size))?;
            builder.into_inner()?.flush()
        })?;
        Ok(vec![layer])
    })
}
