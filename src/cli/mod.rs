//! The `banger` command line: argument parsing, shared helpers, and the mapping
//! from errors to exit codes.
//!
//! Exit codes: 0 success, 1 error, 2 usage error, 3 not found, 4 already exists.

mod docs;
mod image;
mod inspect;
mod kernel;
mod records;
mod rootfs;

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use banger::flatten::Limits;
use banger::guest::modules::ModuleSet;
use banger::guest::InitChoice;
use banger::pipeline::{GuestSettings, Progress, RootfsError, WriteOptions};
use banger::platform::PlatformError;
use banger::reference::ReferenceError;
use banger::source::growing::DownloadFailed;
use banger::source::registry::{Credentials, CredentialsFn, SpeedLimit};
use banger::source::{ResolveOptions, SourceError};
use banger::store::StoreError;
use banger_ext4::read::ReadError;

/// Turn OCI/Docker container images into bootable ext4 root filesystems
/// for microVMs, with no e2fsprogs, no root and no mounting.
#[derive(Parser, Debug)]
#[command(name = "banger", version = VERSION, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--version`: the crate version and the git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BANGER_GIT_COMMIT"),
    ")"
);

const EXIT_CODES: &str = "\
Exit codes: 0 ok, 1 error, 2 usage error, 3 not found, 4 already exists.
Paths: images in $BANGER_STATE_DIR (default ~/.local/state/banger), blobs in
$BANGER_CACHE_DIR (default ~/.cache/banger).";

#[derive(Subcommand, Debug)]
enum Command {
    /// Write an image's root filesystem to an ext4 file.
    #[command(after_help = rootfs::ROOTFS_EXAMPLES)]
    Rootfs(rootfs::RootfsArgs),
    /// Pull, list, inspect and remove images in the local store.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Import, list and remove kernels.
    #[command(subcommand)]
    Kernel(kernel::KernelCommand),
    /// Manage the blob cache (same as `banger image cache`).
    #[command(subcommand)]
    Cache(image::CacheCommand),
    /// Print shell completions for bash, zsh or fish.
    #[command(after_help = COMPLETION_HELP)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: docs::CompletionShell,
    },
    /// Print the man page (banger.1), or write one page per command into a directory.
    #[command(
        after_help = "Examples:\n  banger man | man -l -\n  banger man --dir /usr/local/share/man/man1"
    )]
    Man {
        /// Write banger.1 and a page per subcommand (banger-image-ls.1, ...) here.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

const COMPLETION_HELP: &str = "\
Examples:
  banger completions bash > /etc/bash_completion.d/banger
  banger completions zsh > \"${fpath[1]}/_banger\"
  banger completions fish > ~/.config/fish/completions/banger.fish";

/// Registry options shared by the commands that pull.
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Reach this registry over plain HTTP (loopback registries always are).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// User name for the image's registry (default: ~/.docker/config.json).
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password (or token) for --username from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Fail a registry transfer that averages less than this many bytes per
    /// second over --speed-time (e.g. 1K, 0 to wait for any speed).
    #[arg(long, value_name = "BYTES", default_value = "1K", value_parser = parse_size)]
    pub min_speed: u64,
    /// Seconds over which --min-speed is measured.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub speed_time: u64,
}

/// What banger adds to the guest: options shared by `rootfs` and `image pull`.
#[derive(clap::Args, Debug, Clone)]
pub struct GuestArgs {
    /// Leave the image exactly as the layers say: no agents, no init, no kernel modules.
    #[arg(long)]
    pub no_agents: bool,
    /// vsock port the health agent listens on (0 to 4294967294).
    #[arg(long, default_value_t = banger::inject::DEFAULT_VSOCK_PORT, value_parser = parse_vsock_port)]
    pub vsock_port: u32,
    /// Init system to set the guest services up for: auto (detect it; banger's own
    /// init where the image has none), systemd, sysvinit, openrc, busybox, or banger
    /// (banger's init as /sbin/init, replacing the image's).
    #[arg(long, default_value = "auto", value_parser = parse_init)]
    pub init: InitChoice,
    /// Which of the kernel's modules to write into /lib/modules: guest (what a
    /// microVM needs: virtio, NIC, block, vsock, and their dependencies), all, or none.
    #[arg(long = "modules", value_enum, default_value_t = ModulesArg::Guest)]
    pub modules: ModulesArg,
}

/// Limits on what an image may hold, shared by `rootfs` and `image pull`.
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Most tar entries over all layers. The image's tree is in memory while
    /// it is written, about 310 bytes per entry plus its name: the default
    /// keeps that near 1.2 GB.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_entries)]
    pub max_entries: u64,
}

impl LimitArgs {
    /// The flattener's limits with these values.
    pub fn limits(&self) -> Limits {
        Limits {
            max_entries: self.max_entries,
            ..Limits::default()
        }
    }
}

/// `--modules`: which of the kernel's modules to write.
#[derive(clap::ValueEnum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ModulesArg {
    /// What a microVM guest needs, with their dependencies.
    Guest,
    /// Every module of the kernel.
    All,
    /// No modules.
    None,
}

impl ModulesArg {
    /// The set to write, `None` for none.
    pub fn set(self) -> Option<ModuleSet> {
        match self {
            Self::Guest => Some(ModuleSet::Guest),
            Self::All => Some(ModuleSet::All),
            Self::None => None,
        }
    }
}

impl GuestArgs {
    /// The settings, or `None` with `--no-agents`. Modules are added by the caller,
    /// which knows the kernel.
    pub fn settings(&self) -> Option<GuestSettings> {
        (!self.no_agents).then(|| GuestSettings {
            vsock_port: self.vsock_port,
            init: self.init.clone(),
            modules: None,
        })
    }
}

/// A vsock port: any u32 but VMADDR_PORT_ANY (u32::MAX), which means "any
/// port" to bind(2), so the agent would listen somewhere unknown.
fn parse_vsock_port(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(u32::MAX) => {
            Err("4294967295 is VMADDR_PORT_ANY, not a port; use 0 to 4294967294".into())
        }
        Ok(port) => Ok(port),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_init(text: &str) -> Result<InitChoice, String> {
    banger::initsys::parse_choice(text).map_err(|e| e.to_string())
}

/// Parses `1G`, `512M`, `1048576`, `2GiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
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

/// How to write an image, from the arguments every command that writes one
/// takes. Modules are added by the caller, which knows the kernel.
pub fn write_options(
    size: Option<u64>,
    guest: &GuestArgs,
    limits: &LimitArgs,
) -> anyhow::Result<WriteOptions> {
    Ok(WriteOptions {
        size,
        guest: guest.settings(),
        limits: limits.limits(),
        source_date_epoch: source_date_epoch()?,
    })
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

/// Credentials by registry host: `explicit` for `registry`, else what docker's
/// config (`auths` or a credential helper) has. Lookup failures mean anonymous.
pub fn credentials_lookup(explicit: Option<(String, Credentials)>) -> CredentialsFn {
    Arc::new(move |host: &str| {
        if let Some((registry, credentials)) = &explicit {
            if registry == host {
                return Some(credentials.clone());
            }
        }
        let mut servers = vec![host.to_string()];
        if host == banger::reference::DOCKER_HUB {
            servers.insert(0, "https://index.docker.io/v1/".to_string());
        }
        servers.iter().find_map(|server| {
            match docker_credential::get_credential(server) {
                Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => {
                    Some(Credentials { username, password })
                }
                // Identity tokens need docker's OAuth refresh flow, which banger lacks.
                _ => None,
            }
        })
    })
}

/// Where a command shows its progress: bars on a terminal; elsewhere log
/// lines when `log_lines`, else nothing (stderr then holds only the result
/// line); nothing at all with `quiet`.
pub fn progress(quiet: bool, log_lines: bool) -> Progress {
    if quiet {
        Progress::none()
    } else if std::io::stderr().is_terminal() {
        Progress::new(banger::progress::terminal_reporter())
    } else if log_lines {
        Progress::new(banger::progress::log_reporter())
    } else {
        Progress::none()
    }
}

/// Resolve options: cache, platform, insecure registries, credentials
/// (`--username`, else docker's config) and the speed limit. Every command
/// that pulls builds its options here, so they all reach private registries
/// the same way.
pub fn resolve_options(
    platform: &str,
    registry: &RegistryArgs,
    registry_host: Option<&str>,
) -> anyhow::Result<ResolveOptions> {
    let mut resolve = ResolveOptions::new(banger::source::default_cache_dir());
    resolve.platform = platform.parse()?;
    resolve.insecure_registries = registry.insecure_registries.clone();
    let explicit = match (&registry.username, registry.password_stdin) {
        (Some(username), true) => {
            let host = registry_host
                .context("--username applies to registry images only; this source is not one")?;
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            Some((
                host.to_string(),
                Credentials {
                    username: username.clone(),
                    password,
                },
            ))
        }
        _ => None,
    };
    resolve.credentials = Some(credentials_lookup(explicit));
    resolve.min_speed = (registry.min_speed > 0).then(|| SpeedLimit {
        bytes_per_sec: registry.min_speed,
        window: std::time::Duration::from_secs(registry.speed_time),
    });
    Ok(resolve)
}

/// Runs the command line and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    remove_temporaries_on_interrupt();
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
            Command::Rootfs(args) => rootfs::rootfs(args).await,
            Command::Image(command) => image::run(command).await,
            Command::Kernel(command) => kernel::run(command).await,
            Command::Cache(command) => image::run_cache(command),
            Command::Completions { shell } => docs::completions(shell),
            Command::Man { dir } => docs::man(dir.as_deref()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::from(exit_code(&error))
        }
    }
}

/// README's exit codes: 2 usage error, 3 not found, 4 already exists, 1 any
/// other error. Decided by the first typed error in the chain.
fn exit_code(error: &anyhow::Error) -> u8 {
    error
        .chain()
        .find_map(|cause| {
            if let Some(e) = cause.downcast_ref::<StoreError>() {
                Some(store_exit_code(e))
            } else if let Some(e) = cause.downcast_ref::<RootfsError>() {
                Some(rootfs_exit_code(e))
            } else if let Some(e) = cause.downcast_ref::<SourceError>() {
                Some(source_exit_code(e))
            } else if cause.is::<ReferenceError>() || cause.is::<PlatformError>() {
                Some(USAGE)
            } else if let Some(ReadError::NotFound(_)) = cause.downcast_ref::<ReadError>() {
                // A path missing inside an image, as a missing image is.
                Some(NOT_FOUND)
            } else {
                None
            }
        })
        .unwrap_or(ERROR)
}

const ERROR: u8 = 1;
const USAGE: u8 = 2;
const NOT_FOUND: u8 = 3;
const EXISTS: u8 = 4;

fn store_exit_code(error: &StoreError) -> u8 {
    match error {
        StoreError::Name(_) => USAGE,
        StoreError::NotFound { .. } => NOT_FOUND,
        StoreError::AlreadyExists { .. } => EXISTS,
        StoreError::Source(e) => source_exit_code(e),
        StoreError::Rootfs(e) => rootfs_exit_code(e),
        _ => ERROR,
    }
}

fn rootfs_exit_code(error: &RootfsError) -> u8 {
    match error {
        RootfsError::Source(e) => source_exit_code(e),
        // As if the download had failed before writing started.
        RootfsError::Download(DownloadFailed::Failed { cause, .. }) => source_exit_code(cause),
        RootfsError::OutputNotAFile { .. } | RootfsError::OutputIsInput { .. } => USAGE,
        _ => ERROR,
    }
}

fn source_exit_code(error: &SourceError) -> u8 {
    match error {
        SourceError::Reference(_) | SourceError::InvalidSource { .. } => USAGE,
        SourceError::NotFound { .. } | SourceError::Registry { status: 404, .. } => NOT_FOUND,
        _ => ERROR,
    }
}

/// On SIGINT, SIGTERM or SIGHUP: remove what banger was writing (an
/// output's temporary file, downloads, staging directories), then exit
/// with 128 + the signal, as a shell reports a process killed by it. A
/// thread of its own serves the signals, so a busy or blocked runtime
/// cannot delay the clean-up.
fn remove_temporaries_on_interrupt() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("warning: cannot watch for interrupts ({e}); an interrupted run may leave temporary files");
            return;
        }
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            banger::cleanup::remove_registered();
            let name = match signal {
                SIGINT => "SIGINT",
                SIGTERM => "SIGTERM",
                _ => "SIGHUP",
            };
            eprintln!("error: interrupted by {name}; removed the files being written");
            std::process::exit(128 + signal);
        }
    });
}

/// The error and its causes on one line, each once. banger's own errors leave
/// their cause to the chain; a cause the line already ends with comes from an
/// error that prints its source itself (std's and other crates' do), and is
/// not repeated.
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
        if line.ends_with(&text) {
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

    #[derive(Debug, thiserror::Error)]
    #[error("building the image")]
    struct Plain(#[source] std::io::Error);

    #[test]
    fn errors_print_each_cause_once_on_one_line() {
        let inner = std::io::Error::other("disk full");
        let error = anyhow::Error::new(Plain(inner)).context("pulling x");
        assert_eq!(one_line(&error), "pulling x: building the image: disk full");
        // A cause that also appears earlier, but not at the end, is still printed.
        let inner = std::io::Error::other("x");
        let error = anyhow::Error::new(Plain(inner)).context("pulling x into x");
        assert_eq!(one_line(&error), "pulling x into x: building the image: x");
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
    fn vsock_ports() {
        assert_eq!(super::parse_vsock_port("52"), Ok(52));
        assert_eq!(super::parse_vsock_port("4294967294"), Ok(4_294_967_294));
        assert!(super::parse_vsock_port("4294967295").is_err());
        assert!(super::parse_vsock_port("-1").is_err());
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
