//! The `banger` command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use banger::flatten::Limits;
use banger::rootfs::{build_rootfs, check_output_path, RootfsRequest};
use banger::source::{default_cache_dir, ImageSource, ResolveOptions};

/// Turn OCI/Docker container images into bootable ext4 root filesystems
/// for microVMs, with no e2fsprogs, no root and no mounting.
#[derive(Parser, Debug)]
#[command(name = "banger", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write an image's root filesystem to an ext4 file.
    #[command(after_help = ROOTFS_EXAMPLES)]
    Rootfs(RootfsArgs),
}

const ROOTFS_EXAMPLES: &str = "\
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
struct RootfsArgs {
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
    /// Reach this registry over plain HTTP (loopback registries always are).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// Leave the image as the layers say: inject no guest agents.
    #[arg(long)]
    no_agents: bool,
    /// vsock port the health agent listens on.
    #[arg(long, default_value_t = banger::inject::DEFAULT_VSOCK_PORT)]
    vsock_port: u32,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

/// Parses `1G`, `512M`, `1048576`, `2GiB`.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 2G or 1500M"))?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        other => return Err(format!("unknown size unit {other:?}: use K, M, G or T")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text} is too large"))
}

fn source_date_epoch() -> anyhow::Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Ok(Some(
            v.trim()
                .parse()
                .context("SOURCE_DATE_EPOCH must be whole seconds")?,
        )),
        _ => Ok(None),
    }
}

async fn rootfs(args: RootfsArgs) -> anyhow::Result<()> {
    check_output_path(&args.output).map_err(anyhow::Error::msg)?;
    let source: ImageSource = args.source.parse()?;
    let mut resolve = ResolveOptions::new(default_cache_dir());
    resolve.platform = args.platform.parse()?;
    resolve.insecure_registries = args.insecure_registries;
    let progress = !args.quiet && std::io::stderr().is_terminal();
    if progress {
        resolve.progress = Some(banger::progress::download_reporter());
    }
    let epoch = source_date_epoch()?;
    let request = RootfsRequest {
        source,
        output: args.output.clone(),
        size: args.size,
        resolve,
        agents_vsock_port: (!args.no_agents).then_some(args.vsock_port),
        limits: Limits::default(),
        source_date_epoch: epoch,
    };
    let report = build_rootfs(request).await?;
    if !args.quiet {
        for warning in &report.warnings {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Rootfs(args) => rootfs(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line. Most of banger's errors already
/// print their source, so a cause whose text is already on the line is
/// left out rather than repeated.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::{one_line, parse_size};

    #[derive(Debug, thiserror::Error)]
    #[error("layer 1: reading: {0}")]
    struct Embeds(#[source] std::io::Error);

    #[test]
    fn errors_print_each_cause_once_on_one_line() {
        let inner = std::io::Error::other("gzip stream: unexpected end of file");
        let error = anyhow::Error::new(Embeds(inner)).context("building the image");
        assert_eq!(
            one_line(&error),
            "building the image: layer 1: reading: gzip stream: unexpected end of file"
        );
        let multi = anyhow::anyhow!("registry said:\n  too many\n\n requests");
        assert_eq!(one_line(&multi), "registry said: too many requests");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1500M"), Ok(1500 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("G").is_err());
    }
}
