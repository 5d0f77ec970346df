//! The seed pipeline banger replaces, step by step as the seed ran it:
//! extract each layer with GNU tar, apply its whiteouts, `mkfs.ext4 -d`,
//! then a `debugfs` pass that sets every inode's owner.
//!
//! `mkfs.ext4 -d` run as root already keeps the owners, so the debugfs pass
//! changes nothing here; it is kept because the seed ran it (it made the
//! ownership right when unpacking as an ordinary user).

use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::measure::output;

/// Names that start with this hide a lower layer's file.
const WHITEOUT_PREFIX: &str = ".wh.";
/// The marker that makes its directory opaque.
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Extracts `layers` in order into the empty directory `dir`.
pub fn extract(layers: &[impl AsRef<Path>], dir: &Path) -> io::Result<()> {
    for layer in layers {
        output(
            Command::new("tar")
                .arg("-xpf")
                .arg(layer.as_ref())
                .args(["--xattrs", "--acls", "--numeric-owner", "-C"])
                .arg(dir),
        )?;
        apply_whiteouts(dir)?;
    }
    Ok(())
}

/// Removes what each `.wh.NAME` marker hides, then the marker.
///
/// Like the seed, this runs after extracting the layer, so an opaque
/// marker cannot tell the layer's own files from the ones it hides: it is
/// only removed (the benchmark's layers have none).
fn apply_whiteouts(dir: &Path) -> io::Result<()> {
    // Read the whole directory first: it changes as markers are applied.
    let entries = fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    let mut subdirs = Vec::new();
    for entry in &entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == OPAQUE_MARKER {
            fs::remove_file(entry.path())?;
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let target = dir.join(hidden);
            match fs::symlink_metadata(&target) {
                Ok(meta) if meta.is_dir() => fs::remove_dir_all(&target)?,
                Ok(_) => fs::remove_file(&target)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            fs::remove_file(entry.path())?;
        } else if entry.file_type()?.is_dir() {
            subdirs.push(entry.path());
        }
    }
    for subdir in subdirs {
        // A marker in this directory may have removed it.
        if subdir.is_dir() {
            apply_whiteouts(&subdir)?;
        }
    }
    Ok(())
}

/// `mkfs.ext4 -d`: a 4 KiB-block image of `size` bytes holding `dir`.
pub fn mkfs(dir: &Path, image: &Path, size: u64) -> io::Result<()> {
    let _ = fs::remove_file(image);
    output(
        Command::new("mkfs.ext4")
            .args(["-F", "-q", "-b", "4096", "-d"])
            .arg(dir)
            .arg(image)
            .arg(format!("{}k", size / 1024)),
    )
    .map(drop)
}

/// The seed's ownership pass: `sif PATH uid N` and `sif PATH gid N` for
/// every path under `dir`, in one `debugfs -w` session.
pub fn set_owners(dir: &Path, image: &Path, scratch: &Path) -> io::Result<()> {
    let commands = scratch.join("debugfs-owners.cmds");
    let mut out = BufWriter::new(fs::File::create(&commands)?);
    write_owner_commands(dir, "", &mut out)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    output(
        Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&commands)
            .arg(image),
    )
    .map(drop)
}

fn write_owner_commands(dir: &Path, prefix: &str, out: &mut dyn Write) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let path = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        writeln!(out, "sif \"{path}\" uid {}", meta.uid())?;
        writeln!(out, "sif \"{path}\" gid {}", meta.gid())?;
        if meta.is_dir() {
            write_owner_commands(&entry.path(), &path, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteouts_remove_files_and_directories() {
        let dir = tempfile_dir();
        fs::create_dir_all(dir.join("a/gone/deep")).unwrap();
        fs::write(dir.join("a/file"), b"x").unwrap();
        fs::write(dir.join("a/kept"), b"x").unwrap();
        fs::write(dir.join("a/.wh.file"), b"").unwrap();
        fs::write(dir.join("a/.wh.gone"), b"").unwrap();
        fs::write(dir.join("a/.wh..wh..opq"), b"").unwrap();
        apply_whiteouts(&dir).unwrap();
        let mut left: Vec<_> = fs::read_dir(dir.join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["kept"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("banger-bench-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
