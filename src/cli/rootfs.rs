//! `banger rootfs`: one image source to one ext4 file.

use std::path::PathBuf;

use banger::guest::modules::{ModuleSource, ModulesPlan};
use banger::pipeline::{self, check_output_path};
use banger::source::ImageSource;
use banger::store::{default_state_dir, Kind, Store, StoreError};

use super::{
    parse_size, progress, resolve_options, write_options, GuestArgs, LimitArgs, RegistryArgs,
};

pub const ROOTFS_EXAMPLES: &str = "\
Sources:
  alpine, docker.io/library/debian:bookworm, ghcr.io/o/i:v2, host:5000/x@sha256:...
      a registry image (optionally prefixed docker://); loopback registries use plain HTTP
  oci:DIR[:TAG]          an OCI image layout (buildah, kaniko, skopeo)
  docker-archive:FILE    `docker save` output
  tar:FILE | tar:-       one root filesystem tar (plain, gzip or zstd); - reads stdin

Examples:
  banger rootfs alpine:3.20 -o alpine.ext4
  banger rootfs oci:./layout:latest -o rootfs.ext4 --size 2G
  docker save myimg | banger rootfs docker-archive:/dev/stdin -o myimg.ext4
  tar -C rootfs -c . | banger rootfs tar:- -o rootfs.ext4 --no-agents";

#[derive(clap::Args, Debug)]
pub struct RootfsArgs {
    /// Image source (see below).
    source: String,
    /// The ext4 file to write; it appears only once complete.
    #[arg(short, long)]
    output: PathBuf,
    /// Image size, e.g. 2G or 1500M (default: 1.5 × content, at least 1G).
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Platform to pick from multi-platform images.
    #[arg(long, default_value = "linux/amd64")]
    platform: String,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    guest: GuestArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// Write the modules of this kernel from the store (see `banger kernel import`).
    #[arg(
        long = "kernel-ref",
        value_name = "KERNEL",
        conflicts_with = "modules_from"
    )]
    kernel_ref: Option<String>,
    /// Write the modules of this directory, laid out as lib/modules/RELEASE.
    #[arg(long = "modules-from", value_name = "DIR")]
    modules_from: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

pub async fn rootfs(args: RootfsArgs) -> anyhow::Result<()> {
    let source: ImageSource = args.source.parse()?;
    // Before any download: a bad output path is known now.
    check_output_path(&args.output, &source)?;
    let registry_host = match &source {
        ImageSource::Registry(reference) => Some(reference.registry()),
        _ => None,
    };
    let resolve = resolve_options(&args.platform, &args.registry, registry_host)?;
    let mut write = write_options(args.size, &args.guest, &args.limits)?;
    if let (Some(guest), Some(set)) = (&mut write.guest, args.guest.modules.set()) {
        let source = match (&args.kernel_ref, &args.modules_from) {
            (Some(name), _) => Some(kernel_modules(name)?),
            (None, Some(dir)) => Some(ModuleSource::Directory(dir.clone())),
            (None, None) => None,
        };
        guest.modules = source.map(|source| ModulesPlan { source, set });
    }
    // No log lines: off a terminal, stderr keeps only the result line.
    let progress = progress(args.quiet, false);
    let report = pipeline::build(&source, &resolve, args.output.clone(), write, progress).await?;
    if !args.quiet {
        for warning in report.warnings() {
            eprintln!("warning: {warning}");
        }
        let g = &report.summary.geometry;
        eprintln!(
            "wrote {} ({} MiB, {} of {} inodes) from {}",
            args.output.display(),
            (g.blocks_count * 4096) >> 20,
            report.summary.used_inodes,
            g.inodes_count(),
            report.image.reference
        );
    }
    Ok(())
}

/// The modules tarball of kernel `name` in the store.
fn kernel_modules(name: &str) -> anyhow::Result<ModuleSource> {
    let store = Store::open_read(&default_state_dir())?;
    let kernel = store.kernel(name)?.ok_or_else(|| StoreError::NotFound {
        kind: "kernel",
        name: name.to_owned(),
        hint: format!(
            "import one with `banger kernel import {name} --kernel VMLINUX --modules DIR`"
        ),
    })?;
    if !kernel.modules {
        anyhow::bail!("kernel {name} was imported without modules (--modules DIR)");
    }
    let dir = store.layout().entry_dir(Kind::Kernel, name);
    Ok(ModuleSource::Tarball(
        dir.join(banger::store::kernel::MODULES_FILE),
    ))
}
