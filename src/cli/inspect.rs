//! `banger image ls|cat|stat|export`: looking inside an image, by store name
//! or file, without e2fsprogs, a mount or root.

use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use banger::inspect::export::export;
use banger::inspect::listing::{list, ListOptions};
use banger::inspect::stat::describe;
use banger::staged::StagedFile;
use banger::store::pull::ROOTFS_FILE;
use banger::store::{default_state_dir, Kind, Store};
use banger_ext4::read::Image;

/// Which image to read: a store name or an ext4 file.
#[derive(clap::Args, Debug)]
pub struct ImageArg {
    /// An image in the store (see `banger image list`) or an ext4 file; a
    /// value with a `/` is always a file (`./NAME` for one in this directory).
    #[arg(value_name = "NAME|FILE")]
    image: String,
}

impl ImageArg {
    /// The ext4 file to read: the store image's rootfs, else the file.
    fn path(&self) -> anyhow::Result<PathBuf> {
        let as_file = Path::new(&self.image);
        if self.image.contains('/') {
            return Ok(as_file.to_path_buf());
        }
        let store = Store::open_read(&default_state_dir())?;
        match store.require_image(&self.image) {
            Ok(record) => Ok(store
                .layout()
                .entry_dir(Kind::Image, &record.name)
                .join(ROOTFS_FILE)),
            Err(_) if as_file.is_file() => Ok(as_file.to_path_buf()),
            Err(not_found) => Err(not_found.into()),
        }
    }

    fn open(&self) -> anyhow::Result<Image> {
        let path = self.path()?;
        Image::open(&path).with_context(|| format!("reading {}", path.display()))
    }
}

/// `banger image ls` arguments.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    image: ImageArg,
    /// The directory or file to list.
    #[arg(default_value = "/")]
    path: PathBuf,
    /// Long format: mode, links, uid, gid, size (major, minor for devices), mtime, symlink target.
    #[arg(short, long)]
    long: bool,
    /// The whole subtree, one full path per line.
    #[arg(short = 'R', long)]
    recursive: bool,
}

/// `banger image cat` arguments.
#[derive(clap::Args, Debug)]
pub struct CatArgs {
    #[command(flatten)]
    image: ImageArg,
    /// The file to print (symlinks are followed inside the image).
    path: PathBuf,
}

/// `banger image stat` arguments.
#[derive(clap::Args, Debug)]
pub struct StatArgs {
    #[command(flatten)]
    image: ImageArg,
    /// The path to describe (a symlink itself, not its target).
    path: PathBuf,
}

/// `banger image export` arguments.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    image: ImageArg,
    /// The tar to write, or `-` for standard output.
    #[arg(short, long, value_name = "TAR|-")]
    output: PathBuf,
}

/// Runs `banger image ls`.
pub fn ls(args: &LsArgs) -> anyhow::Result<()> {
    let image = args.image.open()?;
    let options = ListOptions {
        long: args.long,
        recursive: args.recursive,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    list(&image, args.path.as_os_str().as_bytes(), options, &mut out)?;
    out.flush().context("writing the listing")
}

/// Runs `banger image cat`.
pub fn cat(args: &CatArgs) -> anyhow::Result<()> {
    let image = args.image.open()?;
    let inode = image.lookup(args.path.as_os_str().as_bytes(), true)?;
    if inode.kind != banger_ext4::read::FileKind::Regular {
        anyhow::bail!("{}: not a regular file", args.path.display());
    }
    let mut out = BufWriter::new(io::stdout().lock());
    image.copy_data(&inode, &mut out)?;
    out.flush().context("writing the file")
}

/// Runs `banger image stat`.
pub fn stat(args: &StatArgs) -> anyhow::Result<()> {
    let image = args.image.open()?;
    let inode = image.lookup(args.path.as_os_str().as_bytes(), false)?;
    let xattrs = image.xattrs(&inode)?;
    print!(
        "{}",
        describe(&image, &args.path.to_string_lossy(), &inode, &xattrs)?
    );
    Ok(())
}

/// Runs `banger image export`: to a file that appears only when complete,
/// or to standard output.
pub fn export_tar(args: &ExportArgs) -> anyhow::Result<()> {
    let image = args.image.open()?;
    let report = if args.output.as_os_str() == "-" {
        let mut out = BufWriter::new(io::stdout().lock());
        let report = export(&image, &mut out)?;
        out.flush().context("writing the tar")?;
        report
    } else {
        let staged = StagedFile::create(&args.output)
            .with_context(|| format!("creating {}", args.output.display()))?;
        let mut out = BufWriter::new(staged.file());
        let report = export(&image, &mut out)?;
        out.flush().context("writing the tar")?;
        drop(out);
        staged
            .persist()
            .with_context(|| format!("saving {}", args.output.display()))?;
        report
    };
    for socket in &report.skipped_sockets {
        eprintln!(
            "warning: {}: socket left out (tar cannot hold sockets)",
            String::from_utf8_lossy(socket)
        );
    }
    Ok(())
}
