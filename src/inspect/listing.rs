//! `banger image ls`: directory listings read straight from an image.

use std::collections::HashSet;
use std::io::{self, Write};

use banger_ext4::read::{FileKind, Image, InodeView, ReadError};

use super::format::{mode_string, short_time, size_column};

/// How to list.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListOptions {
    /// `-l`: mode, links, owner, group, size (or device), time, name, target.
    pub long: bool,
    /// `-R`: the whole subtree, one full path per line.
    pub recursive: bool,
}

/// Why a listing failed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The image could not be read.
    #[error("reading the image")]
    Read(#[from] ReadError),
    /// Writing the listing failed (a closed pipe, say).
    #[error("writing the listing")]
    Write(#[from] io::Error),
}

/// Lists `path` in `image` to `out`: a directory's entries sorted by name
/// (following `path` when it is a symlink to a directory, as `ls` does), or
/// the one entry `path` names otherwise.
pub fn list(
    image: &Image,
    path: &[u8],
    options: ListOptions,
    out: &mut dyn Write,
) -> Result<(), ListError> {
    // lstat first; only a symlink needs a second lookup, to see where it leads.
    let entry = image.lookup(path, false)?;
    let followed;
    let target = match entry.kind {
        FileKind::Symlink => {
            followed = image.lookup(path, true)?;
            &followed
        }
        _ => &entry,
    };
    if target.kind != FileKind::Directory {
        let name = if options.recursive {
            path
        } else {
            path.rsplit(|&b| b == b'/')
                .find(|c| !c.is_empty())
                .unwrap_or(path)
        };
        return write_entry(image, &entry, name, options, out);
    }
    let prefix = path.strip_suffix(b"/").unwrap_or(path).to_vec();
    let mut visited = HashSet::new();
    list_dir(image, target, &prefix, options, &mut visited, out)
}

fn list_dir(
    image: &Image,
    dir: &InodeView,
    prefix: &[u8],
    options: ListOptions,
    visited: &mut HashSet<u32>,
    out: &mut dyn Write,
) -> Result<(), ListError> {
    // A directory has one parent; a corrupt image may link one from many
    // places (or into itself): list it once.
    if !visited.insert(dir.ino) {
        return Ok(());
    }
    let mut entries = image.read_dir(dir)?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for entry in entries {
        let inode = image.inode(entry.ino)?;
        let mut full = prefix.to_vec();
        full.push(b'/');
        full.extend_from_slice(&entry.name);
        let shown = if options.recursive {
            &full
        } else {
            &entry.name
        };
        write_entry(image, &inode, shown, options, out)?;
        if options.recursive && inode.kind == FileKind::Directory {
            list_dir(image, &inode, &full, options, visited, out)?;
        }
    }
    Ok(())
}

fn write_entry(
    image: &Image,
    inode: &InodeView,
    name: &[u8],
    options: ListOptions,
    out: &mut dyn Write,
) -> Result<(), ListError> {
    if options.long {
        write!(
            out,
            "{} {:>3} {:>5} {:>5} {:>10} {} ",
            mode_string(inode.kind, inode.permissions),
            inode.links,
            inode.uid,
            inode.gid,
            size_column(inode),
            short_time(inode.mtime.secs),
        )?;
    }
    out.write_all(name)?;
    if options.long && inode.kind == FileKind::Symlink {
        out.write_all(b" -> ")?;
        out.write_all(&image.read_link(inode)?)?;
    }
    out.write_all(b"\n")?;
    Ok(())
}
