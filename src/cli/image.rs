//! `banger image …` and `banger cache …`.

use clap::Subcommand;
use serde_json::json;

use banger::source::default_cache_dir;
use banger::store::pull::{pull_image, PullRequest, PullSource};
use banger::store::{default_state_dir, Kind, Store};

use super::inspect;
use super::records::{image_json, image_table, image_text};
use super::{
    parse_size, progress, resolve_options, write_options, GuestArgs, LimitArgs, RegistryArgs,
};

const PULL_EXAMPLES: &str = "\
REF is a catalog name (debian-bookworm, alpine-3.20; $BANGER_CATALOG overrides the
catalog) or any `banger rootfs` source: a registry reference, oci:DIR[:TAG],
docker-archive:FILE or tar:FILE.

Examples:
  banger image pull debian-bookworm
  banger image pull ghcr.io/myorg/devimg:v2 --kernel-ref linux-6.1     # named devimg-v2
  banger image pull alpine:3.20 --name tiny --size 512M --no-agents
  banger image pull oci:./layout:v1 --name dev --force
  echo \"$TOKEN\" | banger image pull registry.corp/x/y:1 --username me --password-stdin";

/// `banger image` subcommands.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Pull an image into the store: rootfs.ext4 plus its kernel, published atomically.
    #[command(after_help = PULL_EXAMPLES)]
    Pull(PullArgs),
    /// List the images in the store.
    #[command(
        after_help = "Examples:\n  banger image list\n  banger image list --json | jq -r '.[].name'"
    )]
    List {
        /// Print JSON (an array of records).
        #[arg(long)]
        json: bool,
    },
    /// Show one image's record and files.
    #[command(after_help = "Example:\n  banger image show debian-bookworm --json")]
    Show {
        /// The image name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a directory inside an image (no mount, no root).
    #[command(
        after_help = "Examples:\n  banger image ls debian-bookworm /etc -l\n  banger image ls ./rootfs.ext4 / -R | grep bin/"
    )]
    Ls(inspect::LsArgs),
    /// Print a file inside an image.
    #[command(after_help = "Example:\n  banger image cat debian-bookworm /etc/os-release")]
    Cat(inspect::CatArgs),
    /// Show a path's inode inside an image: type, mode, owner, times, xattrs, ACLs, capabilities.
    #[command(after_help = "Example:\n  banger image stat ./rootfs.ext4 /usr/bin/ping")]
    Stat(inspect::StatArgs),
    /// Write an image's whole filesystem as a tar (owners, modes, times, xattrs, hard links, holes).
    #[command(
        after_help = "Examples:\n  banger image export debian-bookworm -o debian.tar\n  banger image export ./rootfs.ext4 -o - | tar -t"
    )]
    Export(inspect::ExportArgs),
    /// Remove an image (its directory and record).
    #[command(after_help = "Example:\n  banger image rm debian-bookworm")]
    Rm {
        /// The image name.
        name: String,
    },
    /// Manage the blob cache.
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// `banger cache` subcommands.
#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Delete cached blobs that no image or kernel in the store uses.
    #[command(
        after_help = "Examples:\n  banger image cache prune --dry-run\n  banger cache prune"
    )]
    Prune {
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `banger image pull` arguments.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// A catalog name or an image source.
    reference: String,
    /// Store name (default: from the reference, e.g. debian-bookworm).
    #[arg(long)]
    name: Option<String>,
    /// Kernel: a local kernel or a kernel-catalog entry (default: the catalog entry's).
    #[arg(long = "kernel-ref", value_name = "KERNEL")]
    kernel_ref: Option<String>,
    /// Image size, e.g. 2G or 1500M (default: 1.5 × content, at least 1G).
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Platform to pick from multi-platform images.
    #[arg(long, default_value = "linux/amd64")]
    platform: String,
    #[command(flatten)]
    guest: GuestArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// Replace an existing image of the same name.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

/// Runs `banger image …`.
pub async fn run(command: ImageCommand) -> anyhow::Result<()> {
    let state = default_state_dir();
    match command {
        ImageCommand::Pull(args) => pull(args).await,
        ImageCommand::List { json } => {
            let store = Store::open_read(&state)?;
            let images = store.images()?;
            if json {
                let list: Vec<_> = images.iter().map(|r| image_json(&store, r)).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if let Some(table) = image_table(&images) {
                print!("{table}");
            } else {
                eprintln!("no images; pull one with `banger image pull debian-bookworm`");
            }
            Ok(())
        }
        ImageCommand::Show { name, json } => {
            let store = Store::open_read(&state)?;
            let record = store.require_image(&name)?;
            if json {
                let value = image_json(&store, &record);
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", image_text(&store, &record));
            }
            Ok(())
        }
        ImageCommand::Rm { name } => {
            let mut store = Store::open_locked(&state)?;
            store.remove(Kind::Image, &name)?;
            eprintln!("removed image {name}");
            Ok(())
        }
        ImageCommand::Ls(args) => inspect::ls(&args),
        ImageCommand::Cat(args) => inspect::cat(&args),
        ImageCommand::Stat(args) => inspect::stat(&args),
        ImageCommand::Export(args) => inspect::export_tar(&args),
        ImageCommand::Cache(command) => run_cache(command),
    }
}

/// Runs `banger cache …`.
pub fn run_cache(command: CacheCommand) -> anyhow::Result<()> {
    let CacheCommand::Prune { dry_run, json } = command;
    let store = Store::open_locked(&default_state_dir())?;
    let report = store.prune_cache(&default_cache_dir(), dry_run)?;
    if json {
        let blobs: Vec<_> = report
            .blobs
            .iter()
            .map(|(d, s)| json!({"digest": d, "size": s}))
            .collect();
        let temporaries: Vec<_> = report
            .temporaries
            .iter()
            .map(|(n, s)| json!({"name": n, "size": s}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "dry_run": dry_run,
                "bytes": report.bytes,
                "blobs": blobs,
                "temporaries": temporaries,
            }))?
        );
        return Ok(());
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    for (digest, size) in &report.blobs {
        println!("{verb} {digest} ({size} bytes)");
    }
    for (name, size) in &report.temporaries {
        println!("{verb} {name} ({size} bytes, a download whose banger is gone)");
    }
    let temporaries = match report.temporaries.len() {
        0 => String::new(),
        1 => " and 1 temporary file".to_string(),
        n => format!(" and {n} temporary files"),
    };
    eprintln!(
        "{} {} blobs{temporaries}, {} MiB",
        if dry_run { "would free" } else { "freed" },
        report.blobs.len(),
        report.bytes >> 20
    );
    Ok(())
}

async fn pull(args: PullArgs) -> anyhow::Result<()> {
    // --username applies to the registry the image comes from, which for a catalog
    // name is its entry's source.
    let image = PullSource::lookup(&args.reference)?;
    let resolve = resolve_options(&args.platform, &args.registry, image.registry_host())?;
    let request = PullRequest {
        image,
        name: args.name,
        kernel_ref: args.kernel_ref,
        force: args.force,
        resolve,
        write: write_options(args.size, &args.guest, &args.limits)?,
        modules: args.guest.modules.set(),
        progress: progress(args.quiet, true),
    };
    let report = pull_image(&default_state_dir(), request).await?;
    if !args.quiet {
        for warning in &report.warnings {
            eprintln!("warning: {warning}");
        }
        eprintln!(
            "pulled {} ({} MiB, kernel {}) into {}",
            report.record.name,
            report.record.size >> 20,
            report.record.kernel.as_deref().unwrap_or("none"),
            report.dir.display()
        );
    }
    Ok(())
}
