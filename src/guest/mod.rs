//! Making an image boot into a working guest: banger's side of the guest,
//! added to the flattened tree before the formatter writes the metadata.
//!
//! [`prepare_guest`] does, in order:
//! 1. detect the image's init system from its own files ([`crate::initsys`]),
//!    before anything of banger's is in the tree;
//! 2. write the kernel's modules and their depmod indexes
//!    ([`modules::write_modules`]), when the image gets a kernel;
//! 3. add the agents every image gets ([`crate::inject`]), banger's init
//!    binary and `/etc/banger/init.json` (the vsock port and the image's
//!    OCI workload);
//! 4. hook the services into the init system: systemd units (always
//!    written), sysvinit/OpenRC scripts or inittab lines, or, for an image
//!    without a working `/sbin/init`, `/sbin/init -> banger-init`. An existing
//!    init is never replaced unless asked for with `--init banger`.

pub mod files;
pub mod modules;
pub mod place;

use banger_ext4::builder::ImageBuilder;
use banger_ext4::tree::{FileContent, Metadata, NodeKind, Timestamp, Tree};
use serde::{Deserialize, Serialize};

pub use crate::initsys::InitChoice;
use crate::initsys::{self, InitSysError, InitSystem, ServiceContent};
use crate::inject::{inject_agents, InjectOptions, INIT_BINARY};
use crate::os_release::{package_manager, OsRelease, OS_RELEASE_PATHS};
use crate::source::RuntimeConfig;

use self::files::TreeFiles;
use self::modules::{write_modules, ModulesError, ModulesPlan};
use self::place::{place, PlaceError};

/// Where banger's init goes in the guest.
pub const INIT_PATH: &str = "/usr/local/sbin/banger-init";
/// What the kernel runs as PID 1 unless told otherwise.
pub const SBIN_INIT: &str = "/sbin/init";
/// banger-init's configuration: the vsock port and the image's workload.
pub const INIT_CONFIG_PATH: &str = "/etc/banger/init.json";

/// Most bytes of an os-release file read; real ones are under 1 KiB.
const MAX_OS_RELEASE_BYTES: usize = 64 << 10;

/// How to prepare the guest.
#[derive(Clone, Debug)]
pub struct GuestOptions {
    /// The vsock port the agent listens on.
    pub vsock_port: u32,
    /// Which init system to hook into.
    pub init: InitChoice,
    /// Kernel modules to write, when the image gets a kernel.
    pub modules: Option<ModulesPlan>,
    /// What the image runs (banger-init starts it as the workload).
    pub runtime: RuntimeConfig,
    /// Times of everything banger writes.
    pub time: Timestamp,
}

/// What banger set up in a guest; kept in the image's record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestRecord {
    /// The init system the services were set up for: `systemd`,
    /// `sysvinit`, `openrc`, `busybox` or `banger` (banger's own init), or
    /// `unknown` when banger recognised none.
    pub init: String,
    /// Why: the files that decided it, or that it was asked for.
    pub init_reason: String,
    /// The vsock port the agent listens on.
    pub vsock_port: u32,
    /// The kernel release whose modules were written, if any.
    #[serde(default)]
    pub kernel_release: Option<String>,
    /// The modules written, by name.
    #[serde(default)]
    pub modules: Vec<String>,
}

/// What [`prepare_guest`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestReport {
    /// For the image's record.
    pub record: GuestRecord,
    /// Things the user should know: an init banger does not know, a
    /// distribution first boot cannot provision, modules the kernel lacks.
    pub warnings: Vec<String>,
}

/// Why the guest could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The kernel's modules could not be written.
    #[error(transparent)]
    Modules(#[from] ModulesError),
    /// A file could not be placed.
    #[error(transparent)]
    Place(#[from] PlaceError),
    /// The init system's service files could not be made.
    #[error(transparent)]
    InitSys(#[from] InitSysError),
}

/// Prepares `tree` (whose file data went into the image through `builder`)
/// to boot into a working guest. See the module docs for the steps.
pub fn prepare_guest(
    tree: &mut Tree,
    builder: &mut ImageBuilder,
    opts: &GuestOptions,
) -> Result<GuestReport, GuestError> {
    let detection = initsys::detect(&mut TreeFiles { tree, builder });
    let mut warnings = Vec::new();
    let mut record = GuestRecord {
        vsock_port: opts.vsock_port,
        ..GuestRecord::default()
    };

    if let Some(plan) = &opts.modules {
        let report = write_modules(tree, builder, plan, opts.time)?;
        if !report.missing.is_empty() {
            warnings.push(format!(
                "kernel {} neither has nor builds in {}: the guest may lack a NIC or vsock",
                report.release,
                report.missing.join(", ")
            ));
        }
        record.kernel_release = Some(report.release);
        record.modules = report.modules;
    }

    inject_agents(
        tree,
        &InjectOptions {
            vsock_port: opts.vsock_port,
            time: opts.time,
        },
    )?;
    let exec = Metadata::new(0o755, opts.time);
    let data = Metadata::new(0o644, opts.time);
    place(
        tree,
        INIT_PATH,
        NodeKind::File(FileContent::from_bytes(INIT_BINARY)),
        exec.clone(),
        &exec,
    )?;
    place(
        tree,
        INIT_CONFIG_PATH,
        NodeKind::File(FileContent::from_bytes(init_config(opts))),
        data,
        &exec,
    )?;

    let (system, reason) = match &opts.init {
        InitChoice::Auto => (detection.system.clone(), detection.evidence.join("; ")),
        InitChoice::Use(system) => (system.clone(), "asked for with --init".to_owned()),
        InitChoice::Banger => (InitSystem::None, "asked for with --init banger".to_owned()),
    };
    record.init_reason = reason;
    record.init = match &system {
        InitSystem::Systemd => "systemd".to_owned(),
        InitSystem::None => {
            link_banger_init(tree, opts.time)?;
            "banger".to_owned()
        }
        InitSystem::SysVinit | InitSystem::OpenRc | InitSystem::Busybox => {
            let services =
                initsys::service_files(&system, &mut TreeFiles { tree, builder }, opts.vsock_port)?;
            for file in services {
                let kind = match file.content {
                    ServiceContent::File(bytes) => NodeKind::File(FileContent::from_bytes(bytes)),
                    ServiceContent::Symlink(target) => NodeKind::Symlink(target.into_bytes()),
                    ServiceContent::Remove => {
                        remove(tree, &file.path);
                        continue;
                    }
                };
                place(
                    tree,
                    &file.path,
                    kind,
                    Metadata::new(file.mode, opts.time),
                    &exec,
                )?;
            }
            system.to_string()
        }
        other => {
            warnings.push(format!(
                "the image's init ({other}: {}) is one banger cannot set services up for; it is \
                 left as it is. Boot with init={INIT_PATH} on the kernel command line to use \
                 banger's init, or pass --init banger to make it /sbin/init",
                record.init_reason
            ));
            "unknown".to_owned()
        }
    };
    warnings.extend(first_boot_warning(&mut TreeFiles { tree, builder }));
    Ok(GuestReport { record, warnings })
}

/// Unlinks what is at `path` (not following a final symlink), if anything.
fn remove(tree: &mut Tree, path: &str) {
    if let Ok(resolved) = tree.resolve_parent(path.as_bytes(), None) {
        if resolved.existing.is_some() {
            tree.unlink(resolved.parent, &resolved.name);
        }
    }
}

/// `/sbin/init -> /usr/local/sbin/banger-init`, through the image's own
/// `/sbin -> usr/sbin` link where it has one, replacing a dangling link.
fn link_banger_init(tree: &mut Tree, time: Timestamp) -> Result<(), PlaceError> {
    place(
        tree,
        SBIN_INIT,
        NodeKind::Symlink(INIT_PATH.as_bytes().to_vec()),
        Metadata::new(0o777, time),
        &Metadata::new(0o755, time),
    )
    .map(drop)
}

/// banger-init's configuration, in the schema banger-init reads.
fn init_config(opts: &GuestOptions) -> Vec<u8> {
    let config = banger_vsock_agent::init::config::InitConfig {
        vsock_port: opts.vsock_port,
        entrypoint: opts.runtime.entrypoint.clone(),
        cmd: opts.runtime.cmd.clone(),
        env: opts.runtime.env.clone(),
        working_dir: opts.runtime.working_dir.clone(),
        user: opts.runtime.user.clone(),
    };
    let mut text = config.to_json();
    text.push('\n');
    text.into_bytes()
}

/// A warning when `assets/first-boot.sh` will not be able to install an SSH
/// server in this image: no os-release (`/etc/os-release`, else
/// `/usr/lib/os-release`, symlinks followed inside the tree), or one naming
/// a distribution the script does not know.
pub fn first_boot_warning(files: &mut dyn initsys::ImageFiles) -> Option<String> {
    let found = OS_RELEASE_PATHS
        .iter()
        .find_map(|path| Some((*path, files.read(path, MAX_OS_RELEASE_BYTES)?)));
    let Some((path, bytes)) = found else {
        return Some(format!(
            "the image has neither {} nor {}: first boot cannot identify the distribution \
             and will not install an SSH server",
            OS_RELEASE_PATHS[0], OS_RELEASE_PATHS[1]
        ));
    };
    let os = OsRelease::parse_bytes(&bytes);
    if package_manager(&os).is_some() {
        return None;
    }
    Some(format!(
        "{path} names ID={} ID_LIKE={:?}, which first boot does not know: it will not install \
         an SSH server (supported: Debian, Alpine, Fedora/RHEL, Arch, openSUSE families)",
        os.id.as_deref().unwrap_or("(none)"),
        os.id_like.join(" ")
    ))
}

#[cfg(test)]
mod tests;
