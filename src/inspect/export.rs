//! `banger image export`: an image's whole filesystem as one POSIX tar,
//! streamed from the image with no extraction.
//!
//! The tar is pax (POSIX.1-2001): owners, modes and ns times of every entry,
//! xattrs as `SCHILY.xattr.*` (POSIX ACLs in the VFS format, as GNU tar and
//! containerd write them), hard links as link entries to the first path,
//! devices and FIFOs, and files with holes as GNU sparse 1.0 entries, which
//! GNU tar, libarchive and banger's own reader restore as sparse files.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use banger_ext4::read::{DataRegion, FileKind, Image, InodeView, ReadError};
use banger_ext4::tree::Timestamp;

/// Tar's block size.
const BLOCK: u64 = 512;
/// Largest number a 12-byte octal header field holds (`size`, `mtime`).
const MAX_OCTAL_12: u64 = 0o777_7777_7777;
/// Largest number an 8-byte octal header field holds (`uid`, `gid`).
const MAX_OCTAL_8: u64 = 0o777_7777;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The image could not be read.
    #[error("reading the image")]
    Read(#[from] ReadError),
    /// Writing the tar failed.
    #[error("writing the tar")]
    Write(#[from] io::Error),
}

/// What an export wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Tar entries written (hard links included).
    pub entries: u64,
    /// Bytes of file data written (holes excluded).
    pub data_bytes: u64,
    /// Paths of sockets, which tar cannot hold and were left out.
    pub skipped_sockets: Vec<Vec<u8>>,
}

/// Writes the whole filesystem of `image` as a tar to `out`. Paths start
/// with `./`, as `tar -C DIR .` writes them; directories come before their
/// entries, which are sorted by name.
pub fn export(image: &Image, out: &mut dyn Write) -> Result<ExportReport, ExportError> {
    let mut exporter = Exporter {
        image,
        out: TarWriter { out, written: 0 },
        first_path: HashMap::new(),
        report: ExportReport::default(),
    };
    let root = image.root()?;
    exporter.entry(&root, b"./")?;
    let mut visited = HashSet::from([root.ino]);
    exporter.directory(&root, b".", &mut visited)?;
    exporter.out.finish()?;
    Ok(exporter.report)
}

struct Exporter<'a> {
    image: &'a Image,
    out: TarWriter<'a>,
    /// First path of each multiply-linked non-directory, for link entries.
    first_path: HashMap<u32, Vec<u8>>,
    report: ExportReport,
}

impl Exporter<'_> {
    fn directory(
        &mut self,
        dir: &InodeView,
        path: &[u8],
        visited: &mut HashSet<u32>,
    ) -> Result<(), ExportError> {
        let mut entries = self.image.read_dir(dir)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for entry in entries {
            let inode = self.image.inode(entry.ino)?;
            let mut child = path.to_vec();
            child.push(b'/');
            child.extend_from_slice(&entry.name);
            if inode.kind == FileKind::Directory {
                // A directory has one parent: one reached twice is a loop,
                // or a corrupt image that would export it again and again.
                if !visited.insert(inode.ino) {
                    return Err(ReadError::Corrupt {
                        ino: inode.ino,
                        what: "directory linked from two places",
                    }
                    .into());
                }
                let mut dir_path = child.clone();
                dir_path.push(b'/');
                self.entry(&inode, &dir_path)?;
                self.directory(&inode, &child, visited)?;
            } else {
                self.entry(&inode, &child)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, inode: &InodeView, path: &[u8]) -> Result<(), ExportError> {
        if inode.kind == FileKind::Socket {
            self.report.skipped_sockets.push(path.to_vec());
            return Ok(());
        }
        let mut header = EntryHeader::new(inode, path);
        if inode.kind != FileKind::Directory && inode.links > 1 {
            if let Some(first) = self.first_path.get(&inode.ino) {
                header.link(first.clone());
                self.out.write_entry(&header)?;
                self.report.entries += 1;
                return Ok(());
            }
            self.first_path.insert(inode.ino, path.to_vec());
        }
        for xattr in self.image.xattrs(inode)? {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(&xattr.name);
            header.pax.push((key, xattr.value));
        }
        match inode.kind {
            FileKind::Regular => self.file(inode, header)?,
            FileKind::Symlink => {
                header.symlink(self.image.read_link(inode)?);
                self.out.write_entry(&header)?;
            }
            _ => self.out.write_entry(&header)?,
        }
        self.report.entries += 1;
        Ok(())
    }

    fn file(&mut self, inode: &InodeView, mut header: EntryHeader) -> Result<(), ExportError> {
        let regions = self.image.data_regions(inode)?;
        let data: u64 = regions.iter().map(|r| r.len).sum();
        self.report.data_bytes += data;
        if data == inode.size {
            header.size = inode.size;
            self.out.write_entry(&header)?;
            for region in &regions {
                self.image.copy_region(inode.ino, region, &mut self.out)?;
            }
            return Ok(self.out.pad()?);
        }
        let map = sparse_map(&regions, inode.size);
        header.sparse(inode.size, map.len() as u64 + data);
        self.out.write_entry(&header)?;
        self.out.write_all(&map)?;
        for region in &regions {
            self.image.copy_region(inode.ino, region, &mut self.out)?;
        }
        Ok(self.out.pad()?)
    }
}

/// GNU sparse 1.0's map: the region count, then each offset and length, one
/// decimal per line, padded to a block. A file ending in a hole gets a last,
/// empty region at its size, as GNU tar writes it, so the size survives.
fn sparse_map(regions: &[DataRegion], size: u64) -> Vec<u8> {
    let mut pairs: Vec<(u64, u64)> = regions.iter().map(|r| (r.offset, r.len)).collect();
    if pairs
        .last()
        .is_none_or(|&(offset, len)| offset + len < size)
    {
        pairs.push((size, 0));
    }
    let mut map = format!("{}\n", pairs.len());
    for (offset, len) in pairs {
        map.push_str(&format!("{offset}\n{len}\n"));
    }
    let mut map = map.into_bytes();
    map.resize(map.len().next_multiple_of(BLOCK as usize), 0);
    map
}

/// One entry's header fields and pax records, before encoding.
struct EntryHeader {
    path: Vec<u8>,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: Timestamp,
    size: u64,
    link_target: Vec<u8>,
    device: (u32, u32),
    pax: Vec<(Vec<u8>, Vec<u8>)>,
}

impl EntryHeader {
    fn new(inode: &InodeView, path: &[u8]) -> Self {
        let kind = match inode.kind {
            FileKind::Regular | FileKind::Socket => tar::EntryType::Regular,
            FileKind::Directory => tar::EntryType::Directory,
            FileKind::Symlink => tar::EntryType::Symlink,
            FileKind::CharDevice => tar::EntryType::Char,
            FileKind::BlockDevice => tar::EntryType::Block,
            FileKind::Fifo => tar::EntryType::Fifo,
        };
        let device = inode.device.map_or((0, 0), |d| (d.major, d.minor));
        let mut pax = vec![
            (b"mtime".to_vec(), pax_time(inode.mtime)),
            (b"atime".to_vec(), pax_time(inode.atime)),
            (b"ctime".to_vec(), pax_time(inode.ctime)),
        ];
        if u64::from(inode.uid) > MAX_OCTAL_8 {
            pax.push((b"uid".to_vec(), inode.uid.to_string().into_bytes()));
        }
        if u64::from(inode.gid) > MAX_OCTAL_8 {
            pax.push((b"gid".to_vec(), inode.gid.to_string().into_bytes()));
        }
        Self {
            path: path.to_vec(),
            kind,
            mode: u32::from(inode.permissions),
            uid: u64::from(inode.uid),
            gid: u64::from(inode.gid),
            mtime: inode.mtime,
            size: 0,
            link_target: Vec::new(),
            device,
            pax,
        }
    }

    /// Makes this a hard link to `target`, which carries the metadata.
    fn link(&mut self, target: Vec<u8>) {
        self.kind = tar::EntryType::Link;
        self.link_target = target;
    }

    fn symlink(&mut self, target: Vec<u8>) {
        self.link_target = target;
    }

    /// Makes this a GNU sparse 1.0 entry of `real_size` bytes whose body
    /// (map plus data) is `stored` bytes.
    fn sparse(&mut self, real_size: u64, stored: u64) {
        let name = self
            .path
            .rsplit(|&b| b == b'/')
            .next()
            .unwrap_or(&[])
            .to_vec();
        let mut stand_in = b"./GNUSparseFile.0/".to_vec();
        stand_in.extend_from_slice(&name);
        self.pax.extend([
            (b"GNU.sparse.major".to_vec(), b"1".to_vec()),
            (b"GNU.sparse.minor".to_vec(), b"0".to_vec()),
            (b"GNU.sparse.name".to_vec(), std::mem::take(&mut self.path)),
            (
                b"GNU.sparse.realsize".to_vec(),
                real_size.to_string().into_bytes(),
            ),
        ]);
        self.path = stand_in;
        self.size = stored;
    }
}

/// A pax time: seconds and nanoseconds, with the sign in front of both
/// (`-1.250000000` is 1.25 s before the epoch).
fn pax_time(time: Timestamp) -> Vec<u8> {
    let text = if time.secs < 0 && time.nanos > 0 {
        format!("-{}.{:09}", -(time.secs + 1), 1_000_000_000 - time.nanos)
    } else {
        format!("{}.{:09}", time.secs, time.nanos)
    };
    text.into_bytes()
}

/// One pax record: `LEN KEY=VALUE\n`, where LEN counts the whole record.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut record = format!("{len} ").into_bytes();
    record.extend_from_slice(key);
    record.push(b'=');
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// A tar stream: header blocks, pax records, data and padding.
struct TarWriter<'a> {
    out: &'a mut dyn Write,
    written: u64,
}

impl Write for TarWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl TarWriter<'_> {
    /// Writes the pax header (when needed) and the ustar header of `entry`;
    /// its data follows, then [`Self::pad`].
    fn write_entry(&mut self, entry: &EntryHeader) -> io::Result<()> {
        let size = entry.size.to_string();
        // Fields the ustar header cannot hold go into pax records too.
        let overflow: [(&[u8], &[u8], bool); 3] = [
            (b"path", &entry.path, entry.path.len() > 100),
            (
                b"linkpath",
                &entry.link_target,
                entry.link_target.len() > 100,
            ),
            (b"size", size.as_bytes(), entry.size > MAX_OCTAL_12),
        ];
        let records: Vec<u8> = entry
            .pax
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_slice()))
            .chain(
                overflow
                    .iter()
                    .filter(|(_, _, needed)| *needed)
                    .map(|&(key, value, _)| (key, value)),
            )
            .flat_map(|(key, value)| pax_record(key, value))
            .collect();
        if !records.is_empty() {
            let header = ustar_header(
                b"./PaxHeaders/entry",
                tar::EntryType::XHeader,
                records.len() as u64,
                entry,
            );
            self.write_all(header.as_bytes())?;
            self.write_all(&records)?;
            self.pad()?;
        }
        let header = ustar_header(&entry.path, entry.kind, entry.size, entry);
        self.write_all(header.as_bytes())
    }

    /// Pads the stream to a block boundary.
    fn pad(&mut self) -> io::Result<()> {
        let gap = (BLOCK - self.written % BLOCK) % BLOCK;
        self.write_all(&[0u8; BLOCK as usize][..gap as usize])
    }

    /// Writes the two zero blocks that end an archive.
    fn finish(&mut self) -> io::Result<()> {
        self.pad()?;
        self.write_all(&[0u8; 2 * BLOCK as usize])?;
        self.flush()
    }
}

/// A ustar header for `entry` under `name` and `kind`. Values a field
/// cannot hold are clamped; the pax records written before it carry them.
fn ustar_header(name: &[u8], kind: tar::EntryType, size: u64, entry: &EntryHeader) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    let old = header.as_old_mut();
    let name_len = name.len().min(old.name.len());
    old.name[..name_len].copy_from_slice(&name[..name_len]);
    let link_len = entry.link_target.len().min(old.linkname.len());
    old.linkname[..link_len].copy_from_slice(&entry.link_target[..link_len]);
    header.set_entry_type(kind);
    header.set_mode(entry.mode);
    header.set_uid(entry.uid.min(MAX_OCTAL_8));
    header.set_gid(entry.gid.min(MAX_OCTAL_8));
    header.set_mtime(
        u64::try_from(entry.mtime.secs)
            .unwrap_or(0)
            .min(MAX_OCTAL_12),
    );
    header.set_size(size.min(MAX_OCTAL_12));
    if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
        // Device numbers fit: ext4 stores at most 12:20 bits.
        let _ = header.set_device_major(entry.device.0);
        let _ = header.set_device_minor(entry.device.1);
    }
    header.set_cksum();
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record(b"path", b"a"), b"9 path=a\n");
        // 99 bytes besides the length: two digits would make 101, which needs three.
        let value = vec![b'x'; 92];
        let record = pax_record(b"path", &value);
        assert_eq!(record.len(), 102);
        assert!(record.starts_with(b"102 path="));
    }

    #[test]
    fn pax_times_put_the_sign_in_front() {
        assert_eq!(pax_time(Timestamp { secs: 5, nanos: 7 }), b"5.000000007");
        assert_eq!(
            pax_time(Timestamp {
                secs: -2,
                nanos: 750_000_000
            }),
            b"-1.250000000"
        );
        assert_eq!(pax_time(Timestamp { secs: -3, nanos: 0 }), b"-3.000000000");
    }

    #[test]
    fn sparse_maps_end_with_the_size() {
        let region = |offset, len| DataRegion {
            offset,
            len,
            disk_offset: 0,
        };
        let map = sparse_map(&[region(4096, 10)], 1 << 20);
        assert_eq!(&map[..22], b"2\n4096\n10\n1048576\n0\n\0\0");
        assert_eq!(map.len(), 512);
        let full = sparse_map(&[region(0, 5)], 5);
        assert!(full.starts_with(b"1\n0\n5\n\0"));
    }
}
